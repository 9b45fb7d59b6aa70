"""Self-tuning of the blend by leave-one-out validation on the index's own interactions.

**Validation split.** Each user's last interaction *in the index* is that user's validation
target; the validation index is the same index with every such interaction removed. Nothing
else is read: an evaluation's test targets are never in an index built for it
(:func:`.leakage.interactions_before`), so tuning cannot see them.

**Search.** Bounded coordinate ascent over a fixed grid (:data:`GRID`: 13 knobs, 59 values),
starting from the given weights, at most ``passes`` passes, stopping when a pass changes
nothing: about 45 evaluations per pass. A full grid would be ~10^10 points; the knobs are
mostly separable (each component has its own), so one knob at a time finds what a grid
would at a few hundred-millionths of the cost. A move is kept only if the paired per-user
NDCG@10 gain beats ``z`` standard errors **and** ``min_net`` more users gain than lose:
on small data, differences within noise leave the defaults in place.

**Cost.** Up to ``sample`` validation users (seeded). Each component's vectors are cached per
user (only each component's ``top_m`` best unseen items on catalogs over 5,000 items), keyed
by the knobs it depends on, so moving a weight only re-blends; the ranks are exact on the
cached vectors (the best items outside them are the most popular ones).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .components import query_items
from .construct import derive_from_sequences, with_weights
from .index import CollaborativeIndex
from .neighbourhood import components, search, similar_users
from .weights import BlendWeights, TuneResult, TuneStep

__all__ = ["GRID", "TuneResult", "TuneStep", "tune_index", "validation_index"]  # the results: in .weights

log = logging.getLogger("msrkit")

GRID: dict[str, tuple[Any, ...]] = {
    "users": (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
    "t_window": (1, 3, 5, 10, 20),
    "t_gap_power": (0.0, 0.5, 1.0, 2.0),
    "t_recent": (1, 3, 5, 10, 20),
    "t_decay": (0.3, 0.5, 0.7, 0.9),
    "t_alpha": (0.0, 0.25, 0.5, 0.75, 1.0),
    "u_k": (20, 50, 100, 200, 500),
    "u_decay": (0.5, 0.7, 0.8, 0.9, 1.0),
    "u_window": (1, 3, 5, 10),
    "u_gap_power": (0.0, 0.5, 1.0, 2.0),
    "u_backward": (0.0, 0.25, 0.5, 1.0),
    "text": (0.0, 0.05, 0.1, 0.25, 0.5, 1.0),
    "popularity": (0.0, 0.01, 0.03, 0.1),
    "long": (0.0, 0.1, 0.25, 0.5, 1.0),
    "l_decay": (0.8, 0.9, 0.95, 0.99),
    "l_window": (5, 20, 50),
}
#: the knobs each cached component depends on
COMPONENT_KNOBS = {
    "transitions": ("t_window", "t_gap_power", "t_max_row", "t_recent", "t_decay", "t_alpha"),
    "users": ("u_k", "u_recent", "u_decay", "u_window", "u_gap_power", "u_backward"),
    "text": ("x_recent", "x_decay"),
    "long": ("l_window", "l_max_row", "l_recent", "l_decay"),
}
K = 10
#: component vectors kept (each at most 5,000 users x 300 entries x 8 bytes = 12 MB)
CACHE_SIZE = 24
_NONE = (np.zeros(0, dtype=np.int64), np.zeros(0))  # no query items: no neighbours


def validation_index(idx: CollaborativeIndex) -> tuple[CollaborativeIndex, np.ndarray]:
    """The index without each user's last interaction, and those items (-1 for a user with none)."""
    lengths = np.diff(idx.seq_ptr)
    last = idx.seq_ptr[1:][lengths > 0] - 1
    targets = np.full(len(idx.user_ids), -1, dtype=np.int64)
    targets[lengths > 0] = idx.seq_items[last]
    keep = np.ones(len(idx.seq_items), dtype=bool)
    keep[last] = False
    seq_ptr = np.zeros_like(idx.seq_ptr)
    np.cumsum(np.maximum(lengths - 1, 0), out=seq_ptr[1:])
    return derive_from_sequences(idx, seq_ptr, idx.seq_items[keep], idx.seq_ts[keep]), targets


