"""Leakage discipline for evaluation: what an evaluation may index."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ..io import Interaction

__all__ = ["interactions_before"]


def _at_or_after(timestamp: float | None, limit: float) -> bool:
    return timestamp is None or timestamp >= limit


def interactions_before(interactions: Sequence[Interaction], cases: Iterable[Any]) -> list[Interaction]:
    """The interactions an evaluation may index: each case's user loses the target and all after it.

    For a case (``user_id``, ``target`` and, from :func:`msrkit.datasets.leave_one_out`,
    ``target_timestamp``), that user's rows at or after ``target_timestamp`` go; without a
    timestamp, the user's last interaction with ``target`` (in time order, or the given order)
    and every row after it go. Other users' rows are all kept: the standard leave-one-out
    protocol, in which only the evaluated user's own future is hidden. Order is preserved.
    """
    cut_time: dict[str, float] = {}
    cut_item: dict[str, str] = {}
    for case in cases:
        user, target = getattr(case, "user_id", None), getattr(case, "target", None)
        if user is None or target is None:
            continue
        extra = getattr(case, "model_extra", None) or {}
        ts = extra.get("target_timestamp", getattr(case, "target_timestamp", None))
        if ts is not None:
            cut_time[user] = min(float(ts), cut_time.get(user, math.inf))
        else:
            cut_item[user] = target
    drop: set[int] = set()
    rows_by_user: dict[str, list[int]] = {}
    for n, row in enumerate(interactions):
        if row.user_id in cut_time or row.user_id in cut_item:
            rows_by_user.setdefault(row.user_id, []).append(n)
    for user, positions in rows_by_user.items():
        if user in cut_time:
            limit = cut_time[user]
            drop.update(n for n in positions if _at_or_after(interactions[n].timestamp, limit))
            continue
        timed = all(interactions[n].timestamp is not None for n in positions)
        ordered = sorted(positions, key=lambda n: interactions[n].timestamp or 0.0) if timed else positions
        hits = [k for k, n in enumerate(ordered) if interactions[n].item_id == cut_item[user]]
        if hits:
            drop.update(ordered[hits[-1] :])
    return [row for n, row in enumerate(interactions) if n not in drop]
