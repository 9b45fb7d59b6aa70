"""Results files that survive a crash: one atomic writer and one resumable JSONL journal.

Batch ranking (:func:`msrkit.jobs.batch.rank_batch`), evaluation
(:func:`msrkit.evaluation.evaluate`) and catalog summaries
(:func:`msrkit.summaries.catalog.summarize_catalog` with ``out``) write their
results through a :class:`Journal`:

- every record has a stable, unique key (:func:`record_keys` for users);
- opening the journal keeps the lines already done, drops a torn last line (a
  killed process) and the records its ``keep`` rule rejects (failures, to be
  retried), and rewrites the file atomically to hold exactly the kept lines;
- each finished record is appended as one ``write`` of a whole line and
  flushed, so Ctrl-C or a kill between records leaves every line valid;
- a failure is a line too (by convention it has an ``"error"`` field), so a
  finished run says what went wrong, and the next run tries it again.

:func:`write_jsonl_atomic` and :func:`write_text_atomic` replace a whole file in
one step (a temporary file in the same folder, fsync, ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

from ..escape import ENCODE_ERRORS, escape_surrogates, to_json

__all__ = [
    "Journal",
    "read_journal",
    "record_keys",
    "replacing",
    "repeated_ids",
    "stream_key",
    "write_jsonl_atomic",
    "write_text_atomic",
]

log = logging.getLogger("msrkit")

T = TypeVar("T")
Record = Mapping[str, Any] | BaseModel | str
Keep = Callable[[dict[str, Any]], bool]

#: Marks a key made from a position (``#3``); a real id starting with it is escaped (``#x`` -> ``##x``).
MARK = "#"


def record_keys(ids: Sequence[str | None]) -> list[str]:
    """A stable, unique key for each position of ``ids`` (user ids), in linear time.

    - an id that occurs once is its own key, except that an id starting with
      ``#`` gets one more in front (``"#1"`` -> ``"##1"``);
    - a missing, empty or repeated id gets its position: ``#3``, or ``#3:u7``
      for a repeated ``u7``.

    A position key starts with ``#`` and a digit, an escaped one with ``##``,
    any other with something else, and the digits after ``#`` end at ``:`` or
    the end, so no two positions ever share a key. Keys depend only on
    ``ids``, so a rerun over the same input finds the same keys.

    >>> record_keys(["a", None, "#1", "b", "b"])
    ['a', '#1', '##1', '#3:b', '#4:b']
    """
    counts = Counter(ids)
    return [_key(i, uid, repeated=counts[uid] > 1) for i, uid in enumerate(ids)]


def _key(i: int, uid: str | None, *, repeated: bool) -> str:
    if uid and not repeated:
        return MARK + uid if uid.startswith(MARK) else uid
    return f"{MARK}{i}:{uid}" if uid else f"{MARK}{i}"


def repeated_ids(ids: Iterable[str | None]) -> frozenset[int]:
    """The hashes (:func:`id_hash`) of the ids that occur more than once, holding 8 bytes per id, not the ids.

    With :func:`stream_key` this gives :func:`record_keys` of a stream read
    twice, in memory that does not grow with the ids' length (two distinct ids
    sharing a 64-bit hash would both get position keys: still unique, just
    not the ids themselves).
    """
    import numpy as np

    hashes = array("q", (id_hash(uid) for uid in ids if uid))
    arr = np.frombuffer(hashes, dtype=np.int64).copy()
    arr.sort()
    return frozenset(arr[1:][arr[1:] == arr[:-1]].tolist())


def stream_key(i: int, uid: str | None, repeated: frozenset[int]) -> str:
    """The :func:`record_keys` key of position ``i``, given :func:`repeated_ids` of all the ids."""
    return _key(i, uid, repeated=bool(uid) and id_hash(uid) in repeated)


def id_hash(uid: str | None) -> int:
    """A signed 64-bit hash of an id, the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b((uid or "").encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


# --------------------------------------------------------------------------- atomic writes


#: Characters ``str.splitlines`` (and so many JSONL readers) breaks lines at, that JSON leaves raw in strings.
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _line(record: Record) -> str:
    """One JSON line; the Unicode line separators inside strings are escaped, so any reader sees one line."""
    if isinstance(record, str):
        text = escape_surrogates(record)
    else:
        text = to_json(record if isinstance(record, BaseModel) else dict(record))
    if "\n" in text or "\r" in text:
        raise ValueError("a JSONL record must be one line")
    if "\u0085" in text or "\u2028" in text or "\u2029" in text:  # rare; translate() is slow on long lines
        text = text.translate(_LINE_BREAKS)
    return text


@contextmanager
def replacing(path: Path) -> Iterator[IO[str]]:
    """A text file that becomes ``path`` in one step when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # created like any new file (the umask applies), unlike mkstemp's 0600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=ENCODE_ERRORS) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace ``path`` with ``text`` in one step: a reader sees the old file or the new one, never a part."""
    target = Path(path)
    with replacing(target) as fh:
        fh.write(text)
    return target


def write_jsonl_atomic(path: str | Path, records: Iterable[Record]) -> int:
    """Replace ``path`` with one JSON line per record, in one step; returns the number of lines.

    A record is a mapping, a pydantic model (``model_dump_json``) or a string
    already holding one JSON line. If writing fails, ``path`` is left as it was.
    """
    count = 0
    with replacing(Path(path)) as fh:
        for record in records:
            fh.write(_line(record) + "\n")
            count += 1
    return count


# --------------------------------------------------------------------------- the journal


def _keep_all_but_errors(record: dict[str, Any]) -> bool:
    return "error" not in record


def read_journal(path: str | Path, *, key_field: str = "key") -> tuple[dict[str, tuple[str, dict[str, Any]]], int]:
    """The records of a JSONL results file by key, each with its line, and how many lines were unreadable.

    A later line for a key replaces an earlier one; a line that is not a JSON
    object with ``key_field`` (a torn write) is skipped with a warning.
    """
    p = Path(path)
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    bad = 0
    if not p.exists():
        return found, bad
    with p.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            line, record = _parse(raw)
            if record is None or not isinstance(record.get(key_field), str):
                if line.strip():
                    bad += 1
                    log.warning("%s:%d: unreadable line (a torn write?): dropped, its record will be redone", p, n)
                continue
            found[record[key_field]] = (line, record)
    return found, bad


def _parse(raw: bytes) -> tuple[str, dict[str, Any] | None]:
    """The line's text and its JSON object (``None`` where it is not one)."""
    try:
        line = raw.decode("utf-8").rstrip("\r\n")
        record = json.loads(line)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return raw.decode("utf-8", "replace"), None
    return line, record if isinstance(record, dict) else None


class Journal:
    """A JSONL results file that a run appends to and a rerun resumes (see the module docstring).

    >>> with Journal("ranked.jsonl") as journal:                      # doctest: +SKIP
    ...     for key, history in journal.todo(keys, histories):
    ...         journal.write({"key": key, **rank(history).model_dump(mode="json")})

    ``path=None`` journals nothing (every item is to do, writes are dropped),
    so callers need no second code path. ``keep`` decides which records found
    on open count as done (default: those without an ``"error"`` field);
    ``resume=False`` starts an empty file. ``write`` may be called from
    several threads.
    """

    def __init__(
        self, path: str | Path | None, *, key_field: str = "key", resume: bool = True, keep: Keep | None = None
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.key_field = key_field
        self.resume = resume
        self.keep = keep or _keep_all_but_errors
        #: The records already done when the journal was opened, by key.
        self.done: dict[str, dict[str, Any]] = {}
        self._fd: int | None = None
        self._lock = threading.Lock()

    def open(self) -> Journal:
        """Keep what is done, rewrite the file to hold exactly that, and open it for appending."""
        if self.path is None or self._fd is not None:
            return self
        kept: dict[str, tuple[str, dict[str, Any]]] = {}
        if self.resume:
            found, _ = read_journal(self.path, key_field=self.key_field)
            kept = {key: entry for key, entry in found.items() if self.keep(entry[1])}
        write_jsonl_atomic(self.path, (line for line, _ in kept.values()))
        self.done = {key: record for key, (_, record) in kept.items()}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        return self

    def todo(self, keys: Sequence[str], items: Sequence[T]) -> list[tuple[str, T]]:
        """The ``(key, item)`` pairs not done yet, in their order (and a log line when resuming)."""
        pending = [(k, item) for k, item in zip(keys, items, strict=True) if k not in self.done]
        if self.path is not None and len(pending) < len(keys):
            log.info("resuming %s: %d done, %d to go", self.path, len(keys) - len(pending), len(pending))
        return pending

    def write(self, record: Record) -> None:
        """Append one record as one line, flushed to the file at once."""
        if self.path is None:
            return
        data = (_line(record) + "\n").encode("utf-8", ENCODE_ERRORS)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"the journal {self.path} is not open")
            view = memoryview(data)
            while view:  # one write() for a whole line; a short write (rare) finishes the line
                view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        """Flush the file to disk and close it (what was written stays; the journal can be opened again)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
