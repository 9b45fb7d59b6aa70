"""Outcome words come from one ``Literal`` each (:mod:`msrkit.outcomes`): the code, the schema text and the docs agree.

A list written out in a docs page or a schema description is checked against ``typing.get_args`` of its type, so
adding an outcome without saying so fails here (``deadline`` was once missing from every list of failures).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from msrkit import errors
from msrkit.data import FAILURES, RankedItem, Ranking, failure_of
from msrkit.inputs.columnar import RANKING_COLUMNS
from msrkit.outcomes import (
    FALLBACK_KINDS,
    SCORE_KIND_NAMES,
    SCORE_METHODS,
    Failure,
    FallbackKind,
    ScoreKind,
    ScoreMethod,
)
from msrkit.ranking.scale import SCORE_KINDS

ROOT = Path(__file__).resolve().parents[1]


def _words(text: str) -> str:
    return " ".join(text.split())


def _backticked_between(path: Path, start: str, end: str) -> tuple[str, ...]:
    """The `backticked` words of ``path`` after ``start`` up to the next ``end`` (whitespace folded)."""
    text = _words(path.read_text(encoding="utf-8"))
    assert start in text, f"{path.name} no longer says {start!r}"
    tail = text.split(start, 1)[1]
    return tuple(re.findall(r"`([^`]+)`", tail.split(end, 1)[0]))


def test_each_list_is_its_literal() -> None:
    assert get_args(Failure) == FAILURES
    assert get_args(ScoreKind) == SCORE_KIND_NAMES
    assert get_args(ScoreMethod) == SCORE_METHODS
    assert get_args(FallbackKind) == FALLBACK_KINDS
    for words in (FAILURES, SCORE_KIND_NAMES, SCORE_METHODS, FALLBACK_KINDS):
        assert len(set(words)) == len(words)


def test_failure_of_maps_each_error_class_to_a_failure_and_reaches_them_all() -> None:
    opened = errors.CircuitOpenError("open", until=0.0, failure="backend_permanent")
    cases = {
        errors.BackendUnavailableError("down"): "backend_unavailable",
        errors.BackendRefusedError("401"): "backend_permanent",
        errors.BackendPermanentError("400"): "backend_permanent",
        errors.BackendTransientError("503"): "backend_transient",
        errors.OutputParseError("?"): "unparseable",
        errors.DeadlineExceededError("late"): "deadline",
        opened: "backend_permanent",
    }
    assert {type(e).__name__: failure_of(e) for e in cases} == {type(e).__name__: f for e, f in cases.items()}
    assert set(cases.values()) == set(FAILURES)


def test_a_ranking_accepts_only_the_listed_words() -> None:
    items = [RankedItem(item_id="a", rank=1, score=1.0)]
    for failure in FAILURES:
        assert Ranking(ranking=items, degraded=True, degraded_by=failure).degraded_by == failure
    for kind in SCORE_KIND_NAMES:
        assert Ranking(ranking=items, score_kind=kind).score_kind == kind
    with pytest.raises(ValidationError, match="degraded_by"):
        Ranking(ranking=items, degraded=True, degraded_by="timeout")
    with pytest.raises(ValidationError, match="score_kind"):
        Ranking(ranking=items, score_kind="borda")


def test_the_parquet_schema_text_lists_them() -> None:
    assert RANKING_COLUMNS["degraded_by"] == f"string: why ({', '.join(FAILURES)})"
    assert f"({', '.join(SCORE_KIND_NAMES)};" in RANKING_COLUMNS["score_kind"]


def test_each_score_kind_has_its_caption_and_the_cli_fails_only_on_listed_failures() -> None:
    from msrkit.cli.rank import FATAL_FAILURES

    assert tuple(SCORE_KINDS) == SCORE_KIND_NAMES
    assert set(FATAL_FAILURES) <= set(FAILURES)


def test_the_docs_list_the_failures() -> None:
    listed = _backticked_between(ROOT / "docs" / "data-formats.md", "`degraded_by` says why a ranking fell back (", ")")
    assert listed == FAILURES


def test_the_docs_list_the_score_kinds() -> None:
    table = (ROOT / "docs" / "scores.md").read_text(encoding="utf-8").split("| `score_kind` | when |", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[2:]
    assert tuple(re.match(r"\| `([^`]+)` \|", row).group(1) for row in rows) == SCORE_KIND_NAMES  # type: ignore[union-attr]
    readme = _backticked_between(ROOT / "README.md", "`score_kind` says what it measures (", ")")
    assert readme == SCORE_KIND_NAMES


def test_the_docs_list_the_agent_fallback_kinds() -> None:
    listed = _backticked_between(ROOT / "docs" / "agent-mcp.md", "--agent` counts):", ".")
    assert listed == FALLBACK_KINDS
