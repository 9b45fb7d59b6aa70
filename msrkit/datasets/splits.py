"""The leave-one-out split: per user, the last interaction by time is the target of one evaluation case."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from ..data import History, HistoryEntry, Item
from ..inputs.io import Interaction
from ._files import time_ordered

__all__ = ["leave_one_out"]

log = logging.getLogger("msrkit")


def leave_one_out(
    catalog: Mapping[str, Item],
    interactions: Sequence[Interaction],
    *,
    negatives: int = 20,
    seed: int = 0,
    max_history: int = 50,
    min_history: int = 2,
    inline: bool = False,
) -> list[History]:
    """One evaluation case per user: the last interaction by time is the ``target``.

    The history is the interactions before it (oldest first, the last
    ``max_history``); users with fewer than ``min_history`` earlier interactions
    are skipped. Candidates are the target and ``negatives`` catalog items the
    user never interacted with, drawn and shuffled by a generator seeded with
    ``(seed, user_id)``, so a case does not depend on the other users.
    History entries carry their timestamps; the case records ``target_timestamp``.
    ``inline=True`` embeds the catalog items; otherwise entries are ids resolved
    later with :func:`msrkit.inputs.io.resolve` (``--catalog``).
    """
    if negatives < 0 or max_history < 1 or min_history < 0:
        raise ValueError("negatives must be >= 0, max_history >= 1, min_history >= 0")
    all_ids = sorted(catalog)
    known = frozenset(all_ids)
    cases = []
    short = 0
    for user, rows in _by_user(interactions).items():
        if len(rows) - 1 < max(min_history, 1):
            continue
        case = _case(
            user, rows, catalog, all_ids, known, negatives=negatives, seed=seed, max_history=max_history, inline=inline
        )
        short += len(case.candidates or []) < negatives + 1
        cases.append(case)
    if short:
        log.warning("%d user(s) have fewer than %d unseen items to sample negatives from", short, negatives)
    return cases


def _by_user(interactions: Sequence[Interaction]) -> dict[str, list[Interaction]]:
    groups: dict[str, list[Interaction]] = defaultdict(list)
    for row in interactions:
        groups[row.user_id].append(row)
    return {user: time_ordered(rows) for user, rows in groups.items()}


def _case(
    user: str,
    rows: list[Interaction],
    catalog: Mapping[str, Item],
    all_ids: list[str],
    known: frozenset[str],
    *,
    negatives: int,
    seed: int,
    max_history: int,
    inline: bool,
) -> History:
    target = rows[-1]
    rng = random.Random(f"{seed}:{user}")
    sampled = _sample_negatives(rng, all_ids, known, {r.item_id for r in rows}, negatives)
    candidate_ids = [target.item_id, *sampled]
    rng.shuffle(candidate_ids)
    history: list[HistoryEntry | str] = [_entry(r, catalog, inline) for r in rows[:-1][-max_history:]]
    candidates: list[Item | str] = [catalog[c] if inline and c in catalog else c for c in candidate_ids]
    extra = {"target_timestamp": target.timestamp} if target.timestamp is not None else {}
    return History(user_id=user, history=history, candidates=candidates, target=target.item_id, **extra)


def _entry(row: Interaction, catalog: Mapping[str, Item], inline: bool) -> HistoryEntry:
    data: dict[str, Any] = {"item_id": row.item_id}
    if inline and row.item_id in catalog:
        data = catalog[row.item_id].model_dump(exclude_none=True)
    return HistoryEntry(**data, timestamp=row.timestamp)


def _sample_negatives(
    rng: random.Random, all_ids: list[str], known: frozenset[str], seen: set[str], n: int
) -> list[str]:
    """``n`` distinct ids from ``all_ids`` not in ``seen`` (fewer if there are not enough)."""
    unseen = len(all_ids) - len(seen & known)
    if unseen <= 4 * n:
        pool = [i for i in all_ids if i not in seen]
        return rng.sample(pool, min(n, len(pool)))
    picked: list[str] = []
    taken: set[str] = set()
    while len(picked) < n:  # rejection sampling: cheap when the catalog dwarfs the user's items
        item = all_ids[rng.randrange(len(all_ids))]
        if item not in seen and item not in taken:
            taken.add(item)
            picked.append(item)
    return picked
