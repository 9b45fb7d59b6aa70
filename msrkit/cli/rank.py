"""``msrkit rank``: flags -> Settings -> Recommender.rank over each history -> a table, JSON lines or a file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ..escape import to_json
from .common import err, guard, hide_result_warnings, run_sharded, safe, setup_logging
from .options import (
    CacheOptions,
    ConcurrencyOpt,
    DeadlineOpt,
    GeneralOptions,
    ModelOptions,
    PromptsOpt,
    RayOptions,
    RetriesOpt,
    RetrievalOptions,
    option_groups,
    settings,
)

__all__ = ["rank", "print_ranking"]

#: Why a ranking fell back that makes the command fail (exit 6) after printing it: the backend is not usable.
FATAL_FAILURES = {
    "backend_unavailable": "the backend could not be reached",
    "backend_permanent": "the backend refused the requests for good (key, quota, model?)",
}


@option_groups
def rank(
    path: Annotated[Path, typer.Argument(help="history.json: one user, a JSON list of users, or a .jsonl.")],
    *,
    model: ModelOptions,
    vision_backend: Annotated[
        str | None, typer.Option("--vision-backend", help="Backend for item image summaries (default: --backend).")
    ] = None,
    data: RetrievalOptions,
    prompts: PromptsOpt = None,
    cache: CacheOptions,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the Ranking object(s) as JSON (one per line).")
    ] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")] = None,
    passes: Annotated[int | None, typer.Option(min=1, help="Listwise passes over shuffled orders (Borda).")] = None,
    window: Annotated[int | None, typer.Option(min=2, help="Sliding window size for long candidate lists.")] = None,
    stride: Annotated[int | None, typer.Option(min=1, help="Sliding window stride (default: window/2).")] = None,
    fusion_weight: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="1 = LLM order only, 0 = retrieval only.")
    ] = None,
    pointwise: Annotated[
        bool | None, typer.Option("--pointwise/--listwise", help="Score each candidate by p(yes) (needs logprobs).")
    ] = None,
    item_summaries: Annotated[
        bool | None, typer.Option("--item-summaries/--no-item-summaries", help="Summarize items into keywords first.")
    ] = None,
    preference_summary: Annotated[
        bool | None,
        typer.Option("--preference-summary/--no-preference-summary", help="Run the recurrent preference summary."),
    ] = None,
    explain: Annotated[
        bool | None, typer.Option("--explain/--no-explain", help="Ask the model for a reason for its top items.")
    ] = None,
    strict: Annotated[
        bool | None, typer.Option("--strict/--no-strict", help="Fail instead of falling back to retrieval order.")
    ] = None,
    max_side: Annotated[int | None, typer.Option(min=32, help="Downscale images to this many pixels.")] = None,
    retries: RetriesOpt = None,
    deadline: DeadlineOpt = None,
    n_candidates: Annotated[
        int | None, typer.Option("--n-candidates", min=1, help="Candidates to generate when a history has none.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Append one JSON line per user here (resumable); --engine ray: a folder of shards."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="With --out: skip users already ranked there.")] = True,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the LLM calls and tokens the batch would cost now; call nothing."),
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write one self-contained HTML report (with images) here.")
    ] = None,
    concurrency: ConcurrencyOpt = None,
    ray: RayOptions,
    general: GeneralOptions,
) -> None:
    """Rank each user's candidates and print a table (or JSON with --json).

    With --engine ray, users are ranked by Ray Data actors into resumable shards
    under --out (see docs/distributed.md). Unset options come from
    msrkit.toml, then MSRKIT_* variables (see `msrkit config show`).
    """
    quiet = general.quiet
    setup_logging(general.verbose, quiet)
    flags = dict(
        vision_backend=vision_backend, prompts=prompts, passes=passes, window=window, stride=stride,
        fusion_weight=fusion_weight, pointwise=pointwise, item_summaries=item_summaries,
        preference_summary=preference_summary, explain=explain, strict=strict, max_side=max_side, retries=retries,
        n_candidates=n_candidates, deadline=deadline, concurrency=concurrency,
    )  # fmt: skip
    shown = _Shown(json_out=json_out, quiet=quiet, to_file=out is not None)
    if shown.tables:
        hide_result_warnings()  # each table prints its ranking's warnings

    def run() -> None:
        from rich.console import Console
        from rich.progress import Progress

        from ..jobs.batch import HistoryFile, rank_batch
        from ..jobs.cost import CostTally
        from ..recommender import Recommender

        s = settings(model, data, cache, ray, config=general.config, **flags)
        if s.engine == "ray":
            _on_ray(path, s, out=out, ray=ray, resume=resume, html=html, quiet=quiet)
            return
        histories = HistoryFile(path)
        if dry_run:
            _dry_run(s, histories)
            return
        rec = Recommender(settings=s)
        shown.many = len(histories) > 1
        bar = shown.many and not quiet and (out is not None or json_out)  # tables would interleave
        cost = CostTally()
        with rec, _report(html, rec) as report, Progress(console=Console(stderr=True), disable=not bar,
                                                         transient=True) as progress:  # fmt: skip
            task = progress.add_task("ranking", total=len(histories))

            def ranked(history: Any) -> Any:
                ranking = top(rec.rank(history), top_k)
                cost.add(ranking.usage)
                if report is not None:
                    report.add(history, ranking)
                return ranking

            def advance(key: str, outcome: Any) -> None:
                shown(key, outcome)
                progress.advance(task)

            summary = rank_batch(ranked, histories, out=out, resume=resume, on_result=advance)
        if report is not None and not quiet:
            typer.echo(f"report: {report.path} ({report.users} user(s))", err=True)
        if out is not None and not quiet:
            typer.echo(
                f"{summary.ranked} ranked, {summary.skipped} already in {out}, {summary.failed} failed", err=True
            )
        if shown.many and not quiet and rec.backend is not None:
            typer.echo(cost.line(), err=True)
        if summary.errors:
            raise typer.Exit(min(getattr(e, "exit_code", 1) for _, e in summary.errors))
        if shown.fatal:
            why = "; ".join(FATAL_FAILURES[f] for f in sorted(set(shown.fatal.values())))
            err(
                f"{why}: {len(shown.fatal)} of {summary.total} ranking(s) fell back to retrieval order "
                "(see the warning above; --backend none ranks by retrieval alone)"
            )
            raise typer.Exit(6)

    guard(run)


def _on_ray(
    path: Path, s: Any, *, out: Path | None, ray: RayOptions, resume: bool, html: Path | None, quiet: bool
) -> None:
    from ..distributed import rank_to_shards
    from ..errors import ConfigError

    if out is None or html is not None or not resume:
        raise ConfigError("--engine ray writes resumable shards to a folder: give --out DIR (and no --html, "
                          "--no-resume; remove the folder to start afresh)")  # fmt: skip

    def start(progress: Any) -> Any:
        return rank_to_shards(path, out, s, fmt=ray.out_format, shard_size=ray.shard_size, on_progress=progress)

    run = run_sharded(start, out=out, quiet=quiet)
    fatal = {why: n for why, n in run.degraded.items() if why in FATAL_FAILURES}
    if fatal:
        why = "; ".join(FATAL_FAILURES[f] for f in sorted(fatal))
        err(f"{why}: {sum(fatal.values())} ranking(s) fell back to retrieval order (--backend none ranks by "
            "retrieval alone)")  # fmt: skip
        raise typer.Exit(6)


def _dry_run(s: Any, histories: Any) -> None:
    from ..jobs.cost import CHARS_PER_TOKEN, predict

    tally = predict(s, (h for _, h in histories))
    typer.echo(f"dry run (nothing was sent; prompt tokens estimated at {CHARS_PER_TOKEN:g} characters each, "
               "completions at their cap):")  # fmt: skip
    typer.echo(tally.line())


def top(ranking: Any, k: int | None) -> Any:
    """The ranking cut to its first ``k`` items (``None``: all), for every output alike."""
    return ranking if k is None else ranking.model_copy(update={"ranking": ranking.ranking[:k]})


@contextmanager
def _report(html: Path | None, rec: Any) -> Iterator[Any]:
    if html is None:
        yield None
        return
    from ..jobs.report import HtmlReport

    with HtmlReport(html, catalog=rec.catalog, image_policy=rec.image_policy) as report:
        yield report


class _Shown:
    """Prints each outcome as it comes and remembers what the command's exit code depends on (not the rankings)."""

    def __init__(self, *, json_out: bool, quiet: bool, to_file: bool) -> None:
        self.json_out, self.quiet, self.to_file = json_out, quiet, to_file
        self.many = False
        self.fatal: dict[str, str] = {}

    def __call__(self, key: str, outcome: Any) -> None:
        if isinstance(outcome, BaseException):
            err(f"user {key}: {outcome}" if self.many else str(outcome))
            return
        ranking = outcome
        if ranking.degraded_by in FATAL_FAILURES:
            self.fatal[key] = ranking.degraded_by
        if self.json_out:
            typer.echo(to_json(ranking))
        elif self.tables:
            print_ranking(ranking, quiet=self.quiet)

    @property
    def tables(self) -> bool:
        """Whether each ranking is printed as a table (with its warnings)."""
        return not self.json_out and (not self.to_file or not self.quiet)


