"""The retrieval blend: small scoring functions over the index's arrays, and their weighted sum.

::

    score(i) = w_trans * T(i) / max T + w_users * S(i) / max S + w_text * X(i) / max X + w_pop * P(i)

- ``T(i) = sum_j decay**j * count(s_j -> i) / count(s_j -> *)`` over the last ``recent`` seen
  items ``s_0`` (most recent), ``s_1``, ...: recency-decayed next-item probabilities;
- ``S(i) = sum_u sim(u) / sim_max * #{p : seq_u[p] in seen, seq_u[p + o] = i, 1 <= o <= window}``
  over the ``n_users`` most similar users ``u`` (BM25 of the seen items against their documents):
  what similar users took right after the items they share with this user;
- ``X(i)``: BM25 of item ``i``'s text (title, keywords, genres) against the text of the last
  ``text_recent`` seen items;
- ``P(i) = ln(1 + pop(i)) / ln(1 + max pop)``.

A component that is zero everywhere contributes nothing, so every score is finite and an item
the index never saw still gets one (its text and zero elsewhere). Default weights are
:data:`DEFAULT_BLEND`; ``bench/bench_retrieval.py`` reports how they were chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .bm25 import dense_scores

if TYPE_CHECKING:
    from .index import CollaborativeIndex

__all__ = ["BlendWeights", "DEFAULT_BLEND", "blend", "components", "next_items"]


@dataclass(frozen=True)
class BlendWeights:
    """Weights and knobs of the retrieval blend (see the module docstring for the formula)."""

    transitions: float = 1.0
    users: float = 0.5
    text: float = 0.2
    popularity: float = 0.1
    recent: int = 5
    decay: float = 0.7
    n_users: int = 30
    window: int = 3
    text_recent: int = 5


DEFAULT_BLEND = BlendWeights()


def _normalized(x: np.ndarray) -> np.ndarray:
    m = float(x.max()) if len(x) else 0.0
    return x / m if m > 0 else np.zeros_like(x)


def next_items(idx: CollaborativeIndex, user: int, seen_idx: np.ndarray, window: int) -> np.ndarray:
    """Items 1..window positions after each item ``user`` shares with ``seen`` (not seen), latest first."""
    seq = idx.seq_items[idx.seq_ptr[user] : idx.seq_ptr[user + 1]]
    shared = np.flatnonzero(np.isin(seq, seen_idx))[::-1]
    if not len(shared):
        return np.zeros(0, dtype=np.int64)
    after = (shared[:, None] + np.arange(1, window + 1)[None, :]).ravel()
    nxt: np.ndarray = seq[after[after < len(seq)]]
    return nxt[~np.isin(nxt, seen_idx)]


def transition_scores(idx: CollaborativeIndex, recent: np.ndarray) -> np.ndarray:
    """``T``: recency-decayed next-item probabilities from the ``recent`` items (most recent first)."""
    from .index import expand

    out = np.zeros(len(idx.item_ids))
    if not len(recent):
        return out
    owner, positions = expand(idx.trans_ptr, recent)
    row_total = np.zeros(len(recent))
    nonempty = idx.trans_ptr[recent + 1] > idx.trans_ptr[recent]
    row_total[nonempty] = np.add.reduceat(idx.trans_count, idx.trans_ptr[recent][nonempty])
    weight = idx.weights.decay ** np.arange(len(recent)) / np.where(row_total > 0, row_total, 1.0)
    np.add.at(out, idx.trans_next[positions], weight[owner] * idx.trans_count[positions])
    return out


def user_scores(idx: CollaborativeIndex, seen_idx: np.ndarray, users: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``S``: what the similar ``users`` (documents, BM25 scores) took after the items they share."""
    out = np.zeros(len(idx.item_ids))
    docs, sims = users
    docs, sims = docs[: idx.weights.n_users], sims[: idx.weights.n_users]
    if not len(docs):
        return out
    sims = sims / sims.max()
    for u, s in zip(docs.tolist(), sims.tolist(), strict=True):
        np.add.at(out, next_items(idx, u, seen_idx, idx.weights.window), s)
    return out


def text_scores(idx: CollaborativeIndex, recent: np.ndarray) -> np.ndarray:
    """``X``: BM25 of every item's text against the words of the ``recent`` items."""
    from .index import expand

    if idx.items_bm25 is None or not len(recent):
        return np.zeros(len(idx.item_ids))
    _, positions = expand(idx.text_ptr, recent)
    terms, counts = np.unique(idx.text_ids[positions], return_counts=True)
    return dense_scores(idx.items_bm25, terms, counts.astype(np.float64))


def components(
    idx: CollaborativeIndex, seen_idx: np.ndarray, users: tuple[np.ndarray, np.ndarray]
) -> dict[str, np.ndarray]:
    """The four components over all indexed items, each scaled to [0, 1]."""
    w = idx.weights
    return {
        "transitions": _normalized(transition_scores(idx, seen_idx[::-1][: w.recent])),
        "users": _normalized(user_scores(idx, seen_idx, users)),
        "text": _normalized(text_scores(idx, seen_idx[::-1][: w.text_recent])),
        "popularity": _normalized(np.log1p(idx.popularity.astype(np.float64))),
    }


def blend(idx: CollaborativeIndex, parts: dict[str, np.ndarray]) -> np.ndarray:
    """The weighted sum of the components (see the module docstring)."""
    w = idx.weights
    return (
        w.transitions * parts["transitions"]
        + w.users * parts["users"]
        + w.text * parts["text"]
        + w.popularity * parts["popularity"]
    )
