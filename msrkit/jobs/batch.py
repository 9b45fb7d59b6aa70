"""Ranking many users into one JSONL file: incremental, resumable, one user's failure never loses the others.

Each line is one user's outcome, written and flushed as soon as it exists:
``{"key": ..., **Ranking}`` on success, ``{"key", "user_id", "error", "error_type"}``
on failure. Keys are :func:`msrkit.jobs.runs.record_keys` of the user ids (unique
even for missing, repeated or ``#``-shaped ids). A rerun with ``resume=True``
keeps the lines already there (a torn last line from a killed process is
dropped) and ranks only the rest; failed users are tried again. Ctrl-C stops
between users with every line kept valid. The file is a
:class:`msrkit.jobs.runs.Journal`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import History, Ranking
from ..errors import BackendError, InputError
from ..escape import json_data
from ..inputs.io import iter_histories
from .runs import Journal, record_keys, repeated_ids, stream_key

__all__ = ["BatchSummary", "rank_batch", "batch_keys", "HistoryFile"]

log = logging.getLogger("msrkit")

#: Errors that belong to one user (bad entry, backend failure) and so must not stop the batch.
PER_USER_ERRORS = (InputError, BackendError)


@dataclass
class BatchSummary:
    """What a batch did: the counts, and the errors of the users that failed."""

    ranked: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, BaseException]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Every user of the input: ranked, failed or already done."""
        return self.ranked + self.skipped + self.failed


def batch_keys(histories: Sequence[History]) -> list[str]:
    """A stable, unique key per history (see :func:`msrkit.jobs.runs.record_keys`)."""
    return record_keys([h.user_id for h in histories])


class HistoryFile:
    """The histories of a file as ``(key, history)`` pairs, streamed: the keys of :func:`batch_keys`, in flat memory.

    Opening reads the file once for the user ids (only a 64-bit hash of each
    is held, to find repeated ids; :func:`msrkit.jobs.runs.repeated_ids`) and counts
    them; iterating reads it again, one history at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self.repeated = repeated_ids(self._ids())

    def _ids(self) -> Iterator[str | None]:
        for history in iter_histories(self.path):
            self.count += 1
            yield history.user_id

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, History]]:
        for i, history in enumerate(iter_histories(self.path)):
            yield stream_key(i, history.user_id, self.repeated), history


def rank_batch(
    rank: Callable[[History], Ranking],
    histories: Sequence[History] | Iterable[tuple[str, History]],
    *,
    out: str | Path | None = None,
    resume: bool = True,
    on_result: Callable[[str, Ranking | BaseException], None] | None = None,
) -> BatchSummary:
    """Rank every history; with ``out``, append one JSON line per user as it finishes.

    ``histories`` is a sequence of histories (keyed by :func:`batch_keys`) or
    an iterable of ``(key, history)`` pairs such as a :class:`HistoryFile`,
    consumed one at a time: each ranking is written and dropped before the
    next history is read, so memory does not grow with the batch.
    ``on_result(key, ranking_or_error)`` is called after the user's line is written.
    """
    pairs = _pairs(histories)
    summary = BatchSummary()
    with Journal(out, resume=resume) as journal:
        done = set(journal.done)
        journal.done.clear()  # only the keys are needed to resume
        for key, history in pairs:
            if key in done:
                summary.skipped += 1
                continue
            outcome, record = _rank_one(rank, key, history, summary)
            journal.write(record)
            if on_result is not None:
                on_result(key, outcome)
    if summary.skipped:
        log.info("resumed %s: %d done before, %d ranked now", out, summary.skipped, summary.ranked + summary.failed)
    return summary


def _pairs(histories: Sequence[History] | Iterable[tuple[str, History]]) -> Iterable[tuple[str, History]]:
    if isinstance(histories, Sequence):
        return zip(batch_keys(histories), histories, strict=True)
    return histories


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
