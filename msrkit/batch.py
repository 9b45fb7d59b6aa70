"""Ranking many users into one JSONL file: incremental, resumable, one user's failure never loses the others.

Each line is one user's outcome, written and flushed as soon as it exists:
``{"key": ..., **Ranking}`` on success, ``{"key", "user_id", "error", "error_type"}``
on failure. A rerun with ``resume=True`` keeps the lines already there (a torn
last line from a killed process is dropped) and ranks only the rest; failed
users are tried again. Ctrl-C stops between users with every line kept valid.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import History, Ranking
from .errors import BackendError, InputError

__all__ = ["BatchSummary", "rank_batch", "batch_keys"]

log = logging.getLogger("msrkit")

#: Errors that belong to one user (bad entry, backend failure) and so must not stop the batch.
PER_USER_ERRORS = (InputError, BackendError)


@dataclass
class BatchSummary:
    keys: list[str] = field(default_factory=list)
    ranked: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[tuple[str, BaseException]] = field(default_factory=list)


def batch_keys(histories: Sequence[History]) -> list[str]:
    """A stable key per history: its user_id, or ``#index`` when missing or repeated."""
    ids = [h.user_id for h in histories]
    return [u if u and ids.count(u) == 1 else f"#{i}" for i, u in enumerate(ids)]


def _done_keys(path: Path) -> dict[str, str]:
    """Lines to keep by key (successful ones only); the file is rewritten to hold exactly them."""
    kept: dict[str, str] = {}
    if path.exists():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s:%d: torn line dropped; that user will be ranked again", path, n)
                continue
            if isinstance(rec, dict) and "key" in rec and "error" not in rec:
                kept[str(rec["key"])] = line
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept.values()), encoding="utf-8")
    os.replace(tmp, path)
    return kept


def rank_batch(
    rank: Callable[[History], Ranking],
    histories: Sequence[History],
    *,
    out: str | Path | None = None,
    resume: bool = True,
    on_result: Callable[[str, Ranking | BaseException], None] | None = None,
) -> BatchSummary:
    """Rank every history; with ``out``, append one JSON line per user as it finishes."""
    summary = BatchSummary()
    path = Path(out) if out is not None else None
    done: dict[str, str] = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        done = _done_keys(path) if resume else {}
        if not resume:
            path.write_text("", encoding="utf-8")
    fh = path.open("a", encoding="utf-8") if path is not None else None
    try:
        summary.keys = batch_keys(histories)
        for key, history in zip(summary.keys, histories, strict=True):
            if key in done:
                summary.skipped += 1
                continue
            _rank_one(rank, key, history, fh, summary, on_result)
    finally:
        if fh is not None:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
    return summary


def _rank_one(
    rank: Callable[[History], Ranking],
    key: str,
    history: History,
    fh: Any,
    summary: BatchSummary,
    on_result: Callable[[str, Ranking | BaseException], None] | None,
) -> None:
    outcome: Ranking | BaseException
    try:
        outcome = rank(history)
        record: dict[str, Any] = {"key": key, **outcome.model_dump(mode="json")}
        summary.ranked += 1
    except PER_USER_ERRORS as exc:
        outcome = exc
        record = {"key": key, "user_id": history.user_id, "error": str(exc), "error_type": type(exc).__name__}
        summary.failed += 1
        summary.errors.append((key, exc))
    if fh is not None:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
    if on_result is not None:
        on_result(key, outcome)
