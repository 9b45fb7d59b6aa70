"""Reading msrkit's data files, with errors that say which file, which line, which field.

- ``history.json``: one user object, a JSON list of them, or a ``.jsonl`` of them.
- ``items.jsonl``: the catalog, one item per line (a JSON list also works).
- ``interactions.jsonl`` / ``.csv``: ``user_id, item_id[, timestamp]`` rows.

Only regular files are read: a FIFO, a device or a folder is an error naming
the file, never a read that blocks or never ends.
Histories and catalogs may also be Parquet (``.parquet``, see :mod:`msrkit.inputs.columnar`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, ValidationError

from ..data import History, HistoryEntry, Item
from ..errors import InputError
from .files import MAX_LINE_BYTES, NotReadable, lines, open_regular, read_regular

__all__ = [
    "Interaction",
    "interaction_from",
    "iter_histories",
    "load_histories",
    "load_catalog",
    "load_interactions",
    "parse_history",
    "resolve",
    "read_records",
    "iter_records",
    "stream_records",
    "record_source",
    "open_data",
    "text_lines",
    "csv_records",
]


@dataclass(frozen=True)
class Interaction:
    user_id: str
    item_id: str
    timestamp: float | None = None


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _validation_message(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    first = exc.errors()[0]
    # pydantic reports union members as extra loc parts ("HistoryEntry", "str"): drop them
    loc = [p for p in first["loc"] if not (isinstance(p, str) and (p[:1].isupper() or p in ("str", "function-after")))]
    path = prefix + ("." if prefix and loc and not isinstance(loc[0], int) else "") + _loc(loc)
    msg = first["msg"]
    if first["type"] == "missing":
        msg = "field required: add it"
    more = len(exc.errors()) - 1
    return path or "(top level)", msg + (f" (and {more} more problem(s))" if more else "")


def validate(model: type[BaseModel], data: Any, *, source: str, path: str = "") -> Any:
    """``model.model_validate(data)`` with an :class:`InputError` naming source and path."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        where, msg = _validation_message(exc, path)
        raise InputError(msg, source=source, path=where) from None


def read_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(location, object)`` from a JSON file (object or list) or a JSONL file."""
    p = Path(path)
    text = read_text(p)
    stripped = text.lstrip()
    if p.suffix == ".jsonl" or (stripped and stripped[0] == "{" and "\n{" in text.strip() and not _is_json(text)):
        for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): U+2028 may sit inside a string
            if not line.strip():
                continue
            yield f"line {n}", _json_line(line, source=f"{p}:{n}")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=f"{p}:{exc.lineno}:{exc.colno}") from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", source=str(p)) from None
    if isinstance(data, list):
        for i, obj in enumerate(data):
            yield f"[{i}]", obj
    else:
        yield "", data


def _unreadable(path: Path, exc: NotReadable) -> InputError:
    return InputError("no such file" if exc.why == "does not exist" else exc.why, source=str(path))


def read_text(path: Path) -> str:
    """A data file's UTF-8 text: a regular file only (a FIFO or device is an error, never a hang)."""
    try:
        data = read_regular(path)
    except NotReadable as exc:
        raise _unreadable(path, exc) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8", source=str(path)) from None


@contextmanager
def open_data(path: Path) -> Iterator[BinaryIO]:
    """A data file opened for streaming (Parquet, line by line): a regular file only, an error naming it otherwise."""
    try:
        with open_regular(path) as fh:
            yield fh
    except NotReadable as exc:
        raise _unreadable(path, exc) from None


