"""Interactions from a CSV with configurable column names."""

from __future__ import annotations

import csv
from pathlib import Path

from ..errors import InputError
from ..inputs.io import Interaction
from ._files import decoding, float_or_none, open_text, time_ordered

__all__ = ["load_csv"]


def load_csv(
    path: str | Path,
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
    time_column: str | None = "timestamp",
    delimiter: str = ",",
) -> list[Interaction]:
    """Interactions from a CSV whose column names you choose; the time column may be absent."""
    p = Path(path)
    rows = []
    with decoding(p), open_text(p) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        for col in (user_column, item_column):
            if col not in header:
                raise InputError(f"no column '{col}' (the header has {header})", source=f"{p}:1")
        timed = time_column is not None and time_column in header
        for n, rec in enumerate(reader, 2):
            src = f"{p}:{n}"
            for col in (user_column, item_column):
                if not rec.get(col):
                    raise InputError(f"field '{col}' is empty", source=src, path=col)
            ts = float_or_none(rec.get(time_column) or None, src) if timed and time_column else None
            rows.append(Interaction(str(rec[user_column]), str(rec[item_column]), ts))
    return time_ordered(rows)