def tune_index(
    idx: CollaborativeIndex,
    *,
    start: BlendWeights | None = None,
    sample: int = 5000,
    seed: int = 0,
    passes: int = 2,
    z: float = 1.0,
    min_net: int = 10,
    grid: Mapping[str, tuple[Any, ...]] | None = None,
    exclude_seen: bool = True,
) -> TuneResult:
    """Choose the blend's weights on ``idx``'s own interactions (see the module docstring).

    ``grid``: the knobs and values searched (default :data:`GRID`); ``exclude_seen=False``
    scores a target the user already had like any other item (``repeats = "allow"``).
    """
    t0 = time.perf_counter()
    start = start or idx.weights
    vidx, targets = validation_index(idx)
    vidx = with_weights(vidx, start)
    users = np.flatnonzero((targets >= 0) & (np.diff(vidx.seq_ptr) > 0))
    if len(users) > sample:
        users = np.sort(np.random.default_rng(seed).choice(users, sample, replace=False))
    grid = GRID if grid is None else grid
    ev = _Evaluator(vidx, users, targets[users], top_m=None if len(idx.item_ids) <= 5000 else 300,
                    exclude_seen=exclude_seen, k_max=max((start.u_k, *grid.get("u_k", ()))))  # fmt: skip
    best, steps = _ascent(ev, start, grid, passes=passes, z=z, min_net=min_net)
    seconds = time.perf_counter() - t0
    log.info("tuned on %d validation users: %d evaluations, %.1f s", len(users), ev.evaluations, seconds)
    return TuneResult(best, start, tuple(steps), len(users), ev.evaluations, seconds)


def _ascent(
    ev: _Evaluator, start: BlendWeights, grid: Mapping[str, tuple[Any, ...]], *, passes: int, z: float, min_net: int
) -> tuple[BlendWeights, list[TuneStep]]:
    best, best_nd = start, ev.ndcg(start)
    steps = [TuneStep("start", None, ev.hr(best_nd), float(best_nd.mean()) if len(best_nd) else 0.0)]
    if len(best_nd) < 2:
        return best, steps
    for n in range(passes):
        moved = False
        knobs = list(grid.items())
        for knob, values in knobs if n % 2 == 0 else knobs[::-1]:  # back and forth: the latest vectors are cached
            if not ev.applies(knob, best):
                continue
            for value in values:
                if value == getattr(best, knob):
                    continue
                cand = replace(best, **{knob: value})
                nd = ev.ndcg(cand)
                d = nd - best_nd
                se = float(d.std(ddof=1) / np.sqrt(len(d)))
                net = int(np.count_nonzero(d > 0)) - int(np.count_nonzero(d < 0))
                if d.mean() > 1e-6 and d.mean() > z * se and net >= min_net:
                    best, best_nd, moved = cand, nd, True
                    steps.append(TuneStep(knob, value, ev.hr(nd), float(nd.mean()), float(d.mean()), se, net))
        if not moved:
            break
    return best, steps


def _ndcg_of(cand: np.ndarray, s: np.ndarray, pop_w: np.ndarray, pop: np.ndarray, target: int) -> float:
    """NDCG@10 of ``target`` among ``cand`` (an item at most 4 times) by (score, popularity, index); clears ``s``."""
    v = s[cand] + pop_w[cand]
    s[cand] = 0.0
    if len(cand) > 4 * K:  # the best 4K entries hold at least K distinct items
        keep = v >= np.partition(v, len(v) - 4 * K)[len(v) - 4 * K]
        cand, v = cand[keep], v[keep]
    ranked = cand[np.lexsort((cand, -pop[cand], -v))]
    distinct = np.ones(len(ranked), dtype=bool)
    np.not_equal(ranked[1:], ranked[:-1], out=distinct[1:])  # an item in two components: once (adjacent)
    hit = np.flatnonzero(ranked[distinct][:K] == target)
    return 1.0 / float(np.log2(hit[0] + 2.0)) if len(hit) else 0.0


@dataclass(frozen=True)
class _Vectors:
    """One component's vectors for every validation user, as CSR: the kept entries and each user's max."""

    ptr: np.ndarray
    item: np.ndarray
    value: np.ndarray
    top: np.ndarray

    @classmethod
    def of(cls, rows: list[tuple[np.ndarray, np.ndarray, float]]) -> _Vectors:
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r[0]) for r in rows], out=ptr[1:])
        item = np.concatenate([r[0] for r in rows]).astype(np.int32) if rows else np.zeros(0, np.int32)
        value = np.concatenate([r[1] for r in rows]).astype(np.float32) if rows else np.zeros(0, np.float32)
        return cls(ptr, item, value, np.array([r[2] for r in rows], dtype=np.float64))


