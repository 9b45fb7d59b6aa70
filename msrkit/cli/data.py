"""``msrkit data`` and ``msrkit index``: real data sets in, msrkit's files out; the collaborative index built."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import guard
from .options import CacheDirOpt, CatalogOpt, ConfigOpt, JsonOpt, TuneOpt, settings

__all__ = ["data_app", "index_app"]

data_app = typer.Typer(help="Convert real data sets into items.jsonl, interactions.jsonl and cases.jsonl.")
index_app = typer.Typer(help="Build the collaborative (BM25) index.", no_args_is_help=True)

NegativesOpt = Annotated[int, typer.Option(min=0, help="Sampled negatives per case (both papers: 20).")]
SeedOpt = Annotated[int, typer.Option(help="Seed for negative sampling.")]
MaxHistoryOpt = Annotated[int, typer.Option(min=1, help="Keep the last N history items per case.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for items/interactions/cases .jsonl")]


def _write_dataset(out: Path, loaded: tuple[Any, Any], negatives: int, seed: int, max_history: int) -> None:
    from ..datasets import write_dataset

    counts = write_dataset(out, *loaded, negatives=negatives, seed=seed, max_history=max_history)
    typer.echo(f"{counts['items']} items, {counts['interactions']} interactions, {counts['cases']} cases -> {out}")


@data_app.command("movielens", epilog="Example: msrkit data movielens --out data/ml-100k")
def data_movielens(
    out: OutOpt, negatives: NegativesOpt = 20, seed: SeedOpt = 0, max_history: MaxHistoryOpt = 50
) -> None:
    """MovieLens-100k from the recbole wheel (pip install --no-deps recbole), split leave-one-out by time."""

    def run() -> None:
        from ..datasets import load_movielens_100k

        _write_dataset(out, load_movielens_100k(), negatives, seed, max_history)

    guard(run)


@data_app.command("recbole", epilog="Example: msrkit data recbole path/to/ml-1m --out data/ml-1m")
def data_recbole(
    directory: Annotated[Path, typer.Argument(help="A folder of RecBole atomic files (.inter, .item).")],
    out: OutOpt,
    negatives: NegativesOpt = 20,
    seed: SeedOpt = 0,
    max_history: MaxHistoryOpt = 50,
) -> None:
    """RecBole atomic files, split leave-one-out by time."""

    def run() -> None:
        from ..datasets import load_recbole

        _write_dataset(out, load_recbole(directory), negatives, seed, max_history)

    guard(run)


@data_app.command("amazon", epilog="Example: msrkit data amazon Baby.jsonl --meta meta_Baby.jsonl --out data/baby")
def data_amazon(
    reviews: Annotated[Path, typer.Argument(help="Amazon-reviews-style JSONL (optionally .gz).")],
    out: OutOpt,
    meta: Annotated[Path | None, typer.Option("--meta", help="Item metadata JSONL: titles, images.")] = None,
    negatives: NegativesOpt = 20,
    seed: SeedOpt = 0,
    max_history: MaxHistoryOpt = 50,
) -> None:
    """Amazon reviews + metadata, split leave-one-out by time."""

    def run() -> None:
        from ..datasets import load_amazon

        _write_dataset(out, load_amazon(reviews, meta), negatives, seed, max_history)

    guard(run)


@index_app.command(
    "build",
    epilog="Example: msrkit index build --interactions inter.jsonl --catalog items.jsonl --tune --out idx/",
)
def index_build(
    interactions: Annotated[Path, typer.Option("--interactions", help="interactions .jsonl, .csv or .parquet")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the index to.")],
    catalog: CatalogOpt = None,
    tune: TuneOpt = None,
    select: Annotated[
        bool | None,
        typer.Option("--select/--no-select", help="Let the blend choose itself from the data (default: on)."),
    ] = None,
    cache_dir: CacheDirOpt = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Build and save the collaborative index (with the keywords the catalog store holds).

    By default the blend chooses itself from the data: statistics pick the knobs worth a look
    and a quick validation search keeps only moves that beat the noise (--no-select: the fixed
    defaults); `msrkit index info` says what was chosen and why.

    With --tune the blend's weights and knobs are chosen on these interactions (each user's
    last one is the validation target), the validation table is printed and the choice is
    stored in the index's manifest.
    """

    def run() -> None:
        from ..retrieval import build_index, save

        idx = build_index(settings(config=config, interactions=interactions, catalog=catalog, cache_dir=cache_dir,
                                   tune_index=tune, index_select=select))  # fmt: skip
        save(idx, out)
        _print_index(idx, out, json_out)

    guard(run)


@index_app.command("info", epilog="Example: msrkit index info idx/")
def index_info(
    directory: Annotated[Path, typer.Argument(help="A folder made by `msrkit index build`.")],
    json_out: JsonOpt = False,
) -> None:
    """Show an index: its counts, the blend's weights and knobs, and how they were tuned."""

    def run() -> None:
        from ..retrieval import load

        _print_index(load(directory), directory, json_out, built=False)

    guard(run)


def _print_index(idx: Any, where: Path, json_out: bool, *, built: bool = True) -> None:
    import json
    from dataclasses import asdict

    from ..retrieval.weights import changed_knobs

    stats = idx.stats()
    if json_out:
        doc = {"path": str(where), "stats": stats, "weights": asdict(idx.weights),
               "tuning": idx.tuning.to_dict() if idx.tuning else None}  # fmt: skip
        typer.echo(json.dumps(doc, indent=2))
        return
    verb = "indexed" if built else "holds"
    typer.echo(f"{where} {verb} {stats['interactions']} interactions ({stats['users']} users, {stats['items']} items, "
               f"{stats['keywords']} keywords)")  # fmt: skip
    if idx.tuning is not None:
        typer.echo(idx.tuning.table())
    changed = changed_knobs(idx.weights)
    typer.echo("blend: " + (", ".join(f"{k}={v}" for k, v in changed.items()) + " (the rest default)"
                            if changed else "the default weights and knobs"))  # fmt: skip
