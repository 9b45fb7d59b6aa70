"""The trace of one agent run: every model call and every tool call, as records that can be written as JSONL.

A model step records the model, the request's cache key (its hash), whether
the cache answered, the raw answer, the calls parsed and the repairs made, the
latency and the tokens. A tool step records the call, what became of it
(``ok``, ``invalid``, ``repeat``, ``budget``, ``error``; ``refused``: the calls of one answer over the
budget or past the deadline, not run, in one step), the bus size before
and after and the observation sent back. A run that falls back says why: a
:class:`Fallback`, its kind (a :data:`~msrkit.outcomes.FallbackKind`, what an
evaluation counts) beside the message for a person.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..outcomes import FallbackKind

__all__ = ["Fallback", "Step", "StepKind", "Trace"]

#: What a step records: a model call, a tool call, the fallback, the finish, the user's feedback.
StepKind = Literal["model", "tool", "fallback", "finish", "feedback"]

log = logging.getLogger("msrkit")


@dataclass(frozen=True)
class Fallback:
    """Why a run falls back to the fixed pipeline: its ``kind`` and a ``message`` for a person."""

    kind: FallbackKind
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class Step:
    """One record of the trace (fields not used by a kind stay empty)."""

    kind: StepKind
    turn: int
    model: str = ""
    request_hash: str = ""
    cache_hit: bool = False
    raw: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    tool: str = ""
    arguments: dict[str, Any] = field(default_factory=dict)
    status: str = ""
    observation: str = ""
    bus_before: int | None = None
    bus_after: int | None = None
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reason: str = ""
    fallback_kind: FallbackKind | None = None


class Trace:
    """The steps of a run, in order, with the counts an evaluation reads."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        log.info("agent %s turn %d %s%s%s", step.kind, step.turn, step.tool, f" [{step.status}]" if step.status else "",
                 f": {step.reason}" if step.reason else "")  # fmt: skip
        return step

    def count(self, kind: StepKind, status: str | None = None) -> int:
        return sum(1 for s in self.steps if s.kind == kind and (status is None or s.status == status))

    @property
    def fallback(self) -> str | None:
        """Why the run fell back to the fixed pipeline, or ``None``."""
        return next((s.reason for s in self.steps if s.kind == "fallback"), None)

    @property
    def fallback_kind(self) -> FallbackKind | None:
        """The kind of :attr:`fallback`, or ``None``."""
        return next((s.fallback_kind for s in self.steps if s.kind == "fallback"), None)

    def summary(self) -> dict[str, Any]:
        """Counts for a ranking's diagnostics and for evaluation."""
        refused = self.count("tool", "refused")  # one step per answer whose calls over the budget were refused
        tools = self.count("tool") - refused
        no_call = self.count("model", "no_call")
        return {
            "model_turns": self.count("model") - self.count("model", "plan_done"),
            "tool_calls": tools,
            "refused_answers": refused,
            "invalid_calls": self.count("tool", "invalid") + no_call,
            "no_call_turns": no_call,
            "repeats": self.count("tool", "repeat"),
            "tool_errors": self.count("tool", "error"),
            "repairs": sum(len(s.repairs) for s in self.steps),
            "fallback": self.fallback,
            "fallback_kind": self.fallback_kind,
        }

    def records(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.steps]

    def write_jsonl(self, path: str | Path, *, append: bool = True) -> Path:
        """Append (or write) one JSON line per step."""
        out = Path(path)
        # a lone surrogate (from a backend not behind the guard) is written as its JSON escape, never a crash
        with out.open("a" if append else "w", encoding="utf-8", errors="backslashreplace") as fh:
            for record in self.records():
                fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        return out
