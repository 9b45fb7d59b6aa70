"""Loaders and the leave-one-out split, on the real MovieLens-100k shipped in the recbole wheel."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest

from msrkit.data import History, HistoryEntry, Item
from msrkit.datasets import (
    leave_one_out,
    load_amazon,
    load_csv,
    load_movielens_100k,
    load_recbole,
    movielens_100k_dir,
    write_catalog,
    write_jsonl,
)
from msrkit.errors import InputError, MissingDependencyError
from msrkit.inputs.io import Interaction, load_catalog, load_histories, resolve

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("recbole") is None, reason="needs: pip install --no-deps recbole"
)


@pytest.fixture(scope="module")
def ml100k() -> tuple[dict[str, Item], list[Interaction]]:
    return load_movielens_100k()


@pytest.fixture(scope="module")
def cases(ml100k: tuple[dict[str, Item], list[Interaction]]) -> list[History]:
    catalog, interactions = ml100k
    return leave_one_out(catalog, interactions, negatives=20, seed=0)


def _by_user(interactions: list[Interaction]) -> dict[str, list[Interaction]]:
    out: dict[str, list[Interaction]] = defaultdict(list)
    for row in interactions:
        out[row.user_id].append(row)
    return out


# --------------------------------------------------------------------------- MovieLens-100k


def test_movielens_has_the_published_sizes(ml100k: tuple[dict[str, Item], list[Interaction]]) -> None:
    catalog, interactions = ml100k
    assert (movielens_100k_dir() / "ml-100k.inter").is_file()
    assert len(catalog) == 1682
    assert len(interactions) == 100_000
    assert len({r.user_id for r in interactions}) == 943


def test_movielens_items_have_titles_and_genre_lists(ml100k: tuple[dict[str, Item], list[Interaction]]) -> None:
    catalog, _ = ml100k
    toy_story = catalog["1"]
    assert toy_story.title == "Toy Story"
    assert toy_story.attributes["genres"] == ["Animation", "Children's", "Comedy"]
    assert toy_story.attributes["release_year"] == "1995"
    assert all(item.title for item in catalog.values())


def test_interactions_are_time_ordered_per_user(ml100k: tuple[dict[str, Item], list[Interaction]]) -> None:
    _, interactions = ml100k
    for rows in _by_user(interactions).values():
        times = [r.timestamp for r in rows]
        assert times == sorted(times)  # type: ignore[type-var]


def test_leave_one_out_gives_one_case_per_user_with_21_candidates(cases: list[History]) -> None:
    assert len(cases) == 943
    for case in cases:
        ids = case.candidates or []
        assert len(ids) == 21
        assert len(set(map(str, ids))) == 21
        assert case.target in ids


def test_target_is_the_last_interaction_and_history_precedes_it(
    ml100k: tuple[dict[str, Item], list[Interaction]], cases: list[History]
) -> None:
    _, interactions = ml100k
    rows = _by_user(interactions)
    for case in cases:
        user_rows = rows[case.user_id or ""]
        assert case.target == user_rows[-1].item_id
        target_time = case.model_extra["target_timestamp"]  # type: ignore[index]
        assert target_time == user_rows[-1].timestamp
        history = [e for e in case.history if isinstance(e, HistoryEntry)]
        assert len(history) == len(case.history) == min(50, len(user_rows) - 1)
        assert all(e.timestamp is not None and e.timestamp <= target_time for e in history)
        # exactly the interactions just before the target, oldest first
        assert [e.item_id for e in history] == [r.item_id for r in user_rows[:-1][-50:]]


def test_negatives_are_items_the_user_never_took(
    ml100k: tuple[dict[str, Item], list[Interaction]], cases: list[History]
) -> None:
    catalog, interactions = ml100k
    seen = {u: {r.item_id for r in rows} for u, rows in _by_user(interactions).items()}
    for case in cases:
        negatives = [c for c in case.candidates or [] if c != case.target]
        assert len(negatives) == 20
        assert all(isinstance(c, str) and c in catalog and c not in seen[case.user_id or ""] for c in negatives)


def test_split_is_deterministic_for_a_seed_and_changes_with_it(
    ml100k: tuple[dict[str, Item], list[Interaction]], cases: list[History]
) -> None:
    catalog, interactions = ml100k
    again = leave_one_out(catalog, interactions, negatives=20, seed=0)
    assert [c.model_dump() for c in again] == [c.model_dump() for c in cases]
    other = leave_one_out(catalog, interactions, negatives=20, seed=1)
    assert [c.candidates for c in other] != [c.candidates for c in cases]
    # the target does not always sit at the same position
    positions = {(c.candidates or []).index(c.target) for c in cases}  # type: ignore[arg-type]
    assert len(positions) > 10


def test_cases_round_trip_through_jsonl_and_resolve(
    tmp_path: Path, ml100k: tuple[dict[str, Item], list[Interaction]], cases: list[History]
) -> None:
    catalog, _ = ml100k
    path = tmp_path / "cases.jsonl"
    assert write_jsonl(path, cases[:20]) == 20
    back = load_histories(path)
    assert [b.model_dump() for b in back] == [c.model_dump() for c in cases[:20]]
    resolved = resolve(back[0], catalog)
    assert resolved.items()[0].title == catalog[resolved.items()[0].item_id].title
    assert {c.item_id for c in resolved.candidate_items()} == set(map(str, back[0].candidates or []))
    assert write_catalog(tmp_path / "items.jsonl", catalog) == 1682
    assert load_catalog(tmp_path / "items.jsonl")["1"] == catalog["1"]


def test_inline_cases_embed_catalog_items(ml100k: tuple[dict[str, Item], list[Interaction]]) -> None:
    catalog, interactions = ml100k
    case = leave_one_out(catalog, interactions[:2000], inline=True)[0]
    assert all(isinstance(c, Item) and c.title for c in case.candidates or [])
    assert all(isinstance(e, HistoryEntry) and e.title and e.timestamp for e in case.history)


# --------------------------------------------------------------------------- small files: options and errors


def test_missing_recbole_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps recbole"):
        movielens_100k_dir()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_recbole_error_names_file_line_and_field(tmp_path: Path) -> None:
    _write(tmp_path / "toy.inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t10\nu1\ti2\tsoon\n")
    with pytest.raises(InputError) as err:
        load_recbole(tmp_path)
    assert "toy.inter:3" in str(err.value) and "timestamp" in str(err.value) and "soon" in str(err.value)


def test_recbole_field_count_and_header_errors(tmp_path: Path) -> None:
    _write(tmp_path / "a.inter", "user_id:token\titem_id:token\nu1\ti1\textra\n")
    with pytest.raises(InputError, match=r"a\.inter:2.*3 fields"):
        load_recbole(tmp_path, "a")
    _write(tmp_path / "b.inter", "user_id:token\titem_id:int\n")
    with pytest.raises(InputError, match=r"b\.inter:1.*item_id:int"):
        load_recbole(tmp_path, "b")


def test_recbole_without_item_file_and_ties_keep_file_order(tmp_path: Path) -> None:
    _write(tmp_path / "t.inter", "user_id:token\titem_id:token\ttimestamp:float\nu\tb\t5\nu\ta\t5\nu\tc\t1\n")
    catalog, rows = load_recbole(tmp_path, "t")
    assert sorted(catalog) == ["a", "b", "c"]
    assert [r.item_id for r in rows] == ["c", "b", "a"]


def test_load_amazon_both_generations(tmp_path: Path) -> None:
    reviews = _write(
        tmp_path / "reviews.jsonl",
        '{"reviewerID": "U1", "asin": "A1", "unixReviewTime": 20}\n'
        '{"user_id": "U1", "parent_asin": "P2", "asin": "X", "timestamp": 10}\n'
        '{"reviewerID": "U2", "asin": "A3", "unixReviewTime": 5}\n',
    )
    meta = _write(
        tmp_path / "meta.jsonl",
        json.dumps({"asin": "A1", "title": "Mug", "description": ["Big", "blue"], "imageURL": ["http://x/1.jpg"]})
        + "\n"
        + json.dumps(
            {
                "parent_asin": "P2",
                "title": "Pen",
                "description": "Writes.",
                "images": [{"thumb": "t.jpg", "large": "l.jpg", "hi_res": None}, {"large": "l2.jpg"}],
                "store": "Acme",
            }
        )
        + "\n"
        + "{'asin': 'A3', 'title': 'Old dump line'}\n",
    )
    catalog, rows = load_amazon(reviews, meta)
    assert [(r.user_id, r.item_id) for r in rows] == [("U2", "A3"), ("U1", "P2"), ("U1", "A1")]
    assert catalog["A1"].description == "Big blue" and catalog["A1"].image == "http://x/1.jpg"
    assert catalog["P2"].image == "l.jpg"
    assert catalog["P2"].attributes == {"store": "Acme", "images": ["l.jpg", "l2.jpg"]}
    assert catalog["A3"].title == "Old dump line"


def test_load_amazon_error_names_line(tmp_path: Path) -> None:
    reviews = _write(tmp_path / "r.jsonl", '{"reviewerID": "U1", "asin": "A1"}\n{"reviewerID": "U1"}\n')
    with pytest.raises(InputError, match=r"r\.jsonl:2.*asin"):
        load_amazon(reviews)


def test_load_csv_with_own_column_names(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.csv", "uid;iid;when\n1;a;30\n1;b;10\n2;a;\n")
    with pytest.raises(InputError, match=r"x\.csv:1.*no column 'user'"):
        load_csv(path, user_column="user", delimiter=";")
    rows = load_csv(path, user_column="uid", item_column="iid", time_column="when", delimiter=";")
    assert [(r.user_id, r.item_id, r.timestamp) for r in rows] == [("1", "a", 30.0), ("1", "b", 10.0), ("2", "a", None)]


def test_leave_one_out_small_options() -> None:
    catalog = {i: Item(item_id=i) for i in "abcdefg"}
    rows = [Interaction("u", x, t) for t, x in enumerate("abcd")] + [Interaction("short", "a", 1.0)]
    (case,) = leave_one_out(catalog, rows, negatives=10, max_history=2, min_history=2)
    assert case.user_id == "u" and case.target == "d"
    assert [e.item_id for e in case.history if isinstance(e, HistoryEntry)] == ["b", "c"]
    assert sorted(map(str, case.candidates or [])) == ["d", "e", "f", "g"]  # only 3 unseen items exist


def test_write_jsonl_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}])

    def broken() -> object:
        yield {"a": 2}
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_jsonl(path, broken())  # type: ignore[arg-type]
    assert path.read_text() == '{"a": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
