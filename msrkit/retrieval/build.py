"""Building the collaborative index from the settings: the interactions, and the catalog as the store enriched it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..io import load_catalog, load_interactions
from .index import CollaborativeIndex

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["build_index"]


def build_index(settings: Settings) -> CollaborativeIndex:
    """Index ``settings.interactions`` with the catalog's text and the keywords the catalog store holds."""
    from ..backends.cache import default_cache_dir
    from ..recommender import STORE_FILE
    from ..summaries.store import CatalogStore

    if settings.interactions is None:
        raise ConfigError("building an index needs interactions (--interactions or 'interactions' in msrkit.toml)")
    catalog = load_catalog(settings.catalog) if settings.catalog is not None else {}
    store_path = (settings.cache_dir or default_cache_dir()) / STORE_FILE
    if catalog and settings.cache and store_path.exists():
        store = CatalogStore(store_path)
        try:
            catalog = store.enrich(catalog)
        finally:
            store.close()
    return CollaborativeIndex.build(load_interactions(settings.interactions), catalog=catalog or None)
