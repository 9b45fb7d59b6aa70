"""Summarizing a whole catalog once (MMSRARec's offline stage), into the catalog store every request reads.

With ``out``, the enriched catalog is also written as JSONL, one item per line
as soon as it is summarized (a :class:`msrkit.jobs.runs.Journal`): a killed run
loses nothing already written, and a rerun skips the items already there with
keywords (unless the item's text changed since). An item whose summary failed
is written without keywords and tried again on the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..data import Item, Usage
from ..errors import ConfigError, InputError
from ..escape import json_data
from ..jobs.runs import Journal
from ..runtime.meter import Meter
from .store import item_digest

if TYPE_CHECKING:
    from ..config import Settings
    from .items import ItemSummarizer

__all__ = ["CatalogSummary", "summarize_catalog"]


@dataclass
class CatalogSummary:
    """The enriched items (in the catalog's order), what it cost, and what went wrong.

    ``skipped``: items taken from ``out`` as they were; ``failed``: items left
    without keywords (their backend calls failed; a rerun tries them again).
    """

    items: list[Item]
    usage: Usage
    warnings: list[str] = field(default_factory=list)
    skipped: int = 0
    failed: int = 0


def summarize_catalog(
    settings: Settings,
    items: Sequence[Item],
    *,
    base_dir: Path | None = None,
    concurrency: int | None = None,
    on_item: Callable[[Item], None] | None = None,
    out: str | Path | None = None,
    resume: bool = True,
) -> CatalogSummary:
    """Keywords (and image descriptions) for every item, through the settings' backend stack and prompts.

    Retries, the response cache and the catalog store are those of a
    :class:`~msrkit.recommender.Recommender` with the same settings, so what
    this makes is what ``rank()`` reads, and an item summarized before costs
    nothing. ``concurrency`` defaults to ``settings.concurrency``; ``on_item``
    is called for every item once it is done (from worker threads), those
    taken from ``out`` included. See the module docstring for ``out``. Each
    item gets ``settings.deadline`` seconds.
    """
    from ..recommender import Recommender
    from .best_of import make_summarizer

    by_id = _unique(items)
    with Recommender(settings=settings) as rec:
        if rec.backend is None:
            raise ConfigError("summarizing needs an LLM backend, not 'none'")
        summarizer = make_summarizer(settings, rec, by_id.values())
        with Journal(out, key_field="item_id", resume=resume, keep=_summarized(by_id)) as journal:
            return _run(summarizer, journal, by_id, base_dir=base_dir, on_item=on_item,
                        concurrency=concurrency or settings.concurrency, deadline=settings.deadline)  # fmt: skip


def _run(
    summarizer: ItemSummarizer,
    journal: Journal,
    by_id: dict[str, Item],
    *,
    base_dir: Path | None,
    on_item: Callable[[Item], None] | None,
    concurrency: int,
    deadline: float,
) -> CatalogSummary:
    kept = {key: Item.model_validate(record) for key, record in journal.done.items() if key in by_id}
    for item in kept.values():
        if on_item is not None:
            on_item(item)

    def finished(item: Item) -> None:
        journal.write(json_data(item, exclude_none=True))
        if on_item is not None:
            on_item(item)

    meter = Meter()
    todo = [item for key, item in by_id.items() if key not in kept]
    made = summarizer.summarize(todo, meter=meter, base_dir=base_dir, on_item=finished, concurrency=concurrency,
                                deadline=deadline)  # fmt: skip
    done = {**kept, **{item.item_id: item for item in made}}
    failed = sum(1 for item in made if item.keywords is None)
    return CatalogSummary([done[key] for key in by_id], meter.finish(), list(meter.warnings), len(kept), failed)


def _unique(items: Sequence[Item]) -> dict[str, Item]:
    by_id: dict[str, Item] = {}
    for n, item in enumerate(items):
        if item.item_id in by_id:
            raise InputError(f"item_id '{item.item_id}' appears twice", source=f"items[{n}]", path="item_id")
        by_id[item.item_id] = item
    return by_id


def _summarized(by_id: dict[str, Item]) -> Callable[[dict[str, Any]], bool]:
    """A line of ``out`` is done when it has keywords and its item is unchanged (or not in this catalog)."""

    def keep(record: dict[str, Any]) -> bool:
        if record.get("keywords") is None:
            return False
        try:
            written = Item.model_validate(record)
        except ValidationError:
            return False
        item = by_id.get(written.item_id)
        return item is None or item_digest(item) == item_digest(written)

    return keep
