"""Interactions as columns: the same rows, errors and leakage rule as row objects, without an object per row."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from msrkit.data import History
from msrkit.errors import InputError
from msrkit.inputs.io import Interaction, load_interactions
from msrkit.retrieval import Interactions, build, interactions_before, query, read_interactions
from msrkit.retrieval import interactions as interactions_module


def _rows(n: int, seed: int) -> list[Interaction]:
    rng = random.Random(seed)
    return [
        Interaction(f"u{rng.randrange(30)}", f"i{rng.randrange(40)}", rng.choice([None, float(rng.randrange(100))]))
        for _ in range(n)
    ]


def _write(tmp_path: Path, rows: list[Interaction], suffix: str) -> Path:
    path = tmp_path / f"inter{suffix}"
    if suffix == ".csv":
        lines = ["user_id,item_id,timestamp"] + [
            f"{r.user_id},{r.item_id},{'' if r.timestamp is None else r.timestamp}" for r in rows
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r.__dict__) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_columns_hold_exactly_the_rows_of_the_file(tmp_path: Path, suffix: str) -> None:
    rows = _rows(500, seed=1)
    path = _write(tmp_path, rows, suffix)
    cols = read_interactions(path)
    assert list(cols.rows()) == rows  # file order, every row, timestamps kept or None
    assert sorted(load_interactions(path), key=repr) == sorted(rows, key=repr)  # the row reader agrees
    assert cols.users.dtype == np.int64 and len(cols.user_ids) == len({r.user_id for r in rows})


def test_parquet_reads_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = _rows(300, seed=2)
    table = pa.table({"user_id": [r.user_id for r in rows], "item_id": [r.item_id for r in rows],
                      "timestamp": [r.timestamp for r in rows]})  # fmt: skip
    pq.write_table(table, tmp_path / "x.parquet", row_group_size=64)
    assert list(read_interactions(tmp_path / "x.parquet").rows()) == rows
    monkeypatch.setattr(interactions_module, "PARQUET_BATCH_ROWS", 7)  # ids met again in later batches
    assert list(read_interactions(tmp_path / "x.parquet").rows()) == rows
    pq.write_table(pa.table({"user_id": ["a"], "item": ["b"]}), tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="column 'item_id' required"):
        read_interactions(tmp_path / "bad.parquet")


@pytest.mark.parametrize(
    ("content", "where"),
    [
        ('{"user_id": "a", "item_id": "b"}\n{"user_id": "a"}\n', ":2: item_id: field 'item_id' required"),
        ('{"user_id": "a", "item_id": "b", "timestamp": "soon"}\n', ":1: timestamp: timestamp 'soon'"),
        ('{"user_id": "a", "item_id": "b"}\n{oops\n', ":2: not valid JSON"),
    ],
)
def test_a_bad_row_is_named_by_file_line_and_field(tmp_path: Path, content: str, where: str) -> None:
    path = tmp_path / "i.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_interactions(path)
    assert str(caught.value).startswith(str(path) + where)


def test_an_index_from_columns_equals_one_from_rows() -> None:
    rows = _rows(800, seed=3)
    a, b = build(rows), build(Interactions.from_rows(rows))
    assert a.user_ids == b.user_ids and a.item_ids == b.item_ids
    np.testing.assert_array_equal(a.seq_items, b.seq_items)
    seen = ["i1", "i2", "i3"]
    assert (
        query(a, seen, n=10, context_k=0, support=False).candidates
        == query(b, seen, n=10, context_k=0, support=False).candidates
    )


def test_the_leakage_rule_is_the_same_on_columns_and_rows() -> None:
    rows = _rows(600, seed=4)
    rng = random.Random(5)
    cases = []
    for u in range(0, 30, 3):
        case = History(user_id=f"u{u}", history=[], target=f"i{rng.randrange(40)}")
        if u % 2:
            case = History.model_validate({**case.model_dump(), "target_timestamp": float(rng.randrange(100))})
        cases.append(case)
    by_rows = interactions_before(rows, cases)
    by_columns = interactions_before(Interactions.from_rows(rows), cases)
    assert list(by_columns.rows()) == by_rows
    assert len(by_rows) < len(rows)  # something was cut


def test_jsonl_chunks_keep_line_numbers_and_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interactions_module, "CHUNK_LINES", 3)
    rows = _rows(40, seed=4)
    lines = [json.dumps({"user_id": r.user_id, "item_id": r.item_id, "timestamp": r.timestamp}) for r in rows]
    lines.insert(5, "")  # a blank line is skipped, and still counted
    path = tmp_path / "i.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert list(read_interactions(path).rows()) == rows
    lines[7] = '{"user_id": "a", "item_id": 7}'  # not a string id: the validator takes it as "7"
    lines[9] = '{"user_id": "a"}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_interactions(path)
    assert str(caught.value).startswith(f"{path}:10: item_id: field 'item_id' required")
