"""The agent's loop with a scripted model: plumbing, bounds, repairs and fallbacks. Every run ends with a valid Ranking.

The scripted model (:class:`~msrkit.backends.fake.FakeBackend`) proves msrkit's
own logic only; real models run the loop in ``test_agent_real.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agent_world import assert_valid, catalog, history, interactions

from msrkit.agent import TurnState
from msrkit.backends.base import Capabilities, ChatResponse, ToolCall
from msrkit.backends.fake import FakeBackend
from msrkit.errors import BackendUnavailableError
from msrkit.recommender import Recommender

pytestmark = pytest.mark.timeout(60)
FALLBACK = "the agent fell back to the fixed pipeline"


def _rec(fake: FakeBackend, **options: Any) -> Recommender:
    opts = {"item_summaries": False, "preference_summary": False, "explain": False, **options}
    return Recommender(fake, catalog=catalog(), interactions=interactions(), cache=False, **opts)


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    yield FakeBackend()


def call(name: str, arguments: Any = None, call_id: str | None = "c") -> ToolCall:
    from msrkit.backends.base import make_tool_call

    return make_tool_call(call_id, name, arguments if arguments is not None else {}, index=0)


def _run(fake: FakeBackend, given: dict[str, Any], message: str | None = None, **options: Any) -> Any:
    with _rec(fake, **options) as rec:
        result = rec.chat(given, message)
    assert_valid(result.ranking, given, catalog())
    return result


def _tools(result: Any) -> list[tuple[str, str]]:
    return [(s.tool, s.status) for s in result.trace.steps if s.kind == "tool"]


def test_happy_path_search_then_finish_ranks_the_choice_first(fake: FakeBackend) -> None:
    fake.enqueue(call("search_catalog", {"query": "mars colony asteroid"}), call("finish", {"item_ids": ["11", "13"],
                 "explanation": "more space adventures"}))  # fmt: skip
    result = _run(fake, history(candidates=False))
    assert result.ranking.item_ids()[:2] == ["11", "13"]
    assert result.ranking.ranking[0].reason == "chosen by the agent: more space adventures"
    assert _tools(result) == [("search_catalog", "ok"), ("finish", "ok")]
    assert result.trace.fallback is None and not any(FALLBACK in w for w in result.ranking.warnings)
    first = fake.requests[0]
    assert [t.name for t in first.tools][:3] == ["user_profile", "similar_users", "search_catalog"]
    assert first.tool_choice == "auto" and first.tag.startswith("agent@v1#")
    search = result.trace.steps[1]
    assert search.bus_before == 0 and search.bus_after and search.bus_after > 0
    # the model saw a tool result for its call, by id, and counts with a few titles, not the catalog
    reply = fake.requests[1].messages[-1]
    assert reply.role == "tool" and reply.tool_call_id == "call_0_0" and "candidates" in reply.text_content
    assert result.ranking.usage.llm_calls == 2 and result.ranking.diagnostics["agent"]["tool_calls"] == 2


def test_parallel_calls_in_one_turn_run_in_order(fake: FakeBackend) -> None:
    fake.enqueue([call("similar_users", {"k": 3}, "a"), call("search_catalog", {"query": "sci-fi"}, "b")],
                 call("finish", {"item_ids": ["13"]}))  # fmt: skip
    result = _run(fake, history(candidates=False))
    assert _tools(result)[:2] == [("similar_users", "ok"), ("search_catalog", "ok")]
    second = fake.requests[1].messages
    assert [m.tool_call_id for m in second[-2:]] == ["call_0_0", "call_0_1"]
    assert [c.id for c in second[-3].tool_calls] == ["call_0_0", "call_0_1"]
    assert result.ranking.item_ids()[0] == "13"


def test_string_and_object_arguments_and_missing_ids_all_work(fake: FakeBackend) -> None:
    as_text = call("search_catalog", '{"query": "comedy", "limit": "5"}', call_id=None)
    fake.enqueue(as_text, call("finish", {"item_ids": [12]}, call_id=None))
    result = _run(fake, history(candidates=False))
    assert _tools(result) == [("search_catalog", "ok"), ("finish", "ok")]
    search = result.trace.steps[1]
    assert search.arguments == {"query": "comedy", "limit": 5} and "'limit': '5' read as 5" in search.repairs
    assert result.ranking.item_ids()[0] == "12"  # an integer id read as the id "12"


def test_malformed_json_becomes_an_observation_with_an_example(fake: FakeBackend) -> None:
    broken = ToolCall("x", "search_catalog", {}, raw='{"query": "space', error="arguments are not valid JSON")
    fake.enqueue(broken, call("finish", {"item_ids": ["11"]}))
    result = _run(fake, history())
    assert _tools(result) == [("search_catalog", "invalid"), ("finish", "ok")]
    told = fake.requests[1].messages[-1].text_content
    assert "not valid JSON" in told and '{"name": "search_catalog"' in told
    assert result.ranking.item_ids()[0] == "11" and result.trace.summary()["invalid_calls"] == 1


def test_unknown_tool_is_told_the_valid_tools(fake: FakeBackend) -> None:
    fake.enqueue(call("recommend_movies", {"genre": "sci-fi"}), call("finish", {"item_ids": ["13", "11"]}))
    result = _run(fake, history())
    told = fake.requests[1].messages[-1].text_content
    assert "there is no tool 'recommend_movies'" in told and "finish" in told
    assert result.ranking.item_ids()[:2] == ["13", "11"]


def test_repeated_call_is_answered_from_memory_then_the_loop_stops(fake: FakeBackend) -> None:
    same = call("search_catalog", {"query": "space"})
    fake.enqueue(*[same] * 4)  # the loop stops after the third repeat (limit 2), before a fifth turn
    result = _run(fake, history(), agent_max_invalid=2, agent_max_turns=8)
    statuses = [s for _, s in _tools(result)]
    assert statuses == ["ok", "repeat", "repeat", "repeat"]
    nudge = fake.requests[2].messages[-1].text_content
    assert "You made this exact call before" in nudge and "Call finish" in nudge
    assert "repeated the same call" in (result.trace.fallback or "") and result.trace.fallback_kind == "repeats"
    assert any(FALLBACK in w for w in result.ranking.warnings)


def test_turn_budget_exhausted_falls_back_and_the_last_turn_forces_finish(fake: FakeBackend) -> None:
    fake.enqueue(*[call("search_catalog", {"query": q}) for q in ("space", "comedy", "drama", "horror")])
    result = _run(fake, history(), agent_max_turns=3)
    agent_requests = [r for r in fake.requests if r.tools]
    assert [r.tool_choice for r in agent_requests] == ["auto", "auto", "finish"]
    assert result.trace.fallback == "turn budget exhausted (3 model turns without finish)"
    assert result.trace.summary()["fallback_kind"] == "turn_budget"
    assert result.ranking.diagnostics["agent"]["model_turns"] == 3
    assert any("turn budget exhausted" in w for w in result.ranking.warnings)


def test_tool_call_budget_and_the_ranking_budget(fake: FakeBackend) -> None:
    ranks = [call("rank_candidates", {"method": m}, m) for m in ("listwise", "fusion")]
    fake.enqueue([*ranks, call("user_profile", {}, "c")])
    result = _run(fake, history(), agent_max_tool_calls=3)
    assert _tools(result) == [("rank_candidates", "ok"), ("rank_candidates", "budget"), ("user_profile", "ok")]
    assert result.trace.fallback == "tool-call budget exhausted (3 calls without finish)"
    assert result.trace.fallback_kind == "tool_budget"


def test_a_tool_that_raises_is_an_observation_not_a_crash(fake: FakeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from msrkit.retrieval import search

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("index file truncated")

    monkeypatch.setattr(search, "search_items", broken)
    fake.enqueue(call("search_catalog", {"query": "space"}), call("finish", {"item_ids": ["4"]}))
    result = _run(fake, history())
    assert _tools(result) == [("search_catalog", "error"), ("finish", "ok")]
    assert "search_catalog failed (RuntimeError: index file truncated)" in fake.requests[1].messages[-1].text_content
    assert result.trace.summary()["tool_errors"] == 1 and result.ranking.item_ids()[0] == "4"


def test_empty_bus_finish_with_invented_ids_then_fallback(fake: FakeBackend) -> None:
    fake.enqueue(call("finish", {"item_ids": ["999", "abc"]}), call("rank_candidates", {}), "I think you like films.")
    result = _run(fake, history(candidates=False), agent_max_invalid=3)
    assert _tools(result) == [("finish", "invalid"), ("rank_candidates", "invalid")]
    assert "none of ['999', 'abc'] is a candidate on the bus" in fake.requests[1].messages[-1].text_content
    assert "the candidate list is empty" in fake.requests[2].messages[-1].text_content
    assert (result.trace.fallback, result.trace.fallback_kind) == ("3 invalid tool calls (limit 3)", "invalid_calls")
    assert "999" not in result.ranking.item_ids()


def test_calls_written_as_text_are_read_and_counted_as_repairs(fake: FakeBackend) -> None:
    fake.enqueue('Sure! {"name": "search_catalog", "arguments": {"query": "comedy"}}',
                 'functions.finish:\n{"item_ids": ["12"], "explanation": "fun"}')  # fmt: skip
    result = _run(fake, history(candidates=False))
    assert _tools(result) == [("search_catalog", "ok"), ("finish", "ok")]
    assert result.trace.steps[0].repairs == ["1 call(s) read from the answer's text"]
    assert result.ranking.item_ids()[0] == "12"


def test_a_model_without_native_tools_gets_the_text_protocol() -> None:
    fake = FakeBackend(capabilities=Capabilities(tools=False))
    fake.enqueue('{"name": "finish", "arguments": {"item_ids": ["15"]}}')
    result = _run(fake, history())
    first = fake.requests[0]
    assert first.tools == () and '{"name": "<tool>", "arguments": {...}}' in first.messages[0].text_content
    assert result.ranking.item_ids()[0] == "15"


def test_a_failing_model_falls_back_and_says_why(fake: FakeBackend) -> None:
    fake.enqueue(BackendUnavailableError("connection refused", backend="fake", model="m"))
    result = _run(fake, history(), retries=0)
    assert (result.trace.fallback or "").startswith("the model failed: fake/m: connection refused")
    assert result.trace.fallback_kind == "model_failed"
    failed = result.trace.steps[0]
    assert (failed.kind, failed.status, failed.reason) == ("model", "error", "fake/m: connection refused")
    assert any(FALLBACK in w for w in result.ranking.warnings)


def test_finish_never_returns_rejected_items_and_fixed_lists_stay_whole(fake: FakeBackend) -> None:
    state = TurnState(shown=["11"], rejected=["13"])
    fake.enqueue(call("finish", {"item_ids": ["13", "11", "15"]}))
    with _rec(fake) as rec:
        result = rec.chat(history(), "not that one", state)
    assert_valid(result.ranking, history(), catalog())
    ids = result.ranking.item_ids()
    assert ids[0] == "15" and ids[-2:] == ["11", "13"] and result.trace.fallback is None
    assert result.state.rejected == ["13", "11"] and result.state.turn == 1
    assert result.trace.steps[0].kind == "feedback" and result.trace.steps[0].repairs == ["rejected 11"]


def test_cheaper_becomes_a_price_constraint(fake: FakeBackend) -> None:
    state = TurnState(shown=["13"])  # price 15
    fake.enqueue(call("search_catalog", {"query": "space sci-fi"}), call("finish", {"item_ids": ["13", "2"]}))
    with _rec(fake) as rec:
        result = rec.chat(history(candidates=False), "something cheaper", state)
    assert_valid(result.ranking, history(candidates=False), catalog())
    assert [c.text() for c in result.state.constraints] == ["price < 15"]
    assert "13" not in result.ranking.item_ids() and result.ranking.item_ids()[0] == "2"
    assert all(catalog()[i].attributes["price"] < 15 for i in result.ranking.item_ids())


def test_plan_first_runs_a_validated_plan(fake: FakeBackend) -> None:
    plan = {"steps": [{"tool": "similar_users", "arguments": {"k": 2}}, {"tool": "search_catalog", "arguments": {}},
                      {"tool": "rank_candidates", "arguments": {"method": "fusion"}}]}  # fmt: skip
    import json

    fake.enqueue(json.dumps(plan))
    result = _run(fake, history(candidates=False), agent_plan_first=True)
    assert fake.requests[0].json_schema is not None and fake.requests[0].json_schema["title"] == "Plan"
    assert _tools(result) == [("similar_users", "ok"), ("search_catalog", "invalid"), ("rank_candidates", "ok")]
    assert result.trace.fallback is None and result.ranking.ranking[0].reason


def test_backend_none_falls_back_to_retrieval() -> None:
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False) as rec:
        result = rec.chat(history())
    assert_valid(result.ranking, history(), catalog())
    assert (result.trace.fallback, result.trace.fallback_kind) == ("no model to call (backend none)", "no_backend")


def test_scores_never_rise_down_the_list_when_the_conversation_moves_items_last(fake: FakeBackend) -> None:
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False) as rec:
        first = rec.chat(history()).ranking.item_ids()[0]
        result = rec.chat(history(), "not that one", TurnState(shown=[first]))  # the fallback's retrieval order
    ranking = result.ranking
    scores = [r.score for r in ranking.ranking]
    assert ranking.item_ids()[-1] == first and ranking.ranking[-1].score == 0.0  # rejected: last, scored 0
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores) and scores[0] > 0
    assert ranking.score_kind == "retrieval"
    fake.enqueue(call("finish", {"item_ids": ["11"]}))
    with _rec(fake) as rec:
        chosen = rec.chat(history()).ranking  # the agent's own list: an order only, the rank stand-in
    assert chosen.score_kind == "rank" and [r.score for r in chosen.ranking][0] == 1.0
    assert chosen.ranking[-1].score == 0.0


def test_agent_run_directly_and_the_trace_as_jsonl(fake: FakeBackend, tmp_path: Any) -> None:
    import json

    fake.enqueue(call("similar_users", {}), call("finish", {"item_ids": ["11"]}))
    with _rec(fake) as rec:
        result = rec.agent().run(rec.load(history()))
    path = result.trace.write_jsonl(tmp_path / "trace.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["model", "tool", "model", "tool", "finish"]
    model = records[0]
    assert model["model"] == "fake/scripted" and len(model["request_hash"]) == 64 and model["cache_hit"] is False
    assert records[1]["bus_before"] == 10 and isinstance(records[1]["seconds"], float)
    assert isinstance(ChatResponse("x").tool_calls, list)


def test_a_recommender_gives_its_agent_with_public_calls_only(fake: FakeBackend) -> None:
    import msrkit

    fake.enqueue(call("finish", {"item_ids": ["11"]}))
    rec = msrkit.Recommender(fake, catalog=catalog(), interactions=interactions(), cache=False, explain=False,
                             item_summaries=False, preference_summary=False)  # fmt: skip
    with rec:
        agent = rec.agent(agent_max_turns=2)
        assert isinstance(agent, msrkit.Agent) and agent.backend is rec.backend
        assert agent.parts.catalog == rec.catalog and agent.parts.index is rec.index
        assert agent.settings.agent_max_turns == 2 and rec.settings.agent_max_turns == 6
        assert agent.settings.model_dump(exclude={"agent_max_turns"}) == rec.settings.model_dump(
            exclude={"agent_max_turns"}
        )
        result = agent.run(rec.load(history()), "something like 11")
        assert isinstance(result, msrkit.AgentResult) and isinstance(result.state, msrkit.TurnState)
        assert result.ranking.item_ids()[0] == "11" and result.trace.fallback is None
        assert result.state.turn == 1 and len(fake.requests) == 1
        with pytest.raises(msrkit.ConfigError, match="agent_\\* settings only, not window"):
            rec.agent(window=3)


def test_finish_may_name_only_the_candidates_on_the_bus(fake: FakeBackend) -> None:
    fake.enqueue(call("finish", {"item_ids": ["11"]}))
    state = TurnState(rejected=["8"])
    with _rec(fake) as rec:
        result = rec.chat(history(), None, state)
    finish = next(t for t in fake.requests[0].tools if t.name == "finish")
    ids = finish.parameters["properties"]["item_ids"]
    assert ids["items"]["enum"] == [c for c in history()["candidates"] if c != "8"] and ids["minItems"] == 1
    assert result.ranking.item_ids()[0] == "11" and result.ranking.item_ids()[-1] == "8"


def test_with_fixed_candidates_what_a_tool_finds_moves_first(fake: FakeBackend) -> None:
    fake.enqueue(call("search_catalog", {"query": "comedy"}), call("finish", {"item_ids": ["8"]}))
    result = _run(fake, history())
    ids = result.ranking.item_ids()
    comedies = [i for i in history()["candidates"] if "Comedy" in catalog()[i].attributes["genres"]]
    assert ids[0] == "8" and ids[1 : 1 + len(comedies)] == ["5", "12", "2"] == [c for c in ids if c in comedies]
    assert "3 candidate(s) found by search, moved first" in fake.requests[1].messages[-1].text_content
    assert result.ranking.ranking[1].reason == "found by search"


def test_a_filter_that_would_empty_the_bus_is_refused(fake: FakeBackend) -> None:
    nonsense = call("filter", {"attribute": "./2018-04-30", "equals": "The (Apur Sansar)"})
    fake.enqueue(
        nonsense, call("filter", {"attribute": "genres", "equals": "comedy"}), call("finish", {"item_ids": ["2"]})
    )
    result = _run(fake, history())
    assert _tools(result) == [("filter", "invalid"), ("filter", "ok"), ("finish", "ok")]
    told = fake.requests[1].messages[-1].text_content
    assert "would remove every candidate (no candidate has ./2018-04-30 = The (Apur Sansar))" in told
    assert result.trace.steps[3].bus_before == 10 and result.trace.steps[3].bus_after == 3  # the comedies
    finish = next(t for t in fake.requests[2].tools if t.name == "finish")
    assert finish.parameters["properties"]["item_ids"]["items"]["enum"] == ["5", "2", "12"]
