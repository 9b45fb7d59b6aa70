"""The evidence behind a candidate's place: what the reasons given with a ranking are written from.

Per candidate, :func:`support` collects what the components that scored it saw, as counts a
reader can check:

- **follows**: the history items the transition components read (``T``'s last ``t_recent``,
  ``L``'s last ``l_recent``) after which *other* users took the candidate within ``t_window``
  positions, and for each how many distinct users did (``follow_users``): counted in the
  sequences, not read from the gap-weighted transition weights, so "often" can mean
  "at least 3 people";
- **placed_by**: the components with a share in its score, the largest share first;
- **similar_users** / **similar_before**: of the ``neighbours`` most similar users searched for
  ``S``, how many took it after an item they share with this user, and how many only before one.

Counting users needs each item's occurrences (:meth:`.index.CollaborativeIndex.occurrences`, an
inverted index built on first use, so an index that never explains never pays for it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .components import Proposals
from .index import CollaborativeIndex
from .transitions import expand

__all__ = ["MAX_FOLLOWS", "Support", "follow_users", "support"]

#: the history items kept per candidate (the most-followed first)
MAX_FOLLOWS = 3


@dataclass(frozen=True)
class Support:
    """Why retrieval likes a candidate (see the module docstring); every count is of distinct users."""

    placed_by: tuple[str, ...] = ()
    follows: tuple[str, ...] = ()
    follow_users: tuple[int, ...] = ()
    similar_users: int = 0
    similar_before: int = 0
    neighbours: int = 0


def follow_users(
    idx: CollaborativeIndex, sources: np.ndarray, keys: np.ndarray, *, window: int, exclude_user: int | None
) -> dict[tuple[int, int], int]:
    """``{(source, item): users}``: how many distinct users (not ``exclude_user``) took ``item`` (one
    of ``keys``) within ``window`` positions after ``source`` (one of ``sources``)."""
    src = np.unique(np.asarray(sources, dtype=np.int64))
    if not len(src) or not len(keys):
        return {}
    occ_ptr, occ_pos = idx.occurrences()
    owner, at = expand(occ_ptr, src)
    pos = occ_pos[at]
    user = np.searchsorted(idx.seq_ptr, pos, side="right") - 1
    end = idx.seq_ptr[user + 1]
    n_users = max(len(idx.user_ids), 1)
    codes = []
    for g in range(1, window + 1):
        ok = np.flatnonzero(pos + g < end)
        nxt = idx.seq_items[pos[ok] + g].astype(np.int64)
        hit = np.isin(nxt, keys)
        ok, nxt = ok[hit], nxt[hit]
        codes.append((src[owner[ok]] * len(idx.item_ids) + nxt) * n_users + user[ok])
    code = np.unique(np.concatenate(codes))
    if exclude_user is not None:
        code = code[code % n_users != exclude_user]
    pairs, counts = np.unique(code // n_users, return_counts=True)
    n_items = len(idx.item_ids)
    return {(int(p // n_items), int(p % n_items)): int(c) for p, c in zip(pairs.tolist(), counts.tolist(), strict=True)}


def support(
    idx: CollaborativeIndex,
    found: Proposals,
    sources: np.ndarray,
    candidate_ids: Sequence[str],
    *,
    shares: Mapping[str, np.ndarray],
    neighbours: int,
    exclude_user: str | None,
) -> dict[str, Support]:
    """Per candidate with any evidence, its :class:`Support`. ``sources``: the history items the
    transition components read, most recent first; ``shares``: each component's weighted share of
    every item's score; ``neighbours``: the users searched for ``S``."""
    wanted = {idx.item_index[c]: c for c in candidate_ids if c in idx.item_index}
    if not wanted:
        return {}
    keys = np.fromiter(wanted, dtype=np.int64, count=len(wanted))
    after, before = _neighbour_counts(found, keys, neighbours)
    me = idx.user_index.get(exclude_user) if exclude_user is not None else None
    pairs = follow_users(idx, sources, keys, window=idx.weights.t_window, exclude_user=me)
    recency = {int(s): r for r, s in reversed(list(enumerate(np.asarray(sources).tolist())))}
    follows: dict[int, list[tuple[int, int]]] = {}
    for (source, item), users in pairs.items():
        follows.setdefault(item, []).append((users, source))
    out = {}
    for i, c in wanted.items():
        cited = sorted(follows.get(i, []), key=lambda us: (-us[0], recency.get(us[1], 0)))[:MAX_FOLLOWS]
        placed = tuple(n for v, n in sorted((-float(v[i]), n) for n, v in shares.items() if v[i] > 0))
        if cited or after.get(i) or before.get(i) or placed:
            out[c] = Support(
                placed_by=placed,
                follows=tuple(idx.item_ids[s] for _, s in cited), follow_users=tuple(u for u, _ in cited),
                similar_users=after.get(i, 0), similar_before=before.get(i, 0), neighbours=neighbours,
            )  # fmt: skip
    return out


def _neighbour_counts(found: Proposals, keys: np.ndarray, k: int) -> tuple[dict[int, int], dict[int, int]]:
    """Per key item: the neighbours (of the first ``k``) who took it after a shared item, and those
    who took it only before one."""
    mine = (found.neighbour < k) & np.isin(found.item, keys)
    code = found.item[mine] * (k + 1) + found.neighbour[mine]
    fwd = np.unique(code[found.offset[mine] > 0])
    back = np.setdiff1d(np.unique(code[found.offset[mine] < 0]), fwd)
    return _per_item(fwd, k), _per_item(back, k)


def _per_item(codes: np.ndarray, k: int) -> dict[int, int]:
    items, counts = np.unique(codes // (k + 1), return_counts=True)
    return dict(zip(items.tolist(), counts.tolist(), strict=True))
