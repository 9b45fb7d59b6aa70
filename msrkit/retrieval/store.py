"""Saving and loading a :class:`~.index.CollaborativeIndex`: a manifest, one ``.npz``, two bm25s indexes.

The manifest holds the format version, the blend's weights and knobs
(:class:`~.weights.BlendWeights`) and, for a tuned index, how they were chosen
(:class:`~.weights.TuneResult`). The arrays are read with ``allow_pickle=False`` and the
strings from JSON, so loading an index never runs code from the folder. A missing,
damaged or older index is an :class:`~msrkit.errors.InputError` that says how to rebuild it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..escape import ENCODE_ERRORS
from .bm25 import column_max
from .index import CollaborativeIndex
from .transitions import Transitions
from .weights import BlendWeights, TuneResult

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

FORMAT = "msrkit-collaborative-index"
#: 2: windowed transitions with weights and row sums, the blend's knobs and tuning in the manifest
FORMAT_VERSION = 2
ARRAYS = ("seq_ptr", "seq_items", "seq_ts", "popularity", "kw_ptr", "kw_ids", "text_ptr", "text_ids")
TRANSITIONS = {"trans_ptr": "ptr", "trans_next": "nxt", "trans_weight": "w", "trans_rowsum": "rowsum"}
HINT = "rebuild it with: msrkit index build --interactions F [--catalog F] --out DIR"


def save(idx: CollaborativeIndex, directory: str | Path) -> None:
    """Write ``idx`` to ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(idx, name) for name in ARRAYS}
    arrays.update({name: getattr(idx.transitions, field) for name, field in TRANSITIONS.items()})
    np.savez(d / "arrays.npz", **arrays)
    strings = {"users": idx.user_ids, "items": idx.item_ids, "keywords": idx.keywords,
               "labels": idx.labels, "words": idx.words}  # fmt: skip
    (d / "strings.json").write_text(json.dumps(strings, ensure_ascii=False), encoding="utf-8", errors=ENCODE_ERRORS)
    idx.users_bm25.save(d / "users_bm25", show_progress=False)
    idx.items_bm25.save(d / "items_bm25", show_progress=False)
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "keyword_tokens": idx.keyword_tokens,
                "weights": asdict(idx.weights), "tuning": idx.tuning.to_dict() if idx.tuning else None,
                "stats": idx.stats()}  # fmt: skip
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def load(directory: str | Path) -> CollaborativeIndex:
    """Read an index written by :func:`save`."""
    d = Path(directory)
    manifest_path = d / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"not a collaborative index (no manifest.json): {HINT}", source=str(d))
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"unreadable manifest.json ({exc}): {HINT}", source=str(d)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"manifest.json is not a msrkit collaborative index: {HINT}", source=str(d))
    if manifest.get("version") != FORMAT_VERSION:
        raise InputError(
            f"index format version {manifest.get('version')} is not the one this msrkit reads ({FORMAT_VERSION}): "
            f"{HINT}",
            source=str(d),
        )
    try:
        return _read(d, manifest)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise InputError(f"damaged index ({type(exc).__name__}: {exc}): {HINT}", source=str(d)) from None


def _read(d: Path, manifest: dict[str, Any]) -> CollaborativeIndex:
    import bm25s

    idx = CollaborativeIndex()
    with np.load(d / "arrays.npz", allow_pickle=False) as arrays:
        for name in ARRAYS:
            setattr(idx, name, arrays[name])
        idx.transitions = Transitions(**{field: arrays[name] for name, field in TRANSITIONS.items()})
    strings = json.loads((d / "strings.json").read_text(encoding="utf-8"))
    idx.user_ids, idx.item_ids = list(strings["users"]), list(strings["items"])
    idx.keywords, idx.labels, idx.words = list(strings["keywords"]), list(strings["labels"]), list(strings["words"])
    idx.user_index = {u: n for n, u in enumerate(idx.user_ids)}
    idx.item_index = {i: n for n, i in enumerate(idx.item_ids)}
    idx.keyword_tokens = bool(manifest.get("keyword_tokens", True))
    idx.weights = BlendWeights.from_dict(manifest["weights"])
    idx.tuning = TuneResult.from_dict(manifest["tuning"]) if manifest.get("tuning") else None
    for sub in ("users_bm25", "items_bm25"):
        if not (d / sub / "params.index.json").is_file():
            raise ValueError(f"{sub}/ is missing")
    idx.users_bm25 = bm25s.BM25.load(d / "users_bm25", show_progress=False)
    idx.items_bm25 = bm25s.BM25.load(d / "items_bm25", show_progress=False)
    idx.users_colmax = column_max(idx.users_bm25)
    idx.items_colmax = column_max(idx.items_bm25)
    if len(idx.seq_ptr) != len(idx.user_ids) + 1 or len(idx.popularity) != len(idx.item_ids):
        raise ValueError("arrays do not match the user and item lists")
    if len(idx.transitions.ptr) != len(idx.item_ids) + 1:
        raise ValueError("transitions do not match the item list")
    if idx.users_bm25.scores["num_docs"] != len(idx.user_ids):
        raise ValueError("users_bm25 does not match the user list")
    idx.refresh()
    return idx