def print_ranking(ranking: Any, *, quiet: bool) -> None:
    """A table of the ranking, its summary, cost and warnings (all text made terminal-safe)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from ..ranking.scale import format_score, score_caption, shows_score

    console = Console()
    title = f"user {ranking.user_id}" if ranking.user_id else "ranking"
    scored = shows_score(ranking.score_kind)
    table = Table(title=escape(safe(f"{title} — {ranking.backend}")), caption=score_caption(ranking.score_kind),
                  show_lines=False)  # fmt: skip
    for col, kw in (("rank", {"justify": "right"}), ("item_id", {}), ("title", {})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    if scored:
        table.add_column("score", justify="right")
    table.add_column("reason", overflow="fold")
    for r in ranking.ranking:
        cells = (str(r.rank), r.item_id, r.title or "", *([format_score(r.score)] if scored else []), r.reason)
        table.add_row(*(escape(safe(c)) for c in cells))
    console.print(table)
    if ranking.preference_summary and not quiet:
        console.print(f"[bold]preference summary:[/bold] {escape(safe(ranking.preference_summary))}", highlight=False)
    u = ranking.usage
    if not quiet:
        console.print(
            f"llm calls {u.llm_calls}, cache hits {u.cache_hits}, tokens {u.prompt_tokens}+{u.completion_tokens}, "
            f"{u.seconds:.2f} s" + (" — DEGRADED to retrieval order" if ranking.degraded else ""),
            highlight=False,
        )
    for w in ranking.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(safe(w))}", highlight=False)
