"""Interactions as columns: read in chunks, never one Python object per row.

:class:`Interactions` holds ``users``/``items`` as integer codes into
``user_ids``/``item_ids`` and ``ts`` as float64 (NaN where a row has no
timestamp). :func:`read_interactions` fills it from ``.jsonl``, ``.csv`` or
``.parquet`` (with ``pyarrow``, the ``msrkit[parquet]`` extra), validating each
row with the same rules and messages as :func:`msrkit.inputs.io.load_interactions`
(file, line and field of the first bad row).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MissingDependencyError
from ..inputs.io import Interaction, csv_records, interaction_from, open_data, read_records, text_lines

__all__ = ["Interactions", "as_columns", "read_interactions"]

#: JSONL lines parsed at once
CHUNK_LINES = 20_000
#: Parquet rows read at once
PARQUET_BATCH_ROWS = 1_000_000


@dataclass
class Interactions:
    """One row per interaction, in file order, as numpy columns of codes."""

    user_ids: list[str]
    item_ids: list[str]
    users: np.ndarray
    items: np.ndarray
    ts: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @classmethod
    def from_rows(cls, rows: Iterable[Interaction]) -> Interactions:
        """Columns from :class:`~msrkit.inputs.io.Interaction` rows (tests, small data)."""
        codes = _Codes()
        for row in rows:
            codes.add(row.user_id, row.item_id, row.timestamp)
        return codes.done()

    def rows(self) -> Iterator[Interaction]:
        """The rows again, as objects (for small data and tests)."""
        for u, i, t in zip(self.users.tolist(), self.items.tolist(), self.ts.tolist(), strict=True):
            yield Interaction(self.user_ids[u], self.item_ids[i], None if t != t else t)

    def keep(self, mask: np.ndarray) -> Interactions:
        """The rows where ``mask`` is true (the code tables are kept whole)."""
        return Interactions(self.user_ids, self.item_ids, self.users[mask], self.items[mask], self.ts[mask])


class _Codes:
    """Accumulates rows into compact arrays, giving each new user and item the next code."""

    def __init__(self) -> None:
        self.user_code: dict[str, int] = {}
        self.item_code: dict[str, int] = {}
        self.users = array("q")
        self.items = array("q")
        self.ts = array("d")

    def add(self, user: str, item: str, ts: float | None) -> None:
        u = self.user_code.setdefault(user, len(self.user_code))
        i = self.item_code.setdefault(item, len(self.item_code))
        self.users.append(u)
        self.items.append(i)
        self.ts.append(np.nan if ts is None else ts)

    def done(self) -> Interactions:
        return Interactions(
            list(self.user_code), list(self.item_code),
            np.frombuffer(self.users, dtype=np.int64).copy(), np.frombuffer(self.items, dtype=np.int64).copy(),
            np.frombuffer(self.ts, dtype=np.float64).copy(),
        )  # fmt: skip


def read_interactions(path: str | Path) -> Interactions:
    """Interactions from ``.jsonl`` / ``.json``, ``.csv`` or ``.parquet`` (``user_id``, ``item_id``, ``timestamp``).

    Every format goes through the same gate (:func:`msrkit.inputs.io.open_data`): a regular file only (a
    FIFO or a device is an error naming the file, never a hang or an endless read), lines bounded.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return _parquet(p)
    if suffix == ".csv":
        return _csv(p)
    return _jsonl(p)


def _jsonl(p: Path) -> Interactions:
    codes = _Codes()
    with open_data(p) as fh:
        head = fh.read(1)
    if head == b"[":  # a JSON list: small files only are written that way
        for where, obj in read_records(p):
            _add(codes, obj, f"{p}:{where.removeprefix('line ')}")
        return codes.done()
    chunk: list[str] = []
    start = 1
    for n, line in text_lines(p):
        chunk.append(line)
        if len(chunk) == CHUNK_LINES:
            _jsonl_chunk(codes, chunk, start, p)
            chunk, start = [], n + 1
    _jsonl_chunk(codes, chunk, start, p)
    return codes.done()


