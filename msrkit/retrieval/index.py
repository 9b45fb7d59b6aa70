"""The collaborative index: every user's sequence and what is derived from it, as flat arrays.

From the interactions of all users (and the catalog's text and keywords) the
:class:`CollaborativeIndex` keeps:

- each user's **sequence** (oldest first: by timestamp where all of that user's rows have one,
  else in the given order) as CSR arrays ``seq_ptr`` / ``seq_items``;
- windowed, gap-weighted **item transitions** (:mod:`.transitions`) and **item popularity**;
- a **user BM25 index** (:mod:`.bm25`): each user is one document whose tokens are the ids of
  the items in their history (``"i:<item_id>"``) plus, where catalog items carry ``keywords``, one
  ``"kw:<keyword>"`` token per keyword of each item (MMSRARec's collaborative keyword retrieval:
  users are similar by the keywords of what they took, too);
- an **item text BM25 index** over catalog titles, keywords, image descriptions and attribute values;
- the blend's **weights and knobs** (:class:`~.weights.BlendWeights`), tuned on the data with
  ``tune=True`` (:mod:`.tune`).

Build with :meth:`CollaborativeIndex.build`, grow with :meth:`CollaborativeIndex.extend`
(both in :mod:`.construct`), persist with :mod:`.store`; queries are in :mod:`.neighbourhood`
(one :class:`~.neighbourhood.Neighbourhood` per request) and the scoring in :mod:`.components`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..data import Item
from ..io import Interaction
from . import components, construct, neighbourhood, store
from .cooccurrence import build_cooccurrence
from .interactions import Interactions, as_columns
from .select import select_blend
from .transitions import Transitions
from .tune import tune_index
from .weights import DEFAULT_BLEND, BlendWeights

if TYPE_CHECKING:
    from .tune import TuneResult

__all__ = ["CollaborativeIndex"]


def _empty_transitions() -> Transitions:
    return Transitions(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0))


class CollaborativeIndex:
    """Users' sequences, transitions, popularity, two BM25 indexes and the blend (see the module docstring)."""

    def __init__(self) -> None:
        self.user_ids: list[str] = []
        self.item_ids: list[str] = []
        self.user_index: dict[str, int] = {}
        self.item_index: dict[str, int] = {}
        self.seq_ptr = np.zeros(1, dtype=np.int64)
        self.seq_items = np.zeros(0, dtype=np.int32)
        self.seq_ts = np.zeros(0, dtype=np.float64)
        self.popularity = np.zeros(0, dtype=np.int64)
        self.pop_order = np.zeros(0, dtype=np.int64)
        self.transitions = _empty_transitions()
        self.keywords: list[str] = []
        self.kw_ptr = np.zeros(1, dtype=np.int64)
        self.kw_ids = np.zeros(0, dtype=np.int64)
        self.labels: list[str] = []
        self.text_ptr = np.zeros(1, dtype=np.int64)
        self.text_ids = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self.keyword_tokens = True
        self.users_bm25: Any = None
        self.items_bm25: Any = None
        self.users_colmax = np.zeros(0, dtype=np.float32)
        self.items_colmax = np.zeros(0, dtype=np.float32)
        #: how the weights were tuned (:func:`.tune.tune_index`), when they were
        self.tuning: TuneResult | None = None
        self._weights = DEFAULT_BLEND
        self._pop_scores = np.zeros(0)
        self._occurrences: tuple[np.ndarray, np.ndarray] | None = None
        self._long: tuple[tuple[int, int], Transitions] | None = None

    # ----------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        interactions: Interactions | Sequence[Interaction],
        catalog: Mapping[str, Item] | None = None,
        *,
        keyword_tokens: bool = True,
        weights: BlendWeights = DEFAULT_BLEND,
        tune: bool | Literal["auto"] = False,
        exclude_seen: bool = True,
    ) -> CollaborativeIndex:
        """Index ``interactions`` (columns, or rows) and the text and keywords of ``catalog`` items.

        ``tune=True`` then chooses the weights on the interactions themselves by leave-one-out
        validation, starting from ``weights`` (:func:`.tune.tune_index`; the result is :attr:`tuning`);
        ``tune="auto"``: the quick self-selection of :func:`.select.select_blend` (what ``msrkit``
        does by default), validated as candidates will be generated (``exclude_seen``).
        """
        idx = cls()
        idx.keyword_tokens = keyword_tokens
        idx._weights = weights
        construct.set_rows(idx, as_columns(interactions), catalog or {})
        construct.derive(idx, catalog or {})
        if tune == "auto":
            idx.tuning = select_blend(idx, start=weights, exclude_seen=exclude_seen)
        elif tune:
            idx.tuning = tune_index(idx, start=weights, exclude_seen=exclude_seen)
        if idx.tuning is not None:
            idx.set_weights(idx.tuning.weights)
        return idx

    def extend(
        self, interactions: Interactions | Sequence[Interaction], catalog: Mapping[str, Item] | None = None
    ) -> None:
        """Add interactions (new users or more rows for known ones); equals :meth:`build` on all of them
        with this index's weights (see :func:`.construct.grow` for what is recomputed)."""
        cols = as_columns(interactions)
        if len(cols):
            construct.grow(self, cols, catalog or {})

    @classmethod
    def load(cls, directory: str | Path) -> CollaborativeIndex:
        """Read an index written by :meth:`save` (see :func:`.store.load_index`)."""
        return store.load_index(directory, cls)

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (see :func:`.store.save_index`)."""
        store.save_index(self, directory)

    @property
    def weights(self) -> BlendWeights:
        """The blend's weights and knobs (change them with :meth:`set_weights`)."""
        return self._weights

    def set_weights(self, weights: BlendWeights) -> None:
        """Use ``weights``; the transitions are rebuilt when one of their build knobs changed."""
        rebuild = weights.build_knobs() != self._weights.build_knobs()
        self._weights = weights
        if rebuild:
            construct.rebuild_transitions(self)

    def refresh(self) -> None:
        """Recompute what is derived from popularity (after a build, an extension or a load)."""
        self.pop_order = np.lexsort((np.arange(len(self.popularity)), -self.popularity))
        self._pop_scores = components.popularity_scores(self.popularity)
        self._occurrences = None
        self._long = None

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each item's positions in ``seq_items`` as CSR ``(ptr, positions)`` (built on first use, then kept)."""
        if self._occurrences is None:
            order = np.argsort(self.seq_items, kind="stable")
            ptr = np.zeros(len(self.item_ids) + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.seq_items, minlength=len(self.item_ids)), out=ptr[1:])
            self._occurrences = (ptr, order)
        return self._occurrences

    def long_matrix(self) -> Transitions:
        """``L``'s item co-occurrence (:mod:`.cooccurrence`) for the weights' ``l_window`` and
        ``l_max_row``: built on first use, kept until the sequences or those knobs change."""
        key = (self.weights.l_window, self.weights.l_max_row)
        if self._long is None or self._long[0] != key:
            built = build_cooccurrence(self.seq_ptr, self.seq_items, len(self.item_ids), window=key[0],
                                       max_row=key[1])  # fmt: skip
            self._long = (key, built)
        return self._long[1]

    def popularity_scores(self) -> np.ndarray:
        """``P``: ``ln(1 + pop)`` scaled to a maximum of 1 (computed once)."""
        return self._pop_scores

    # ----------------------------------------------------------------- queries (see .neighbourhood)

    def seen_indices(self, seen: Sequence[str]) -> np.ndarray:
        """Index positions of the seen item ids the index knows, in the order given."""
        return np.array([self.item_index[i] for i in seen if i in self.item_index], dtype=np.int64)

    def similar_users(
        self, seen: Sequence[str], k: int = 3, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` users whose documents best match the seen items (BM25 of the recency-weighted
        query of :func:`.components.query_items`), best first."""
        w = self.weights
        q = components.query_items(self.seen_indices(seen), recent=w.u_recent, decay=w.u_decay)
        docs, scores = (
            neighbourhood.similar_users(self, q, k, exclude_user) if len(q[0]) else (np.zeros(0, np.int64), np.zeros(0))
        )
        return [(self.user_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]

    def next_item_context(
        self,
        seen: Sequence[str],
        k: int = 3,
        catalog: Mapping[str, Item] | None = None,
        exclude_user: str | None = None,
        per_user: int = 3,
    ) -> list[str]:
        """What the ``k`` most similar users took next, as labels (see :meth:`.Neighbourhood.context`)."""
        hood = neighbourhood.query(
            self, seen, exclude_user=exclude_user, context_k=k, per_user=per_user, n=0, support=False
        )
        return hood.context(catalog, self)

    def components(self, seen: Sequence[str], *, exclude_user: str | None = None) -> dict[str, np.ndarray]:
        """The blend components over all indexed items, each scaled to [0, 1] (see :mod:`.components`)."""
        seen_idx = self.seen_indices(seen)
        _, found = neighbourhood.search(self, seen_idx, exclude_user, 0)
        parts = neighbourhood.components(self, seen_idx, found)
        return {name: v / v.max() if len(v) and v.max() > 0 else v for name, v in parts.items()}

    def score_candidates(
        self, seen: Sequence[str], candidate_ids: Sequence[str], *, exclude_user: str | None = None
    ) -> list[float]:
        """The blend score of each candidate (0.0 for an item the index does not know)."""
        hood = neighbourhood.query(
            self, seen, candidate_ids=candidate_ids, exclude_user=exclude_user, context_k=0, support=False
        )
        return [s for _, s in hood.candidates]

    def generate_candidates(
        self, seen: Sequence[str], n: int = 20, exclude_seen: bool = True, *, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` best indexed items by the blend, best first (ties: popularity, then index order)."""
        hood = neighbourhood.query(
            self, seen, n=n, exclude_seen=exclude_seen, exclude_user=exclude_user, context_k=0, support=False
        )
        return hood.candidates

    def stats(self) -> dict[str, int]:
        """Counts for display: users, items, interactions, transitions, keywords."""
        return {
            "users": len(self.user_ids),
            "items": len(self.item_ids),
            "interactions": int(len(self.seq_items)),
            "transitions": int(len(self.transitions.nxt)),
            "keywords": len(self.keywords),
        }
