"""Fusing the LLM's verdict with retrieval, so a weak model cannot make the result worse unasked.

:func:`fuse` combines the two orders by weighted reciprocal rank fusion
(``k = 60``): ``w / (k + llm_rank) + (1 - w) / (k + retrieval_rank)``, with a
tiny last term that breaks exact ties in favour of the LLM order. ``w`` = 1
keeps the LLM order, 0 the retrieval order. A degraded LLM verdict (the model
failed or its answer was unusable) gives the retrieval order.
"""

from __future__ import annotations

from .result import Scored

__all__ = ["RRF_K", "fuse"]

RRF_K = 60


def fuse(llm: Scored, retrieval: Scored | None, *, weight: float) -> Scored:
    """The final verdict from the LLM's and retrieval's (see the module docstring)."""
    if retrieval is None:
        return llm
    n = len(llm.order)
    if len(retrieval.order) != n:
        raise ValueError(f"{len(retrieval.order)} retrieval scores for {n} candidates")
    if llm.degraded:
        return Scored(retrieval.order, retrieval.scores, "retrieval", True, {}, llm.diagnostics, llm.failure)
    llm_rank, retrieval_rank = llm.ranks(), retrieval.ranks()
    scores = [
        weight / (RRF_K + llm_rank[i]) + (1.0 - weight) / (RRF_K + retrieval_rank[i]) + 1e-9 / llm_rank[i]
        for i in range(n)
    ]
    return Scored.from_scores(scores, "fused", reasons=llm.reasons, diagnostics=llm.diagnostics)