def _jsonl_chunk(codes: _Codes, lines: list[str], first: int, p: Path) -> None:
    """Add a chunk of JSONL lines (``first``: the number of the first). Plain rows (string ids, a
    number or no timestamp) go straight into the columns; anything else through the validator of
    :func:`msrkit.inputs.io.interaction_from`, whose error names the file, line and field."""
    numbered = [(first + j, line) for j, line in enumerate(lines) if line.strip()]
    loads = json.loads
    try:
        records = [loads(line) for _, line in numbered]
    except ValueError:  # row by row, so the error names the first bad line, whatever is wrong with it
        for n, line in numbered:
            _add(codes, _loads(line, f"{p}:{n}"), f"{p}:{n}")
        return
    for (n, _), rec in zip(numbered, records, strict=True):
        if type(rec) is dict:
            u, i, t = rec.get("user_id"), rec.get("item_id"), rec.get("timestamp")
            if type(u) is str and type(i) is str and u and i and (t is None or type(t) in (int, float)):
                codes.add(u, i, None if t is None else float(t))
                continue
        _add(codes, rec, f"{p}:{n}")


def _loads(line: str, source: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as exc:
        raise InputError(f"not valid JSON: {exc}", source=source) from None


def _add(codes: _Codes, rec: Any, source: str) -> None:
    row = interaction_from(rec, source=source)
    codes.add(row.user_id, row.item_id, row.timestamp)


def _csv(p: Path) -> Interactions:
    codes = _Codes()
    for source, rec in csv_records(p, (line for _, line in text_lines(p))):
        _add(codes, rec, source)
    return codes.done()


def _parquet(p: Path) -> Interactions:
    """Read a batch of rows at a time into preallocated columns: each batch's ids are
    dictionary-encoded by Arrow and its dictionary mapped onto the running codes, so no Python
    object is made per row."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "parquet", "reading Parquet interactions") from None
    with open_data(p) as fh:
        try:
            pf = pq.ParquetFile(fh)
        except Exception as exc:  # noqa: BLE001 - any pyarrow failure is a bad input file
            raise InputError(f"not a Parquet file: {exc}", source=str(p)) from None
        columns = _parquet_columns(pf.schema_arrow, p)
        try:
            return _parquet_batches(pf, columns, p)
        except pa.ArrowException as exc:  # a file damaged past its footer
            raise InputError(f"cannot read as Parquet: {exc}", source=str(p)) from None


def _parquet_columns(schema: Any, p: Path) -> list[str]:
    """The columns to read; an id column that is not text or an integer (a list, a struct...) is an error naming it."""
    import pyarrow as pa

    names = schema.names
    for key in ("user_id", "item_id"):
        if key not in names:
            raise InputError(f"column '{key}' required: add it", source=str(p), path=key)
        kind = schema.field(key).type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind)):
            raise InputError(f"column '{key}' is of type {kind}: ids must be text or integers", source=str(p),
                             path=key)  # fmt: skip
    if "timestamp" in names and pa.types.is_nested(schema.field("timestamp").type):
        raise InputError(f"column 'timestamp' is of type {schema.field('timestamp').type}: give numbers",
                         source=str(p), path="timestamp")  # fmt: skip
    return ["user_id", "item_id"] + (["timestamp"] if "timestamp" in names else [])


def _parquet_batches(pf: Any, columns: list[str], p: Path) -> Interactions:
    import pyarrow.compute as pc

    n = pf.metadata.num_rows
    codes: dict[str, dict[str, int]] = {"user_id": {}, "item_id": {}}
    out = {"user_id": np.empty(n, np.int64), "item_id": np.empty(n, np.int64), "timestamp": np.full(n, np.nan)}
    at = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        end = at + batch.num_rows
        if end > n:
            raise InputError(f"holds more rows than its footer says ({n})", source=str(p))
        for name in ("user_id", "item_id"):
            col = pc.dictionary_encode(pc.cast(batch.column(name), "string"))
            words = col.dictionary.to_pylist()
            if col.null_count or "" in words:
                raise InputError(f"column '{name}' has empty values: fill them", source=str(p), path=name)
            table = codes[name]
            mapping = np.fromiter((table.setdefault(w, len(table)) for w in words), dtype=np.int64, count=len(words))
            out[name][at:end] = mapping[col.indices.to_numpy(zero_copy_only=False)]
        if "timestamp" in columns:
            try:
                out["timestamp"][at:end] = pc.cast(batch.column("timestamp"), "float64").to_numpy(zero_copy_only=False)
            except Exception as exc:  # noqa: BLE001 - a timestamp column that is not numeric
                raise InputError(f"timestamps are not numbers: {exc}", source=str(p), path="timestamp") from None
        at = end
    return Interactions(list(codes["user_id"]), list(codes["item_id"]), out["user_id"], out["item_id"],
                        out["timestamp"])  # fmt: skip


def as_columns(interactions: Interactions | Sequence[Interaction]) -> Interactions:
    """``interactions`` as columns (rows are converted once)."""
    return interactions if isinstance(interactions, Interactions) else Interactions.from_rows(interactions)
