"""``msrkit summarize``: every catalog item into keywords (and image descriptions), kept in the catalog store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import err, guard, run_sharded, safe, setup_logging
from .options import (
    CacheOptions,
    ConcurrencyOpt,
    DeadlineOpt,
    GeneralOptions,
    JsonOpt,
    ModelOptions,
    PromptsOpt,
    RayOptions,
    RetriesOpt,
    option_groups,
    settings,
)

__all__ = ["summarize"]


@option_groups
def summarize(
    path: Annotated[Path, typer.Argument(help="items.jsonl (the catalog).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write the enriched catalog here, item by item (resumable); --engine ray: a folder of shards.",
        ),
    ] = None,
    resume: Annotated[bool, typer.Option(help="With --out: skip items already summarized there.")] = True,
    *,
    model: ModelOptions,
    vision_backend: Annotated[str | None, typer.Option("--vision-backend", help="Backend for item images.")] = None,
    prompts: PromptsOpt = None,
    cache: CacheOptions,
    retries: RetriesOpt = None,
    concurrency: ConcurrencyOpt = None,
    deadline: DeadlineOpt = None,
    best_of: Annotated[
        int | None,
        typer.Option("--best-of", min=1, help="Sample N keyword sets per item, keep the best by the keyword reward."),
    ] = None,
    json_out: JsonOpt = False,
    ray: RayOptions,
    general: GeneralOptions,
) -> None:
    """Summarize every catalog item into keywords (and image descriptions), with a progress bar.

    The summaries land in the catalog store next to the cache, where `msrkit rank` and
    `msrkit index build` read them. With --engine ray, Ray Data actors summarize into resumable
    shards under --out, and the driver keeps every summary in its catalog store.
    Unset options come from msrkit.toml, then MSRKIT_* variables.
    The same from Python: msrkit.summaries.catalog.summarize_catalog (msrkit.distributed for Ray).
    """
    quiet = general.quiet
    setup_logging(general.verbose, quiet)
    flags = dict(vision_backend=vision_backend, prompts=prompts, retries=retries, concurrency=concurrency,
                 deadline=deadline, best_of=best_of)  # fmt: skip

    def run() -> None:
        from rich.console import Console
        from rich.progress import Progress

        from ..inputs.io import load_catalog
        from ..summaries.catalog import summarize_catalog

        s = settings(model, cache, ray, config=general.config, **flags)
        if s.engine == "ray":
            if s.best_of > 1:
                from ..errors import ConfigError

                raise ConfigError("--best-of runs on the local engine only (drop --engine ray)")
            _on_ray(path, s, out=out, ray=ray, quiet=quiet)
            return
        items = list(load_catalog(path).values())
        with Progress(console=Console(stderr=True), disable=quiet or json_out, transient=False) as progress:
            task = progress.add_task("summarizing", total=len(items))
            result = summarize_catalog(
                s, items, base_dir=path.resolve().parent, on_item=lambda _: progress.advance(task), out=out,
                resume=resume,
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


def _on_ray(path: Path, s: Any, *, out: Path | None, ray: RayOptions, quiet: bool) -> None:
    from ..distributed import summarize_to_shards
    from ..errors import ConfigError

    if out is None:
        raise ConfigError("--engine ray writes resumable shards to a folder: give --out DIR")

    def start(progress: Any) -> Any:
        return summarize_to_shards(path, out, s, fmt=ray.out_format, shard_size=ray.shard_size, on_progress=progress)

    run = run_sharded(start, out=out, quiet=quiet, noun="items")
    if run.failed:
        typer.echo(f"warning: {run.failed} item(s) left without keywords; run again to retry them", err=True)
