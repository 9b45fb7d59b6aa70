"""The ``msrkit`` command line. It only calls the public library.

Exit codes (also in ``msrkit --help``): 0 success; 1 internal error; 2 bad
options; 3 invalid input file or field; 4 configuration; 5 missing optional
dependency; 6 backend failed or unreachable; 7 invalid prompt template;
130 interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

EPILOG = (
    "Exit codes: 0 ok, 1 internal error, 2 bad options, 3 invalid input, 4 configuration, "
    "5 missing optional dependency, 6 backend failed, 7 invalid prompt template, 130 interrupted."
)

app = typer.Typer(
    name="msrkit",
    help="Multimodal sequential recommendation with (multimodal) LLMs: rank what a user takes next.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
prompts_app = typer.Typer(help="See the prompt templates and exactly what the model sees.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the response cache.", no_args_is_help=True)
index_app = typer.Typer(help="Build the collaborative (BM25) index.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
app.add_typer(cache_app, name="cache")
app.add_typer(index_app, name="index")

T = TypeVar("T")

BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend", "-b", envvar="MSRKIT_BACKEND",
        help="auto | none | llamacpp/PATH.gguf | llamacpp/default | openai/MODEL | ollama/NAME:TAG",
    ),
]  # fmt: skip
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Endpoint for openai/ollama backends.")]
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="items.jsonl resolving bare item ids.")]
InteractionsOpt = Annotated[
    Path | None, typer.Option("--interactions", help="interactions.jsonl/.csv for collaborative retrieval.")
]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="A folder made by `msrkit index build`.")]
PromptsOpt = Annotated[
    Path | None, typer.Option("--prompts", help="A folder of templates overriding the shipped ones.")
]
CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", envvar="MSRKIT_CACHE_DIR", help="Cache folder.")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the response cache.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv for debug).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
# rank/eval options default to None: None means "not given", so msrkit.toml and MSRKIT_* fill them
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: $MSRKIT_CONFIG, ./msrkit.toml, [tool.msrkit] in pyproject)."),
]
SettingsBackendOpt = Annotated[
    str | None,
    typer.Option("--backend", "-b", help="auto | none | llamacpp/PATH.gguf | llamacpp/default | openai/MODEL | "
                 "ollama/NAME:TAG (default: auto; env MSRKIT_BACKEND)"),
]  # fmt: skip
SettingsCacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder (env MSRKIT_CACHE_DIR).")]


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


def _guard(fn: Callable[[], T]) -> T:
    """Run a command body: msrkit errors become one line and their exit code, never a traceback."""
    from .errors import MsrkitError

    try:
        return fn()
    except MsrkitError as exc:
        _err(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        _err("interrupted")
        raise typer.Exit(130) from None


def _cache_arg(cache_dir: Path | None, no_cache: bool) -> Any:
    if no_cache:
        return False
    return cache_dir if cache_dir is not None else True


# -- rank ------------------------------------------------------------------------


@app.command(epilog="Example: msrkit rank examples/history.json --top-k 5   |   msrkit rank users.jsonl --json")
def rank(
    path: Annotated[Path, typer.Argument(help="history.json: one user, a JSON list of users, or a .jsonl.")],
    backend: SettingsBackendOpt = None,
    base_url: BaseUrlOpt = None,
    vision_backend: Annotated[
        str | None, typer.Option("--vision-backend", help="Backend for item image summaries (default: --backend).")
    ] = None,
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    index: IndexOpt = None,
    prompts: PromptsOpt = None,
    cache_dir: SettingsCacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the Ranking object(s) as JSON (one per line).")
    ] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")] = None,
    passes: Annotated[int | None, typer.Option(min=1, help="Listwise passes over shuffled orders (Borda; 1).")] = None,
    window: Annotated[
        int | None, typer.Option(min=2, help="Sliding window size for long candidate lists (20).")
    ] = None,
    stride: Annotated[int | None, typer.Option(min=1, help="Sliding window stride (default: window/2).")] = None,
    fusion_weight: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="1 = LLM order only, 0 = retrieval only (0.5).")
    ] = None,
    pointwise: Annotated[bool, typer.Option(help="Score each candidate by p(yes) (needs logprobs).")] = False,
    item_summaries: Annotated[bool, typer.Option(help="Summarize items into keywords first.")] = True,
    preference_summary: Annotated[bool, typer.Option(help="Run the recurrent preference summary.")] = True,
    strict: Annotated[
        bool | None, typer.Option("--strict/--no-strict", help="Fail instead of falling back to retrieval order.")
    ] = None,
    max_side: Annotated[int | None, typer.Option(min=32, help="Downscale images to this many pixels (768).")] = None,
    retries: Annotated[int | None, typer.Option(min=0, help="Retries of transient failures (429, 5xx...; 4).")] = None,
    n_candidates: Annotated[
        int | None, typer.Option("--n-candidates", min=1, help="Candidates to generate when a history has none (20).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Append one JSON line per user here (resumable).")] = None,
    resume: Annotated[bool, typer.Option(help="With --out: skip users already ranked there.")] = True,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write one self-contained HTML report (with images) here.")
    ] = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Rank each user's candidates and print a table (or JSON with --json).

    Unset options come from msrkit.toml, then MSRKIT_* variables (see `msrkit config show`).
    """
    _setup_logging(verbose, quiet)
    histories: list[Any] = []
    flags = dict(
        backend=backend, base_url=base_url, vision_backend=vision_backend, catalog=catalog, interactions=interactions,
        index=index, prompts=prompts, cache_dir=cache_dir, passes=passes, window=window, stride=stride,
        fusion_weight=fusion_weight, strict=strict, max_side=max_side, retries=retries, n_candidates=n_candidates,
    )  # fmt: skip
    done: dict[str, Any] = {}

    def run() -> None:
        from .batch import batch_keys, rank_batch
        from .config import load_settings
        from .io import load_histories
        from .recommender import Recommender, Stages

        settings, _ = load_settings(flags, config=config)
        histories.extend(load_histories(path))
        stages = Stages(item_summaries=item_summaries, preference_summary=preference_summary)
        rec = Recommender(
            **settings.recommender_kwargs(), index=_load_index(settings.index),
            cache=_cache_arg(settings.cache_dir, no_cache), stages=stages, pointwise=pointwise,
        )  # fmt: skip
        from rich.console import Console
        from rich.progress import Progress

        many = len(histories) > 1 and not quiet and (out is not None or json_out)  # tables would interleave
        with rec, Progress(console=Console(stderr=True), disable=not many, transient=True) as progress:
            task = progress.add_task("ranking", total=len(histories))

            def advance(key: str, outcome: Any) -> None:
                show(key, outcome)
                progress.advance(task)

            summary = rank_batch(rec.rank, histories, out=out, resume=resume, on_result=advance)
        if html is not None:
            _write_report(html, histories, batch_keys(histories), done, rec.catalog, quiet=quiet)
        if out is not None and not quiet:
            typer.echo(
                f"{summary.ranked} ranked, {summary.skipped} already in {out}, {summary.failed} failed", err=True
            )
        if summary.errors:
            raise typer.Exit(min(getattr(e, "exit_code", 1) for _, e in summary.errors))
        if unreachable:
            _err(
                f"the backend could not be reached: {len(unreachable)} of {len(histories)} ranking(s) fell back to "
                "retrieval order (see the warning above; --backend none ranks by retrieval alone)"
            )
            raise typer.Exit(6)

    unreachable: list[str] = []

    def show(key: str, outcome: Any) -> None:
        if isinstance(outcome, BaseException):
            _err(f"user {key}: {outcome}" if len(histories) > 1 else str(outcome))
            return
        ranking = outcome
        if ranking.degraded and ranking.diagnostics.get("error") == "BackendUnavailableError":
            unreachable.append(key)
        done[key] = ranking
        if top_k is not None:
            ranking = ranking.model_copy(update={"ranking": ranking.ranking[:top_k]})
        if json_out:
            typer.echo(ranking.model_dump_json())
        elif out is None or not quiet:
            _print_ranking(ranking, quiet=quiet)

    _guard(run)


