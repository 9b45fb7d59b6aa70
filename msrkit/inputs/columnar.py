"""Parquet in and out: items, histories and rankings as flat Arrow tables (``pip install 'msrkit[parquet]'``).

pyarrow is imported only when a function here runs. Three tables:

- **items** (:data:`ITEM_COLUMNS`): one row per item; ``attributes`` is JSON
  text (any keys, any values), ``keywords`` a list of strings.
- **histories**: ``user_id``, ``history`` and ``candidates`` as lists of item
  structs (``history`` entries with a ``timestamp``), ``target``, and ``extra``
  (JSON text of any other field). A bare item id is written as ``{item_id}``,
  which resolves through the catalog the same way.
- **rankings** (:data:`RANKING_COLUMNS`): one row per ranked item, the
  user-level fields repeated on each of the user's rows, so the table is
  queryable as it is (``WHERE rank <= 10``). A failed user is one row with
  ``error`` set and ``rank`` null. Sum the usage columns over ``rank = 1 OR
  rank IS NULL`` (one row per user).

:func:`read_table` reads any Parquet file as plain rows (for loaders elsewhere,
e.g. interactions); :func:`parquet_records` gives the rows in the shape
msrkit's JSON readers take, for :func:`msrkit.inputs.io.load_catalog` and
:func:`msrkit.inputs.io.load_histories`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data import History, Item, RankedItem, Ranking, Usage
from ..errors import InputError, MissingDependencyError
from ..escape import escape_value, json_data
from ..outcomes import FAILURES, SCORE_KIND_NAMES, listed

__all__ = [
    "ITEM_COLUMNS",
    "RANKING_COLUMNS",
    "error_rows",
    "item_of_row",
    "item_row",
    "record_of_row",
    "rows_of_record",
    "parquet_records",
    "ranking_record",
    "ranking_rows",
    "ranking_schema",
    "item_schema",
    "read_table",
    "write_histories",
    "write_items",
    "write_table",
]

#: The items table: column -> Arrow type (as ``pyarrow`` names it).
ITEM_COLUMNS: dict[str, str] = {
    "item_id": "string",
    "title": "string",
    "description": "string",
    "image": "string",
    "keywords": "list<string>",
    "image_description": "string",
    "attributes": "string (JSON object)",
}

#: The rankings table (one row per ranked item): column -> Arrow type.
RANKING_COLUMNS: dict[str, str] = {
    "key": "string: the user's key in the run (its user_id, or #position where missing or repeated)",
    "user_id": "string",
    "rank": "int32: 1 = best; null on an error row",
    "item_id": "string",
    "title": "string",
    "score": "float64: in [0, 1], higher is better, within this user's ranking (see score_kind)",
    "reason": "string",
    "n_items": "int32: the user's number of ranked items (its rows; 0 on an error row)",
    "degraded": "bool: the order fell back to retrieval",
    "degraded_by": f"string: why ({listed(FAILURES)})",
    "score_kind": f"string: what score measures ({listed(SCORE_KIND_NAMES)}; rank: a stand-in from the order)",
    "backend": "string",
    "preference_summary": "string",
    "warnings": "list<string>",
    "collaborative_context": "list<string>",
    "prompts": "string (JSON object: template name -> id@version#hash)",
    "diagnostics": "string (JSON object)",
    "llm_calls": "int64",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "cache_hits": "int64",
    "seconds": "float64",
    "error": "string: why this user failed (null when ranked)",
    "error_type": "string: the msrkit error class",
}

_USER_FIELDS = (
    "degraded",
    "degraded_by",
    "score_kind",
    "backend",
    "preference_summary",
    "warnings",
    "collaborative_context",
)
_USAGE_FIELDS = ("llm_calls", "prompt_tokens", "completion_tokens", "cache_hits", "seconds")
_ENTRY_FIELDS = (*ITEM_COLUMNS, "timestamp")


def _arrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401  (the submodule the writers use)
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "reading and writing Parquet") from None
    return pyarrow


# --------------------------------------------------------------------------- schemas


def item_schema() -> Any:
    """The Arrow schema of an items table."""
    pa = _arrow()
    return pa.schema([(name, pa.list_(pa.string()) if name == "keywords" else pa.string()) for name in ITEM_COLUMNS])


def _entry_type(pa: Any, *, timed: bool) -> Any:
    fields = [f for f in item_schema()]
    return pa.struct(fields + [pa.field("timestamp", pa.float64())] if timed else fields)


def history_schema() -> Any:
    """The Arrow schema of a histories table."""
    pa = _arrow()
    return pa.schema([
        ("user_id", pa.string()),
        ("history", pa.list_(_entry_type(pa, timed=True))),
        ("candidates", pa.list_(_entry_type(pa, timed=False))),
        ("target", pa.string()),
        ("extra", pa.string()),
    ])  # fmt: skip


def ranking_schema() -> Any:
    """The Arrow schema of a rankings table (see :data:`RANKING_COLUMNS`)."""
    pa = _arrow()
    strings = pa.list_(pa.string())
    types = {"rank": pa.int32(), "n_items": pa.int32(), "score": pa.float64(), "degraded": pa.bool_(),
             "warnings": strings, "collaborative_context": strings, "seconds": pa.float64(),
             **{name: pa.int64() for name in _USAGE_FIELDS[:4]}}  # fmt: skip
    return pa.schema([(name, types.get(name, pa.string())) for name in RANKING_COLUMNS])


# --------------------------------------------------------------------------- rows


def item_row(item: Item) -> dict[str, Any]:
    """One row of the items table."""
    row = item.model_dump(mode="json", include=set(ITEM_COLUMNS))
    row["attributes"] = json.dumps(row["attributes"], ensure_ascii=False) if item.attributes else None
    return row


def _entry_row(entry: Item | str, *, timed: bool) -> dict[str, Any]:
    item = Item(item_id=entry) if isinstance(entry, str) else entry
    row = item_row(item)
    if timed:
        row["timestamp"] = getattr(item, "timestamp", None)
    return row


def history_row(history: History) -> dict[str, Any]:
    """One row of the histories table."""
    extra = history.model_extra or {}
    candidates = history.candidates
    return {
        "user_id": history.user_id,
        "history": [_entry_row(e, timed=True) for e in history.history],
        "candidates": [_entry_row(c, timed=False) for c in candidates] if candidates is not None else None,
        "target": history.target,
        "extra": json.dumps(extra, ensure_ascii=False) if extra else None,
    }


def ranking_rows(key: str, ranking: Ranking) -> list[dict[str, Any]]:
    """The rankings-table rows of one user (one per ranked item)."""
    data = json_data(ranking)
    user: dict[str, Any] = {"key": key, "user_id": ranking.user_id, "n_items": len(ranking.ranking)}
    user.update({name: data[name] for name in _USER_FIELDS})
    user.update(data["usage"])
    user["prompts"] = json.dumps(data["prompts"], ensure_ascii=False)
    user["diagnostics"] = json.dumps(data["diagnostics"], ensure_ascii=False)
    if not ranking.ranking:
        return [user]
    return [{**user, **r} for r in data["ranking"]]


def error_rows(key: str, user_id: str | None, exc: BaseException) -> list[dict[str, Any]]:
    """The one rankings-table row of a user that failed (``error`` and ``error_type`` set)."""
    return [{"key": key, "user_id": user_id, "n_items": 0, "error": str(exc), "error_type": type(exc).__name__}]


def ranking_record(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One user's rows back as the record ``msrkit rank --out`` writes: ``{"key", **Ranking}`` or an error."""
    first = rows[0]
    if first.get("error") is not None:
        return {name: first.get(name) for name in ("key", "user_id", "error", "error_type")}
    ranked = [RankedItem.model_validate({k: r[k] for k in RankedItem.model_fields}) for r in rows if r.get("rank")]
    ranking = Ranking(
        user_id=first.get("user_id"),
        ranking=ranked,
        usage=Usage.model_validate({k: first[k] for k in _USAGE_FIELDS}),
        prompts=json.loads(first["prompts"]),
        diagnostics=json.loads(first["diagnostics"]),
        **{name: first[name] for name in _USER_FIELDS if name in first},
    )
    return {"key": first["key"], **json_data(ranking)}


