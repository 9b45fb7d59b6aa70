"""One retrieval query per request: the user's :class:`Neighbourhood`.

:func:`query` searches the similar users once and computes the blend once. The search's
neighbours are the users of the ``S`` component, and what they took around the items they
share with this user (:class:`~.components.Proposals`) serves three readers at once: the
``S`` scores, the collaborative context (what the first ``context_k`` neighbours took right
after a shared item: MMSRARec's context) and the per-candidate :class:`Support` from which
the reasons given with a ranking are written. Nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data import Item
from .bm25 import top_docs
from .components import (
    Proposals,
    neighbour_proposals,
    query_items,
    shares,
    text_scores,
    top_n,
    transition_scores,
    user_scores,
)
from .construct import label
from .evidence import Support
from .evidence import support as evidence
from .index import CollaborativeIndex
from .transitions import expand

__all__ = ["Neighbourhood", "Support", "components", "query", "search", "similar_users"]


@dataclass(frozen=True)
class Neighbourhood:
    """What retrieval knows about one user, computed once per request.

    ``candidates``: ``(item_id, score)``, generated best first, or the given
    candidates in their given order with their scores (0.0 for items the index
    does not know); ``order``: the candidates' positions best first (score, then
    popularity, then index: the order retrieval ranks them in). ``next_items``:
    ``(user_id, item_id)`` pairs, what the most similar users took right after an
    item they share with this user.
    """

    seen: tuple[str, ...]
    candidates: list[tuple[str, float]]
    order: list[int] = field(default_factory=list)
    similar_users: list[tuple[str, float]] = field(default_factory=list)
    next_items: list[tuple[str, str]] = field(default_factory=list)
    support: dict[str, Support] = field(default_factory=dict)

    def scores(self) -> list[float]:
        return [s for _, s in self.candidates]

    def context(self, catalog: Mapping[str, Item] | None, index: CollaborativeIndex | None = None) -> list[str]:
        """The collaborative context as text: each next item's keywords, else its title, else its id."""
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
    idx: CollaborativeIndex, query: tuple[np.ndarray, np.ndarray], k: int, exclude_user: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best user documents (BM25) for the weighted query items, best first, and their scores.

    The query holds the items' tokens with their weights and, where items carry keywords,
    each ``kw:`` token once with the summed weight of the query items that hold it.
    """
    items, q = query
    terms, weights = items, q
    if idx.keyword_tokens and len(idx.kw_ids) and len(items):
        owner, positions = expand(idx.kw_ptr, items)
        kw, inv = np.unique(idx.kw_ids[positions], return_inverse=True)
        terms = np.concatenate([items, len(idx.item_ids) + kw])
        weights = np.concatenate([q, np.bincount(inv, weights=q[owner], minlength=len(kw))])
    exclude = idx.user_index.get(exclude_user) if exclude_user is not None else None
    return top_docs(idx.users_bm25, idx.users_colmax, terms, weights, k, exclude)


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
    support: bool = True,
) -> Neighbourhood:
    """The user's neighbourhood: one similar-user search, one blend (see the module docstring).

    With ``candidate_ids`` those are scored; otherwise the ``n`` best items are
    generated (never a seen one with ``exclude_seen``). ``context_k`` similar
    users give up to ``per_user`` next items each to the collaborative context.
    ``support=False`` leaves :attr:`Neighbourhood.support` empty (for callers that give no reasons).
    """
    w = idx.weights
    seen_idx = idx.seen_indices(seen)
    users, found = search(idx, seen_idx, exclude_user, context_k)
    parts = shares(components(idx, seen_idx, found), w)
    scores = sum(parts.values(), np.zeros(len(idx.item_ids)))  # = blend(): the same sum in the same order
    if candidate_ids is not None:
        cands, order = _given(idx, scores, candidate_ids)
    else:
        best = top_n(scores, idx.popularity, idx.pop_order, n, exclude=seen_idx if exclude_seen else None)
        cands, order = [(idx.item_ids[i], float(scores[i])) for i in best.tolist()], list(range(len(best)))
    return Neighbourhood(
        seen=tuple(seen),
        candidates=cands,
        order=order,
        similar_users=[(idx.user_ids[d], float(s)) for d, s in zip(*(a.tolist() for a in users), strict=True)],
        next_items=_next_items(idx, found, users[0], seen_idx, context_k, per_user),
        support=evidence(
            idx,
            found,
            seen_idx[::-1][: max(w.t_recent, w.l_recent if w.long > 0 else 0)],
            [c for c, _ in cands],
            shares=parts,
            neighbours=len(users[0]),
            exclude_user=exclude_user,
        )
        if support
        else {},  # fmt: skip
    )


def search(
    idx: CollaborativeIndex,
    seen_idx: np.ndarray,
    exclude_user: str | None,
    context_k: int,
    *,
    found_before: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], Proposals]:
    """The one similar-user search: the neighbours (S's ``u_k``, at least ``context_k``) and their proposals.

    ``found_before``: this very query's best users searched earlier with a ``k`` at least as large
    (the search is exact, ties to the lower id, so its first ``k`` are the top ``k``): taken, not searched.
    """
    w = idx.weights
    q = query_items(seen_idx, recent=w.u_recent, decay=w.u_decay)
    k = max(w.u_k if w.users > 0 else 0, context_k)
    none = (np.zeros(0, dtype=np.int64), np.zeros(0))
    if not (k > 0 and len(q[0])):
        users = none
    elif found_before is not None:
        users = (found_before[0][:k], found_before[1][:k])
    else:
        users = similar_users(idx, q, k, exclude_user)
    found = neighbour_proposals(idx.seq_ptr, idx.seq_items, users, q, window=w.u_window, gap_power=w.u_gap_power,
                                backward=w.u_backward)  # fmt: skip
    return users, found


def components(
    idx: CollaborativeIndex, seen_idx: np.ndarray, found: Proposals | None, *, only: str | None = None
) -> dict[str, np.ndarray]:
    """The raw components T, S, X, L (where weighted), P over all indexed items (see :mod:`.components`);
    ``only``: just that one."""
    w = idx.weights
    recent = seen_idx[::-1]
    out: dict[str, np.ndarray] = {}
    if only in (None, "transitions"):
        out["transitions"] = transition_scores(idx.transitions, recent[: w.t_recent], decay=w.t_decay, alpha=w.t_alpha)
    if only in (None, "users"):
        out["users"] = (
            user_scores(found, len(idx.item_ids), k=w.u_k) if found is not None else np.zeros(len(idx.item_ids))
        )
    if only in (None, "text"):
        out["text"] = text_scores(idx.items_bm25, idx.text_ptr, idx.text_ids, recent[: w.x_recent], decay=w.x_decay)
    if only in (None, "long") and (w.long > 0 or only == "long"):
        out["long"] = transition_scores(idx.long_matrix(), recent[: w.l_recent], decay=w.l_decay, alpha=0.0)
    if only in (None, "popularity"):
        out["popularity"] = idx.popularity_scores()
    return out


def _given(
    idx: CollaborativeIndex, scores: np.ndarray, candidate_ids: Sequence[str]
) -> tuple[list[tuple[str, float]], list[int]]:
    """The given candidates with their scores, and their order by (score, popularity, index; unknown last)."""
    code = [idx.item_index.get(c, -1) for c in candidate_ids]
    cands = [(c, float(scores[i]) if i >= 0 else 0.0) for c, i in zip(candidate_ids, code, strict=True)]
    pop = [int(idx.popularity[i]) if i >= 0 else -1 for i in code]
    order = sorted(range(len(cands)), key=lambda j: (-cands[j][1], -pop[j], code[j] if code[j] >= 0 else 1 << 62, j))
    return cands, order


def _next_items(
    idx: CollaborativeIndex, found: Proposals, docs: np.ndarray, seen_idx: np.ndarray, context_k: int, per_user: int
) -> list[tuple[str, str]]:
    """Per neighbour (best first), up to ``per_user`` new unseen items right after a shared item, latest first."""
    pick = np.flatnonzero((found.offset == 1) & (found.neighbour < context_k) & ~np.isin(found.item, seen_idx))
    pick = pick[np.lexsort((-found.shared_at[pick], found.neighbour[pick]))]
    out: list[tuple[str, str]] = []
    taken: set[int] = set()
    per: dict[int, int] = {}
    for nb, item in zip(found.neighbour[pick].tolist(), found.item[pick].tolist(), strict=True):
        if item in taken or per.get(nb, 0) >= per_user:
            continue
        taken.add(item)
        per[nb] = per.get(nb, 0) + 1
        out.append((idx.user_ids[int(docs[nb])], idx.item_ids[item]))
    return out
