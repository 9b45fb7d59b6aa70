"""One retrieval query per request: the user's :class:`Neighbourhood`.

:func:`query` searches the similar users once, computes the blend once, and
returns everything later stages read: the candidates with their retrieval
scores, the similar users, what those users took next (the collaborative
context of MMSRARec) and, per candidate, the evidence behind its score (which
seen items it follows, how many similar users took it), from which the reasons
given with a ranking are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..data import Item
from .bm25 import top_docs
from .components import blend, components, next_items

if TYPE_CHECKING:
    from .index import CollaborativeIndex

__all__ = ["Neighbourhood", "Support", "query", "similar_users"]


@dataclass(frozen=True)
class Support:
    """Why retrieval likes a candidate: seen items it often follows, and similar users who took it next."""

    follows: tuple[str, ...] = ()
    similar_users: int = 0


@dataclass(frozen=True)
class Neighbourhood:
    """What retrieval knows about one user, computed once per request.

    ``candidates``: ``(item_id, score)``, generated best first, or the given
    candidates in their given order with their scores (0.0 for items the index
    does not know). ``context``: ``(user_id, item_id)`` pairs, what the most
    similar users took right after an item they share with this user.
    """

    seen: tuple[str, ...]
    candidates: list[tuple[str, float]]
    similar_users: list[tuple[str, float]] = field(default_factory=list)
    next_items: list[tuple[str, str]] = field(default_factory=list)
    support: dict[str, Support] = field(default_factory=dict)

    def scores(self) -> list[float]:
        return [s for _, s in self.candidates]

    def context(self, catalog: Mapping[str, Item] | None, index: CollaborativeIndex | None = None) -> list[str]:
        """The collaborative context as text: each next item's keywords, else its title, else its id."""
        from .index import label

        out: list[str] = []
        for _, item_id in self.next_items:
            if catalog is not None and item_id in catalog:
                text = label(catalog[item_id], item_id)
            elif index is not None and item_id in index.item_index:
                text = index.labels[index.item_index[item_id]]
            else:
                text = item_id
            if text not in out:
                out.append(text)
        return out


def similar_users(
    idx: CollaborativeIndex, seen_idx: np.ndarray, k: int, exclude_user: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best user documents for the seen items (BM25), best first, and their scores."""
    from .index import expand

    toks = np.unique(seen_idx)
    if idx.keyword_tokens and len(idx.kw_ids) and len(toks):
        _, positions = expand(idx.kw_ptr, toks)
        toks = np.concatenate([toks, len(idx.item_ids) + idx.kw_ids[positions]])
    terms, counts = np.unique(toks, return_counts=True)
    exclude = idx.user_index.get(exclude_user) if exclude_user is not None else None
    return top_docs(idx.users_bm25, idx.users_colmax, terms, counts.astype(np.float64), k, exclude)


def query(
    idx: CollaborativeIndex,
    seen: Sequence[str],
    *,
    candidate_ids: Sequence[str] | None = None,
    n: int = 20,
    exclude_seen: bool = True,
    exclude_user: str | None = None,
    context_k: int = 3,
    per_user: int = 3,
) -> Neighbourhood:
    """The user's neighbourhood: one similar-user search, one blend (see the module docstring).

    With ``candidate_ids`` those are scored; otherwise the ``n`` best items are
    generated (never a seen one with ``exclude_seen``). ``context_k`` similar
    users give up to ``per_user`` next items each to the collaborative context.
    """
    seen_idx = idx.seen_indices(seen)
    users = similar_users(idx, seen_idx, max(idx.weights.n_users, context_k), exclude_user)
    scores = blend(idx, components(idx, seen_idx, users))
    if candidate_ids is not None:
        found = [(c, float(scores[idx.item_index[c]]) if c in idx.item_index else 0.0) for c in candidate_ids]
    else:
        found = _top(idx, scores, seen_idx if exclude_seen else None, n)
    return Neighbourhood(
        seen=tuple(seen),
        candidates=found,
        similar_users=[(idx.user_ids[d], float(s)) for d, s in zip(*(a.tolist() for a in users), strict=True)],
        next_items=_next_items(idx, seen_idx, users[0][:context_k], per_user),
        support=_support(idx, seen_idx, users, [c for c, _ in found]),
    )


def _top(idx: CollaborativeIndex, scores: np.ndarray, seen_idx: np.ndarray | None, n: int) -> list[tuple[str, float]]:
    allowed = np.ones(len(scores), dtype=bool)
    if seen_idx is not None:
        allowed[seen_idx] = False
    pool = np.flatnonzero(allowed)
    if n <= 0 or not len(pool):
        return []
    vals = scores[pool]
    if len(pool) > n:
        kth = np.partition(vals, len(vals) - n)[len(vals) - n]
        keep = vals >= kth
        pool, vals = pool[keep], vals[keep]
    top = np.lexsort((pool, -vals))[:n]
    return [(idx.item_ids[i], float(v)) for i, v in zip(pool[top].tolist(), vals[top].tolist(), strict=True)]


def _next_items(
    idx: CollaborativeIndex, seen_idx: np.ndarray, users: np.ndarray, per_user: int
) -> list[tuple[str, str]]:
    """For each user (best first), up to ``per_user`` unseen items right after a shared item, latest first."""
    out: list[tuple[str, str]] = []
    taken: set[int] = set()
    for u in users.tolist():
        picked = 0
        for item in next_items(idx, u, seen_idx, 1).tolist():
            if picked >= per_user:
                break
            if item not in taken:
                taken.add(item)
                picked += 1
                out.append((idx.user_ids[u], idx.item_ids[item]))
    return out


def _support(
    idx: CollaborativeIndex, seen_idx: np.ndarray, users: tuple[np.ndarray, np.ndarray], candidate_ids: Sequence[str]
) -> dict[str, Support]:
    """Per candidate: the recent seen items with a transition to it, and the similar users who took it next."""
    wanted = {idx.item_index[c]: c for c in candidate_ids if c in idx.item_index}
    if not wanted:
        return {}
    takers: dict[int, int] = {}
    for u in users[0][: idx.weights.n_users].tolist():
        for item in set(next_items(idx, u, seen_idx, idx.weights.window).tolist()) & wanted.keys():
            takers[item] = takers.get(item, 0) + 1
    follows: dict[int, list[str]] = {}
    for s in dict.fromkeys(seen_idx[::-1][: idx.weights.recent].tolist()):
        nxt = idx.trans_next[idx.trans_ptr[s] : idx.trans_ptr[s + 1]]
        for item in set(nxt.tolist()) & wanted.keys():
            follows.setdefault(item, []).append(idx.item_ids[s])
    return {
        c: Support(follows=tuple(follows.get(i, ())), similar_users=takers.get(i, 0))
        for i, c in wanted.items()
        if i in takers or i in follows
    }
