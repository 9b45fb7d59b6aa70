"""The retrieval stage's one constructor: the index every path builds from the settings.

:func:`build_index` is what the :class:`~msrkit.recommender.Recommender` (and so the MCP server
and the distributed actors), ``msrkit index build``, the evaluations and the fine-tuning examples
call: the interactions (optionally less each evaluation case's target and what came after it),
the catalog as the catalog store enriched it, and the blend chosen as the settings say. So the
candidates a model is trained on are those ``msrkit rank --interactions`` generates.
:func:`choose_blend` is its last step, for an index built from rows (:func:`.construct.build`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from ..data import Item
from ..errors import ConfigError
from ..inputs.io import Interaction, load_catalog
from .construct import build, with_weights
from .index import CollaborativeIndex
from .interactions import Interactions, read_interactions
from .leakage import interactions_before
from .select import select_blend
from .tune import tune_index

if TYPE_CHECKING:
    from ..config import Settings
    from ..summaries.store import CatalogStore

__all__ = ["build_index", "choose_blend", "tune_mode"]


def build_index(
    settings: Settings,
    *,
    rows: Interactions | Sequence[Interaction] | None = None,
    catalog: Mapping[str, Item] | None = None,
    store: CatalogStore | None = None,
    cases: Iterable[Any] | None = None,
) -> CollaborativeIndex:
    """Index the interactions (``rows``, else ``settings.interactions``) with the catalog's text and keywords.

    ``cases`` (evaluation or training cases, each with a ``user_id`` and a ``target``): each
    case's user loses the target and what came after it (:func:`.leakage.interactions_before`).
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
    if cases is not None:
        rows = interactions_before(rows, cases)
    if catalog is None:
        catalog = load_catalog(settings.catalog) if settings.catalog is not None else {}
    if catalog:
        catalog = _enriched(settings, catalog, store)
    return choose_blend(build(rows, catalog or None), tune_mode(settings), exclude_seen=settings.repeats == "exclude")


def choose_blend(
    idx: CollaborativeIndex, tune: bool | Literal["auto"], *, exclude_seen: bool = True
) -> CollaborativeIndex:
    """``idx`` with the blend chosen on its own interactions, starting from its weights (``idx`` is left as it was).

    ``tune=True``: the full leave-one-out search (:func:`.tune.tune_index`); ``"auto"``: the
    quick self-selection (:func:`.select.select_blend`, what ``msrkit`` does by default);
    ``False``: ``idx`` itself. Either is validated as candidates will be generated
    (``exclude_seen``); how the blend was chosen is the new index's ``tuning``.
    """
    if not tune:
        return idx
    chooser = select_blend if tune == "auto" else tune_index
    tuning = chooser(idx, start=idx.weights, exclude_seen=exclude_seen)
    return replace(with_weights(idx, tuning.weights), tuning=tuning)


def tune_mode(settings: Settings) -> bool | Literal["auto"]:
    """How an index built from ``settings`` chooses its blend: the full search, the quick one, or not at all."""
    return True if settings.tune_index else ("auto" if settings.index_select else False)


def _enriched(settings: Settings, catalog: Mapping[str, Item], store: CatalogStore | None) -> dict[str, Item]:
    if store is not None:
        return store.enrich(catalog)
    from ..summaries.store import CatalogStore, store_path

    path = store_path(settings.cache_dir)
    if not settings.cache or not path.exists():
        return dict(catalog)
    opened = CatalogStore(path)
    try:
        return opened.enrich(catalog)
    finally:
        opened.close()
