"""Collaborative retrieval: similar users by BM25, what they did next, and candidate generation.

A training-free stand-in for MMSRARec's collaborative stage, in small rooms:

- :mod:`.bm25` — the BM25 kernel (score matrix, exact top-k with MaxScore pruning);
- :mod:`.interactions` — interactions as columns, read in chunks (JSONL, CSV, Parquet);
- :mod:`.index` — :class:`CollaborativeIndex`, plain data: sequences, transitions, popularity, BM25 indexes, the blend;
- :mod:`.construct` — :func:`build` (from rows, with fixed weights), :func:`extend`, :func:`with_weights`;
  :mod:`.transitions` — windowed item transitions;
- :mod:`.stage` — :func:`build_index`: the one constructor from the settings, which every path uses;
  :func:`choose_blend`, its last step;
- :mod:`.components` — the scoring functions and their blend; :mod:`.weights` — :class:`BlendWeights`;
- :mod:`.neighbourhood` — :func:`query`: one :class:`Neighbourhood` per request;
- :mod:`.tune` — :func:`tune_index`: the blend chosen by leave-one-out validation on the index's data;
- :mod:`.store` — :func:`save` and :func:`load`: an index folder;
- :mod:`.leakage` — :func:`interactions_before`, what an evaluation may index.

    idx = build_index(settings)                    # or build(rows, catalog) for fixed weights
    hood = query(idx, seen, n=20)                  # hood.candidates, hood.similar_users, hood.context(...)
    save(idx, "idx/"); idx = load("idx/")
"""

from __future__ import annotations

from .bm25 import okapi_bm25
from .construct import build, extend, with_weights
from .index import CollaborativeIndex
from .interactions import Interactions, read_interactions
from .leakage import interactions_before
from .neighbourhood import Neighbourhood, Support, query
from .stage import build_index, choose_blend
from .store import load, save
from .tune import tune_index
from .weights import DEFAULT_BLEND, BlendWeights, TuneResult

__all__ = [
    "DEFAULT_BLEND",
    "BlendWeights",
    "CollaborativeIndex",
    "Interactions",
    "Neighbourhood",
    "Support",
    "TuneResult",
    "build",
    "build_index",
    "choose_blend",
    "extend",
    "interactions_before",
    "load",
    "okapi_bm25",
    "query",
    "read_interactions",
    "save",
    "tune_index",
    "with_weights",
]
