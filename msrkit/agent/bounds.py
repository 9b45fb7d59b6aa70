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

from dataclasses import dataclass, field

from ..backends.base import ToolCall
from ..deadline import MIN_CALL_SECONDS, current

__all__ = ["MAX_OBSERVATION_CHARS", "MAX_TRACED_CALLS", "Budget", "cap_observation", "out_of_time", "refusal", "room"]

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
    stop: str | None = None
    memo: dict[tuple[str, str], str] = field(default_factory=dict)


def room(budget: Budget, *, max_calls: int) -> tuple[int, str]:
    """How many more calls this request may run, and why no more (for the refusal)."""
    return max(0, max_calls - budget.calls), f"the tool-call budget is {max_calls} calls per request"


def refusal(refused: list[ToolCall], why: str) -> str:
    """The observation for the calls of one answer that were refused (sent once, for the first of them)."""
    return (f"Refused, not run: this call and the {len(refused) - 1} after it in your answer ({why}). "
            "Call finish with the candidates found so far.")  # fmt: skip


def out_of_time() -> str | None:
    """Why no further call may start (the request's deadline passed or it was cancelled), else ``None``."""
    deadline = current()
    return deadline.reason() if deadline.left() < MIN_CALL_SECONDS else None


def cap_observation(text: str, limit: int = MAX_OBSERVATION_CHARS) -> str:
    """``text`` cut at ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[:limit] + f" [... cut at {limit} characters]"
