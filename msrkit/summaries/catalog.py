"""Summarizing a whole catalog once (MMSRARec's offline stage), into the catalog store every request reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..data import Item, Usage
from ..errors import ConfigError
from ..meter import Meter

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["CatalogSummary", "summarize_catalog"]


@dataclass
class CatalogSummary:
    """The enriched items (in the catalog's order), what it cost, and what went wrong."""

    items: list[Item]
    usage: Usage
    warnings: list[str] = field(default_factory=list)


def summarize_catalog(
    settings: Settings,
    items: Sequence[Item],
    *,
    base_dir: Path | None = None,
    concurrency: int = 4,
    on_item: Callable[[Item], None] | None = None,
) -> CatalogSummary:
    """Keywords (and image descriptions) for every item, through the settings' backend stack and prompts.

    Retries, the response cache and the catalog store are those of a
    :class:`~msrkit.recommender.Recommender` with the same settings, so what
    this makes is what ``rank()`` reads, and an item summarized before costs nothing.
    Each item gets ``settings.deadline`` seconds.
    """
    from ..recommender import Recommender
    from .items import ItemSummarizer

    with Recommender(settings=settings) as rec:
        if rec.backend is None:
            raise ConfigError("summarizing needs an LLM backend, not 'none'")
        summarizer = ItemSummarizer(
            rec.backend, prompts=rec.prompts, vision_backend=rec.vision_backend, max_side=settings.max_side,
            strict=settings.strict, store=rec.store, image_policy=rec.image_policy,
        )  # fmt: skip
        meter = Meter()
        done = summarizer.summarize(items, meter=meter, base_dir=base_dir, on_item=on_item, concurrency=concurrency,
                                    deadline=settings.deadline)  # fmt: skip
        return CatalogSummary(done, meter.finish(), list(meter.warnings))
