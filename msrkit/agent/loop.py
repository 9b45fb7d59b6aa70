"""The bounded agent loop: the model calls msrkit's tools until it finishes, within fixed limits.

Bounds (all in :class:`~msrkit.config.Settings`): model turns
(``agent_max_turns``; the last turn offers ``finish`` as the only choice where
a backend can force it), tool calls (``agent_max_tool_calls``), expensive calls
(``agent_max_expensive``: ranking), invalid calls (``agent_max_invalid``).

Every call is checked before it runs: an unknown tool, arguments that are not
JSON, arguments that do not fit the schema, or ids that name no candidate
become an observation with a valid example, never a crash. An identical call
(same name and canonical JSON arguments) is answered from its earlier result
with a nudge to finish. A tool that raises is reported to the model. A model
that answers without a call (or with calls only in its text, read by
:mod:`.textcalls` as a repair) is told how to call. After too many invalid
calls, a spent budget or a failing model, the run falls back to the fixed
pipeline (:func:`msrkit.runtime.pipeline.run`) and says so; either way the result is a
:class:`~msrkit.data.Ranking` of catalog items, with the :class:`~.trace.Trace`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..backends.base import Backend, ChatRequest, Message
from ..data import History, Ranking
from ..errors import BackendError
from ..runtime.deadline import active, current
from ..runtime.meter import Meter
from .bounds import Budget, out_of_time, run_calls
from .bus import CandidateBus
from .plan import run_plan
from .result import fallback_ranking, ranking_from
from .state import TurnState, apply_feedback
from .tools import TOOLS, AgentContext, Tool
from .trace import Fallback, Step, Trace
from .turns import Turns

if TYPE_CHECKING:
    from ..runtime.pipeline import Parts

__all__ = ["Agent", "AgentResult"]

DEFAULT_REQUEST = "Recommend what this user will want next."


@dataclass
class AgentResult:
    """A turn's ranking (always of catalog items), its trace, and the conversation state after it."""

    ranking: Ranking
    trace: Trace
    state: TurnState

    @property
    def reply(self) -> str:
        """A one-paragraph answer for a person."""
        top = self.ranking.ranking[:3]
        if not top:
            return "I found nothing to recommend."
        first = top[0]
        text = f"I recommend [{first.item_id}] {first.title or ''}".rstrip() + (
            f" ({first.reason})" if first.reason else ""
        )
        others = ", ".join(f"[{r.item_id}] {r.title or ''}".rstrip() for r in top[1:])
        return text + (f". Also: {others}." if others else ".")


