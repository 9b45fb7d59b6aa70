"""Writing catalogs, interactions and cases as JSONL (atomically, through :mod:`msrkit.jobs.runs`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..data import History, Item
from ..inputs.io import Interaction
from ..jobs.runs import write_jsonl_atomic
from .splits import leave_one_out

__all__ = ["write_catalog", "write_dataset", "write_jsonl"]


def _dump(record: BaseModel | Mapping[str, Any]) -> str:
    if isinstance(record, BaseModel):
        data = record.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        if isinstance(record, History) and record.target is not None:
            data["target"] = record.target
        return json.dumps(data, ensure_ascii=False)
    return json.dumps(dict(record), ensure_ascii=False)


def write_jsonl(path: str | Path, records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
    """Write records one per line, atomically (a temporary file, then ``os.replace``); returns the count.

    pydantic models are written without unset defaults and ``None`` fields, so
    they read back equal.
    """
    return write_jsonl_atomic(path, (_dump(record) for record in records))


def write_catalog(path: str | Path, catalog: Mapping[str, Item] | Iterable[Item]) -> int:
    """Write a catalog as ``items.jsonl`` (atomic); returns the number of items."""
    items = catalog.values() if isinstance(catalog, Mapping) else catalog
    return write_jsonl(path, items)


def write_dataset(
    out: str | Path,
    catalog: Mapping[str, Item],
    interactions: Sequence[Interaction],
    *,
    negatives: int = 20,
    seed: int = 0,
    max_history: int = 50,
) -> dict[str, int]:
    """``items.jsonl``, ``interactions.jsonl`` and leave-one-out ``cases.jsonl`` in ``out``; returns the counts."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_catalog(folder / "items.jsonl", catalog)
    rows = ({"user_id": i.user_id, "item_id": i.item_id, "timestamp": i.timestamp} for i in interactions)
    write_jsonl(folder / "interactions.jsonl", rows)
    cases = leave_one_out(catalog, interactions, negatives=negatives, seed=seed, max_history=max_history)
    write_jsonl(folder / "cases.jsonl", cases)
    return {"items": len(catalog), "interactions": len(interactions), "cases": len(cases)}
