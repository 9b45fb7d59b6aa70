"""Loading histories, catalogs and interactions: formats and the errors a user sees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msrkit.data import History, Item
from msrkit.errors import InputError
from msrkit.inputs.io import iter_histories, load_catalog, load_histories, load_interactions, resolve

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "history.json"


def write(path: Path, data: object) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_example_history_loads_and_resolves() -> None:
    [h] = load_histories(EXAMPLE)
    h = resolve(h)
    assert h.user_id == "ml100k-7"
    assert len(h.items()) == 8 and len(h.candidate_items()) == 10
    assert h.base_dir == EXAMPLE.parent
    assert h.items()[0].attributes["genres"] == ["Drama"]


def test_unknown_item_keys_are_kept_in_attributes() -> None:
    item = Item.model_validate({"item_id": 7, "title": "T", "price": 3.5, "attributes": {"a": 1}})
    assert item.item_id == "7"
    assert item.attributes == {"a": 1, "price": 3.5}


def test_invalid_json_names_file_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path / "h.json", '{"history": [\n  {"item_id": "a",}\n]}')
    with pytest.raises(InputError) as err:
        load_histories(p)
    assert f"{p}:2:" in str(err.value) and "invalid JSON" in str(err.value)


def test_missing_item_id_names_the_json_path(tmp_path: Path) -> None:
    p = write(tmp_path / "h.json", {"history": [{"item_id": "a"}, {"title": "no id"}], "candidates": ["a"]})
    with pytest.raises(InputError) as err:
        load_histories(p)
    assert "history[1].item_id" in str(err.value)
    assert "field required" in str(err.value)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    p = write(tmp_path / "users.jsonl", '{"history": ["a"], "candidates": ["a"]}\n{"history": [{"title": 1}]}\n')
    with pytest.raises(InputError) as err:
        load_histories(p)
    assert f"{p}:2" in str(err.value)


def test_many_users_from_a_json_list(tmp_path: Path) -> None:
    p = write(tmp_path / "h.json", [{"user_id": 1, "history": ["a"]}, {"user_id": "u2", "history": []}])
    hs = load_histories(p)
    assert [h.user_id for h in hs] == ["1", "u2"]


def test_bare_ids_resolve_through_the_catalog(tmp_path: Path) -> None:
    cat = write(
        tmp_path / "items.jsonl",
        '{"item_id": "a", "title": "Alpha", "image": "a.jpg"}\n{"item_id": "b", "title": "Beta"}\n',
    )
    catalog = load_catalog(cat)
    h = History.model_validate({"history": ["a", {"item_id": "b", "timestamp": 5}], "candidates": ["a", "b"]})
    r = resolve(h, catalog)
    assert [e.title for e in r.items()] == ["Alpha", "Beta"]
    assert r.items()[1].timestamp == 5
    assert r.candidate_items()[0].image == "a.jpg"


def test_unknown_id_without_catalog_says_what_to_do() -> None:
    h = History.model_validate({"history": ["zz"], "candidates": [{"item_id": "c"}]})
    with pytest.raises(InputError) as err:
        resolve(h, source="h.json")
    msg = str(err.value)
    assert msg.startswith("h.json: history[0]") and "--catalog" in msg


def test_empty_candidates_is_an_error() -> None:
    h = History.model_validate({"history": [], "candidates": []})
    with pytest.raises(InputError, match="candidates"):
        resolve(h)


def test_duplicate_candidates_and_target_not_candidate() -> None:
    with pytest.raises(InputError, match="more than once"):
        resolve(History.model_validate({"candidates": [{"item_id": "a"}, {"item_id": "a"}]}))
    with pytest.raises(InputError, match="target"):
        resolve(History.model_validate({"candidates": [{"item_id": "a"}], "target": "b"}))


def test_catalog_rejects_repeated_ids(tmp_path: Path) -> None:
    p = write(tmp_path / "items.jsonl", '{"item_id": "a"}\n{"item_id": "a"}\n')
    with pytest.raises(InputError, match="twice"):
        load_catalog(p)


def test_interactions_jsonl_and_csv_sorted_by_time(tmp_path: Path) -> None:
    j = write(
        tmp_path / "i.jsonl",
        '{"user_id": 1, "item_id": "b", "timestamp": 20}\n{"user_id": 1, "item_id": "a", "timestamp": 10}\n',
    )
    assert [r.item_id for r in load_interactions(j)] == ["a", "b"]
    c = write(tmp_path / "i.csv", "user_id,item_id\nu,x\nu,y\n")
    assert [(r.user_id, r.item_id, r.timestamp) for r in load_interactions(c)] == [("u", "x", None), ("u", "y", None)]
    bad = write(tmp_path / "bad.csv", "user_id,item_id,timestamp\nu,x,soon\n")
    with pytest.raises(InputError, match="bad.csv:2"):
        load_interactions(bad)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="no such file"):
        load_histories("/nonexistent/history.json")


def test_a_fifo_or_a_device_as_a_data_file_is_an_error_not_a_hang(tmp_path: Path) -> None:
    import os
    import time

    fifo = tmp_path / "history.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputError, match="FIFO") as info:
        load_histories(fifo)
    assert str(fifo) in str(info.value) and time.monotonic() - started < 1.0
    if os.path.exists("/dev/zero"):
        with pytest.raises(InputError, match="character device"):
            load_catalog("/dev/zero")
        with pytest.raises(InputError, match="character device"):
            load_interactions(Path("/dev/zero"))
    (tmp_path / "i.csv").mkdir()
    with pytest.raises(InputError, match="folder"):
        load_interactions(tmp_path / "i.csv")


def test_histories_stream_a_line_at_a_time(tmp_path: Path) -> None:
    # issue 21: a batch reads one history at a time; a bad line fails where it is, after the good ones
    good = {"user_id": "u\u2028x", "history": ["a"], "candidates": ["a"]}
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(good, ensure_ascii=False) + "\n\n" + json.dumps({**good, "user_id": "v"}) + "\n{oops\n",
                    encoding="utf-8")  # fmt: skip
    stream = iter_histories(path)
    assert [next(stream).user_id, next(stream).user_id] == ["u\u2028x", "v"]
    with pytest.raises(InputError, match="invalid JSON") as info:
        next(stream)
    assert f"{path}:4" in str(info.value)
