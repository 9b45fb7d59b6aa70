"""Batch ranking into JSONL: a failing user loses nobody, Ctrl-C keeps valid lines, a rerun resumes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import msrkit

from msrkit.data import History, RankedItem, Ranking
from msrkit.errors import BackendTransientError, InputError
from msrkit.inputs.io import load_histories
from msrkit.jobs.batch import HistoryFile, batch_keys, rank_batch


def users(n: int) -> list[History]:
    return [History(user_id=f"u{i}", history=[], candidates=[{"item_id": "a"}]) for i in range(n)]


def ok(history: History) -> Ranking:
    return Ranking(user_id=history.user_id, ranking=[RankedItem(item_id="a", rank=1, score=1.0)])


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_failures_are_recorded_and_the_rest_ranked(tmp_path: Path) -> None:
    def flaky(h: History) -> Ranking:
        if h.user_id in ("u2", "u5"):
            raise BackendTransientError("HTTP 503", backend="openai", model="m", status=503)
        if h.user_id == "u7":
            raise InputError("bad entry", source="users.jsonl:8")
        return ok(h)

    out = tmp_path / "r.jsonl"
    summary = rank_batch(flaky, users(10), out=out)
    assert (summary.ranked, summary.failed) == (7, 3)
    rows = lines(out)
    assert [r["key"] for r in rows] == [f"u{i}" for i in range(10)]
    assert {r["key"]: r["error_type"] for r in rows if "error" in r} == {
        "u2": "BackendTransientError",
        "u5": "BackendTransientError",
        "u7": "InputError",
    }


def test_interrupt_keeps_valid_lines_and_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    calls: list[str] = []

    def interrupted(h: History) -> Ranking:
        if h.user_id == "u4":
            raise KeyboardInterrupt
        calls.append(str(h.user_id))
        return ok(h)

    with pytest.raises(KeyboardInterrupt):
        rank_batch(interrupted, users(8), out=out)
    assert [r["key"] for r in lines(out)] == ["u0", "u1", "u2", "u3"]
    with out.open("a") as fh:  # a torn line, as a killed process could leave
        fh.write('{"key": "u4", "ranking": [')
    calls.clear()
    summary = rank_batch(lambda h: calls.append(str(h.user_id)) or ok(h), users(8), out=out)
    assert calls == ["u4", "u5", "u6", "u7"] and summary.skipped == 4
    assert [r["key"] for r in lines(out)] == [f"u{i}" for i in range(8)]


def test_failed_users_are_retried_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"

    def fail_u1(h: History) -> Ranking:
        if h.user_id == "u1":
            raise BackendTransientError("down")
        return ok(h)

    rank_batch(fail_u1, users(3), out=out)
    summary = rank_batch(ok, users(3), out=out)
    assert (summary.ranked, summary.skipped, summary.failed) == (1, 2, 0)
    assert sorted(r["key"] for r in lines(out)) == ["u0", "u1", "u2"]
    assert not any("error" in r for r in lines(out))


def test_keys_for_missing_repeated_or_hash_shaped_user_ids() -> None:
    hs = [History(user_id=u) for u in ("a", None, "b", "b", "#1")]
    assert batch_keys(hs) == ["a", "#1", "#2:b", "#3:b", "##1"]


def test_rerunning_a_finished_batch_keeps_every_result(tmp_path: Path) -> None:
    # issue 14: a user_id "#1" used to share its key with the user without an id at position 1, so the
    # rerun kept one line for both and that user's result was lost
    hs = [History(user_id="#1", history=[], candidates=[{"item_id": "a"}]),
          History(user_id=None, history=[], candidates=[{"item_id": "a"}])]  # fmt: skip
    out = tmp_path / "r.jsonl"
    assert rank_batch(ok, hs, out=out).ranked == 2
    calls: list[History] = []
    again = rank_batch(lambda h: calls.append(h) or ok(h), hs, out=out)
    assert calls == [] and (again.skipped, again.ranked) == (2, 0)
    assert sorted((r["key"], r["user_id"]) for r in lines(out)) == [("##1", "#1"), ("#1", None)]  # type: ignore[type-var]


def test_resume_false_starts_an_empty_file(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "r.jsonl"
    rank_batch(ok, users(3), out=out)
    summary = rank_batch(ok, users(2), out=out, resume=False)
    assert (summary.ranked, summary.skipped) == (2, 0)
    assert [r["key"] for r in lines(out)] == ["u0", "u1"]


# -- streaming (issue 21): flat memory whatever the number of users ------------------------------------------


def write_users(path: Path, ids: list[str | None], *, candidates: int = 1) -> Path:
    cands = [{"item_id": f"c{j}", "title": f"item {j}"} for j in range(candidates)]
    path.write_text("".join(json.dumps({"user_id": u, "history": [], "candidates": cands}) + "\n" for u in ids))
    return path


def test_a_history_file_keys_users_as_the_in_memory_batch_did(tmp_path: Path) -> None:
    ids = ["a", None, "b", "b", "#1", "c", None, "a2"]
    path = write_users(tmp_path / "u.jsonl", ids)
    stream = HistoryFile(path)
    assert len(stream) == len(ids)
    assert [k for k, _ in stream] == batch_keys(load_histories(path)) == ["a", "#1", "#2:b", "#3:b", "##1", "c",
                                                                            "#6", "a2"]  # fmt: skip


def test_each_result_is_written_before_the_next_history_is_read(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    read: list[str] = []

    def pairs() -> Iterator[tuple[str, History]]:
        for h in users(6):
            read.append(str(h.user_id))
            yield str(h.user_id), h

    def rank(h: History) -> Ranking:
        # while user i is ranked, i users are in the file and no later history has been read
        assert len(lines(out)) == len(read) - 1 and read[-1] == h.user_id
        return ok(h)

    summary = rank_batch(rank, pairs(), out=out)
    assert (summary.ranked, summary.total) == (6, 6) and [r["key"] for r in lines(out)] == read


def test_resuming_a_stream_skips_the_users_done(tmp_path: Path) -> None:
    path, out = write_users(tmp_path / "u.jsonl", [f"u{i}" for i in range(5)]), tmp_path / "r.jsonl"
    rank_batch(ok, users(3), out=out)
    calls: list[str] = []
    summary = rank_batch(lambda h: calls.append(str(h.user_id)) or ok(h), HistoryFile(path), out=out)
    assert calls == ["u3", "u4"] and (summary.skipped, summary.ranked, summary.total) == (3, 2, 5)


def test_cli_top_k_limits_out_and_json_alike(tmp_path: Path) -> None:
    path = write_users(tmp_path / "u.jsonl", ["a", "b", "c"], candidates=20)
    out = tmp_path / "r.jsonl"
    done = msrkit("rank", str(path), "--backend", "none", "--no-cache", "--top-k", "10", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr
    printed = [json.loads(x) for x in done.stdout.splitlines()]
    written = lines(out)
    assert [len(r["ranking"]) for r in written] == [len(r["ranking"]) for r in printed] == [10, 10, 10]
    assert [[c["item_id"] for c in r["ranking"]] for r in written] == [
        [c["item_id"] for c in r["ranking"]] for r in printed
    ]
    full = msrkit("rank", str(path), "--backend", "none", "--no-cache", "--json")
    assert [len(json.loads(x)["ranking"]) for x in full.stdout.splitlines()] == [20, 20, 20]
