"""Batch ranking into JSONL: a failing user loses nobody, Ctrl-C keeps valid lines, a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msrkit.batch import batch_keys, rank_batch
from msrkit.data import History, RankedItem, Ranking
from msrkit.errors import BackendTransientError, InputError


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
