"""Hostile model answers, on loopback (issue 20, rows 1, 4, 5, 9 and ``close()``).

A real OpenAI-compatible HTTP server on 127.0.0.1 (:mod:`faultserver`) answers
with what an attacker (or a broken model) would: 1,000 ``[``, 10,000 parallel
tool calls, 5 MB of arguments, a ``finish`` naming items that are not
candidates, the API key echoed inside a call's arguments, or nothing at all (a
hang). Every case ends in a valid ranking within its bounds: no traceback, no
crash on rerun, the budget and the deadline kept, the key nowhere on disk.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_world import assert_valid, catalog, history, interactions
from clirun import msrkit
from faultserver import FaultServer, Reply, hang, open_sockets, tool_calls

from msrkit.recommender import Recommender

pytest.importorskip("openai")

KEY = "sk-hostile-ECHOED-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(max_hang=60) as srv:
        yield srv


def _rec(server: FaultServer, **options: Any) -> Recommender:
    opts = {"item_summaries": False, "preference_summary": False, "cache": False, **options}
    return Recommender("openai/x", base_url=server.url, api_key=KEY, catalog=catalog(), interactions=interactions(),
                       **opts)  # fmt: skip


def _world(folder: Path) -> None:
    with (folder / "catalog.jsonl").open("w") as fh:
        fh.writelines(item.model_dump_json() + "\n" for item in catalog().values())
    with (folder / "interactions.jsonl").open("w") as fh:
        fh.writelines(json.dumps({"user_id": r.user_id, "item_id": r.item_id}) + "\n" for r in interactions())
    (folder / "open.json").write_text(json.dumps(history(candidates=False)))
    users = [{**history(), "user_id": f"u{n}"} for n in range(5)]
    (folder / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users))


def _rank_batch(folder: Path, server: FaultServer) -> tuple[Any, list[dict[str, Any]]]:
    done = msrkit("rank", "users.jsonl", "--catalog", "catalog.jsonl", "--cache-dir", "cache", "--json",
                  "--backend", "openai/x", "--base-url", server.url, cwd=folder,
                  env={"OPENAI_API_KEY": KEY})  # fmt: skip
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_a_batch_of_five_users_against_1000_brackets_ranks_all_degraded_and_reruns(
    server: FaultServer, tmp_path: Path
) -> None:
    _world(tmp_path)
    server.always(Reply(200, "[" * 1000))
    given = sorted(history()["candidates"])
    for run in ("first", "rerun on the same cache"):
        done, rankings = _rank_batch(tmp_path, server)
        assert done.returncode in (0, 6), (run, done.stderr[-2000:])
        assert "Traceback" not in done.stderr, run
        assert [r["user_id"] for r in rankings] == [f"u{n}" for n in range(5)], run
        assert all(sorted(i["item_id"] for i in r["ranking"]) == given for r in rankings), run
        assert all(r["degraded"] for r in rankings), run
    # the listwise prompt ("[1]" alone would count the keyword batches, which number their items too)
    rank_calls = [s for s in server.requests if "Rank all" in s.prompt]
    assert len(rank_calls) == 10  # the unusable answers were not served from the cache on the rerun


def test_ten_thousand_parallel_calls_in_one_answer_end_within_the_budget(server: FaultServer) -> None:
    server.enqueue(tool_calls(*[("search_catalog", json.dumps({"query": f"space {n}"})) for n in range(10_000)]))
    with _rec(server) as rec:
        started = time.monotonic()  # the turn itself (building the index comes before the request)
        result = rec.chat(history(candidates=False), "space")
        took = time.monotonic() - started
    assert took <= 5.0, took
    assert_valid(result.ranking, history(candidates=False), catalog())
    ran = [s for s in result.trace.steps if s.kind == "tool" and s.status != "refused"]
    refused = [s for s in result.trace.steps if s.status == "refused"]
    assert len(ran) == rec.settings.agent_max_tool_calls == 12
    assert len(refused) == 1 and "call(s) of one answer refused" in refused[0].reason
    assert result.trace.summary()["tool_calls"] == 12 and "budget" in (result.trace.fallback or "")
    model_steps = [s for s in result.trace.steps if s.kind == "model"]
    assert all(len(s.calls) <= 32 for s in model_steps)


def test_a_three_second_deadline_bounds_the_whole_agent_turn(server: FaultServer) -> None:
    server.always(tool_calls(("search_catalog", '{"query": "space"}'), delay=1.0))  # one second a turn, never finish
    with _rec(server, deadline=3.0, agent_max_turns=40, agent_max_tool_calls=100, agent_max_invalid=100) as rec:
        started = time.monotonic()  # the turn itself (building the index comes before the request)
        result = rec.chat(history(candidates=False), "space")
        took = time.monotonic() - started
    assert took <= 5.0, took
    assert_valid(result.ranking, history(candidates=False), catalog())
    assert result.trace.fallback is not None


def test_a_hanging_backend_ends_within_the_deadline_plus_five_seconds(server: FaultServer) -> None:
    server.always(hang(60))
    with _rec(server, deadline=3.0) as rec:
        started = time.monotonic()  # the turn itself (building the index comes before the request)
        result = rec.chat(history(candidates=False), "space")
        took = time.monotonic() - started
    assert took <= 3.0 + 5.0, took
    assert_valid(result.ranking, history(candidates=False), catalog())
    assert "the model failed" in (result.trace.fallback or "")


def test_five_megabyte_arguments_are_refused_unread_and_the_trace_stays_small(
    server: FaultServer, tmp_path: Path
) -> None:
    server.always(tool_calls(("search_catalog", json.dumps({"query": "x" * 5_000_000}))))
    with _rec(server) as rec:
        result = rec.chat(history(candidates=False), "space")
    trace = result.trace.write_jsonl(tmp_path / "trace.jsonl")
    assert trace.stat().st_size < 200_000, trace.stat().st_size
    invalid = [s for s in result.trace.steps if s.kind == "tool" and s.status == "invalid"]
    assert invalid and "over the limit" in invalid[0].observation


def test_finish_naming_items_that_are_not_candidates_is_refused_never_ranked_first(server: FaultServer) -> None:
    given = history(candidates=False)  # the user has seen 1 and 3; 16 was never found by a tool
    server.always(tool_calls(("finish", json.dumps({"item_ids": ["1", "16"], "explanation": "the title said so"}))))
    with _rec(server) as rec:
        result = rec.chat(given, "space")
    assert_valid(result.ranking, given, catalog())
    finishes = [s for s in result.trace.steps if s.tool == "finish"]
    assert finishes and all(s.status == "invalid" for s in finishes)
    assert "is a candidate on the bus" in finishes[0].observation
    assert result.ranking.item_ids()[0] not in ("1", "16") and "1" not in result.ranking.item_ids()


def test_a_key_echoed_in_tool_call_arguments_reaches_neither_the_cache_nor_the_trace(
    server: FaultServer, tmp_path: Path
) -> None:
    _world(tmp_path)
    server.always(tool_calls(("search_catalog", json.dumps({"query": f"space {KEY}"}))))
    done = msrkit("agent", "open.json", "space", "--catalog", "catalog.jsonl", "--interactions", "interactions.jsonl",
                  "--cache-dir", "cache", "--trace", "trace.jsonl", "--json", "--backend", "openai/x",
                  "--base-url", server.url, cwd=tmp_path, env={"OPENAI_API_KEY": KEY,
                                                               "MSRKIT_ITEM_SUMMARIES": "false"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    files = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any(p.name == "cache.db" for p in files) and server.requests
    assert not [p for p in files if KEY.encode() in p.read_bytes()]
    trace = (tmp_path / "trace.jsonl").read_text(encoding="utf-8")
    assert KEY not in trace and KEY not in done.stdout and KEY not in done.stderr
    assert "space [redacted]" in trace  # the call was traced, with the key masked


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc")
def test_close_closes_the_async_clients_of_arank(server: FaultServer) -> None:
    given = history()
    rec = _rec(server)
    before = open_sockets()

    async def burst(rec: Recommender) -> list[Any]:
        return list(await asyncio.gather(*(rec.arank(given) for _ in range(4))))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rankings = asyncio.run(burst(rec))
        rec.close()
        left = open_sockets() - before
        del rec, rankings
        gc.collect()
    assert left <= 0, f"{left} socket(s) still open after close()"
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def test_aclose_from_async_code_closes_the_running_loops_client(server: FaultServer) -> None:
    given = history()

    async def use() -> int:
        async with _rec(server) as rec:
            before = open_sockets()
            await rec.arank(given)
            opened = open_sockets() - before
        return opened - (open_sockets() - before)

    closed = asyncio.run(use())
    assert closed >= 1  # the connection arank opened was closed by aclose, inside the loop
