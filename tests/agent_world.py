"""A small movie world for the agent's tests: a catalog, interactions of a few users, and their histories.

Sequences follow genres (sci-fi fans go on to sci-fi, comedy fans to comedy),
so similar users and catalog search find something definite. Every ranking an
agent returns is checked by :func:`assert_valid`.
"""

from __future__ import annotations

from typing import Any

from msrkit.data import Item, Ranking
from msrkit.inputs.io import Interaction

MOVIES = [
    ("1", "Star Voyage", "Sci-Fi|Adventure", 12.0), ("2", "Galaxy Quest Return", "Sci-Fi|Comedy", 9.0),
    ("3", "Moon Base", "Sci-Fi|Drama", 14.0), ("4", "Robot Dawn", "Sci-Fi|Action", 11.0),
    ("5", "Laugh Track", "Comedy", 5.0), ("6", "Office Party", "Comedy|Romance", 6.0),
    ("7", "Wedding Crashers Two", "Comedy|Romance", 7.0), ("8", "Haunted Manor", "Horror", 8.0),
    ("9", "Deep Space Nine Lives", "Sci-Fi|Horror", 10.0), ("10", "Quiet River", "Drama", 4.0),
    ("11", "Mars Colony", "Sci-Fi|Adventure", 13.0), ("12", "Stand-up Night", "Comedy", 3.0),
    ("13", "Asteroid Miners", "Sci-Fi|Action", 15.0), ("14", "Family Picnic", "Comedy|Family", 2.0),
    ("15", "Nebula Dreams", "Sci-Fi|Romance", 9.5), ("16", "Courtroom", "Drama", 6.5),
]  # fmt: skip

SEQUENCES = {
    "a": ["1", "3", "11", "13"], "b": ["1", "4", "11", "9"], "c": ["3", "11", "13", "15"],
    "d": ["5", "6", "7", "12"], "e": ["5", "12", "14", "6"], "f": ["6", "7", "14", "2"],
    "g": ["8", "9", "10", "16"], "h": ["1", "11", "13", "4"],
}  # fmt: skip


def catalog() -> dict[str, Item]:
    return {i: Item(item_id=i, title=t, attributes={"genres": g, "price": p}) for i, t, g, p in MOVIES}


def interactions() -> list[Interaction]:
    return [Interaction(u, i, float(n)) for u, seq in SEQUENCES.items() for n, i in enumerate(seq)]


def history(*, candidates: bool = True) -> dict[str, Any]:
    """User ``u0`` who watched sci-fi; with ``candidates``, ten to rank (the fixed mode of evaluation)."""
    out: dict[str, Any] = {"user_id": "u0", "history": ["1", "3"]}
    if candidates:
        out["candidates"] = ["5", "11", "13", "8", "2", "10", "15", "12", "4", "9"]
    return out


def assert_valid(ranking: Ranking, given: dict[str, Any], known: dict[str, Item]) -> None:
    """A valid Ranking: catalog items only, no duplicates, ranks 1..n, a permutation of given candidates."""
    ids = ranking.item_ids()
    assert ids, "an empty ranking"
    assert len(ids) == len(set(ids)), f"duplicates in {ids}"
    assert all(i in known for i in ids), f"invented ids in {ids}"
    assert [r.rank for r in ranking.ranking] == list(range(1, len(ids) + 1))
    if "candidates" in given:
        assert sorted(ids) == sorted(given["candidates"]), "not a permutation of the candidates"
    else:
        assert not set(ids) & set(given["history"]), "a seen item recommended"
