"""The long-lived parts a :class:`~msrkit.recommender.Recommender` holds, each built once from its settings.

The response cache, the catalog store next to it, the catalog and the
collaborative index, each taken as given (an object) or made from the paths of
:class:`~msrkit.config.Settings`; and the settings themselves with an
adapter's tuned fusion weight. What a request needs is built from these by
:func:`msrkit.runtime.pipeline.run`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .backends.cache import ResponseCache
from .config import Settings, settings_from
from .data import Item
from .inputs.io import Interaction, load_catalog
from .summaries.store import CatalogStore, store_path

__all__ = ["make_cache", "make_catalog", "make_index", "make_store", "tuned_fusion"]

log = logging.getLogger("msrkit")


def tuned_fusion(s: Settings) -> Settings:
    """``s`` with the adapter's tuned fusion weight where ``fusion_weight`` is unset and the manifest has one."""
    if s.fusion_weight is not None or s.adapter is None:
        return s
    from .training.adapter import load_adapter

    weight = load_adapter(s.adapter).manifest.fusion_weight
    if weight is None:
        return s
    log.info("fusion weight %s, as tuned for the adapter %s", weight, s.adapter)
    return settings_from(s, fusion_weight=weight)


def make_cache(cache: bool | str | Path | ResponseCache | None, s: Settings) -> ResponseCache | None:
    if isinstance(cache, ResponseCache):
        return cache
    if cache is None:
        cache = (s.cache_dir or True) if s.cache else False
    if cache is False:
        return None
    return ResponseCache(None if cache is True else cache)


def make_store(cache: ResponseCache | None) -> CatalogStore | None:
    """The catalog store next to the response cache (none when nothing is cached)."""
    return CatalogStore(store_path(cache.directory)) if cache is not None else None


def make_catalog(catalog: str | Path | Mapping[str, Item] | None, s: Settings) -> dict[str, Item]:
    if catalog is None or isinstance(catalog, (str, Path)):
        return load_catalog(s.catalog) if s.catalog is not None else {}
    return dict(catalog)


def make_index(
    interactions: str | Path | Sequence[Interaction] | None,
    s: Settings,
    catalog: dict[str, Item],
    store: CatalogStore | None,
) -> Any:
    if interactions is None or isinstance(interactions, (str, Path)):
        if s.index is not None:
            from .retrieval import load

            return load(s.index)
        if s.interactions is None:
            return None
        interactions = None
    from .retrieval import build_index

    rows = list(interactions) if interactions is not None else None
    return build_index(s, rows=rows, catalog=catalog, store=store)
