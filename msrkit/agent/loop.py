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
pipeline (:func:`msrkit.pipeline.run`) and says so; either way the result is a
:class:`~msrkit.data.Ranking` of catalog items, with the :class:`~.trace.Trace`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, ChatRequest, ChatResponse, Message, ToolCall, ToolSpec, canonical_json
from ..backends.cache import forget, request_key
from ..data import History, Ranking
from ..deadline import active, current
from ..errors import BackendError
from ..meter import Meter
from .bounds import MAX_TRACED_CALLS, Budget, cap_observation, out_of_time, run_calls
from .bus import CandidateBus, describe
from .plan import run_plan
from .result import fallback_ranking, ranking_from
from .schema import check_arguments, example_arguments
from .state import TurnState, apply_feedback
from .textcalls import calls_from_text
from .tools import TOOLS, AgentContext, Tool, ToolInputError, tool_specs
from .trace import Step, Trace

if TYPE_CHECKING:
    from ..pipeline import Parts

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
    :class:`~msrkit.pipeline.Parts` and the backend to call).

    >>> agent = rec.agent()                                                       # doctest: +SKIP
    >>> result = agent.run(history, "something lighter")                          # doctest: +SKIP
    >>> result.ranking.item_ids()[:3], result.trace.summary()["fallback"]         # doctest: +SKIP
    """

    def __init__(self, parts: Parts, backend: Backend | None, *, tools: Mapping[str, Tool] | None = None) -> None:
        self.parts = parts
        self.backend = backend
        self.settings = parts.settings
        self.tools = dict(tools or TOOLS)

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
            reason = "the run ended with no candidates"
        if reason is not None:
            trace.add(Step("fallback", len(trace.steps), reason=reason))
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

    def _drive(self, ctx: AgentContext, trace: Trace, request: str) -> str | None:
        """Run the model's turns; ``None`` when it finished, else why the run falls back."""
        if self.backend is None:
            return "no model to call (backend none)"
        try:
            if self.settings.agent_plan_first:
                return run_plan(self, ctx, trace, request)
            return self._loop(ctx, trace, request)
        except BackendError as exc:
            return f"the model failed: {exc}"

    # -- the loop ------------------------------------------------------------------------------------------

    def opening(self, ctx: AgentContext, request: str, *, task: str = "agent", native: bool = True) -> list[Message]:
        """The system and user messages that start a run (from the ``agent`` / ``agent_plan`` templates)."""
        recent = "; ".join(describe(e.item_id, ctx.catalog) for e in ctx.history.items()[-5:][::-1]) or "(none)"
        template = self.parts.prompts[task]
        system, user = template.render_text(
            request=request, history=recent, state=ctx.state.summary(), tools=self._tools_text(native, task),
            candidates=ctx.bus.view(ctx.catalog, shown=ctx.shown),
        )  # fmt: skip
        return [Message.text("system", system), Message.text("user", user)]

    def _tools_text(self, native: bool, task: str) -> str:
        if native and task == "agent":
            return "Call the tools through the function-calling interface."
        lines = [f"- {t.spec.name}: {t.spec.description} Arguments: {_example(t)}" for t in self.tools.values()]
        if task == "agent":
            lines.append('Call a tool by answering with JSON only: {"name": "<tool>", "arguments": {...}}')
        return "\n".join(lines)

    def _loop(self, ctx: AgentContext, trace: Trace, request: str) -> str | None:
        assert self.backend is not None
        s = self.settings
        native = self.backend.capabilities.tools
        messages = self.opening(ctx, request, native=native)
        budget = Budget()
        for turn in range(s.agent_max_turns):
            if (late := out_of_time()) is not None:
                return f"no time left for another model turn ({late})"
            last = turn == s.agent_max_turns - 1
            choice = "finish" if last and "finish" in self.tools else s.agent_tool_choice
            chat = ChatRequest(tuple(messages), max_tokens=s.agent_max_tokens, tag=self.parts.prompts["agent"].tag,
                               tools=self._specs(ctx) if native else (), tool_choice=choice)  # fmt: skip
            response, calls = self._ask(ctx, trace, chat, turn)
            if not calls:
                budget.invalid += 1
                nudge = "No tool call was found in your answer. " + self._examples()
                messages += [Message.text("assistant", response.text or "(no answer)"), Message.text("user", nudge)]
            else:
                calls = [replace(c, id=f"call_{turn}_{n}") for n, c in enumerate(calls)]  # stable ids: cacheable turns
                run = functools.partial(self._execute, ctx, budget=budget, trace=trace, turn=turn)
                calls, results = run_calls(calls, budget, trace, turn, max_calls=s.agent_max_tool_calls, execute=run)
                messages += self._record(calls, response.text, results, native=native)
            if ctx.finished is not None:
                return None
            stop = budget.stop or self._stop(budget)
            if stop is not None:
                return stop
        return f"turn budget exhausted ({s.agent_max_turns} model turns without finish)"

    def _specs(self, ctx: AgentContext) -> tuple[ToolSpec, ...]:
        """This turn's tool specs: ``finish`` names only candidates the conversation allows: those on the bus,
        else (a fixed list whose bus was emptied) any of the given candidates."""
        ids = ctx.bus.ids() or ([c.item_id for c in ctx.history.candidate_items()] if ctx.bus.allowed else [])
        return tool_specs(self.tools, candidates=[i for i in ids if ctx.state.allows(i, ctx.catalog)])

    def _stop(self, budget: Budget) -> str | None:
        limit = self.settings.agent_max_invalid
        if budget.invalid >= limit:
            return f"{budget.invalid} invalid tool calls (limit {limit})"
        if budget.repeats > limit:
            return f"the model repeated the same call {budget.repeats} times"
        return None

    def _ask(
        self, ctx: AgentContext, trace: Trace, chat: ChatRequest, turn: int
    ) -> tuple[ChatResponse, list[ToolCall]]:
        assert self.backend is not None
        started = time.perf_counter()
        try:
            response = ctx.meter.call(self.backend, chat)
        except BackendError as exc:
            trace.add(Step("model", turn, model=f"{self.backend.name}/{self.backend.model}", status="error",
                           request_hash=request_key(self.backend.identity(), chat), reason=str(exc),
                           seconds=round(time.perf_counter() - started, 4)))  # fmt: skip
            raise
        calls, repairs = list(response.tool_calls), []
        if not calls and response.text.strip():
            calls = calls_from_text(response.text, self.tools)
            if calls:
                repairs.append(f"{len(calls)} call(s) read from the answer's text")
        if not calls:
            forget(self.backend, chat)  # an answer without a call is not kept as this turn's answer
        if len(calls) > MAX_TRACED_CALLS:
            repairs.append(f"{len(calls)} calls in one answer: the first {MAX_TRACED_CALLS} are traced")
        trace.add(Step(
            "model", turn, model=f"{self.backend.name}/{self.backend.model}",
            request_hash=request_key(self.backend.identity(), chat), cache_hit=response.cached,
            raw=response.text[:2000], calls=[{"id": c.id, "name": c.name, "arguments": dict(c.arguments),
                                               "raw": c.raw, "error": c.error} for c in calls[:MAX_TRACED_CALLS]],
            repairs=repairs, status="" if calls else "no_call", seconds=round(time.perf_counter() - started, 4),
            prompt_tokens=response.prompt_tokens, completion_tokens=response.completion_tokens,
        ))  # fmt: skip
        return response, calls

    def _record(self, calls: list[ToolCall], text: str, results: list[str], *, native: bool) -> list[Message]:
        """The assistant's calls and their results as the next messages (plain text for a text-only protocol)."""
        if native:
            return [
                Message.calls(calls, text),
                *(Message.tool_result(c, r) for c, r in zip(calls, results, strict=True)),
            ]
        said = text or "; ".join(f"{c.name}({canonical_json(dict(c.arguments))})" for c in calls)
        answers = "\n".join(f"Result of {c.name}: {r}" for c, r in zip(calls, results, strict=True))
        return [Message.text("assistant", said), Message.text("user", answers)]

    def _examples(self) -> str:
        names = [n for n in ("search_catalog", "similar_users", "finish") if n in self.tools] or list(self.tools)[:3]
        shown = "; ".join(_call_example(self.tools[n]) for n in names)
        return f"Valid tools: {', '.join(self.tools)}. Valid calls look like: {shown}"

    def _execute(self, ctx: AgentContext, call: ToolCall, budget: Budget, trace: Trace, turn: int) -> str:
        """Check and run one call; the observation sent back (capped; every outcome is traced)."""
        before = len(ctx.bus)
        started = time.perf_counter()
        status, observation, repairs, args = self._outcome(ctx, call, budget)
        observation = cap_observation(observation)
        budget.calls += 1
        if budget.calls >= self.settings.agent_max_tool_calls and ctx.finished is None:
            budget.stop = f"tool-call budget exhausted ({budget.calls} calls without finish)"
        trace.add(Step(
            "tool", turn, tool=call.name, arguments=args or dict(call.arguments), status=status,
            observation=observation[:2000], repairs=repairs, bus_before=before, bus_after=len(ctx.bus),
            seconds=round(time.perf_counter() - started, 4),
        ))  # fmt: skip
        return observation

    def _outcome(self, ctx: AgentContext, call: ToolCall, budget: Budget) -> tuple[str, str, list[str], dict[str, Any]]:
        tool = self.tools.get(call.name)
        if call.error or tool is None:
            budget.invalid += 1
            why = f"'{call.name}': {call.error}" if tool is not None else f"there is no tool '{call.name}'"
            return "invalid", f"Invalid call: {why}. {self._examples()}", [], {}
        args, repairs, error = check_arguments(call.arguments, tool.spec.parameters)
        example = f"Example: {_call_example(tool)}"
        if error is not None:
            budget.invalid += 1
            return "invalid", f"Invalid arguments for {call.name}: {error}. {example}", repairs, {}
        key = (call.name, canonical_json(args))
        if key in budget.memo:
            budget.repeats += 1
            return (
                "repeat",
                budget.memo[key] + " (You made this exact call before; this is its result. Call finish.)",
                repairs,
                args,
            )
        if tool.expensive and budget.expensive >= self.settings.agent_max_expensive:
            return (
                "budget",
                f"{call.name} may run at most {self.settings.agent_max_expensive} time(s): call finish.",
                repairs,
                args,
            )
        try:
            observation = tool.run(ctx, args)
        except ToolInputError as exc:
            budget.invalid += 1
            return "invalid", f"{call.name}: {exc}. {example}", repairs, args
        except BackendError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failing tool is an observation for the model, never a crash
            return (
                "error",
                f"{call.name} failed ({type(exc).__name__}: {exc}); try another tool or finish.",
                repairs,
                args,
            )
        budget.expensive += int(tool.expensive)
        budget.memo[key] = observation
        return "ok", observation, repairs, args


def _example(tool: Tool) -> str:
    return canonical_json(example_arguments(tool.spec.parameters))


def _call_example(tool: Tool) -> str:
    return f'{{"name": "{tool.spec.name}", "arguments": {_example(tool)}}}'