def rows_of_record(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A record of ``msrkit rank --out`` (a ranking or an error) as rankings-table rows."""
    key = str(record["key"])
    if "error" in record:
        return [{"key": key, "user_id": record.get("user_id"), "n_items": 0, "error": record["error"],
                 "error_type": record.get("error_type")}]  # fmt: skip
    return ranking_rows(key, Ranking.model_validate({k: v for k, v in record.items() if k != "key"}))


# --------------------------------------------------------------------------- reading


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a Parquet file as dicts (nulls as ``None``), optionally only ``columns``.

    A missing file or one that is not Parquet is an :class:`~msrkit.errors.InputError`
    naming the file; so is a column the file lacks.
    """
    pa = _arrow()
    p = Path(path)
    if not p.exists():
        raise InputError("no such file", source=str(p))
    try:
        table = pa.parquet.read_table(p, columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read as Parquet: {exc}", source=str(p)) from None
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def parquet_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(location, object)`` for each row, shaped like a JSON record: nulls dropped, JSON text columns read."""
    for n, row in enumerate(read_table(path), 1):
        yield f"row {n}", record_of_row(row, source=f"{path}:row {n}")


def record_of_row(value: Any, *, source: str = "<row>") -> Any:
    """A row as msrkit's JSON readers take it: nulls dropped, ``attributes`` and ``extra`` JSON text read."""
    if isinstance(value, list):
        return [record_of_row(v, source=source) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: record_of_row(v, source=source) for k, v in value.items() if v is not None}
    for name in ("attributes", "extra"):
        if isinstance(out.get(name), str):
            try:
                out[name] = json.loads(out[name])
            except json.JSONDecodeError as exc:
                raise InputError(f"not a JSON object: {exc.msg}", source=source, path=name) from None
    extra = out.pop("extra", None)
    return {**extra, **out} if isinstance(extra, dict) else out


def item_of_row(row: Mapping[str, Any]) -> Item:
    """The :class:`~msrkit.data.Item` of an items-table row (columns outside :data:`ITEM_COLUMNS` ignored)."""
    return Item.model_validate(record_of_row({k: v for k, v in row.items() if k in ITEM_COLUMNS}))


# --------------------------------------------------------------------------- writing


def write_table(path: str | Path, rows: Iterable[Mapping[str, Any]], schema: Any) -> int:
    """Write ``rows`` as a Parquet file with ``schema``, atomically (a temporary file, then rename)."""
    pa = _arrow()
    data = [dict(r) for r in rows]
    try:
        table = pa.Table.from_pylist(data, schema=schema)
    except UnicodeEncodeError:  # a lone surrogate (an escaped "\ud800" in an input): written as its escape
        table = pa.Table.from_pylist(escape_value(data), schema=schema)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            pa.parquet.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return int(table.num_rows)


def write_items(path: str | Path, items: Iterable[Item]) -> int:
    """Write a catalog as an items table (Parquet); returns the number of items."""
    return write_table(path, (item_row(i) for i in items), item_schema())


def write_histories(path: str | Path, histories: Iterable[History]) -> int:
    """Write histories as a histories table (Parquet); returns the number of histories."""
    return write_table(path, (history_row(h) for h in histories), history_schema())
