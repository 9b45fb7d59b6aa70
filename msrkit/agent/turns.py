"""One agent run's turn machinery: the opening messages, one model turn, one checked tool call.

:class:`Turns` is what both ways of driving a run share: the step loop
(:class:`~.loop.Agent`) and plan-first mode (:func:`.plan.run_plan`). It asks
the model (tracing the answer, reading calls from text as a repair) and runs a
call through every check (unknown tool, bad JSON, schema, repeats, the
expensive-call budget), turning each failure into an observation with a valid
example. What it spends is counted in the run's :class:`~.bounds.Budget`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, ChatRequest, ChatResponse, Message, ToolCall, ToolSpec, canonical_json
from ..backends.cache import forget, request_key
from ..errors import BackendError
from .bounds import MAX_TRACED_CALLS, Budget, cap_observation
from .bus import describe
from .schema import check_arguments, example_arguments
from .textcalls import calls_from_text
from .tools import TOOLS, AgentContext, Tool, ToolInputError, tool_specs
from .trace import Fallback, Step, Trace

if TYPE_CHECKING:
    from ..runtime.pipeline import Parts

__all__ = ["Turns"]


class Turns:
    """Ask the model and run its calls for one agent run's parts, backend and tools (see the module docstring)."""

    def __init__(self, parts: Parts, backend: Backend | None, *, tools: Mapping[str, Tool] | None = None) -> None:
        self.parts = parts
        self.backend = backend
        self.settings = parts.settings
        self.tools = dict(tools or TOOLS)

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

    def specs(self, ctx: AgentContext) -> tuple[ToolSpec, ...]:
        """This turn's tool specs: ``finish`` names only candidates the conversation allows: those on the bus,
        else (a fixed list whose bus was emptied) any of the given candidates."""
        ids = ctx.bus.ids() or ([c.item_id for c in ctx.history.candidate_items()] if ctx.bus.allowed else [])
        return tool_specs(self.tools, candidates=[i for i in ids if ctx.state.allows(i, ctx.catalog)])

    def stop(self, budget: Budget) -> Fallback | None:
        limit = self.settings.agent_max_invalid
        if budget.invalid >= limit:
            return Fallback("invalid_calls", f"{budget.invalid} invalid tool calls (limit {limit})")
        if budget.repeats > limit:
            return Fallback("repeats", f"the model repeated the same call {budget.repeats} times")
        return None

    def ask(self, ctx: AgentContext, trace: Trace, chat: ChatRequest, turn: int) -> tuple[ChatResponse, list[ToolCall]]:
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

    def record(self, calls: list[ToolCall], text: str, results: list[str], *, native: bool) -> list[Message]:
        """The assistant's calls and their results as the next messages (plain text for a text-only protocol)."""
        if native:
            return [
                Message.calls(calls, text),
                *(Message.tool_result(c, r) for c, r in zip(calls, results, strict=True)),
            ]
        said = text or "; ".join(f"{c.name}({canonical_json(dict(c.arguments))})" for c in calls)
        answers = "\n".join(f"Result of {c.name}: {r}" for c, r in zip(calls, results, strict=True))
        return [Message.text("assistant", said), Message.text("user", answers)]

    def examples(self) -> str:
        names = [n for n in ("search_catalog", "similar_users", "finish") if n in self.tools] or list(self.tools)[:3]
        shown = "; ".join(_call_example(self.tools[n]) for n in names)
        return f"Valid tools: {', '.join(self.tools)}. Valid calls look like: {shown}"

    def execute(self, ctx: AgentContext, call: ToolCall, budget: Budget, trace: Trace, turn: int) -> str:
        """Check and run one call; the observation sent back (capped; every outcome is traced)."""
        before = len(ctx.bus)
        started = time.perf_counter()
        status, observation, repairs, args = self._outcome(ctx, call, budget)
        observation = cap_observation(observation)
        budget.calls += 1
        if budget.calls >= self.settings.agent_max_tool_calls and ctx.finished is None:
            budget.stop = Fallback("tool_budget", f"tool-call budget exhausted ({budget.calls} calls without finish)")
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
            return "invalid", f"Invalid call: {why}. {self.examples()}", [], {}
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
