"""Evaluating the agent: its cost and reliability beside the fixed pipeline, and a simulated multi-turn user.

:class:`AgentStats` wraps the agent's rank function during ``msrkit eval --agent`` and keeps each case's
trace summary, so the report can say what the loop did: model turns, tool calls, the invalid-call rate
(invalid calls and answers without a call, per call made) and the fallback rate (runs that ended in the
fixed pipeline), with the runs of each fallback kind (:data:`~msrkit.outcomes.FallbackKind`).

:func:`simulate` talks to the agent as a user who knows the item they want next (the case's held-back
target): each turn reveals one more of its attributes (genres one by one, then the others; never its
title) and rejects what was shown first when it is not the target. ``success@t`` is the share of users
whose target is in the first ``k`` shown by turn ``t``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..data import History, Item, Ranking
from .cases import load_cases, load_index

if TYPE_CHECKING:
    from ..recommender import Recommender

__all__ = ["AgentStats", "SimulatedUser", "Simulation", "simulate", "simulate_experiment"]


@dataclass
class AgentStats:
    """Trace summaries of the agent's runs, by case, and their table."""

    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def wrap(self, rank: Callable[[History], Ranking]) -> Callable[[History], Ranking]:
        """``rank``, keeping each ranking's agent summary (``diagnostics["agent"]``)."""

        def ranked(case: History) -> Ranking:
            ranking = rank(case)
            self.runs[f"{case.user_id}:{case.target}"] = dict(ranking.diagnostics.get("agent") or {})
            return ranking

        return ranked

    def row(self) -> dict[str, float]:
        """Totals and rates over the runs kept."""
        n = len(self.runs)
        keys = ("model_turns", "tool_calls", "invalid_calls", "no_call_turns", "repeats", "tool_errors", "repairs")
        total = {k: sum(int(r.get(k) or 0) for r in self.runs.values()) for k in keys}
        attempts = total["tool_calls"] + total["no_call_turns"]  # a turn without a call counts as one invalid call
        fallbacks = sum(1 for r in self.runs.values() if r.get("fallback"))
        return {
            "runs": n,
            "turns_per_run": total["model_turns"] / n if n else 0.0,
            "calls_per_run": total["tool_calls"] / n if n else 0.0,
            "invalid_rate": total["invalid_calls"] / max(attempts, 1),
            "repeat_rate": total["repeats"] / max(total["tool_calls"], 1),
            "fallback_rate": fallbacks / n if n else 0.0,
        }

    def table(self) -> str:
        """A Markdown table of the agent's loop."""
        r = self.row()
        reasons = Counter(str(run.get("fallback_kind")) for run in self.runs.values() if run.get("fallback"))
        lines = ["| agent runs | model turns/run | tool calls/run | invalid-call rate | repeat rate | fallback rate |",
                 "|---|---|---|---|---|---|",
                 f"| {r['runs']:.0f} | {r['turns_per_run']:.2f} | {r['calls_per_run']:.2f} | {r['invalid_rate']:.2f} "
                 f"| {r['repeat_rate']:.2f} | {r['fallback_rate']:.2f} |"]  # fmt: skip
        if reasons:
            lines.append("\nFallback reasons: " + "; ".join(f"{k} ({v})" for k, v in sorted(reasons.items())))
        return "\n".join(lines)


_HIDDEN = {"title", "item_id", "image", "description"}


class SimulatedUser:
    """A user who wants ``target``: says one more of its attributes each turn, never its title."""

    def __init__(self, target: Item) -> None:
        self.target = target
        self.hints = self._hints(target)

    @staticmethod
    def _hints(item: Item) -> list[str]:
        from ..inputs.text import attribute_values

        hints = [f"something {v}" for _, values in attribute_values(item) for v in values]
        for key, value in item.attributes.items():
            if key not in _HIDDEN and key not in ("genres", "genre", "category", "categories", "brand") and value:
                hints.append(f"{key.replace('_', ' ')} {value}")
        hints += [f"about {k}" for k in item.keywords or []]
        return hints

    def says(self, turn: int, shown: Sequence[str]) -> str:
        """The message of turn ``turn`` (1-based) after ``shown`` (the top items of the last answer)."""
        hint = self.hints[turn - 1] if turn - 1 < len(self.hints) else ""
        if turn == 1:
            return f"What should I take next? I'd like {hint}." if hint else "What should I take next?"
        reject = "Not that one. " if shown and shown[0] != self.target.item_id else ""
        return f"{reject}I'd like {hint}." if hint else f"{reject}Something else, please."


@dataclass
class Simulation:
    """success@turn over the users simulated, and each user's turn of success (``None``: never)."""

    turns: int
    k: int
    success_turn: dict[str, int | None]
    llm_calls: int = 0

    def success_at(self, turn: int) -> float:
        n = len(self.success_turn)
        return sum(1 for t in self.success_turn.values() if t is not None and t <= turn) / n if n else 0.0

    def table(self) -> str:
        head = " | ".join(f"success@{t}" for t in range(1, self.turns + 1))
        cells = " | ".join(f"{self.success_at(t):.2f}" for t in range(1, self.turns + 1))
        return (f"| users | {head} | LLM calls |\n|---|{'---|' * self.turns}---|\n"
                f"| {len(self.success_turn)} | {cells} | {self.llm_calls} |")  # fmt: skip


def simulate(rec: Recommender, cases: Sequence[History], *, turns: int = 3, k: int = 5) -> Simulation:
    """Talk to ``rec``'s agent as each case's simulated user for up to ``turns`` turns (see the module docstring)."""
    success: dict[str, int | None] = {}
    calls = 0
    for case in cases:
        target = rec.catalog.get(case.target or "")
        if target is None:
            continue
        user, state = SimulatedUser(target), None
        shown: list[str] = []
        success[f"{case.user_id}:{case.target}"] = None
        for turn in range(1, turns + 1):
            result = rec.chat(case, user.says(turn, shown), state)
            state, shown = result.state, result.ranking.item_ids()[:k]
            calls += result.ranking.usage.llm_calls
            if target.item_id in shown:
                success[f"{case.user_id}:{case.target}"] = turn
                break
    return Simulation(turns, k, success, calls)


def simulate_experiment(experiment: Any, *, turns: int = 3, k: int = 5) -> Simulation:
    """:func:`simulate` over an :class:`~.experiments.Experiment`'s cases, settings and leak-free index."""
    from ..inputs.io import load_catalog
    from ..recommender import Recommender

    cases = load_cases(experiment.cases, limit=experiment.limit)
    catalog = load_catalog(experiment.settings.catalog) if experiment.settings.catalog else {}
    index = load_index(experiment.settings, cases, catalog)
    with Recommender(settings=experiment.settings, catalog=catalog, index=index) as rec:
        return simulate(rec, [rec.load(c) for c in cases], turns=turns, k=k)
