"""The one resumable JSONL journal and atomic writer: unique keys, kept lines, torn lines, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msrkit.data import History, Item, RankedItem, Ranking
from msrkit.jobs.batch import batch_keys, rank_batch
from msrkit.jobs.runs import (
    Journal,
    read_journal,
    record_keys,
    repeated_ids,
    stream_key,
    write_jsonl_atomic,
    write_text_atomic,
)

# ids that look like the keys the scheme makes for missing or repeated ids, mixed with ordinary ones
TRICKY = ["#1", "#0", "#", "##1", "#1:a", "#12", "a", "b", "", " ", "1", ":", "#0:", "\x85", "u\u2028"]
IDS = st.lists(st.one_of(st.none(), st.sampled_from(TRICKY), st.text(max_size=6)), max_size=40)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- keys


@given(IDS)
def test_keys_are_unique_for_any_ids(ids: list[str | None]) -> None:
    keys = record_keys(ids)
    assert len(keys) == len(ids) and len(set(keys)) == len(keys)


@given(IDS)
def test_keys_are_stable_and_an_id_seen_once_keeps_its_name(ids: list[str | None]) -> None:
    keys = record_keys(ids)
    assert record_keys(list(ids)) == keys
    for uid, key in zip(ids, keys, strict=True):
        if uid and ids.count(uid) == 1:
            assert key == (uid if not uid.startswith("#") else "#" + uid)


@given(IDS, IDS)
def test_keys_never_collide_across_position_and_id(first: list[str | None], second: list[str | None]) -> None:
    # an id alone in one list never takes the key a position key has in another list: keys mean one thing
    ids = first + second
    keys = record_keys(ids)
    counts = {u: ids.count(u) for u in ids}
    real = {k for u, k in zip(ids, keys, strict=True) if u and counts[u] == 1}
    positional = {k for u, k in zip(ids, keys, strict=True) if not (u and counts[u] == 1)}
    assert not real & positional
    assert all(k[0] == "#" and k[1].isdigit() for k in positional)
    assert not any(k[:1] == "#" and k[1:2].isdigit() for k in real)


class CountingIds(Sequence[str | None]):
    """A list of ids that counts how many elements anyone reads: quadratic code reads n² of them."""

    def __init__(self, ids: list[str | None]) -> None:
        self.ids = ids
        self.reads = 0

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, i: int) -> str | None: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str | None]: ...
    def __getitem__(self, i: int | slice) -> Any:
        self.reads += 1 if isinstance(i, int) else len(self.ids[i])
        return self.ids[i]

    def __iter__(self) -> Iterator[str | None]:
        for uid in self.ids:
            self.reads += 1
            yield uid

    def count(self, value: Any) -> int:
        self.reads += len(self.ids)
        return self.ids.count(value)


def test_keys_read_each_id_a_constant_number_of_times() -> None:
    # 100,000 users (a tenth without an id, a tenth repeated): the old scheme read ~10^10 ids here
    n = 100_000
    ids = CountingIds([None if i % 10 == 0 else f"u{i % 90_000}" for i in range(n)])
    keys = record_keys(ids)
    assert len(set(keys)) == n
    assert ids.reads <= 2 * n


# --------------------------------------------------------------------------- the journal


def test_open_drops_a_torn_line_and_failures_and_rewrites_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"key": "a", "v": 1}\n{"key": "b", "error": "boom"}\n\n[1, 2]\n{"v": 3}\n{"key": "c", "v": 3}\n{"key": "d", "v'
    )
    with Journal(path) as journal:
        assert set(journal.done) == {"a", "c"} and journal.done["c"] == {"key": "c", "v": 3}
        assert path.read_text() == '{"key": "a", "v": 1}\n{"key": "c", "v": 3}\n'
        assert journal.todo(["a", "b", "c", "d"], [1, 2, 3, 4]) == [("b", 2), ("d", 4)]
        journal.write({"key": "b", "v": "ü"})
    assert path.read_text(encoding="utf-8").endswith('{"key": "b", "v": "ü"}\n')
    _, bad = read_journal(path)
    assert bad == 0


def test_keep_decides_what_counts_as_done(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl_atomic(path, [{"case": "x", "status": "error"}, {"case": "y", "status": "ok"}])
    with Journal(path, key_field="case", keep=lambda r: True) as journal:
        assert set(journal.done) == {"x", "y"}
    with Journal(path, key_field="case", keep=lambda r: r["status"] == "ok") as journal:
        assert set(journal.done) == {"y"}
    assert [r["case"] for r in lines(path)] == ["y"]


def test_a_later_line_for_a_key_wins(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a", "v": 1}\n{"key": "a", "v": 2}\n')
    with Journal(path) as journal:
        assert journal.done == {"a": {"key": "a", "v": 2}}
    assert lines(path) == [{"key": "a", "v": 2}]


def test_no_path_journals_nothing() -> None:
    with Journal(None) as journal:
        assert journal.todo(["a"], [1]) == [("a", 1)]
        journal.write({"key": "a"})


def test_ctrl_c_between_records_leaves_every_line_valid(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with pytest.raises(KeyboardInterrupt), Journal(path) as journal:
        for key, n in journal.todo(["a", "b", "c"], [1, 2, 3]):
            if n == 3:
                raise KeyboardInterrupt
            journal.write({"key": key, "n": n})
    assert lines(path) == [{"key": "a", "n": 1}, {"key": "b", "n": 2}]


def test_writes_from_many_threads_are_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    big = "x" * 20_000
    with Journal(path) as journal:
        threads = [
            threading.Thread(target=lambda t=t: [journal.write({"key": f"{t}-{i}", "pad": big}) for i in range(25)])
            for t in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    rows = lines(path)
    assert len(rows) == 200 and len({r["key"] for r in rows}) == 200 and all(r["pad"] == big for r in rows)


@settings(max_examples=40, deadline=None)
@given(IDS)
def test_a_finished_batch_reruns_as_a_no_op_for_any_ids(ids: list[str | None]) -> None:
    histories = [History(user_id=u, history=[], candidates=[{"item_id": "a"}]) for u in ids]

    def rank(h: History) -> Ranking:
        return Ranking(user_id=h.user_id, ranking=[RankedItem(item_id="a", rank=1, score=1.0)])

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.jsonl"
        first = rank_batch(rank, histories, out=out)
        again = rank_batch(rank, histories, out=out)
        assert (first.ranked, again.ranked, again.skipped) == (len(ids), 0, len(ids))
        assert [r["key"] for r in lines(out)] == batch_keys(histories)
        assert [r["user_id"] for r in lines(out)] == [h.user_id for h in histories]


@settings(max_examples=80, deadline=None)
@given(IDS)
def test_streamed_keys_are_the_record_keys_for_any_ids(ids: list[str | None]) -> None:
    # a batch read twice (ids, then histories) must key users exactly as the in-memory batch did,
    # or resuming a file written by either would redo or lose users
    repeated = repeated_ids(iter(ids))
    assert [stream_key(i, uid, repeated) for i, uid in enumerate(ids)] == record_keys(ids)


# --------------------------------------------------------------------------- atomic writes


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_jsonl_atomic(path, [{"a": 1}])

    def broken() -> Iterator[dict[str, int]]:
        yield {"a": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_jsonl_atomic(path, broken())
    assert lines(path) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["r.jsonl"]  # no temporary file left behind
    with pytest.raises(ValueError, match="one line"):
        write_jsonl_atomic(path, ['{"a":\n1}'])


def test_written_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        mode = stat.S_IMODE(write_text_atomic(tmp_path / "sub" / "page.html", "<p>").stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o644 and (tmp_path / "sub" / "page.html").read_text() == "<p>"


def test_undecodable_and_too_deep_lines_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"key": "a"}\n\xff\xfe{"key": "b"}\n' + b"[" * 100_000 + b"\n" + b'{"key": "c"}\n')
    found, bad = read_journal(path)
    assert sorted(found) == ["a", "c"] and bad == 2
    with Journal(path) as journal:
        assert sorted(journal.done) == ["a", "c"]
    assert path.read_text() == '{"key": "a"}\n{"key": "c"}\n'


def test_unicode_line_separators_stay_inside_their_line(tmp_path: Path) -> None:
    from msrkit.datasets import write_catalog
    from msrkit.inputs.io import load_catalog, read_records

    odd = "a\u2028b\u2029c\x85d"
    path = tmp_path / "items.jsonl"
    write_catalog(path, [Item(item_id="x", title=odd), Item(item_id="y", title="plain")])
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # escaped: safe for any line splitter
    assert load_catalog(path)["x"].title == odd
    raw = tmp_path / "foreign.jsonl"  # written by another tool that leaves them raw
    raw.write_text(json.dumps({"item_id": "x", "title": odd}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [rec["title"] for _, rec in read_records(raw)] == [odd]
