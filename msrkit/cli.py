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
    backend: BackendOpt = "auto",
    base_url: BaseUrlOpt = None,
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    index: IndexOpt = None,
    prompts: PromptsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the Ranking object(s) as JSON (one per line).")
    ] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")] = None,
    passes: Annotated[int, typer.Option(min=1, help="Listwise passes over shuffled orders (Borda).")] = 1,
    window: Annotated[int, typer.Option(min=2, help="Sliding window size for long candidate lists.")] = 20,
    stride: Annotated[int, typer.Option(min=1, help="Sliding window stride.")] = 10,
    fusion_weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="1 = LLM order only, 0 = retrieval only.")
    ] = 0.5,
    pointwise: Annotated[bool, typer.Option(help="Score each candidate by p(yes) (needs logprobs).")] = False,
    item_summaries: Annotated[bool, typer.Option(help="Summarize items into keywords first.")] = True,
    preference_summary: Annotated[bool, typer.Option(help="Run the recurrent preference summary.")] = True,
    strict: Annotated[bool, typer.Option(help="Fail instead of falling back to retrieval order.")] = False,
    max_side: Annotated[int, typer.Option(min=32, help="Downscale images to this many pixels at most.")] = 768,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Rank each user's candidates and print a table (or JSON with --json)."""
    _setup_logging(verbose, quiet)

    def run() -> None:
        from .io import load_histories
        from .recommender import Recommender, Stages

        histories = load_histories(path)
        stages = Stages(item_summaries=item_summaries, preference_summary=preference_summary)
        rec = Recommender(
            backend, base_url=base_url, catalog=catalog, interactions=interactions, index=_load_index(index),
            prompts=prompts, cache=_cache_arg(cache_dir, no_cache), stages=stages, window=window, stride=stride,
            passes=passes, fusion_weight=fusion_weight, pointwise=pointwise, strict=strict, max_side=max_side,
        )  # fmt: skip
        with rec:
            for history in histories:
                ranking = rec.rank(history)
                if top_k is not None:
                    ranking = ranking.model_copy(update={"ranking": ranking.ranking[:top_k]})
                if json_out:
                    typer.echo(ranking.model_dump_json())
                else:
                    _print_ranking(ranking, quiet=quiet)

    _guard(run)


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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
