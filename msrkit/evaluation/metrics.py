"""Ranking metrics for one relevant item per user, with their standard definitions.

``rank`` is the 1-based position of the target in the ranked candidates;
``math.inf`` means the target was not ranked at all (a miss everywhere).

- HR@K   = 1 if rank <= K else 0
- NDCG@K = 1 / log2(rank + 1) if rank <= K else 0   (the ideal DCG is 1: one relevant item)
- MRR    = 1 / rank   (0 for a miss)
- AUC    = fraction of negatives scored below the positive, ties counting 1/2

Confidence intervals are percentile bootstraps over users.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["hit_at_k", "ndcg_at_k", "mrr", "auc", "rank_of", "bootstrap_ci", "summarize", "per_case"]

MISS = math.inf


def _check(rank: float, k: int | None = None) -> None:
    if not rank >= 1:  # also rejects NaN
        raise ValueError(f"rank must be >= 1 (1 is the top) or math.inf for a miss, got {rank}")
    if k is not None and k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def hit_at_k(rank: float, k: int) -> float:
    """1.0 when the target is in the top ``k``, else 0.0."""
    _check(rank, k)
    return 1.0 if rank <= k else 0.0


def ndcg_at_k(rank: float, k: int) -> float:
    """``1 / log2(rank + 1)`` when the target is in the top ``k``, else 0.0."""
    _check(rank, k)
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0


def mrr(rank: float) -> float:
    """Reciprocal rank: ``1 / rank`` (0.0 for a miss)."""
    _check(rank)
    return 0.0 if math.isinf(rank) else 1.0 / rank


def auc(scores: Sequence[float], target_index: int) -> float:
    """Fraction of negatives scored below the positive (ties count 1/2); higher scores rank higher."""
    if not 0 <= target_index < len(scores):
        raise ValueError(f"target_index {target_index} is outside the {len(scores)} scores")
    if len(scores) < 2:
        raise ValueError("AUC needs at least one negative")
    positive = scores[target_index]
    below = sum(1.0 if s < positive else 0.5 if s == positive else 0.0 for s in scores)
    below -= 0.5  # the positive tied with itself
    return below / (len(scores) - 1)


def rank_of(ranking: Sequence[str], target: str) -> float:
    """The 1-based position of ``target`` in ``ranking``, or ``math.inf`` if absent."""
    try:
        return float(ranking.index(target) + 1)
    except ValueError:
        return MISS


def per_case(ranks: Iterable[float], ks: Sequence[int] = (1, 5, 10)) -> dict[str, list[float]]:
    """Per-case values of HR@K, NDCG@K and MRR, keyed like :func:`summarize`."""
    ranks = list(ranks)
    out: dict[str, list[float]] = {}
    for k in ks:
        out[f"HR@{k}"] = [hit_at_k(r, k) for r in ranks]
        out[f"NDCG@{k}"] = [ndcg_at_k(r, k) for r in ranks]
    out["MRR"] = [mrr(r) for r in ranks]
    return out


def summarize(ranks: Iterable[float], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Mean HR@K, NDCG@K (for each K) and MRR over cases, plus ``n`` (the number of cases)."""
    values = per_case(ranks, ks)
    n = len(values["MRR"])
    out = {name: (sum(v) / n if n else math.nan) for name, v in values.items()}
    out["n"] = float(n)
    return out


def bootstrap_ci(values: Sequence[float], *, n: int = 1000, seed: int = 0, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one value per user).

    Deterministic for a given ``seed``; two metrics over the same users and the
    same seed are resampled with the same draws. ``(nan, nan)`` for no values.
    """
    if not 0 < alpha < 1 or n < 1:
        raise ValueError("alpha must be in (0, 1) and n >= 1")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n)
    chunk = max(1, 5_000_000 // data.size)  # bound memory: chunk x users indices at a time
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        means[start : start + size] = data[rng.integers(0, data.size, size=(size, data.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
