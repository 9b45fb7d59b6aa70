"""Defaults that adapt: the blend chooses itself at build time, cheaply, without a test target.

Two steps, both on the index's own interactions:

1. **Data statistics** (:func:`data_stats`): users, items, mean and median history length,
   density, repeat rate (the share of interactions that repeat an item the user had before)
   and whether items carry text. They decide *which* knobs are worth a look
   (:func:`quick_grid`): ``L`` (long histories) only where histories are long, the text weight
   only where items have text, the similar-user knobs that repeat-heavy data move (more
   neighbours, a slower decay) only where repeats are common.
2. **A quick validation search** (:func:`.tune.tune_index` with that small grid, one pass, at most
   :data:`SAMPLE` sampled users, component vectors cached): each user's last indexed interaction
   is the validation target, and a move is kept only if it beats the noise (one standard error
   and 10 more users gaining than losing), so on data like the development sets the defaults
   stay, and on data unlike them the blend moves.

On more than :data:`MAX_USERS` users the search runs on an index of that many users drawn at
random (seeded): what the blend does on a large sample is what it does on all, and the cost stays
bounded (1M users: see ``bench/bench_retrieval.py --select``). With fewer than :data:`MIN_USERS`
validation users nothing is searched: the defaults stay, and
the result says why. ``msrkit index info`` prints what was chosen and why
(:meth:`.weights.TuneResult.table`).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .construct import derive_from_sequences
from .index import CollaborativeIndex
from .tune import tune_index
from .weights import BlendWeights, TuneResult, TuneStep

__all__ = ["LONG_HISTORY", "MAX_USERS", "MIN_USERS", "REPEAT_HEAVY", "SAMPLE", "data_stats", "quick_grid",
           "select_blend"]  # fmt: skip

#: validation users sampled for the quick search (seeded)
SAMPLE = 1500
#: fewer validation users than this and the defaults stay (too few to tell configurations apart)
MIN_USERS = 200
#: users beyond which the search runs on a random sample of users' whole sequences
MAX_USERS = 50_000
#: mean history length from which L (:mod:`.cooccurrence`) is searched
LONG_HISTORY = 20.0
#: repeat rate from which the repeat-heavy knobs are searched
REPEAT_HEAVY = 0.05


def data_stats(idx: CollaborativeIndex) -> dict[str, float]:
    """What the selection reads: sizes, history lengths, density, repeat rate, text."""
    lengths = np.diff(idx.seq_ptr)
    n, users, items = len(idx.seq_items), max(len(idx.user_ids), 1), max(len(idx.item_ids), 1)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    pairs = np.sort(owner * items + idx.seq_items.astype(np.int64))  # a sort: np.unique hashes, 10x slower here
    distinct = 1 + int(np.count_nonzero(pairs[1:] != pairs[:-1])) if n else 0
    return {
        "users": float(len(idx.user_ids)), "items": float(len(idx.item_ids)), "interactions": float(n),
        "mean_length": n / users, "median_length": float(np.median(lengths)) if len(lengths) else 0.0,
        "density": n / (users * items), "repeat_rate": 1.0 - distinct / n if n else 0.0,
        "text": float(idx.items_bm25 is not None and len(idx.words) > 0),
    }  # fmt: skip


def quick_grid(stats: dict[str, float]) -> tuple[dict[str, tuple[Any, ...]], list[str]]:
    """The knobs the quick search tries on data with these statistics, and why (one line each)."""
    grid: dict[str, tuple[Any, ...]] = {"users": (0.5, 2.0), "u_k": (50, 500), "t_decay": (0.3, 0.7),
                                        "popularity": (0.03,)}  # fmt: skip
    why = [f"data: {stats['users']:.0f} users, {stats['items']:.0f} items, mean history {stats['mean_length']:.1f} "
           f"(median {stats['median_length']:.0f}), density {stats['density']:.2g}, "
           f"repeat rate {stats['repeat_rate']:.1%}"]  # fmt: skip
    if stats["mean_length"] >= LONG_HISTORY:
        grid.update(long=(0.1, 0.25, 0.5), l_decay=(0.9, 0.99))
        why.append(f"long histories (mean >= {LONG_HISTORY:g}): L, the long-history co-occurrence, is tried")
    if stats["repeat_rate"] >= REPEAT_HEAVY:
        grid.update(u_decay=(0.95, 1.0), u_recent=(None,))
        why.append(f"repeat-heavy (>= {REPEAT_HEAVY:.0%}): slower similar-user decay and whole histories are tried")
    if stats["text"]:
        grid["text"] = (0.0, 0.1, 0.5)
        why.append("items carry text: the text weight is tried")
    return grid, why


def _sample_users(idx: CollaborativeIndex, n: int, *, seed: int) -> CollaborativeIndex:
    """An index over ``n`` random users' whole sequences (the same items, catalog text and weights)."""
    keep = np.zeros(len(idx.user_ids), dtype=bool)
    keep[np.random.default_rng(seed).choice(len(idx.user_ids), n, replace=False)] = True
    lengths = np.diff(idx.seq_ptr)
    rows = np.repeat(keep, lengths)
    users = [u for u, k in zip(idx.user_ids, keep.tolist(), strict=True) if k]
    ptr = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
    return derive_from_sequences(idx, ptr, idx.seq_items[rows], idx.seq_ts[rows], user_ids=users)


def select_blend(
    idx: CollaborativeIndex, *, start: BlendWeights | None = None, exclude_seen: bool = True, seed: int = 0
) -> TuneResult:
    """The blend for ``idx``'s data (see the module docstring); ``idx`` itself is left unchanged."""
    t0 = time.perf_counter()
    start = start or idx.weights
    stats = data_stats(idx)
    grid, why = quick_grid(stats)
    users = int(np.count_nonzero(np.diff(idx.seq_ptr) >= 2))  # a validation target and a history
    if users < MIN_USERS:
        why.append(f"{users} users with two or more interactions (< {MIN_USERS}): too few to tell; the defaults stay")
        seconds = time.perf_counter() - t0
        return TuneResult(start, start, (TuneStep("start", None, 0.0, 0.0),), users, 0, seconds, "auto",
                          tuple(why), stats)  # fmt: skip
    on = idx
    if len(idx.user_ids) > MAX_USERS:
        on = _sample_users(idx, MAX_USERS, seed=seed)
        why.append(f"searched on {MAX_USERS} users drawn at random (of {len(idx.user_ids)})")
    found = tune_index(on, start=start, sample=SAMPLE, seed=seed, passes=1, grid=grid, exclude_seen=exclude_seen)
    seconds = time.perf_counter() - t0
    return TuneResult(found.weights, start, found.steps, found.users, found.evaluations, seconds, "auto",
                      tuple(why), stats)  # fmt: skip
