"""The agent: a model that uses msrkit's own tools in a bounded loop, and keeps a conversation's state.

- :mod:`.tools` — the tools (user profile, similar users, catalog search, similar items, filter,
  rank, inspect, finish) over the existing stages, each a typed function its JSON schema is made from;
- :mod:`.bus` — the candidate bus the tools read and write (the model sees counts and a few titles);
- :mod:`.loop` — :class:`Agent`: the bounded loop, repairs, repeats, fallback to the fixed pipeline;
- :mod:`.plan` — plan-first mode (one validated plan, then executed);
- :mod:`.turns` — what both share: the opening messages, one model turn, one checked tool call;
- :mod:`.state` — :class:`TurnState`: shown, accepted, rejected, constraints between turns;
- :mod:`.trace` — every step, as records that can be written as JSONL;
- :mod:`.schema` — a tool's arguments model and schema from its signature, and the checks with repairs;
- :mod:`.textcalls` — calls read from text.
"""

from __future__ import annotations

from .bus import CandidateBus
from .loop import Agent, AgentResult
from .state import Constraint, TurnState, apply_feedback
from .tools import TOOLS, AgentContext, Tool, ToolInputError, tool_specs
from .trace import Step, Trace

__all__ = [
    "TOOLS",
    "Agent",
    "AgentContext",
    "AgentResult",
    "CandidateBus",
    "Constraint",
    "Step",
    "Tool",
    "ToolInputError",
    "Trace",
    "TurnState",
    "apply_feedback",
    "tool_specs",
]
