"""The agent's pure parts: argument checks and repairs, calls read from text, the bus, catalog search."""

from __future__ import annotations

from agent_world import catalog, interactions

from msrkit.agent.bus import CandidateBus
from msrkit.agent.schema import check_arguments, example_arguments
from msrkit.agent.textcalls import calls_from_text
from msrkit.agent.tools import TOOLS
from msrkit.retrieval import build
from msrkit.retrieval.search import search_items

KNOWN = list(TOOLS)
SEARCH = TOOLS["search_catalog"].spec.parameters
FINISH = TOOLS["finish"].spec.parameters


def test_arguments_get_defaults_repairs_and_clear_errors() -> None:
    assert check_arguments({"query": "space"}, SEARCH) == ({"query": "space", "limit": 10}, [], None)
    args, repairs, error = check_arguments({"query": "space", "limit": "500", "colour": "red"}, SEARCH)
    assert error is None and args == {"query": "space", "limit": 50}
    assert repairs == ["'limit': '500' read as 500", "'limit': 500 clamped to 50", "unknown argument 'colour' ignored"]
    args, repairs, _ = check_arguments({"item_ids": "[12]"}, FINISH)
    assert args == {"item_ids": ["12"]} and repairs[0] == "'item_ids': one value taken as a list"
    assert check_arguments({}, SEARCH)[2] == "missing required argument(s) ['query']"
    kept = check_arguments({"query": "Apur Sansar (The)"}, SEARCH)[0]["query"]
    assert kept == "Apur Sansar (The)"  # brackets are stripped only around a whole value: "[12]"
    assert check_arguments({"query": {"a": 1}}, SEARCH)[2] == "'query' must be a string, got {'a': 1}"
    method = TOOLS["rank_candidates"].spec.parameters
    assert "must be one of ['listwise', 'pointwise', 'fusion']" in str(check_arguments({"method": "best"}, method)[2])
    assert check_arguments(example_arguments(FINISH), FINISH)[2] is None  # every example is valid
    for tool in TOOLS.values():
        assert check_arguments(example_arguments(tool.spec.parameters), tool.spec.parameters)[2] is None, tool.spec.name


def test_calls_read_from_text_in_three_shapes() -> None:
    text = ('I will search. {"name": "search_catalog", "arguments": {"query": "space"}} then '
            'functions.finish:\n{"item_ids": ["1"]}')  # fmt: skip
    calls = calls_from_text(text, KNOWN)
    assert [(c.name, dict(c.arguments)) for c in calls] == [("search_catalog", {"query": "space"}),
                                                            ("finish", {"item_ids": ["1"]})]  # fmt: skip
    assert [c.name for c in calls_from_text('similar_users({"k": 2}) and user_profile()', KNOWN)] == [
        "similar_users", "user_profile"]  # fmt: skip
    wrapped = calls_from_text(
        '{"tool_calls": [{"function": {"name": "finish", "arguments": "{\\"item_ids\\": [\\"2\\"]}"}}]}', KNOWN
    )
    assert wrapped[0].arguments == {"item_ids": ["2"]}
    broken = calls_from_text("functions.search_catalog:\n{query: space", KNOWN)
    assert broken[0].name == "search_catalog" and broken[0].error is not None
    assert calls_from_text('{"name": "delete_everything", "arguments": {}} I like films', KNOWN) == []
    assert calls_from_text("<think>call finish()</think>No call here.", KNOWN) == []


def test_bus_keeps_sources_order_and_its_allowed_ids() -> None:
    bus = CandidateBus(allowed=["1", "2", "3"])
    assert bus.add(["2", "9", "1"], "search") == ["2", "1"] and bus.ids() == ["2", "1"]
    assert bus.add(["1", "3"], "similar") == ["3"] and bus.counts() == {"search": 2, "similar": 1}
    bus.reorder(["3", "1"])
    assert bus.ids() == ["3", "1", "2"]
    assert bus.promote(["2", "9"], "search") == ["2"] and bus.ids() == ["2", "3", "1"] and bus.source("2") == "search"
    bus.reorder(["3", "1"])
    assert bus.remove(["1", "7"], "excluded") == ["1"] and bus.removed == {"1": "excluded"}
    view = bus.view(catalog(), shown=1)
    assert view == "2 candidates (1 from similar, 1 from search); first: [3] Moon Base (and 1 more)"
    assert CandidateBus().view(catalog()) == "the candidate list is empty"


def test_catalog_search_by_keywords_is_bm25_over_item_text() -> None:
    idx = build(interactions(), catalog=catalog())
    hits = search_items(idx, "romance comedy", k=4)
    assert [i for i, _ in hits][:2] == ["6", "7"]  # both words: Comedy|Romance
    assert all(s > 0 for _, s in hits) and hits == sorted(hits, key=lambda h: -h[1])
    assert "6" not in [i for i, _ in search_items(idx, "romance comedy", k=4, exclude={"6"})]
    assert search_items(idx, "zzzz qqqq") == [] and search_items(idx, "the of and") == []
    among = search_items(idx, "romance comedy", k=10, only=["7", "15", "1", "unknown"])
    assert [i for i, _ in among] == ["7", "15"]  # only the given items that match, best first
    assert dict(among)["7"] == dict(search_items(idx, "romance comedy", k=16))["7"]  # the same BM25 score
