"""Every parser of model output is total: any string in, a result or a typed "nothing usable" out, in bounded time.

The parsers: listwise rankings (:func:`parse_order`), ``<think>`` stripping, yes/no
(:func:`p_yes`, :func:`yes_no_from_text`), keywords, preference summaries, the
reconstruction choice of keyword evaluation, tool calls written as text, plans and
tool-call arguments. Each is driven by hypothesis over arbitrary text, and by the
hostile shapes of issue 20 (``[`` * 1000, ``{"a":`` * 5000, 1 MB of anything), each
within a time bound. An unusable answer is evicted from the response cache, so a
rerun asks the model again instead of serving it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msrkit.agent.plan import read_plan
from msrkit.agent.textcalls import MAX_TEXT_CALLS, calls_from_text
from msrkit.agent.tools import TOOLS
from msrkit.backends.base import MAX_ARGUMENT_CHARS, ToolCall, read_arguments
from msrkit.backends.cache import CachedBackend, ResponseCache
from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.evaluation.keywords import parse_choice
from msrkit.ranking.listwise import ListwiseReranker
from msrkit.ranking.parse import Parsed, parse_order, repair
from msrkit.ranking.pointwise import p_yes, yes_no_from_text
from msrkit.runtime.meter import Meter
from msrkit.runtime.modeltext import MAX_PARSE_CHARS, decode_json, loads_json, strip_think
from msrkit.summaries.batched import parse_batch
from msrkit.summaries.items import parse_keywords
from msrkit.summaries.preferences import MAX_SUMMARY_CHARS, parse_summary

IDS = [f"B{n:02d}" for n in range(1, 9)]
KNOWN = [n for n in TOOLS if n != "finish"]


def _order(text: str) -> Any:
    parsed = parse_order(text, ids=IDS)
    assert isinstance(parsed, Parsed) and parsed.form in ("json", "brackets", "numbers", "ids", "none")
    fixed = repair(parsed.numbers, len(IDS))
    assert sorted(fixed.order) == list(range(len(IDS)))  # always a permutation
    return parsed


def _think(text: str) -> Any:
    out = strip_think(text)
    assert isinstance(out, str) and len(out) <= MAX_PARSE_CHARS and "</think>" not in out.lower()
    return out


def _yes_no(text: str) -> Any:
    p = yes_no_from_text(text)
    assert p in (None, 0.0, 1.0)
    return p


def _keywords(text: str) -> Any:
    words = parse_keywords(text, limit=8)
    assert len(words) <= 8 and all(0 < len(w) <= 40 for w in words)
    return words


def _summary(text: str) -> Any:
    out = parse_summary(text)
    assert len(out) <= MAX_SUMMARY_CHARS and "\n" not in out
    return out


def _choice(text: str) -> Any:
    choice = parse_choice(text, 5)
    assert choice is None or 1 <= choice <= 5
    return choice


def _text_calls(text: str) -> Any:
    calls = calls_from_text(text, TOOLS)
    assert len(calls) <= MAX_TEXT_CALLS and all(isinstance(c, ToolCall) and c.name in TOOLS for c in calls)
    return calls


def _plan(text: str) -> Any:
    calls = read_plan(text, KNOWN, limit=12)
    assert len(calls) <= 12 and all(isinstance(c, ToolCall) for c in calls)
    return calls


def _arguments(text: str) -> Any:
    args, raw, error = read_arguments(text)
    assert isinstance(args, dict) and (error is None or args == {})  # an invalid call carries no arguments
    assert raw is None or len(raw) <= max(len(text), 200)
    return args


def _json(text: str) -> Any:
    found = decode_json(text)
    assert found is None or 0 < found[1] <= len(text)
    whole = loads_json(text)
    assert whole is None or isinstance(whole, tuple)
    return found


PARSERS: dict[str, Callable[[str], Any]] = {
    "listwise": _order, "think": _think, "yes_no": _yes_no, "keywords": _keywords, "preference": _summary,
    "reconstruction": _choice, "text_calls": _text_calls, "plan": _plan, "tool_arguments": _arguments,
    "json": _json, "keywords_batch": lambda text: parse_batch(text, 8, limit=8),
}  # fmt: skip

#: text near what a parser reads: brackets, braces, quotes, numbers, think tags, tool names
FRAGMENTS = st.sampled_from([
    "[", "]", "{", "}", '"', "\\", ",", ":", " > ", "[3]", "12", "-1", "1e999", "null", "<think>", "</think>",
    '{"ranking": [', '"steps": [', '{"name": "search_catalog", "arguments": {', "functions.finish:", "finish(",
    "search_catalog(", "yes", "No", "keywords:", "\n", " ", "B03", "\ud800", "é", "\x00",
])  # fmt: skip
TEXTS = st.one_of(st.text(max_size=400), st.lists(FRAGMENTS, max_size=120).map("".join))

HOSTILE = {
    "1000 [": "[" * 1000,
    "1000 { [": "{[" * 1000,
    '5000 {"a":': '{"a":' * 5000,
    "deep valid": "[" * 5000 + "]" * 5000,
    "unclosed strings": '["' + '\\"' * 200_000,
    "1 MB of [": "[" * 1_000_000,
    "1 MB of digits": "7" * 1_000_000,
    "1 MB of spaces then a number": " " * 1_000_000 + "1",
    "1 MB of <think>": "<think>" * 150_000,
    "1 MB of calls": "search_catalog(" * 70_000,
    "1 MB of objects": '{"name": "search_catalog", "arguments": {}}' * 25_000,
    "1 MB of reasons": "[1] > [2]\n" + ("1" + " " * 998 + "\n") * 1_000,
    "1 MB of separators": ",;\n" * 350_000,
}


@pytest.mark.parametrize("parser", sorted(PARSERS))
@settings(max_examples=150, deadline=2_000, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_every_parser_takes_any_text(parser: str, text: str) -> None:
    PARSERS[parser](text)


@pytest.mark.parametrize("shape", sorted(HOSTILE))
@pytest.mark.parametrize("parser", sorted(PARSERS))
def test_every_parser_ends_within_a_bound_on_hostile_answers(parser: str, shape: str) -> None:
    started = time.perf_counter()
    PARSERS[parser](HOSTILE[shape])
    assert time.perf_counter() - started < 2.0, f"{parser} on {shape}"


def test_deep_nesting_is_refused_before_the_decoder_and_shallow_json_still_reads() -> None:
    assert decode_json("[" * 1000) is None and decode_json('{"a":' * 5000) is None
    assert parse_order("[" * 1000).form == "none"
    assert parse_order('{"ranking": [3, 1, 2]}').numbers == [3, 1, 2]
    assert parse_order("<think>[9] > [8]</think> [2] > [1]").numbers == [2, 1]
    written = calls_from_text('{"name": "finish", "arguments": {"item_ids": ["1"]}}', TOOLS)
    assert [(c.name, dict(c.arguments)) for c in written] == [("finish", {"item_ids": ["1"]})]
    assert read_plan('{"steps": [{"tool": "search_catalog", "arguments": {"query": "x"}}]}', KNOWN, limit=3)


def test_tool_arguments_over_the_cap_or_too_deep_are_invalid_calls_unread() -> None:
    args, raw, error = read_arguments('{"query": "' + "x" * (MAX_ARGUMENT_CHARS + 1) + '"}')
    assert args == {} and raw is not None and len(raw) == 200 and error is not None and "over the limit" in error
    args, _, error = read_arguments('{"a":' * 1000)  # 5,000 characters: under the size cap, too deep
    assert args == {} and error is not None and "deeper" in error


def test_yes_no_log_probabilities_of_any_value_never_raise() -> None:
    assert p_yes([{"yes": 1000.0, "no": -1.0}]) == pytest.approx(1 / (1 + 2.718281828**-1), rel=1e-6)
    assert p_yes([{"yes": float("nan"), "no": float("inf")}]) is None
    assert p_yes([{"Yes": "-0.1", "no": -0.1}]) == 0.0  # not a number: no probability


def test_an_unparseable_ranking_is_evicted_from_the_cache_so_a_rerun_asks_again(tmp_path: Path) -> None:
    fake = FakeBackend()
    cache = ResponseCache(tmp_path / "cache")
    backend = CachedBackend(fake, cache)
    items = [Item(item_id=i, title=f"title {i}") for i in IDS[:4]]
    for run in range(2):
        fake.enqueue("[" * 1000)
        scored = ListwiseReranker(backend).rank(items, preference="", meter=Meter())
        assert scored.degraded and sorted(scored.order) == [0, 1, 2, 3]
        assert len(fake.requests) == run + 1  # the second run asked the model, not the cache
    assert cache.info()["entries"] == 0
    fake.enqueue("[2] > [1] > [4] > [3]")
    first = ListwiseReranker(backend).rank(items, preference="", meter=Meter())
    again = ListwiseReranker(backend).rank(items, preference="", meter=Meter())  # a good answer is kept
    assert first.order == again.order == [1, 0, 3, 2] and len(fake.requests) == 3
