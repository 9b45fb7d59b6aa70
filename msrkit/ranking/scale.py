"""What a ranking's ``score`` means: one scale for every scorer.

``RankedItem.score`` is always in ``[0, 1]``, higher is better, and never
rises down the ranking; it compares candidates *within one ranking* only (not
users, runs or models). ``Ranking.score_kind`` says what it measures:

- ``fused``: the LLM's order fused with retrieval's (:func:`~.fusion.fuse`):
  ``w * unit(llm_rank) + (1 - w) * unit(retrieval_rank)``, where
  :func:`unit_rank` maps rank 1 to 1 and the last rank to 0 with
  reciprocal-rank spacing. 1: both put it first; 0: both put it last.
- ``p_yes``: the pointwise scorer's p(yes) (the model's probability that the
  user takes this item next), where no retrieval was fused with it.
- ``retrieval``: the retrieval blend's score divided by the best candidate's
  (``--backend none`` with an index, or the fallback of a degraded LLM stage).
- ``rank``: a stand-in made from the order alone (the LLM's listwise order
  without retrieval, the given order, the agent's list): :func:`unit_rank` of
  the position. It says nothing the rank does not, so the table and the
  HTML report leave it out.

The scorers' own numbers (Borda points, p(yes), raw retrieval scores) stay in
``Ranking.diagnostics["scores"]``.
"""

from __future__ import annotations

import math

from ..outcomes import ScoreKind
from .fusion import RRF_K, rescale
from .result import Scored

__all__ = ["SCORE_KINDS", "format_score", "rank_scores", "score_caption", "shows_score", "unit_rank", "unit_scores"]

#: ``Ranking.score_kind`` -> what ``score`` measures (the caption the table and the report show); one
#: for each :data:`~msrkit.outcomes.ScoreKind`, in its order (a test checks).
SCORE_KINDS: dict[ScoreKind, str] = {
    "fused": "LLM order fused with retrieval (1 = both rank it first, 0 = both last)",
    "p_yes": "the model's p(yes) that the user takes it next",
    "retrieval": "retrieval score relative to the best candidate",
    "rank": "not shown, as only an order was made (the rank is the verdict)",
}


def unit_rank(rank: int, n: int) -> float:
    """Rank ``rank`` of ``n`` on ``[0, 1]``: 1 for the first, 0 for the last, spaced as ``1 / (k + rank)``."""
    return rescale(1.0 / (RRF_K + rank), n)


def rank_scores(n: int) -> list[float]:
    """The ``rank`` stand-in of positions ``1..n`` (see the module docstring)."""
    return [unit_rank(r, n) for r in range(1, n + 1)]


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x)) if math.isfinite(x) else 0.0


def _relative(scores: list[float]) -> list[float]:
    top = max((s for s in scores if math.isfinite(s)), default=0.0)
    return [_clip(s / top) if top > 0 else 0.0 for s in scores]


def unit_scores(verdict: Scored) -> tuple[list[float], ScoreKind]:
    """``(score of each candidate by index, score_kind)`` of a final verdict (see the module docstring)."""
    if verdict.method == "retrieval":
        return _relative(verdict.scores), "retrieval"
    # a degraded verdict's scores are its incoming order's, whatever scorer failed
    kinds: dict[str, ScoreKind] = {"fused": "fused", "pointwise": "p_yes"}
    kind: ScoreKind = "rank" if verdict.degraded else kinds.get(verdict.method, "rank")
    if kind == "rank":
        n = len(verdict.order)
        return [unit_rank(r, n) for r in verdict.ranks()], kind
    return [_clip(s) for s in verdict.scores], kind


def shows_score(kind: ScoreKind | None) -> bool:
    """Whether a table of a ranking shows its scores (not for the ``rank`` stand-in)."""
    return kind != "rank"


def format_score(score: float) -> str:
    """A score as the table and the HTML report print it."""
    return f"{score:.3f}"


def score_caption(kind: ScoreKind | None) -> str:
    """One line saying what the score column means (the same in the terminal and the HTML report)."""
    if kind is None or kind not in SCORE_KINDS:
        return "score: higher is better"
    if not shows_score(kind):
        return f"score: {SCORE_KINDS[kind]}"
    return f"score (0-1, higher is better, within this ranking): {SCORE_KINDS[kind]}"
