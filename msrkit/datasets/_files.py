"""What the loaders share: opening text (gzip or not), decoding errors as input errors, time order, bare items."""

from __future__ import annotations

import csv
import gzip
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..data import Item
from ..errors import InputError
from ..inputs.io import Interaction

log = logging.getLogger("msrkit")


@contextmanager
def decoding(path: Path) -> Iterator[None]:
    """Turn decoding failures met while reading ``path`` into input errors."""
    try:
        yield
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text: save the file as UTF-8", source=str(path)) from None
    except csv.Error as exc:
        raise InputError(f"not valid CSV: {exc}", source=str(path)) from None
    except (OSError, EOFError) as exc:  # a truncated or invalid .gz
        raise InputError(f"cannot read: {exc}", source=str(path)) from None


def open_text(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError("no such file", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None


def time_ordered(rows: list[Interaction]) -> list[Interaction]:
    """Stable sort by timestamp when every row has one; otherwise file order is the order."""
    if rows and all(r.timestamp is not None for r in rows):
        return sorted(rows, key=lambda r: r.timestamp or 0.0)
    return rows


def add_bare_items(catalog: dict[str, Item], interactions: Iterable[Interaction], *, source: str) -> None:
    added = 0
    for row in interactions:
        if row.item_id not in catalog:
            catalog[row.item_id] = Item(item_id=row.item_id)
            added += 1
    if added:
        log.warning("%s: %d interacted item(s) have no metadata; added with their id only", source, added)


def float_or_none(value: Any, source: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"timestamp '{value}' is not a number", source=source, path="timestamp") from None
