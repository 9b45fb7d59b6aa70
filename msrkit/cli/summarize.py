"""``msrkit summarize``: every catalog item into keywords (and image descriptions), kept in the catalog store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    BackendOpt,
    BackendOptionOpt,
    BaseUrlOpt,
    CacheDirOpt,
    ConfigOpt,
    DeadlineOpt,
    NoCacheOpt,
    PromptsOpt,
    QuietOpt,
    VerboseOpt,
    guard,
    safe,
    settings,
    setup_logging,
)

__all__ = ["summarize"]


def summarize(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog).")],
    out: Annotated[Path | None, typer.Option("--out", help="Also write the enriched catalog here (JSONL).")] = None,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    backend_option: BackendOptionOpt = None,
    vision_backend: Annotated[str | None, typer.Option("--vision-backend", help="Backend for item images.")] = None,
    prompts: PromptsOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    retries: Annotated[int | None, typer.Option(min=0, help="Retries of transient failures (429, 5xx...).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Items summarized at once (remote backends).")] = 4,
    deadline: DeadlineOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Summarize every catalog item into keywords (and image descriptions), with a progress bar.

    The summaries land in the catalog store next to the cache, where `msrkit rank` and
    `msrkit index build` read them. Unset options come from msrkit.toml, then MSRKIT_* variables.
    """
    setup_logging(verbose, quiet)
    flags = dict(backend=backend, base_url=base_url, backend_options=backend_option, vision_backend=vision_backend,
                 prompts=prompts, cache_dir=cache_dir, retries=retries, deadline=deadline)  # fmt: skip

    def run() -> None:
        from rich.progress import Progress

        from ..datasets import write_jsonl
        from ..io import load_catalog
        from ..summaries.catalog import summarize_catalog

        items = list(load_catalog(path).values())
        with Progress(disable=quiet, transient=False) as progress:
            task = progress.add_task("summarizing", total=len(items))
            result = summarize_catalog(
                settings(flags, config=config, no_cache=no_cache), items, base_dir=path.resolve().parent,
                concurrency=concurrency, on_item=lambda _: progress.advance(task),
            )  # fmt: skip
        if out is not None:
            write_jsonl(out, (i.model_dump(exclude_none=True) for i in result.items))
        u = result.usage
        typer.echo(f"{len(result.items)} items; llm calls {u.llm_calls}, cache hits {u.cache_hits}, {u.seconds:.1f} s",
                   err=True)  # fmt: skip
        for w in result.warnings:
            typer.echo(f"warning: {safe(w)}", err=True)

    guard(run)
