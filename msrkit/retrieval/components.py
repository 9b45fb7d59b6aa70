"""The retrieval blend: small scoring functions over the index's arrays, and their weighted sum.

A history is ``h_0 .. h_{n-1}`` (oldest first); the recency of position ``j`` is
``r = n - 1 - j`` (0: the most recent item). Every component is a dense score vector over
the indexed items (0: no evidence)::

    score(i) = w_T * T(i) / max T + w_S * S(i) / max S + w_X * X(i) / max X + w_L * L(i) / max L + w_P * P(i)

- ``T(i) = sum_{r < t_recent} t_decay**r * T[h_r, i] / rowsum[h_r]**t_alpha``: windowed,
  gap-weighted transitions (:mod:`.transitions`) from the recent items;
- ``S(i)``: what the most similar users took around the items they share with this user
  (:func:`neighbour_proposals`, :func:`user_scores`);
- ``X(i) = sum_t q_t * BM25(i, t)``, ``q_t`` the sum of ``x_decay**r`` over the last
  ``x_recent`` items whose text holds word ``t``: item text;
- ``L(i) = sum_{r < l_recent} l_decay**r * T[h_r, i] / rowsum[h_r]**t_alpha``: the same transitions
  read from a long stretch of the history with a slow decay (weight 0 unless the data choose it:
  :mod:`.select`);
- ``P(i) = ln(1 + pop(i)) / ln(1 + max pop)``: popularity (weight 0 by default: it breaks ties).

A component that is zero everywhere adds nothing, so every score is finite and an item the
index never saw still gets one. Items are ranked by (score, popularity, item index):
:func:`top_n`. The weights and knobs are :class:`~.weights.BlendWeights`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .bm25 import dense_scores
from .transitions import Transitions, expand
from .weights import BlendWeights

__all__ = [
    "Proposals",
    "blend",
    "neighbour_proposals",
    "popularity_scores",
    "query_items",
    "shares",
    "text_scores",
    "top_n",
    "transition_scores",
    "user_scores",
]


def query_items(seen: np.ndarray, *, recent: int | None, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """The distinct items of the last ``recent`` positions (``None``: all), sorted, each weighted
    ``decay**r`` of its most recent occurrence."""
    rev = np.asarray(seen, dtype=np.int64)[::-1]
    if recent is not None:
        rev = rev[:recent]
    items, first = np.unique(rev, return_index=True)
    return items, decay ** first.astype(np.float64)


def transition_scores(tr: Transitions, recent: np.ndarray, *, decay: float, alpha: float) -> np.ndarray:
    """``T`` from the ``recent`` items (most recent first, repeats counted per position)."""
    out = np.zeros(len(tr.rowsum))
    if not len(recent):
        return out
    owner, positions = tr.rows(recent)
    z = tr.rowsum[recent] ** alpha
    coef = decay ** np.arange(len(recent), dtype=np.float64) / np.where(z > 0, z, 1.0)
    out += np.bincount(tr.nxt[positions], weights=coef[owner] * tr.w[positions], minlength=len(out))
    return out


@dataclass(frozen=True)
class Proposals:
    """What the neighbours took around the items they share with the query, one row per (shared
    occurrence, offset): ``neighbour`` (0: the most similar), the proposed ``item``, its
    ``weight`` (``sim / max sim`` included), the ``offset`` from the shared item (``+1``: right
    after) and the shared item's position in the neighbour's sequence."""

    neighbour: np.ndarray
    item: np.ndarray
    weight: np.ndarray
    offset: np.ndarray
    shared_at: np.ndarray


def neighbour_proposals(
    seq_ptr: np.ndarray,
    seq_items: np.ndarray,
    users: tuple[np.ndarray, np.ndarray],
    query: tuple[np.ndarray, np.ndarray],
    *,
    window: int,
    gap_power: float,
    backward: float,
) -> Proposals:
    """Every occurrence of a query item ``a`` (weight ``q_a``) in a neighbour's sequence at ``p``
    proposes the items at ``p + g`` with weight ``q_a * g**-gap_power`` and at ``p - g`` with
    ``backward`` times that, ``g = 1..window``, scaled by the neighbour's ``sim / max sim``.

    ``users``: the neighbours (user rows) best first and their similarities; ``query``: the
    query items (sorted) and their weights (:func:`query_items`).
    """
    docs, sims = users
    items, q = query
    owner, positions = expand(seq_ptr, docs)
    vals = seq_items[positions]
    at = np.minimum(np.searchsorted(items, vals), max(len(items) - 1, 0))
    shared = np.flatnonzero(items[at] == vals) if len(items) else np.zeros(0, dtype=np.int64)
    offsets = np.arange(1, window + 1)
    gap_w = offsets.astype(np.float64) ** -gap_power
    if backward > 0:
        offsets, gap_w = np.concatenate([offsets, -offsets]), np.concatenate([gap_w, backward * gap_w])
    start, end = seq_ptr[docs][owner[shared]], seq_ptr[docs + 1][owner[shared]]
    target = positions[shared][:, None] + offsets[None, :]
    rows, cols = np.nonzero((target >= start[:, None]) & (target < end[:, None]))
    sim = sims / sims[0] if len(sims) else sims
    nb = owner[shared][rows]
    weight = q[at[shared]][rows] * gap_w[cols] * sim[nb]
    where = positions[shared][rows]
    return Proposals(nb, seq_items[target[rows, cols]].astype(np.int64), weight, offsets[cols], where - start[rows])


def user_scores(proposals: Proposals, n_items: int, *, k: int) -> np.ndarray:
    """``S``: the summed proposals of the ``k`` most similar neighbours."""
    mine = proposals.neighbour < k
    return np.bincount(proposals.item[mine], weights=proposals.weight[mine], minlength=n_items).astype(np.float64)


def text_scores(items_bm25: Any, text_ptr: np.ndarray, text_ids: np.ndarray, recent: np.ndarray, *,
                decay: float) -> np.ndarray:  # fmt: skip
    """``X`` from the words of the ``recent`` items (most recent first)."""
    n_items = len(text_ptr) - 1
    if items_bm25 is None or not len(recent):
        return np.zeros(n_items)
    owner, positions = expand(text_ptr, recent)
    if not len(positions):
        return np.zeros(n_items)
    terms, inv = np.unique(text_ids[positions], return_inverse=True)
    q = np.bincount(inv, weights=decay ** owner.astype(np.float64), minlength=len(terms))
    return dense_scores(items_bm25, terms, q)


def popularity_scores(popularity: np.ndarray) -> np.ndarray:
    """``P``: ``ln(1 + pop)`` scaled to a maximum of 1."""
    p = np.log1p(popularity.astype(np.float64))
    top = float(p.max()) if len(p) else 0.0
    return p / top if top > 0 else p


def shares(parts: dict[str, np.ndarray], weights: BlendWeights) -> dict[str, np.ndarray]:
    """Each component's weighted, max-normalised share of every item's score (zero components left out)."""
    out = {}
    for name, part in parts.items():
        w = float(getattr(weights, name))
        top = float(part.max()) if len(part) else 0.0
        if w and top > 0:
            out[name] = (w / top) * part
    return out


def blend(parts: dict[str, np.ndarray], weights: BlendWeights) -> np.ndarray:
    """The weighted sum of the max-normalised components (:func:`shares`)."""
    n = len(next(iter(parts.values()))) if parts else 0
    out = np.zeros(n)
    for share in shares(parts, weights).values():
        out += share
    return out


def top_n(scores: np.ndarray, popularity: np.ndarray, pop_order: np.ndarray, n: int, *,
          exclude: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The ``n`` best items by (score, popularity, lower index), none of ``exclude``.

    Sorts only the positive-score items (a catalog-wide partition over mostly-zero scores is
    the slow part at scale); when fewer than ``n`` are positive the rest are the zero-score
    items in ``pop_order`` (all items by popularity, then index). Scores are never negative.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    s = scores
    if exclude is not None and len(exclude):
        s = scores.copy()
        s[exclude] = -1.0
    pos = np.flatnonzero(s > 0)
    if len(pos) > n:
        v = s[pos]
        kth = np.partition(v, len(v) - n)[len(v) - n]
        pos = pos[v >= kth]  # the n best and every item tied with the n-th
    best = pos[np.lexsort((pos, -popularity[pos], -s[pos]))][:n]
    if len(best) < n:
        fill = pop_order[s[pop_order] == 0][: n - len(best)]
        best = np.concatenate([best, fill])
    return best.astype(np.int64)
