"""The agent's bounds inside one turn: every parallel call counted, observations and the trace capped.

A model answer may hold any number of calls (10,000 in one answer is a test).
:func:`admit` splits them by what the request still allows: the tool-call
budget (``agent_max_tool_calls``, which counts every call, parallel ones
included) and the request's deadline. The calls over it are refused without
running: one observation says how many and why (the conversation carries the
first refused call only, so the next request stays small). Observations sent
back and calls kept in the trace are capped too, so neither the next prompt
nor the trace grows by what the model asks for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends.base import ToolCall
from ..outcomes import FallbackKind
from ..runtime.deadline import MIN_CALL_SECONDS, current
from .trace import Fallback, Step, Trace

__all__ = ["MAX_OBSERVATION_CHARS", "MAX_TRACED_CALLS", "Budget", "cap_observation", "out_of_time", "run_calls"]

#: an observation sent back to the model is cut here (tools answer with counts and a few titles)
MAX_OBSERVATION_CHARS = 4_000
#: calls of one model answer recorded in the trace's model step (the rest are counted)
MAX_TRACED_CALLS = 32


@dataclass
class Budget:
    """What one run has spent: calls (every one the model made), expensive calls, invalid calls, repeats."""

    calls: int = 0
    expensive: int = 0
    invalid: int = 0
    repeats: int = 0
    refused: int = 0
    stop: Fallback | None = None
    memo: dict[tuple[str, str], str] = field(default_factory=dict)


def run_calls(
    calls: list[ToolCall], budget: Budget, trace: Trace, turn: int, *, max_calls: int,
    execute: Callable[[ToolCall], str],
) -> tuple[list[ToolCall], list[str]]:  # fmt: skip
    """Run (``execute``) the calls of one answer that the budget left and the deadline allow; refuse the rest.

    Returns the calls the conversation records (those run, and the first refused one) and their observations:
    the refused calls get one observation and one trace step between them, whatever their number.
    """
    why = f"the tool-call budget is {max_calls} calls per request"
    kind: FallbackKind = "tool_budget"
    done: list[ToolCall] = []
    results: list[str] = []
    for call in calls[: max(0, max_calls - budget.calls)]:
        if (late := out_of_time()) is not None:
            why, kind = late, "deadline"
            break
        done.append(call)
        results.append(execute(call))
    refused = calls[len(done) :]
    if refused:
        budget.refused += len(refused)
        budget.stop = budget.stop or Fallback(kind, f"{len(refused)} tool call(s) refused ({why})")
        text = (f"Refused, not run: this call and the {len(refused) - 1} after it in your answer ({why}). "
                "Call finish with the candidates found so far.")  # fmt: skip
        trace.add(Step("tool", turn, tool=refused[0].name, status="refused", observation=text,
                       reason=f"{len(refused)} call(s) of one answer refused, not run: {why}"))  # fmt: skip
        done.append(refused[0])
        results.append(text)
    return done, results


def out_of_time() -> str | None:
    """Why no further call may start (the request's deadline passed or it was cancelled), else ``None``."""
    deadline = current()
    return deadline.reason() if deadline.left() < MIN_CALL_SECONDS else None


def cap_observation(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """``text`` cut at ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[:limit] + f" [... cut at {limit} characters]"
