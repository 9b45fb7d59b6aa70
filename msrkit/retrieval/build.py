"""Building the collaborative index from the settings: the interactions, and the catalog as the store enriched it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from ..data import Item
from ..errors import ConfigError
from ..io import Interaction, load_catalog
from .index import CollaborativeIndex
from .interactions import Interactions, read_interactions

if TYPE_CHECKING:
    from ..config import Settings
    from ..summaries.store import CatalogStore

__all__ = ["build_index", "tune_mode"]


def build_index(
    settings: Settings,
    *,
    rows: Interactions | Sequence[Interaction] | None = None,
    catalog: Mapping[str, Item] | None = None,
    store: CatalogStore | None = None,
) -> CollaborativeIndex:
    """Index the interactions (``rows``, else ``settings.interactions``) with the catalog's text and keywords.

    Items without keywords get those the catalog store holds (``store``, else
    the one next to the settings' cache folder, where it exists), so what was
    summarized once shapes the index. With ``settings.tune_index`` the blend is chosen on
    the interactions by leave-one-out validation (:func:`.tune.tune_index`); else, with
    ``settings.index_select`` (the default), by the quick self-selection (:func:`.select.select_blend`).
    """
    if rows is None:
        if settings.interactions is None:
            raise ConfigError("building an index needs interactions (--interactions or 'interactions' in msrkit.toml)")
        rows = read_interactions(settings.interactions)
    if catalog is None:
        catalog = load_catalog(settings.catalog) if settings.catalog is not None else {}
    if catalog:
        catalog = _enriched(settings, catalog, store)
    return CollaborativeIndex.build(rows, catalog=catalog or None, tune=tune_mode(settings),
                                    exclude_seen=settings.repeats == "exclude")  # fmt: skip


def tune_mode(settings: Settings) -> bool | Literal["auto"]:
    """How an index built from ``settings`` chooses its blend: the full search, the quick one, or not at all."""
    return True if settings.tune_index else ("auto" if settings.index_select else False)


def _enriched(settings: Settings, catalog: Mapping[str, Item], store: CatalogStore | None) -> dict[str, Item]:
    if store is not None:
        return store.enrich(catalog)
    from ..backends.cache import default_cache_dir
    from ..summaries.store import STORE_FILE, CatalogStore

    path = (settings.cache_dir or default_cache_dir()) / STORE_FILE
    if not settings.cache or not path.exists():
        return dict(catalog)
    opened = CatalogStore(path)
    try:
        return opened.enrich(catalog)
    finally:
        opened.close()