def text_lines(path: Path, *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 data file, read as a stream: each line bounded, errors naming the line."""
    with open_data(path) as fh:
        n = 0
        try:
            for n, raw in enumerate(lines(fh, max_bytes=max_bytes), 1):  # noqa: B007 - n names a bad line
                yield n, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            why = f"not UTF-8 text (byte {exc.start}): save the file as UTF-8"
            raise InputError(why, source=f"{path}:{n}") from None
        except NotReadable as exc:
            raise InputError(exc.why, source=str(path)) from None


def csv_records(path: Path, text: Iterable[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """``(source, row)`` of a CSV with a header; a row with more or fewer fields than the header is an error naming it.

    ``text``: the file's lines, line breaks kept (:func:`text_lines`). (``csv.DictReader`` would fill
    a missing field with ``None``: a row ``u1,1690000000`` under ``user_id,item_id,timestamp``
    would make the timestamp an item id.)
    """
    reader = csv.reader(text)
    try:
        header = next(reader, [])
        for row in reader:
            if not row:
                continue
            source = f"{path}:{reader.line_num}"
            if len(row) != len(header):
                raise InputError(f"{len(row)} field(s) where the header has {len(header)} ({', '.join(header)}): "
                                 "give every column (an empty value is allowed)", source=source)  # fmt: skip
            yield source, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        raise InputError(f"not valid CSV: {exc}", source=f"{path}:{reader.line_num}") from None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def iter_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """``(location, object)`` like :func:`read_records`, or the rows of a ``.parquet`` file (``msrkit[parquet]``)."""
    if Path(path).suffix.lower() == ".parquet":
        from .columnar import parquet_records

        return parquet_records(path)
    return read_records(path)


def record_source(path: Path, where: str) -> tuple[str, str]:
    """``(source, path inside it)`` for a record of :func:`iter_records`: a line or row is part of the source."""
    if where.startswith("line "):
        return f"{path}:{where.removeprefix('line ')}", ""
    if where.startswith("row "):
        return f"{path}:{where}", ""
    return str(path), where


def parse_history(data: Any, *, source: str = "<history>", where: str = "") -> History:
    """Validate one history object."""
    if not isinstance(data, dict):
        raise InputError("expected a JSON object with 'history' and 'candidates'", source=source, path=where or None)
    return validate(History, data, source=source, path=where)  # type: ignore[no-any-return]


def load_histories(path: str | Path) -> list[History]:
    """One or many histories from ``history.json``, a JSON list, a ``.jsonl`` or a ``.parquet`` histories table."""
    return list(iter_histories(path))


def iter_histories(path: str | Path) -> Iterator[History]:
    """The histories of :func:`load_histories` one at a time; a ``.jsonl`` is read a line at a time.

    So a batch over a JSONL file holds one history in memory, whatever the
    number of users (a JSON list is parsed whole, as JSON must be).
    """
    p = Path(path)
    base = p.resolve().parent
    empty = True
    for where, obj in stream_records(p):
        src, inner = record_source(p, where)
        h = parse_history(obj, source=src, where=inner)
        empty = False
        yield h.with_base_dir(base, source=src + (f" {where}" if where.startswith("[") else ""))
    if empty:
        raise InputError("holds no history", source=str(p))


def stream_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    """:func:`iter_records`, but a ``.jsonl`` file is read a line at a time instead of whole."""
    p = Path(path)
    if p.suffix.lower() != ".jsonl":
        yield from iter_records(p)
        return
    try:
        fh = open_regular(p)
    except NotReadable as exc:
        raise InputError("no such file" if exc.why == "does not exist" else exc.why, source=str(p)) from None
    with fh:
        for n, raw in enumerate(fh, 1):  # bytes split at b"\n" only: U+2028 may sit inside a string
            if raw.strip():
                yield f"line {n}", _json_line(raw, source=f"{p}:{n}")


def _json_line(raw: bytes | str, *, source: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start}): save the file as UTF-8", source=source) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", source=source) from None


def load_catalog(path: str | Path) -> dict[str, Item]:
    """The catalog (JSON, JSONL or a ``.parquet`` items table) as ``{item_id: Item}``; a repeated id is an error."""
    p = Path(path)
    catalog: dict[str, Item] = {}
    for where, obj in iter_records(p):
        src, inner = record_source(p, where)
        if not isinstance(obj, dict):
            raise InputError("expected an item object with 'item_id'", source=src, path=where or None)
        item = validate(Item, obj, source=src, path=inner)
        if item.item_id in catalog:
            raise InputError(f"item_id '{item.item_id}' appears twice in the catalog", source=src)
        catalog[item.item_id] = item
    return catalog


def _merge(base: Item, override: Mapping[str, Any]) -> dict[str, Any]:
    data = base.model_dump(exclude_none=True)
    for key, value in override.items():
        if key == "attributes":
            data["attributes"] = {**data.get("attributes", {}), **value}
        elif value is not None:
            data[key] = value
    return data


def resolve(history: History, catalog: Mapping[str, Item] | None = None, *, source: str | None = None) -> History:
    """Replace bare ids with catalog items and fill missing fields of inline items from the catalog.

    Raises :class:`InputError` for an id neither inline nor in the catalog, for
    empty candidates and for a target that is not a candidate.
    """
    catalog = catalog or {}
    source = source or history.source or "<history>"
    entries: list[HistoryEntry | str] = []
    for i, entry in enumerate(history.history):
        entries.append(_resolve_one(entry, catalog, HistoryEntry, source, f"history[{i}]"))
    candidates: list[Item | str] | None = None
    if history.candidates is not None:
        if not history.candidates:
            raise InputError(
                "empty list: give at least one candidate, or leave 'candidates' out to generate them from a catalog",
                source=source,
                path="candidates",
            )
        candidates = [
            _resolve_one(c, catalog, Item, source, f"candidates[{i}]") for i, c in enumerate(history.candidates)
        ]
        ids = [c.item_id for c in candidates if isinstance(c, Item)]
        dup = {x for x, n in Counter(ids).items() if n > 1}
        if dup:
            raise InputError(f"candidate id(s) {sorted(dup)} appear more than once", source=source, path="candidates")
        if history.target is not None and history.target not in ids:
            raise InputError(f"target '{history.target}' is not among the candidates", source=source, path="target")
    out = history.model_copy(update={"history": entries, "candidates": candidates})
    return out.with_base_dir(history.base_dir, source=history.source)


def _resolve_one(entry: Any, catalog: Mapping[str, Item], cls: type[Item], source: str, path: str) -> Any:
    if isinstance(entry, str):
        if entry not in catalog:
            hint = (
                "it is not in the catalog"
                if catalog
                else "give the item inline or pass a catalog (--catalog items.jsonl)"
            )
            raise InputError(f"unknown item id '{entry}': {hint}", source=source, path=path)
        return validate(cls, catalog[entry].model_dump(), source=source, path=path)
    if entry.item_id in catalog:
        return validate(
            cls, _merge(catalog[entry.item_id], entry.model_dump(exclude_unset=True)), source=source, path=path
        )
    return entry if isinstance(entry, cls) else validate(cls, entry.model_dump(), source=source, path=path)


def load_interactions(path: str | Path) -> list[Interaction]:
    """Interactions from ``.jsonl`` or ``.csv`` (columns user_id, item_id, timestamp optional).

    Sorted by timestamp per user where timestamps are given (stable: file order breaks ties).
    """
    p = Path(path)
    rows: list[Interaction] = []
    if p.suffix.lower() == ".csv":
        for source, rec in csv_records(p, (line for _, line in text_lines(p))):
            rows.append(interaction_from(rec, source=source))
    else:
        for where, obj in read_records(p):
            rows.append(interaction_from(obj, source=f"{p}:{where.removeprefix('line ')}"))
    return sorted(rows, key=lambda r: (r.timestamp is None, r.timestamp or 0.0)) if _all_timed(rows) else rows


def _all_timed(rows: list[Interaction]) -> bool:
    return bool(rows) and all(r.timestamp is not None for r in rows)


def interaction_from(rec: Any, *, source: str) -> Interaction:
    """One validated interaction row (an error names the source line and the field)."""
    if not isinstance(rec, dict):
        raise InputError("expected an object with user_id and item_id", source=source)
    for key in ("user_id", "item_id"):
        if rec.get(key) in (None, ""):
            raise InputError(f"field '{key}' required: add it", source=source, path=key)
    ts = rec.get("timestamp")
    if ts in ("", None):
        ts_value = None
    else:
        try:
            ts_value = float(ts)
        except (TypeError, ValueError):
            raise InputError(f"timestamp '{ts}' is not a number", source=source, path="timestamp") from None
    return Interaction(str(rec["user_id"]), str(rec["item_id"]), ts_value)