def _write_report(
    html: Path, histories: list[Any], keys: list[str], done: dict[str, Any], catalog: Any, *, quiet: bool
) -> None:
    from .report import write_html

    pairs = [(h, done[k]) for k, h in zip(keys, histories, strict=True) if k in done]
    written = write_html(html, pairs, catalog=catalog)
    if not quiet:
        typer.echo(f"report: {written} ({len(pairs)} user(s))", err=True)


def _load_index(index: Path | None) -> Any:
    if index is None:
        return None
    from .retrieval import CollaborativeIndex

    return CollaborativeIndex.load(index)


def _print_ranking(ranking: Any, *, quiet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = f"user {ranking.user_id}" if ranking.user_id else "ranking"
    table = Table(title=f"{title} — {ranking.backend}", show_lines=False)
    for col, kw in (("rank", {"justify": "right"}), ("item_id", {}), ("title", {}), ("score", {"justify": "right"})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    table.add_column("reason", overflow="fold")
    for r in ranking.ranking:
        table.add_row(str(r.rank), r.item_id, r.title or "", f"{r.score:.4f}", r.reason)
    console.print(table)
    if ranking.preference_summary and not quiet:
        console.print(f"[bold]preference summary:[/bold] {ranking.preference_summary}", highlight=False)
    u = ranking.usage
    if not quiet:
        console.print(
            f"llm calls {u.llm_calls}, cache hits {u.cache_hits}, tokens {u.prompt_tokens}+{u.completion_tokens}, "
            f"{u.seconds:.2f} s" + (" — DEGRADED to retrieval order" if ranking.degraded else ""),
            highlight=False,
        )
    for w in ranking.warnings:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


# -- backends ----------------------------------------------------------------------


@app.command(epilog="Example: msrkit backends --json")
def backends(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show which backends are installed and reachable, and what `auto` picks."""

    def run() -> None:
        from .backends import auto_choice, available_backends

        rows = available_backends()
        choice = auto_choice()
        if json_out:
            typer.echo(json.dumps({"backends": rows, "auto": {"backend": choice.spec, "why": choice.why}}))
            return
        for row in rows:
            typer.echo(f"{row['backend']:<9} {row['status']}")
        typer.echo(f"auto  ->  {choice.spec}  ({choice.why})")

    _guard(run)


# -- prompts -----------------------------------------------------------------------


@prompts_app.command("list")
def prompts_list(prompts: PromptsOpt = None) -> None:
    """List templates with id, version and content hash."""

    def run() -> None:
        from .prompts import PromptSet

        for t in PromptSet.load(prompts):
            typer.echo(f"{t.tag:<40} {t.description}")

    _guard(run)


@prompts_app.command("show")
def prompts_show(name: str, prompts: PromptsOpt = None) -> None:
    """Print one template's source (system and user parts)."""

    def run() -> None:
        from .prompts import PromptSet

        t = PromptSet.load(prompts)[name]
        typer.echo(f"# {t.tag}  ({t.source})\n## system\n{t.system}\n## user\n{t.user}")

    _guard(run)


@prompts_app.command("render", epilog="Example: msrkit prompts render listwise_rank examples/history.json")
def prompts_render(
    name: str,
    path: Annotated[Path, typer.Argument(help="history.json to fill the template with.")],
    catalog: CatalogOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Show exactly what the model sees for one history (no LLM call; summaries left as placeholders)."""

    def run() -> None:
        from .render import render_for_history

        for role, text in render_for_history(name, path, catalog=catalog, prompts=prompts):
            typer.echo(f"--- {role} ---\n{text}")

    _guard(run)


# -- cache -------------------------------------------------------------------------


@cache_app.command("info")
def cache_info(cache_dir: CacheDirOpt = None) -> None:
    """Where the cache lives, how many entries, how many bytes."""

    def run() -> None:
        from .cache import ResponseCache

        typer.echo(json.dumps(ResponseCache(cache_dir).info()))

    _guard(run)


@cache_app.command("clear")
def cache_clear(cache_dir: CacheDirOpt = None) -> None:
    """Remove every cached response."""

    def run() -> None:
        from .cache import ResponseCache

        typer.echo(f"removed {ResponseCache(cache_dir).clear()} entries")

    _guard(run)


# -- summarize ---------------------------------------------------------------------


@app.command(epilog="Example: msrkit summarize items.jsonl --out items.enriched.jsonl")
def summarize(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the enriched catalog here (JSONL).")] = None,
    backend: BackendOpt = "auto",
    base_url: BaseUrlOpt = None,
    prompts: PromptsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Items summarized at once (remote backends).")] = 4,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Summarize every catalog item into keywords (and image descriptions), with a progress bar."""
    _setup_logging(verbose, quiet)

    def run() -> None:
        from rich.progress import Progress

        from .backends import get_backend
        from .cache import CachedBackend, ResponseCache
        from .io import load_catalog
        from .meter import Meter
        from .prompts import PromptSet
        from .summarize import ItemSummarizer

        items = list(load_catalog(path).values())
        raw = get_backend(backend, base_url=base_url)
        if raw is None:
            raise _config("summarize needs an LLM backend, not 'none'")
        llm = raw if no_cache else CachedBackend(raw, ResponseCache(cache_dir))
        summarizer = ItemSummarizer(llm, prompts=PromptSet.load(prompts))
        meter = Meter()
        done = []
        with Progress(disable=quiet, transient=False) as progress:
            task = progress.add_task("summarizing", total=len(items))
            for item in summarizer.summarize(
                items,
                meter=meter,
                base_dir=path.resolve().parent,
                on_item=lambda _: progress.advance(task),
                concurrency=concurrency,
            ):
                done.append(item)
        if out is not None:
            _write_jsonl(out, (i.model_dump(exclude_none=True) for i in done))
        u = meter.finish()
        typer.echo(
            f"{len(done)} items; llm calls {u.llm_calls}, cache hits {u.cache_hits}, {u.seconds:.1f} s", err=True
        )
        for w in meter.warnings:
            typer.echo(f"warning: {w}", err=True)
        llm.close()

    _guard(run)


@app.command(
    "eval-keywords",
    epilog="Example: msrkit eval-keywords items.jsonl --prompts prompts/ --prompts my_variant/ --limit 50",
)
def eval_keywords(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog); given keywords are ignored.")],
    prompts: Annotated[
        list[Path] | None, typer.Option("--prompts", help="Template folder; repeat to compare item_keywords prompts.")
    ] = None,
    backend: BackendOpt = "auto",
    base_url: BaseUrlOpt = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Only the first N items.")] = None,
    budget: Annotated[int, typer.Option(min=1, help="Keyword count that still counts as fully brief.")] = 5,
    distractors: Annotated[int, typer.Option(min=1, help="Other items to pick from in reconstruction.")] = 4,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Compare keyword-summarization prompts: brevity, information kept, reconstruction (MMSRARec's reward)."""
    _setup_logging(verbose, quiet)

    def run() -> None:
        from rich.progress import Progress

        from .backends import get_backend
        from .cache import CachedBackend, ResponseCache
        from .io import load_catalog
        from .keyword_quality import evaluate_keyword_prompts
        from .prompts import PromptSet

        items = list(load_catalog(path).values())[:limit]
        if len(items) < 2:
            raise _config("eval-keywords needs at least 2 items (reconstruction picks among them)")
        raw = get_backend(backend, base_url=base_url)
        if raw is None:
            raise _config("eval-keywords needs an LLM backend, not 'none'")
        llm = raw if no_cache else CachedBackend(raw, ResponseCache(cache_dir))
        variants = {str(d): PromptSet.load(d) for d in prompts} if prompts else {"shipped": PromptSet.load()}
        with Progress(disable=quiet or json_out, transient=True) as progress:
            task = progress.add_task("summarizing", total=len(items) * len(variants))
            scores = evaluate_keyword_prompts(
                items, llm, variants, budget=budget, distractors=distractors,
                on_item=lambda _: progress.advance(task),
            )  # fmt: skip
        llm.close()
        if json_out:
            typer.echo(json.dumps(scores, indent=2))
            return
        metrics = ["keywords", "brevity", "similarity", "coverage", "grounded", "reconstruction", "reward", "llm_calls"]
        typer.echo("| prompts | " + " | ".join(metrics) + " |")
        typer.echo("|---|" + "---:|" * len(metrics))
        for name, row in scores.items():
            typer.echo(f"| {name} | " + " | ".join(f"{row[m]:.3f}" if m != "llm_calls" else f"{row[m]:.0f}"
                                                  for m in metrics) + " |")  # fmt: skip

    _guard(run)


def _config(message: str) -> Exception:
    from .errors import ConfigError

    return ConfigError(message)


def _write_jsonl(path: Path, records: Any) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


# -- index -------------------------------------------------------------------------


@index_app.command(
    "build", epilog="Example: msrkit index build --interactions inter.jsonl --catalog items.jsonl --out idx/"
)
def index_build(
    interactions: Annotated[Path, typer.Option("--interactions", help="interactions.jsonl or .csv")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the index to.")],
    catalog: CatalogOpt = None,
) -> None:
    """Build and save the collaborative BM25 index."""

    def run() -> None:
        from .io import load_catalog, load_interactions
        from .retrieval import CollaborativeIndex

        rows = load_interactions(interactions)
        cat = load_catalog(catalog) if catalog else None
        idx = CollaborativeIndex.build(rows, catalog=cat)
        idx.save(out)
        typer.echo(f"indexed {len(rows)} interactions into {out}")

    _guard(run)


# -- data --------------------------------------------------------------------------

data_app = typer.Typer(help="Convert real data sets into items.jsonl, interactions.jsonl and cases.jsonl.")
app.add_typer(data_app, name="data")

NegativesOpt = Annotated[int, typer.Option(min=0, help="Sampled negatives per case (both papers: 20).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for negative sampling.")]
MaxHistoryOpt = Annotated[int, typer.Option(min=1, help="Keep the last N history items per case.")]


def _write_dataset(out: Path, catalog: Any, interactions: Any, negatives: int, seed: int, max_history: int) -> None:
    from .datasets import leave_one_out, write_catalog, write_jsonl

    out.mkdir(parents=True, exist_ok=True)
    write_catalog(out / "items.jsonl", catalog)
    write_jsonl(out / "interactions.jsonl", ({"user_id": i.user_id, "item_id": i.item_id, "timestamp": i.timestamp}
                                              for i in interactions))  # fmt: skip
    cases = leave_one_out(catalog, interactions, negatives=negatives, seed=seed, max_history=max_history)
    write_jsonl(out / "cases.jsonl", cases)
    typer.echo(f"{len(catalog)} items, {len(interactions)} interactions, {len(cases)} cases -> {out}")


@data_app.command("movielens", epilog="Example: msrkit data movielens --out data/ml-100k")
def data_movielens(
    out: Annotated[Path, typer.Option("--out", help="Folder for items/interactions/cases .jsonl")],
    negatives: NegativesOpt = 20,
    seed: SeedOpt = 0,
    max_history: MaxHistoryOpt = 50,
) -> None:
    """MovieLens-100k from the recbole wheel (pip install --no-deps recbole), split leave-one-out by time."""

    def run() -> None:
        from .datasets import load_movielens_100k

        catalog, interactions = load_movielens_100k()
        _write_dataset(out, catalog, interactions, negatives, seed, max_history)

    _guard(run)


@data_app.command("recbole", epilog="Example: msrkit data recbole path/to/ml-1m --out data/ml-1m")
def data_recbole(
    directory: Annotated[Path, typer.Argument(help="A folder of RecBole atomic files (.inter, .item).")],
    out: Annotated[Path, typer.Option("--out")],
    negatives: NegativesOpt = 20,
    seed: SeedOpt = 0,
    max_history: MaxHistoryOpt = 50,
) -> None:
    """RecBole atomic files, split leave-one-out by time."""

    def run() -> None:
        from .datasets import load_recbole

        catalog, interactions = load_recbole(directory)
        _write_dataset(out, catalog, interactions, negatives, seed, max_history)

    _guard(run)


@data_app.command("amazon", epilog="Example: msrkit data amazon Baby.jsonl --meta meta_Baby.jsonl --out data/baby")
def data_amazon(
    reviews: Annotated[Path, typer.Argument(help="Amazon-reviews-style JSONL (optionally .gz).")],
    out: Annotated[Path, typer.Option("--out")],
    meta: Annotated[Path | None, typer.Option("--meta", help="Item metadata JSONL: titles, images.")] = None,
    negatives: NegativesOpt = 20,
    seed: SeedOpt = 0,
    max_history: MaxHistoryOpt = 50,
) -> None:
    """Amazon reviews + metadata, split leave-one-out by time."""

    def run() -> None:
        from .datasets import load_amazon

        catalog, interactions = load_amazon(reviews, meta)
        _write_dataset(out, catalog, interactions, negatives, seed, max_history)

    _guard(run)


# -- eval --------------------------------------------------------------------------

ABLATIONS = ("retrieval", "+llm", "+summaries", "+collaborative")


@app.command("eval", epilog="Example: msrkit eval data/ml-100k/cases.jsonl --catalog data/ml-100k/items.jsonl "
             "--interactions data/ml-100k/interactions.jsonl --ablations --limit 50")  # fmt: skip
def eval_cmd(
    cases_path: Annotated[Path, typer.Argument(help="cases.jsonl: history objects with a 'target'.")],
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    backend: SettingsBackendOpt = None,
    base_url: BaseUrlOpt = None,
    prompts: Annotated[
        list[Path] | None, typer.Option("--prompts", help="Template folder; repeat to compare prompt variants.")
    ] = None,
    rankings: Annotated[
        Path | None, typer.Option("--rankings", help="Also score rankings from another system (JSONL).")
    ] = None,
    ablations: Annotated[bool, typer.Option(help="Run retrieval / +llm / +summaries / +collaborative.")] = False,
    ks: Annotated[str, typer.Option("--ks", help="Cut-offs for HR@K and NDCG@K.")] = "1,5,10",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N cases.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for results, report.json/.md/.png.")] = Path("msrkit-eval"),
    fusion_weight: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="(0.5)")] = None,
    pointwise: Annotated[bool, typer.Option(help="Score by p(yes) (AUC becomes meaningful).")] = False,
    resume: Annotated[bool, typer.Option(help="Keep cases already scored in --out.")] = True,
    cache_dir: SettingsCacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Evaluate on cases: HR@K, NDCG@K, MRR (AUC with --pointwise), ablations, prompt variants, cost.

    Unset options come from msrkit.toml, then MSRKIT_* variables (see `msrkit config show`).
    """
    _setup_logging(verbose, quiet)
    flags = dict(
        backend=backend, base_url=base_url, catalog=catalog, interactions=interactions, fusion_weight=fusion_weight,
        cache_dir=cache_dir,
    )  # fmt: skip

    def run() -> None:
        from . import evaluate as ev
        from .config import load_settings
        from .io import load_catalog, load_histories, load_interactions
        from .recommender import Recommender

        settings, _ = load_settings(flags, config=config)
        cut = [int(k) for k in ks.split(",") if k.strip()]
        cases = load_histories(cases_path)[:limit]
        cat = load_catalog(settings.catalog) if settings.catalog else {}
        inter = settings.interactions
        index = _eval_index(load_interactions(inter), cases, cat) if inter else None
        variants = _eval_variants(
            settings.backend, ablations=ablations, prompt_dirs=prompts or [], has_index=index is not None
        )
        out.mkdir(parents=True, exist_ok=True)
        reports: dict[str, Any] = {}
        for name, (spec, stages, prompt_dir) in variants.items():
            rec = Recommender(
                **_eval_options(settings, spec, stages, prompt_dir, cat), index=index, stages=stages,
                cache=_cache_arg(settings.cache_dir, no_cache), pointwise=pointwise,
            )  # fmt: skip
            with rec:
                reports[name] = ev.evaluate(
                    cases, rec.rank, ks=cut, out_path=out / f"{_slug(name)}.results.jsonl",
                    resume=resume, progress=not quiet, name=name,
                )  # fmt: skip
        if rankings is not None:
            reports[rankings.name] = ev.score_rankings(
                [resolve_case(c, cat) for c in cases], ev.load_rankings(rankings), ks=cut, name=rankings.name
            )
        comparison = ev.compare(reports, ks=cut)
        (out / "report.json").write_text(ev.to_json(comparison), encoding="utf-8")
        markdown = ev.to_markdown(comparison) + "\n\n" + _cost_table(reports)
        (out / "report.md").write_text(markdown, encoding="utf-8")
        from .report import write_eval_html

        write_eval_html(out / "report.html", comparison)
        try:
            ev.plot(comparison, out / "report.png")
        except Exception as exc:  # noqa: BLE001 - a plot is optional
            from .errors import MsrkitError

            if not isinstance(exc, MsrkitError):
                raise
            typer.echo(f"warning: no plot: {exc}", err=True)
        typer.echo(markdown)
        typer.echo(f"\nwritten: {out}/report.json, report.md, report.html, report.png, *.results.jsonl", err=True)

    _guard(run)


def resolve_case(case: Any, catalog: Any) -> Any:
    from .io import resolve

    return resolve(case, catalog)


def _eval_options(settings: Any, spec: str, stages: Any, prompt_dir: Path | None, catalog: Any) -> dict[str, Any]:
    """Recommender options for one eval variant: the settings, with the variant's backend and prompts."""
    options: dict[str, Any] = settings.recommender_kwargs()
    options.update(backend=spec, catalog=catalog, interactions=None, prompts=prompt_dir or settings.prompts)
    if not stages.llm:
        options["vision_backend"] = None  # the retrieval variant calls no model
    return options


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_") or "run"


def _eval_index(interactions: Any, cases: Any, catalog: Any) -> Any:
    from .retrieval import CollaborativeIndex, interactions_before

    return CollaborativeIndex.build(interactions_before(interactions, cases), catalog=catalog or None)


def _eval_variants(
    backend: str, *, ablations: bool, prompt_dirs: list[Path], has_index: bool
) -> dict[str, tuple[str, Any, Path | None]]:
    from .recommender import Stages

    if backend == "none":
        return {"retrieval": ("none", Stages(llm=False), None)}
    if prompt_dirs:
        return {str(d): (backend, Stages(collaborative=has_index), d) for d in prompt_dirs}
    if not ablations:
        return {"msrkit": (backend, Stages(collaborative=has_index), None)}
    out: dict[str, tuple[str, Any, Path | None]] = {
        "retrieval": ("none", Stages(llm=False), None),
        "+llm": (backend, Stages(item_summaries=False, preference_summary=False, collaborative=False), None),
        "+summaries": (backend, Stages(collaborative=False), None),
    }
    if has_index:
        out["+collaborative"] = (backend, Stages(), None)
    return out


def _cost_table(reports: dict[str, Any]) -> str:
    lines = ["| variant | cases | LLM calls/case | tokens/case | cache hits | s/case | degraded | errors |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in reports.items():
        n = max(len(r.results), 1)
        u = r.usage
        degraded = sum(1 for x in r.results if x.degraded)
        errors = r.counts.get("error", 0)
        lines.append(
            f"| {name} | {len(r.results)} | {u.llm_calls / n:.2f} | {(u.prompt_tokens + u.completion_tokens) / n:.0f} "
            f"| {u.cache_hits} | {u.seconds / n:.2f} | {degraded} | {errors} |"
        )
    return "\n".join(lines)


# -- export-sft ----------------------------------------------------------------------


@app.command("export-sft", epilog="Example: msrkit export-sft cases.jsonl --catalog items.jsonl --out sft.jsonl")
def export_sft_cmd(
    cases_path: Annotated[Path, typer.Argument(help="cases.jsonl")],
    out: Annotated[Path, typer.Option("--out", help="Chat-format JSONL to write.")],
    catalog: CatalogOpt = None,
    task: Annotated[str, typer.Option(help="listwise | yesno")] = "listwise",
    prompts: PromptsOpt = None,
) -> None:
    """Turn cases into chat-format fine-tuning data (the papers' last stage)."""

    def run() -> None:
        from .evaluate import export_sft
        from .io import load_catalog, load_histories
        from .prompts import PromptSet

        if task not in ("listwise", "yesno"):
            raise _config(f"--task must be listwise or yesno, not {task!r}")
        cases = load_histories(cases_path)
        examples = export_sft(
            cases, task=task, prompts=PromptSet.load(prompts),  # type: ignore[arg-type]
            out=out, catalog=load_catalog(catalog) if catalog else None,
        )  # fmt: skip
        typer.echo(f"{len(examples)} examples -> {out}")

    _guard(run)


# -- config ------------------------------------------------------------------------

config_app = typer.Typer(help="See the effective settings and where each came from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show", epilog="Example: MSRKIT_WINDOW=30 msrkit config show --json")
def config_show(
    config: ConfigOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON: each setting's value and source.")] = False,
) -> None:
    """Print each setting of rank/eval: defaults < config file < MSRKIT_* variables < flags."""

    def run() -> None:
        from .config import config_file_label, load_settings

        settings, sources = load_settings({}, config=config)
        values = settings.model_dump(mode="json")
        if json_out:
            rows = {k: {"value": v, "source": sources[k]} for k, v in values.items()}
            typer.echo(json.dumps({"config_file": config_file_label(config), "settings": rows}))
            return
        typer.echo(f"# config file: {config_file_label(config) or 'none'}")
        for key, value in values.items():
            typer.echo(f"{key:<16} = {json.dumps(value):<32} # {sources[key]}")

    _guard(run)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
