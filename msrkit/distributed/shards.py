"""A run's output folder: deterministic shards, each complete or absent.

``DIR/_manifest.json`` says what the folder holds (the command, the format,
the shard size, the number of records and a digest of their keys). Shard
``n`` holds records ``[n * shard_size, (n + 1) * shard_size)`` of the input,
in input order, as ``DIR/part-0000n.jsonl`` (or ``.parquet``). A shard is
written to a temporary name and renamed into place once all its records are
there, so a shard file that exists is complete: a killed run leaves only
complete shards (and temporary files, removed by the next run). The same
input and shard size always give the same shards.

A record is one user's line of ``msrkit rank --out`` (``{"key", **Ranking}``
or an error) or one enriched item; in a Parquet shard, its rows of
:mod:`msrkit.inputs.columnar`. A rerun skips complete shards and re-runs only the
failed records of the others (errors, items left without keywords).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..escape import ENCODE_ERRORS
from ..jobs.runs import write_jsonl_atomic, write_text_atomic

__all__ = ["FORMATS", "Kind", "Layout", "MANIFEST", "open_layout"]

MANIFEST = "_manifest.json"  # "_": Parquet readers (pyarrow, Spark, Ray) skip it when reading the folder
FORMATS = ("jsonl", "parquet")
Record = dict[str, Any]
Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Kind:
    """What a run makes, and how its records and table rows convert (see :mod:`msrkit.inputs.columnar`)."""

    name: str
    key: Callable[[Mapping[str, Any]], str]  # of a record or a row
    record: Callable[[Rows], Record]  # one key's output rows -> its record
    rows: Callable[[Record], Rows]  # a record -> its table rows
    schema: Callable[[], Any]  # of a Parquet shard
    failed: Callable[[Record], bool]  # a record a rerun tries again
    expected: Callable[[Mapping[str, Any]], int]  # how many output rows one key has, from any of them


@dataclass(frozen=True)
class Layout:
    """Where a run's shards are and which records each holds."""

    out: Path
    kind: Kind
    fmt: str
    shard_size: int
    keys: Sequence[str]

    @property
    def shards(self) -> int:
        return -(-len(self.keys) // self.shard_size)

    def span(self, shard: int) -> range:
        """Positions (in the input) of the records of ``shard``."""
        return range(shard * self.shard_size, min((shard + 1) * self.shard_size, len(self.keys)))

    def path(self, shard: int) -> Path:
        return self.out / f"part-{shard:05d}.{self.fmt}"

    def complete(self) -> list[int]:
        """The shards whose file exists (and so is complete)."""
        return [n for n in range(self.shards) if self.path(n).exists()]

    def read(self, shard: int) -> dict[str, Record]:
        """The records of a complete shard, by key."""
        path = self.path(shard)
        if self.fmt == "jsonl":
            from ..inputs.io import read_records

            return {self.kind.key(rec): rec for _, rec in read_records(path)}
        from ..inputs.columnar import read_table

        grouped: dict[str, Rows] = {}
        for row in read_table(path):
            grouped.setdefault(self.kind.key(row), []).append(row)
        return {key: self.kind.record(rows) for key, rows in grouped.items()}

    def write(self, shard: int, records: Mapping[str, Record]) -> None:
        """Write ``shard`` from its records (by key) in input order, atomically."""
        ordered = [records[self.keys[i]] for i in self.span(shard)]
        if self.fmt == "jsonl":
            write_jsonl_atomic(self.path(shard), ordered)
            return
        from ..inputs.columnar import write_table

        write_table(self.path(shard), (row for rec in ordered for row in self.kind.rows(rec)), self.kind.schema())


def _digest(keys: Sequence[str]) -> str:
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode("utf-8", ENCODE_ERRORS) + b"\n")
    return h.hexdigest()


def open_layout(out: str | Path, *, kind: Kind, fmt: str, shard_size: int, keys: Sequence[str]) -> Layout:
    """The layout of ``out`` for these records: its manifest is written, or checked against them.

    A folder made by an earlier run over the same records keeps that run's
    shard size. One made by another command, format or input is a
    :class:`~msrkit.errors.ConfigError` (its results are never mixed in).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    root = Path(out)
    wanted = {"command": kind.name, "format": fmt, "records": len(keys), "keys_sha256": _digest(keys)}
    manifest = root / MANIFEST
    if manifest.exists():
        found = _read_manifest(manifest)
        differs = [k for k, v in wanted.items() if found.get(k) != v]
        if differs:
            raise ConfigError(
                f"{root} holds the output of another run (its {', '.join(differs)} differ): "
                "give another --out, or remove that folder to start afresh"
            )
        shard_size = int(found["shard_size"])
    else:
        root.mkdir(parents=True, exist_ok=True)
        _write_json(manifest, {"msrkit": 1, **wanted, "shard_size": shard_size})
    for stale in root.glob(".part-*.tmp"):  # left by a killed run
        stale.unlink(missing_ok=True)
    return Layout(root, kind, fmt, shard_size, keys)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}): remove the folder to start afresh") from None
    if not isinstance(found, dict) or not isinstance(found.get("shard_size"), int):
        raise ConfigError(f"{path} is not an msrkit manifest: remove the folder to start afresh")
    return found


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1))
