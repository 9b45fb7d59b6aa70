"""The one result type of every scorer: listwise, pointwise, retrieval, fused."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..outcomes import Failure, ScoreMethod

__all__ = ["Scored", "finite"]


def finite(x: float) -> float:
    """``x``, with NaN as -inf (never ranked first by accident)."""
    return x if math.isfinite(x) else -math.inf if x != x or x < 0 else math.inf


@dataclass(frozen=True)
class Scored:
    """A scorer's verdict on ``n`` candidates (by their index in the candidate list).

    ``order`` is a permutation of ``range(n)``, best first; ``scores[i]`` is
    candidate ``i``'s score (higher is better) and agrees with ``order``.
    ``reasons`` holds model-written reasons by candidate index, where a model gave them;
    ``method`` names the scorer; ``failure`` says why a degraded verdict is degraded (both from :mod:`msrkit.outcomes`).
    """

    order: list[int]
    scores: list[float]
    method: ScoreMethod
    degraded: bool = False
    reasons: dict[int, str] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None

    @classmethod
    def from_scores(cls, scores: Sequence[float], method: ScoreMethod, **extra: Any) -> Scored:
        """Order by score (ties: the earlier candidate first)."""
        values = [float(s) for s in scores]
        order = sorted(range(len(values)), key=lambda i: (-finite(values[i]), i))
        return cls(order, values, method, **extra)

    @classmethod
    def from_order(cls, order: Sequence[int], method: ScoreMethod, **extra: Any) -> Scored:
        """Scores ``(n - position) / n`` from an order (the given order of a list, say)."""
        n = len(order)
        scores = [0.0] * n
        for position, index in enumerate(order):
            scores[index] = (n - position) / n
        return cls(list(order), scores, method, **extra)

    def ranks(self) -> list[int]:
        """1-based rank of each candidate."""
        out = [0] * len(self.order)
        for position, index in enumerate(self.order):
            out[index] = position + 1
        return out
