"""The trace of one agent run: every model call and every tool call, as records that can be written as JSONL.

A model step records the model, the request's cache key (its hash), whether
the cache answered, the raw answer, the calls parsed and the repairs made, the
latency and the tokens. A tool step records the call, what became of it
(``ok``, ``invalid``, ``repeat``, ``budget``, ``error``; ``refused``: the calls of one answer over the
budget or past the deadline, not run, in one step), the bus size before
and after and the observation sent back. A run that falls back says why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Step", "Trace"]

log = logging.getLogger("msrkit")


@dataclass
class Step:
    """One record of the trace (fields not used by a kind stay empty)."""

    kind: str  # model | tool | fallback | finish | feedback
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


class Trace:
    """The steps of a run, in order, with the counts an evaluation reads."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        log.info("agent %s turn %d %s%s%s", step.kind, step.turn, step.tool, f" [{step.status}]" if step.status else "",
                 f": {step.reason}" if step.reason else "")  # fmt: skip
        return step

    def count(self, kind: str, status: str | None = None) -> int:
        return sum(1 for s in self.steps if s.kind == kind and (status is None or s.status == status))

    @property
    def fallback(self) -> str | None:
        """Why the run fell back to the fixed pipeline, or ``None``."""
        return next((s.reason for s in self.steps if s.kind == "fallback"), None)

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
