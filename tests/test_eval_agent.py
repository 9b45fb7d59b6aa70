"""Evaluating the agent: its variant beside the fixed pipeline, its loop statistics, and the simulated user."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_world import catalog, history, interactions

from msrkit.backends.base import ToolCall
from msrkit.backends.fake import FakeBackend
from msrkit.config import Settings
from msrkit.data import History, Item
from msrkit.evaluation.agent import AgentStats, SimulatedUser, simulate
from msrkit.evaluation.experiments import Experiment, run_experiment, variants_for
from msrkit.recommender import Recommender


def _cases(n: int = 3) -> list[dict[str, Any]]:
    return [{**history(), "user_id": f"u{k}", "target": t} for k, t in enumerate(["11", "13", "5"][:n])]


def _world(tmp_path: Path) -> Settings:
    (tmp_path / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in catalog().values()))
    rows = [{"user_id": r.user_id, "item_id": r.item_id, "timestamp": r.timestamp} for r in interactions()]
    (tmp_path / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Settings(backend="none", catalog=tmp_path / "items.jsonl", interactions=tmp_path / "interactions.jsonl",
                    cache=False)  # fmt: skip


def test_the_agent_variant_comes_beside_the_others() -> None:
    names = [(v.name, v.agent) for v in variants_for(Settings(), ablations=False, prompt_dirs=[], has_index=True,
                                                     agent=True)]  # fmt: skip
    assert names == [("msrkit", False), ("agent", True)]
    assert [v.name for v in variants_for(Settings(), ablations=False, prompt_dirs=[], has_index=True)] == ["msrkit"]


def test_eval_agent_reports_metrics_cost_and_the_loop(tmp_path: Path) -> None:
    cases = [History.model_validate(c) for c in _cases()]
    result = run_experiment(Experiment(cases=cases, settings=_world(tmp_path), agent=True, out=tmp_path / "out"))
    assert set(result.reports) == {"retrieval", "agent"}
    agent, fixed = result.reports["agent"], result.reports["retrieval"]
    assert [r.ranking for r in agent.results] == [r.ranking for r in fixed.results]  # no model: the same fallback
    assert "| agent runs |" in result.markdown and "| 3 | 0.00 | 0.00 | 0.00 | 0.00 | 1.00 |" in result.markdown
    assert "Fallback reasons: no_backend (3)" in result.markdown


def test_agent_stats_rates_from_trace_summaries() -> None:
    stats = AgentStats()
    runs = [{"model_turns": 3, "tool_calls": 4, "invalid_calls": 2, "no_call_turns": 1, "repeats": 1, "fallback": None},
            {"model_turns": 2, "tool_calls": 1, "invalid_calls": 0, "no_call_turns": 0, "repeats": 0,
             "fallback": "turn budget exhausted (2 model turns without finish)",
             "fallback_kind": "turn_budget"}]  # fmt: skip
    stats.runs = {f"u{k}:t": r for k, r in enumerate(runs)}
    row = stats.row()
    assert row["invalid_rate"] == 2 / 6 and row["repeat_rate"] == 1 / 5 and row["fallback_rate"] == 0.5
    assert row["turns_per_run"] == 2.5 and "Fallback reasons: turn_budget (1)" in stats.table()


def test_simulated_user_reveals_attributes_never_the_title() -> None:
    target = Item(item_id="50", title="Star Wars", attributes={"genres": ["Action", "Sci-Fi"], "release_year": "1977"})
    user = SimulatedUser(target)
    said = [user.says(t, ["7"]) for t in range(1, 5)]
    assert said[0] == "What should I take next? I'd like something Action."
    assert (
        said[1] == "Not that one. I'd like something Sci-Fi." and said[2] == "Not that one. I'd like release year 1977."
    )
    assert said[3] == "Not that one. Something else, please."
    assert not any("Star Wars" in s or "50" in s for s in said)
    assert user.says(2, ["50"]).startswith("I'd like")  # never rejects its own target


def test_simulation_counts_success_by_turn_with_a_scripted_agent() -> None:
    fake = FakeBackend()
    # user u0 wants 11: turn 1 the agent offers 5 (rejected), turn 2 it offers 11
    fake.enqueue(ToolCall("a", "finish", {"item_ids": ["5"]}), ToolCall("b", "finish", {"item_ids": ["11"]}))
    with Recommender(fake, catalog=catalog(), interactions=interactions(), cache=False, item_summaries=False,
                     preference_summary=False, agent_shown=1) as rec:  # fmt: skip
        sim = simulate(rec, [rec.load(_cases(1)[0])], turns=3, k=1)
    assert sim.success_turn == {"u0:11": 2} and (sim.success_at(1), sim.success_at(2)) == (0.0, 1.0)
    assert sim.llm_calls == 2 and "| 1 | 0.00 | 1.00 | 1.00 | 2 |" in sim.table()
    assert fake.requests[1].messages[1].text_content.startswith("Request: Not that one. I'd like something")
