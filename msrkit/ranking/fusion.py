"""Fusing the LLM's verdict with retrieval, so a weak model cannot make the result worse unasked.

:func:`fuse` combines the two orders by weighted reciprocal rank fusion
(``k = 60``): ``w / (k + llm_rank) + (1 - w) / (k + retrieval_rank)``, with a
tiny last term that breaks exact ties in favour of the LLM order. ``w`` = 1
keeps the LLM order, 0 the retrieval order. A degraded LLM verdict (the model
failed or its answer was unusable) gives the retrieval order, or without retrieval
the order given (method ``"given"``): no reason then says the model placed a candidate.

The fused scores are that sum rescaled to ``[0, 1]`` between the worst and the
best a candidate can get (last in both orders, first in both), so they equal
``w * u(llm_rank) + (1 - w) * u(retrieval_rank)`` with ``u`` the
reciprocal-rank position on ``[0, 1]`` (:func:`msrkit.ranking.scale.unit_rank`).
The rescaling is increasing, so the order is the sum's.
"""

from __future__ import annotations

from .result import Scored

__all__ = ["RRF_K", "fuse", "rescale"]

RRF_K = 60


def fuse(llm: Scored, retrieval: Scored | None, *, weight: float) -> Scored:
    """The final verdict from the LLM's and retrieval's (see the module docstring)."""
    if retrieval is None:
        if llm.degraded and llm.failure is not None:  # the model gave nothing: the candidates stay as given
            return Scored(llm.order, llm.scores, "given", True, {}, llm.diagnostics, llm.failure)
        return llm
    n = len(llm.order)
    if len(retrieval.order) != n:
        raise ValueError(f"{len(retrieval.order)} retrieval scores for {n} candidates")
    if llm.degraded:
        return Scored(retrieval.order, retrieval.scores, "retrieval", True, {}, llm.diagnostics, llm.failure)
    llm_rank, retrieval_rank = llm.ranks(), retrieval.ranks()
    sums = [
        weight / (RRF_K + llm_rank[i]) + (1.0 - weight) / (RRF_K + retrieval_rank[i]) + 1e-9 / llm_rank[i]
        for i in range(n)
    ]
    order = Scored.from_scores(sums, "fused").order
    return Scored(order, [rescale(s, n) for s in sums], "fused", reasons=llm.reasons, diagnostics=llm.diagnostics)


def rescale(rrf: float, n: int) -> float:
    """A reciprocal-rank value of one of ``n`` candidates on ``[0, 1]``: ``1 / (k + n)`` (last) is 0,
    ``1 / (k + 1)`` (first) is 1. Increasing; the tie-breaking term's hair past 1 is clipped."""
    if n <= 1:
        return 1.0
    best, worst = 1.0 / (RRF_K + 1), 1.0 / (RRF_K + n)
    return min(1.0, max(0.0, (rrf - worst) / (best - worst)))
