"""Ranking many users into one JSONL file: incremental, resumable, one user's failure never loses the others.

Each line is one user's outcome, written and flushed as soon as it exists:
``{"key": ..., **Ranking}`` on success, ``{"key", "user_id", "error", "error_type"}``
on failure. Keys are :func:`msrkit.runs.record_keys` of the user ids (unique
even for missing, repeated or ``#``-shaped ids). A rerun with ``resume=True``
keeps the lines already there (a torn last line from a killed process is
dropped) and ranks only the rest; failed users are tried again. Ctrl-C stops
between users with every line kept valid. The file is a
:class:`msrkit.runs.Journal`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import History, Ranking
from .errors import BackendError, InputError
from .escape import json_data
from .runs import Journal, record_keys

__all__ = ["BatchSummary", "rank_batch", "batch_keys"]

log = logging.getLogger("msrkit")

#: Errors that belong to one user (bad entry, backend failure) and so must not stop the batch.
PER_USER_ERRORS = (InputError, BackendError)


@dataclass
class BatchSummary:
    """What a batch did: each history's key (in input order) and the counts."""

    keys: list[str] = field(default_factory=list)
    ranked: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, BaseException]] = field(default_factory=list)


def batch_keys(histories: Sequence[History]) -> list[str]:
    """A stable, unique key per history (see :func:`msrkit.runs.record_keys`)."""
    return record_keys([h.user_id for h in histories])


def rank_batch(
    rank: Callable[[History], Ranking],
    histories: Sequence[History],
    *,
    out: str | Path | None = None,
    resume: bool = True,
    on_result: Callable[[str, Ranking | BaseException], None] | None = None,
) -> BatchSummary:
    """Rank every history; with ``out``, append one JSON line per user as it finishes.

    ``on_result(key, ranking_or_error)`` is called after the user's line is written.
    """
    summary = BatchSummary(keys=batch_keys(histories))
    with Journal(out, resume=resume) as journal:
        todo = journal.todo(summary.keys, histories)
        summary.skipped = len(histories) - len(todo)
        for key, history in todo:
            outcome, record = _rank_one(rank, key, history, summary)
            journal.write(record)
            if on_result is not None:
                on_result(key, outcome)
    return summary


def _rank_one(
    rank: Callable[[History], Ranking], key: str, history: History, summary: BatchSummary
) -> tuple[Ranking | BaseException, dict[str, Any]]:
    try:
        ranking = rank(history)
    except PER_USER_ERRORS as exc:
        summary.failed += 1
        summary.errors.append((key, exc))
        return exc, {"key": key, "user_id": history.user_id, "error": str(exc), "error_type": type(exc).__name__}
    summary.ranked += 1
    return ranking, {"key": key, **json_data(ranking)}