class _Evaluator:
    """Per-user validation NDCG@10 of a configuration, with each component's vectors cached."""

    def __init__(self, vidx: CollaborativeIndex, users: np.ndarray, targets: np.ndarray, *, top_m: int | None,
                 exclude_seen: bool = True, k_max: int = 0) -> None:  # fmt: skip
        self.vidx, self.users, self.targets, self.top_m = vidx, users, targets, top_m
        self.seen = [vidx.seq_items[vidx.seq_ptr[u] : vidx.seq_ptr[u + 1]].astype(np.int64) for u in users.tolist()]
        self.excluded = self.seen if exclude_seen else [np.zeros(0, dtype=np.int64)] * len(self.seen)
        self.has_text = vidx.items_bm25 is not None and len(vidx.words) > 0
        self.pop = vidx.popularity.astype(np.float64)
        self.cache: OrderedDict[tuple[Any, ...], _Vectors] = OrderedDict()
        self.k_max = k_max
        self.neighbours: OrderedDict[tuple[Any, ...], tuple[int, list[tuple[np.ndarray, np.ndarray]]]] = OrderedDict()
        self.evaluations = 0
        self.scratch = np.zeros(len(self.pop))
        head = min(len(self.pop), K + (3 * top_m if top_m else len(self.pop)))
        self.heads = [self._popular_unseen(s, head) for s in self.excluded]

    def _popular_unseen(self, seen: np.ndarray, n: int) -> np.ndarray:
        head = self.vidx.pop_order[: n + len(seen)]
        return head[~np.isin(head, seen)][:n]

    def applies(self, knob: str, w: BlendWeights) -> bool:
        """Whether moving ``knob`` can change anything (a switched-off component's knobs cannot)."""
        if knob == "text" or knob.startswith("x_"):
            return self.has_text
        return not (knob.startswith("u_") and w.users == 0 or knob.startswith("l_") and w.long == 0)

    def hr(self, nd: np.ndarray) -> float:
        return float(np.count_nonzero(nd > 0) / len(nd)) if len(nd) else 0.0

    def ndcg(self, w: BlendWeights) -> np.ndarray:
        """Per validation user, NDCG@10 of the target under ``w``: the exact top 10 of the cached
        entries and the most popular unseen items (every other item scores ``w_P * P`` alone)."""
        self.evaluations += 1
        parts = [(self._vectors(n, w), getattr(w, n)) for n in COMPONENT_KNOBS
                 if getattr(w, n) > 0 and (n != "text" or self.has_text)]  # fmt: skip
        pop_w = w.popularity * self.vidx.popularity_scores()
        s = self.scratch
        out = np.zeros(len(self.users))
        for j, target in enumerate(self.targets.tolist()):
            picked = []
            for vec, weight in parts:
                lo, hi = vec.ptr[j], vec.ptr[j + 1]
                if hi > lo and vec.top[j] > 0:
                    s[vec.item[lo:hi]] += (weight / vec.top[j]) * vec.value[lo:hi]
                    picked.append(vec.item[lo:hi])
            head = self.heads[j]
            out[j] = _ndcg_of(np.concatenate([*picked, head[s[head] == 0][:K]]), s, pop_w, self.pop, target)
        return out

    def _vectors(self, name: str, w: BlendWeights) -> _Vectors:
        key = (name, *(getattr(w, k) for k in COMPONENT_KNOBS[name]))
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        self.vidx = with_weights(self.vidx, w)
        before = self._neighbours(w) if name == "users" else None
        rows = []
        for j, (u, seen, excluded) in enumerate(zip(self.users.tolist(), self.seen, self.excluded, strict=True)):
            found = (search(self.vidx, seen, self.vidx.user_ids[u], 0, found_before=before[j])[1]
                     if before is not None else None)  # fmt: skip
            rows.append(self._truncate(components(self.vidx, seen, found, only=name)[name], excluded))
        self.cache[key] = _Vectors.of(rows)
        if len(self.cache) > CACHE_SIZE:
            self.cache.popitem(last=False)
        return self.cache[key]

    def _neighbours(self, w: BlendWeights) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each validation user's best ``max(k_max, u_k)`` users for ``w``'s query (kept per query): one
        search serves every ``u_k`` the grid tries, each taking its first ``u_k``."""
        key, k = (w.u_recent, w.u_decay), max(self.k_max, w.u_k)
        held = self.neighbours.get(key)
        if held is None or held[0] < k:
            found = []
            for u, seen in zip(self.users.tolist(), self.seen, strict=True):
                q = query_items(seen, recent=w.u_recent, decay=w.u_decay)  # the query search() makes
                found.append(similar_users(self.vidx, q, k, self.vidx.user_ids[u]) if len(q[0]) else _NONE)
            held = self.neighbours[key] = (k, found)
        self.neighbours.move_to_end(key)
        if len(self.neighbours) > 2:  # the best configuration's query and the one being tried
            self.neighbours.popitem(last=False)
        return held[1]

    def _truncate(self, v: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The positive unseen entries (the ``top_m`` largest where set) and the max over all items."""
        top = float(v.max()) if len(v) else 0.0
        v[seen] = 0.0
        nz = np.flatnonzero(v > 0)
        if self.top_m is not None and len(nz) > self.top_m:
            nz = nz[np.argpartition(-v[nz], self.top_m - 1)[: self.top_m]]
        return nz, v[nz], top
