"""The collaborative index as plain data: every user's sequence and what is derived from it, as flat arrays.

From the interactions of all users (and the catalog's text and keywords) a
:class:`CollaborativeIndex` holds:

- each user's **sequence** (oldest first: by timestamp where all of that user's rows have one,
  else in the given order) as CSR arrays ``seq_ptr`` / ``seq_items``;
- windowed, gap-weighted **item transitions** (:mod:`.transitions`) and **item popularity**;
- a **user BM25 index** (:mod:`.bm25`): each user is one document whose tokens are the ids of
  the items in their history (``"i:<item_id>"``) plus, where catalog items carry ``keywords``, one
  ``"kw:<keyword>"`` token per keyword of each item (MMSRARec's collaborative keyword retrieval:
  users are similar by the keywords of what they took, too);
- an **item text BM25 index** over catalog titles, keywords, image descriptions and attribute values;
- the blend's **weights and knobs** (:class:`~.weights.BlendWeights`) and, where they were
  chosen on the data, how (:class:`~.weights.TuneResult`).

The index is data; what acts on it are package functions, each in the module that needs it:
:func:`.stage.build_index` (the one constructor from :class:`~msrkit.config.Settings`, used by every
path); :func:`.construct.build` (from rows, with fixed weights), :func:`.construct.extend` and
:func:`.construct.with_weights` (a new index with more rows, or other weights) and
:func:`.stage.choose_blend` (the blend chosen on the index's data); :func:`.store.save`
and :func:`.store.load`; :func:`.neighbourhood.query` (one :class:`~.neighbourhood.Neighbourhood`
per request). Once returned by one of them an index is not changed: only :mod:`.construct` and
:mod:`.store` fill its fields, while they make it. This module imports only retrieval's leaf
modules (the records and kernels that import nothing of retrieval's that imports it back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .components import popularity_scores
from .cooccurrence import build_cooccurrence
from .transitions import Transitions
from .weights import DEFAULT_BLEND, BlendWeights, TuneResult

__all__ = ["CollaborativeIndex", "empty_transitions"]


def empty_transitions() -> Transitions:
    """The transitions of no sequences."""
    return Transitions(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros(0))


def _ints(dtype: type = np.int64, *, ptr: bool = False) -> Any:
    return field(default_factory=lambda: np.zeros(1 if ptr else 0, dtype=dtype))


class _Derived:
    """What is computed from the sequences on first use and kept: shared by the indexes that differ
    only in their weights (:func:`.construct.with_weights`), since they hold the same sequences."""

    def __init__(self) -> None:
        self.occurrences: tuple[np.ndarray, np.ndarray] | None = None
        self.long: tuple[tuple[int, int], Transitions] | None = None


@dataclass(eq=False, repr=False)
class CollaborativeIndex:
    """Users' sequences, transitions, popularity, two BM25 indexes and the blend (see the module docstring)."""

    user_ids: list[str] = field(default_factory=list)
    item_ids: list[str] = field(default_factory=list)
    user_index: dict[str, int] = field(default_factory=dict)
    item_index: dict[str, int] = field(default_factory=dict)
    seq_ptr: np.ndarray = _ints(ptr=True)
    seq_items: np.ndarray = _ints(np.int32)
    seq_ts: np.ndarray = _ints(np.float64)
    popularity: np.ndarray = _ints()
    transitions: Transitions = field(default_factory=empty_transitions)
    keywords: list[str] = field(default_factory=list)
    kw_ptr: np.ndarray = _ints(ptr=True)
    kw_ids: np.ndarray = _ints()
    labels: list[str] = field(default_factory=list)
    text_ptr: np.ndarray = _ints(ptr=True)
    text_ids: np.ndarray = _ints()
    words: list[str] = field(default_factory=list)
    keyword_tokens: bool = True
    users_bm25: Any = None
    items_bm25: Any = None
    users_colmax: np.ndarray = _ints(np.float32)
    items_colmax: np.ndarray = _ints(np.float32)
    #: the blend's weights and knobs
    weights: BlendWeights = DEFAULT_BLEND
    #: how the weights were chosen on the data (:func:`.tune.tune_index`, :func:`.select.select_blend`), when they were
    tuning: TuneResult | None = None
    #: the items by popularity, most popular first (ties: index order), and ``P`` (see :meth:`refresh`)
    pop_order: np.ndarray = _ints()
    pop_scores: np.ndarray = _ints(np.float64)
    derived: _Derived = field(default_factory=_Derived)

    def refresh(self) -> None:
        """Recompute what is derived from the sequences and popularity (the last step of making an index)."""
        self.pop_order = np.lexsort((np.arange(len(self.popularity)), -self.popularity))
        self.pop_scores = popularity_scores(self.popularity)
        self.derived = _Derived()

    def occurrences(self) -> tuple[np.ndarray, np.ndarray]:
        """Each item's positions in ``seq_items`` as CSR ``(ptr, positions)`` (built on first use, then kept)."""
        if self.derived.occurrences is None:
            order = np.argsort(self.seq_items, kind="stable")
            ptr = np.zeros(len(self.item_ids) + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.seq_items, minlength=len(self.item_ids)), out=ptr[1:])
            self.derived.occurrences = (ptr, order)
        return self.derived.occurrences

    def long_matrix(self) -> Transitions:
        """``L``'s item co-occurrence (:mod:`.cooccurrence`) for the weights' ``l_window`` and
        ``l_max_row``: built on first use, kept until the sequences or those knobs change."""
        key = (self.weights.l_window, self.weights.l_max_row)
        kept = self.derived.long
        if kept is None or kept[0] != key:
            built = build_cooccurrence(self.seq_ptr, self.seq_items, len(self.item_ids), window=key[0],
                                       max_row=key[1])  # fmt: skip
            self.derived.long = kept = (key, built)
        return kept[1]

    def popularity_scores(self) -> np.ndarray:
        """``P``: ``ln(1 + pop)`` scaled to a maximum of 1 (computed once)."""
        return self.pop_scores

    def seen_indices(self, seen: Sequence[str]) -> np.ndarray:
        """Index positions of the seen item ids the index knows, in the order given."""
        return np.array([self.item_index[i] for i in seen if i in self.item_index], dtype=np.int64)

    def stats(self) -> dict[str, int]:
        """Counts for display: users, items, interactions, transitions, keywords."""
        return {
            "users": len(self.user_ids),
            "items": len(self.item_ids),
            "interactions": int(len(self.seq_items)),
            "transitions": int(len(self.transitions.nxt)),
            "keywords": len(self.keywords),
        }

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.stats().items())
        return f"CollaborativeIndex({counts}, tuned={self.tuning is not None})"
