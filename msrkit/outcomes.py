"""The words msrkit writes into its results to say how a request turned out, one ``Literal`` type a family.

Each type is the one source of its list: ``typing.get_args`` of it is what the
validation of a :class:`~msrkit.data.Ranking` accepts, what the Parquet schema
text and the docs list (a test checks each page against it), and what an
evaluation counts. A new outcome is added here, and nowhere else.

- :data:`Failure`: why a ranking is degraded (``Ranking.degraded_by``, ``Scored.failure``);
- :data:`ScoreKind`: what a ranked item's ``score`` measures (``Ranking.score_kind``);
- :data:`ScoreMethod`: which scorer made a verdict (``Scored.method``, ``diagnostics["method"]``);
- :data:`FallbackKind`: why an agent run fell back to the fixed pipeline (its trace's ``fallback_kind``).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "FAILURES",
    "FALLBACK_KINDS",
    "SCORE_KIND_NAMES",
    "SCORE_METHODS",
    "Failure",
    "FallbackKind",
    "ScoreKind",
    "ScoreMethod",
    "listed",
]

#: Why a ranking is degraded: the backend could not be reached, refused for good (bad key, no quota,
#: unknown model), kept failing after its retries, answered unusably, or the request's deadline passed
#: before the model had ranked.
Failure = Literal["backend_unavailable", "backend_permanent", "backend_transient", "unparseable", "deadline"]
FAILURES: tuple[Failure, ...] = get_args(Failure)

#: What ``score`` measures (:mod:`msrkit.ranking.scale`): the LLM's order fused with retrieval's, the
#: pointwise p(yes), retrieval's score, or a stand-in made from the order alone.
ScoreKind = Literal["fused", "p_yes", "retrieval", "rank"]
SCORE_KIND_NAMES: tuple[ScoreKind, ...] = get_args(ScoreKind)

#: The scorer of a verdict: the listwise reranker, the pointwise scorer, retrieval, the LLM fused with
#: retrieval, the given order (no LLM, no index), or the agent's loop.
ScoreMethod = Literal["listwise", "pointwise", "retrieval", "fused", "given", "agent"]
SCORE_METHODS: tuple[ScoreMethod, ...] = get_args(ScoreMethod)

#: Why an agent run fell back to the fixed pipeline: no model to call (backend ``none``), the model call
#: failed, the request's time ran out, the model turns or the tool calls were spent, too many invalid
#: calls, the same call repeated, a plan that could not be read, or a run that ended with no candidates.
FallbackKind = Literal[
    "no_backend",
    "model_failed",
    "deadline",
    "turn_budget",
    "tool_budget",
    "invalid_calls",
    "repeats",
    "plan_unreadable",
    "no_candidates",
]
FALLBACK_KINDS: tuple[FallbackKind, ...] = get_args(FallbackKind)


def listed(words: tuple[str, ...]) -> str:
    """``words`` as a schema description lists them: ``"a, b, c"``."""
    return ", ".join(words)
