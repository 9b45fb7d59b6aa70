"""Plan-first mode: one model answer holds the whole plan of tool calls, which is validated, then executed.

The plan is asked for as JSON under a schema (``{"steps": [{"tool", "arguments"}]}``,
tool names an enum, at most ``agent_max_tool_calls`` steps), so a backend with
constrained decoding cannot answer outside it. Each step passes the same checks
as the step loop's calls; a plan that cannot be read falls back to the fixed
pipeline. The plan holds no ``finish`` (ids are not known when planning): the
candidates gathered are the answer, in their final (ranked) order.
"""

from __future__ import annotations

from typing import Any

from ..backends.base import ChatRequest, ToolCall, make_tool_call
from ..backends.cache import forget
from ..runtime.modeltext import loads_json, strip_think
from .bounds import Budget, out_of_time
from .textcalls import calls_from_text
from .tools import AgentContext, Finish
from .trace import Fallback, Step, Trace
from .turns import Turns

__all__ = ["plan_schema", "read_plan", "run_plan"]


def plan_schema(tool_names: list[str], max_steps: int) -> dict[str, Any]:
    """The JSON schema of a plan."""
    properties = {"tool": {"type": "string", "enum": tool_names}, "arguments": {"type": "object"}}
    step = {"type": "object", "properties": properties, "required": ["tool", "arguments"]}
    steps = {"type": "array", "items": step, "minItems": 1, "maxItems": max_steps}
    return {"title": "Plan", "type": "object", "properties": {"steps": steps}, "required": ["steps"]}


def read_plan(text: str, known: list[str], *, limit: int) -> list[ToolCall]:
    """The plan's calls (at most ``limit``): JSON under the schema, else calls written as text; never raises."""
    whole = loads_json(strip_think(text))
    if whole is None:
        return list(calls_from_text(text, known))[:limit]
    steps = whole[0].get("steps") if isinstance(whole[0], dict) else whole[0]
    if not isinstance(steps, list):
        return []
    return [
        make_tool_call(None, s.get("tool") or s.get("name"), s.get("arguments", {}), index=n)
        for n, s in enumerate([s for s in steps if isinstance(s, dict)][:limit])
    ]


def run_plan(turns: Turns, ctx: AgentContext, trace: Trace, request: str) -> Fallback | None:
    """Ask for a plan, run it; ``None`` when it produced candidates, else why the run falls back."""
    assert turns.backend is not None
    s = turns.settings
    names = [n for n in turns.tools if n != "finish"]
    chat = ChatRequest(tuple(turns.opening(ctx, request, task="agent_plan", native=False)),
                       max_tokens=s.agent_max_tokens, tag=turns.parts.prompts["agent_plan"].tag,
                       json_schema=plan_schema(names, s.agent_max_tool_calls))  # fmt: skip
    response, _ = turns.ask(ctx, trace, chat, 0)
    calls = [c for c in read_plan(response.text, names, limit=s.agent_max_tool_calls) if c.name != "finish"]
    trace.steps[-1].calls = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments), "error": c.error}
                             for c in calls]  # fmt: skip
    trace.steps[-1].status = "" if calls else "no_call"
    if not calls:
        forget(turns.backend, chat)  # an unreadable plan is not kept as the answer to this request
        return Fallback("plan_unreadable", "the plan could not be read (no valid steps)")
    budget = Budget()
    for n, call in enumerate(calls):
        if (late := out_of_time()) is not None:
            return Fallback("deadline", f"the plan stopped after {n} of {len(calls)} step(s): {late}")
        turns.execute(ctx, call, budget, trace, n + 1)
    if not len(ctx.bus):
        return Fallback("no_candidates", f"the plan's {len(calls)} step(s) found no candidates")
    ctx.finished = Finish(ctx.bus.ids()[: s.agent_shown], "found and ranked by the planned tool calls")
    trace.add(Step("model", 0, status="plan_done", reason=f"{len(calls)} step(s), {budget.invalid} invalid"))
    return None
