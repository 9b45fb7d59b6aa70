"""Leakage discipline for evaluation: what an evaluation may index."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, overload

import numpy as np

from ..inputs.io import Interaction
from .interactions import Interactions

__all__ = ["interactions_before", "keep_before"]


def _cuts(cases: Iterable[Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Per evaluated user: the target's time, or (without one) the target item."""
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
    return cut_time, cut_item


def keep_before(cols: Interactions, cases: Iterable[Any]) -> np.ndarray:
    """A mask of the rows an evaluation may index (see :func:`interactions_before`)."""
    cut_time, cut_item = _cuts(cases)
    code = {u: n for n, u in enumerate(cols.user_ids)}
    limits = np.full(len(cols.user_ids), np.inf)
    for user, limit in cut_time.items():
        if user in code:
            limits[code[user]] = limit
    row_limit = limits[cols.users]
    out = (row_limit < np.inf) & ~(cols.ts < row_limit)  # at or after the target's time (or untimed)
    keep: np.ndarray = ~out
    items = {i: n for n, i in enumerate(cols.item_ids)}
    users = [code[u] for u in cut_item if u in code and u not in cut_time]
    if users:
        order = np.argsort(cols.users, kind="stable")
        starts = np.searchsorted(cols.users[order], users)
        ends = np.searchsorted(cols.users[order], users, side="right")
        for u, lo, hi in zip(users, starts.tolist(), ends.tolist(), strict=True):
            _drop_from_target(keep, cols, order[lo:hi], items.get(cut_item[cols.user_ids[u]], -1))
    return keep


def _drop_from_target(keep: np.ndarray, cols: Interactions, rows: np.ndarray, target: int) -> None:
    """Drop the user's last interaction with ``target`` (in time order, else file order) and all after it."""
    ts = cols.ts[rows]
    ordered = rows[np.argsort(ts, kind="stable")] if not np.isnan(ts).any() else rows
    hits = np.flatnonzero(cols.items[ordered] == target)
    if len(hits):
        keep[ordered[hits[-1] :]] = False


@overload
def interactions_before(interactions: Interactions, cases: Iterable[Any]) -> Interactions: ...


@overload
def interactions_before(interactions: Sequence[Interaction], cases: Iterable[Any]) -> list[Interaction]: ...


def interactions_before(
    interactions: Interactions | Sequence[Interaction], cases: Iterable[Any]
) -> Interactions | list[Interaction]:
    """The interactions an evaluation may index: each case's user loses the target and all after it.

    For a case (``user_id``, ``target`` and, from :func:`msrkit.datasets.leave_one_out`,
    ``target_timestamp``), that user's rows at or after ``target_timestamp`` go; without a
    timestamp, the user's last interaction with ``target`` (in time order, or the given order)
    and every row after it go. Other users' rows are all kept: the standard leave-one-out
    protocol, in which only the evaluated user's own future is hidden. Order is preserved;
    columns in, columns out; rows in, rows out.
    """
    if isinstance(interactions, Interactions):
        return interactions.keep(keep_before(interactions, cases))
    rows = list(interactions)
    mask = keep_before(Interactions.from_rows(rows), cases)
    return [row for row, kept in zip(rows, mask.tolist(), strict=True) if kept]