class Agent:
    """Recommend with a model that calls msrkit's tools (see the module docstring).

    Get one from a recommender with :meth:`msrkit.Recommender.agent` (or build it over a
    :class:`~msrkit.runtime.pipeline.Parts` and the backend to call).

    >>> agent = rec.agent()                                                       # doctest: +SKIP
    >>> result = agent.run(history, "something lighter")                          # doctest: +SKIP
    >>> result.ranking.item_ids()[:3], result.trace.summary()["fallback"]         # doctest: +SKIP
    """

    def __init__(self, parts: Parts, backend: Backend | None, *, tools: Mapping[str, Tool] | None = None) -> None:
        self.parts = parts
        self.backend = backend
        self.settings = parts.settings
        self.tools = dict(tools or TOOLS)
        self.turns = Turns(parts, backend, tools=self.tools)

    def run(self, history: History, message: str | None = None, state: TurnState | None = None) -> AgentResult:
        """One turn: ``message`` (``None``: a plain recommendation) for ``history``, in conversation ``state``.

        The whole turn (model calls, tools, a fallback) runs within ``settings.deadline`` seconds
        (and within the request's own deadline, when one is active).
        """
        with active(current().child(self.settings.deadline)):
            return self._turn(history, message, state)

    def _turn(self, history: History, message: str | None, state: TurnState | None) -> AgentResult:
        state = state.model_copy(deep=True) if state is not None else TurnState()
        meter, trace = Meter(), Trace()
        if message:
            notes = apply_feedback(state, message, self.parts.catalog)
            if notes:
                trace.add(Step("feedback", 0, repairs=notes, raw=message))
        ctx = self._context(history, meter, state)
        reason = self._drive(ctx, trace, message or DEFAULT_REQUEST)
        if reason is None and ctx.finished is None and not len(ctx.bus):
            reason = Fallback("no_candidates", "the run ended with no candidates")
        if reason is not None:
            trace.add(Step("fallback", len(trace.steps), reason=reason.message, fallback_kind=reason.kind))
            ranking = fallback_ranking(ctx, reason, trace)
        else:
            trace.add(Step("finish", len(trace.steps), bus_after=len(ctx.bus)))
            ranking = ranking_from(ctx, trace)
        state.turn += 1
        state.shown = list(dict.fromkeys([*ranking.item_ids()[: self.settings.agent_shown], *state.shown]))[:20]
        state.log += [{"role": "user", "text": message or DEFAULT_REQUEST}]
        result = AgentResult(ranking, trace, state)
        state.log += [{"role": "assistant", "text": result.reply}]
        return result

    def _context(self, history: History, meter: Meter, state: TurnState) -> AgentContext:
        catalog = dict(self.parts.catalog)
        catalog.update({e.item_id: catalog.get(e.item_id) or e for e in history.items()})
        given = history.candidate_items() if history.candidates is not None else None
        if given is not None:
            catalog.update({c.item_id: catalog.get(c.item_id) or c for c in given})
        bus = CandidateBus([c.item_id for c in given] if given is not None else None)
        if given is not None:
            bus.add([c.item_id for c in given if state.allows(c.item_id, catalog)], "given")
        return AgentContext(self.parts, self.backend, history, meter, bus, state, catalog,
                            shown=self.settings.agent_shown)  # fmt: skip

    def _drive(self, ctx: AgentContext, trace: Trace, request: str) -> Fallback | None:
        """Run the model's turns; ``None`` when it finished, else why the run falls back."""
        if self.backend is None:
            return Fallback("no_backend", "no model to call (backend none)")
        try:
            if self.settings.agent_plan_first:
                return run_plan(self.turns, ctx, trace, request)
            return self._loop(ctx, trace, request)
        except BackendError as exc:
            return Fallback("model_failed", f"the model failed: {exc}")

    # -- the loop ------------------------------------------------------------------------------------------

    def _loop(self, ctx: AgentContext, trace: Trace, request: str) -> Fallback | None:
        assert self.backend is not None
        s, turns = self.settings, self.turns
        native = self.backend.capabilities.tools
        messages = turns.opening(ctx, request, native=native)
        budget = Budget()
        for turn in range(s.agent_max_turns):
            if (late := out_of_time()) is not None:
                return Fallback("deadline", f"no time left for another model turn ({late})")
            last = turn == s.agent_max_turns - 1
            choice = "finish" if last and "finish" in self.tools else s.agent_tool_choice
            chat = ChatRequest(tuple(messages), max_tokens=s.agent_max_tokens, tag=self.parts.prompts["agent"].tag,
                               tools=turns.specs(ctx) if native else (), tool_choice=choice)  # fmt: skip
            response, calls = turns.ask(ctx, trace, chat, turn)
            if not calls:
                budget.invalid += 1
                nudge = "No tool call was found in your answer. " + turns.examples()
                messages += [Message.text("assistant", response.text or "(no answer)"), Message.text("user", nudge)]
            else:
                calls = [replace(c, id=f"call_{turn}_{n}") for n, c in enumerate(calls)]  # stable ids: cacheable turns
                run = functools.partial(turns.execute, ctx, budget=budget, trace=trace, turn=turn)
                calls, results = run_calls(calls, budget, trace, turn, max_calls=s.agent_max_tool_calls, execute=run)
                messages += turns.record(calls, response.text, results, native=native)
            if ctx.finished is not None:
                return None
            stop = budget.stop or turns.stop(budget)
            if stop is not None:
                return stop
        return Fallback("turn_budget", f"turn budget exhausted ({s.agent_max_turns} model turns without finish)")
