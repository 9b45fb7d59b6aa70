"""``msrkit summarize``: every catalog item into keywords (and image descriptions), kept in the catalog store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import (
    BackendOpt,
    BackendOptionOpt,
    BaseUrlOpt,
    CacheDirOpt,
    ConfigOpt,
    DeadlineOpt,
    JsonOpt,
    NoCacheOpt,
    PromptsOpt,
    QuietOpt,
    VerboseOpt,
    err,
    guard,
    safe,
    settings,
    setup_logging,
)

__all__ = ["summarize"]


def summarize(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the enriched catalog here, item by item (resumable).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="With --out: skip items already summarized there.")] = True,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    backend_option: BackendOptionOpt = None,
    vision_backend: Annotated[str | None, typer.Option("--vision-backend", help="Backend for item images.")] = None,
    prompts: PromptsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    retries: Annotated[int | None, typer.Option(min=0, help="Retries of transient failures (429, 5xx...).")] = None,
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Items summarized at once (remote backends).")
    ] = None,
    deadline: DeadlineOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Summarize every catalog item into keywords (and image descriptions), with a progress bar.

    The summaries land in the catalog store next to the cache, where `msrkit rank` and
    `msrkit index build` read them. Unset options come from msrkit.toml, then MSRKIT_* variables.
    The same from Python: msrkit.summaries.catalog.summarize_catalog.
    """
    setup_logging(verbose, quiet)
    flags = dict(backend=backend, base_url=base_url, backend_options=backend_option, vision_backend=vision_backend,
                 prompts=prompts, cache_dir=cache_dir, retries=retries, concurrency=concurrency,
                 deadline=deadline)  # fmt: skip

    def run() -> None:
        from rich.console import Console
        from rich.progress import Progress

        from ..io import load_catalog
        from ..summaries.catalog import summarize_catalog

        items = list(load_catalog(path).values())
        with Progress(console=Console(stderr=True), disable=quiet or json_out, transient=False) as progress:
            task = progress.add_task("summarizing", total=len(items))
            result = summarize_catalog(
                settings(flags, config=config, no_cache=no_cache), items, base_dir=path.resolve().parent,
                on_item=lambda _: progress.advance(task), out=out, resume=resume,
            )  # fmt: skip
        _report(result, json_out=json_out, quiet=quiet, out=out)
        if result.failed:
            raise typer.Exit(6)

    guard(run)


def _report(result: Any, *, json_out: bool, quiet: bool, out: Path | None) -> None:
    u = result.usage
    if json_out:
        counts = {"items": len(result.items), "skipped": result.skipped, "failed": result.failed}
        typer.echo(json.dumps({**counts, "usage": u.model_dump(mode="json"), "warnings": result.warnings}))
        return
    if not quiet:
        kept = f" ({result.skipped} already in {out})" if result.skipped else ""
        typer.echo(f"{len(result.items)} items{kept}; {result.failed} failed; llm calls {u.llm_calls}, "
                   f"cache hits {u.cache_hits}, {u.seconds:.1f} s", err=True)  # fmt: skip
    for w in result.warnings:
        typer.echo(f"warning: {safe(w)}", err=True)
    if result.failed:
        again = "run the command again to retry them" if out is not None else "run again to retry them"
        err(f"{result.failed} item(s) could not be summarized (see the warnings); {again}")
