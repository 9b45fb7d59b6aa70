"""From an agent run to the usual :class:`~msrkit.data.Ranking`: the model's choice, or the fixed pipeline's.

Finished runs: the chosen ids first, then the rest of the bus in its order,
then (with a fixed candidate list) the candidates the bus no longer holds, so
the result stays a permutation of the given candidates. Items the conversation
rejected or whose constraints they fail come last (a fixed list) or not at all
(generated candidates). A run that did not finish gets the fixed pipeline's
ranking, with a warning saying why, and the same conversation rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data import RankedItem, Ranking
from ..ranking.scale import rank_scores
from .trace import Fallback, Trace

if TYPE_CHECKING:
    from .tools import AgentContext

__all__ = ["fallback_ranking", "ranking_from"]


def _order(ctx: AgentContext) -> list[str]:
    chosen = ctx.finished.item_ids if ctx.finished is not None else []
    order = list(dict.fromkeys([*chosen, *ctx.bus.ids()]))
    if ctx.history.candidates is not None:
        order += [c.item_id for c in ctx.history.candidate_items() if c.item_id not in set(order)]
    ok = [i for i in order if ctx.state.allows(i, ctx.catalog)]
    if ctx.history.candidates is None:
        return ok
    return ok + [i for i in order if i not in set(ok)]


def _reason(ctx: AgentContext, item_id: str) -> str:
    if ctx.finished is not None and item_id in ctx.finished.item_ids:
        why = ctx.finished.explanation.strip()
        return f"chosen by the agent: {why}" if why else "chosen by the agent"
    if item_id in ctx.reasons:
        return ctx.reasons[item_id]
    source = ctx.bus.source(item_id)
    if source is not None and source != "given":
        return f"found by {source}"
    return ""


def ranking_from(ctx: AgentContext, trace: Trace) -> Ranking:
    """The ranking of a finished run (see the module docstring)."""
    order = _order(ctx)
    scores = rank_scores(len(order))  # the agent gives an order only: the rank stand-in
    ranked = [
        RankedItem(item_id=i, rank=k + 1, score=round(scores[k], 6), reason=_reason(ctx, i),
                   title=ctx.catalog[i].title if i in ctx.catalog else None)
        for k, i in enumerate(order)
    ]  # fmt: skip
    backend = ctx.backend
    prompts = ctx.parts.prompts
    return Ranking(
        user_id=ctx.history.user_id,
        ranking=ranked,
        score_kind="rank",
        preference_summary=ctx.profile,
        warnings=list(ctx.meter.warnings),
        usage=ctx.meter.finish(),
        backend=f"{backend.name}/{backend.model}" if backend is not None else "none",
        prompts={"agent": prompts["agent"].tag, "agent_plan": prompts["agent_plan"].tag},
        diagnostics={"method": "agent", "agent": trace.summary()},
    )


def fallback_ranking(ctx: AgentContext, reason: Fallback, trace: Trace) -> Ranking:
    """The fixed pipeline's ranking of the same history, saying why the agent's run fell back."""
    from ..runtime.pipeline import run

    ranking = run(ctx.parts, ctx.history, ctx.meter, ctx.backend)
    ranking.warnings.append(f"the agent fell back to the fixed pipeline: {reason.message}")
    ranking.diagnostics["agent"] = trace.summary()
    return _honour_state(ranking, ctx)


def _honour_state(ranking: Ranking, ctx: AgentContext) -> Ranking:
    """Rejected items and those failing a constraint moved last (a fixed list; their score 0, so scores
    still never rise down the ranking) or dropped (generated candidates)."""
    ok = [r for r in ranking.ranking if ctx.state.allows(r.item_id, ctx.catalog)]
    rest = [r for r in ranking.ranking if not ctx.state.allows(r.item_id, ctx.catalog)]
    if not rest:
        return ranking
    kept = ok + [r.model_copy(update={"score": 0.0}) for r in rest] if ctx.history.candidates is not None else ok
    return ranking.model_copy(update={"ranking": [r.model_copy(update={"rank": k + 1}) for k, r in enumerate(kept)]})
