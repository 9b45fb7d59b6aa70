"""Collaborative retrieval: similar users by BM25, what they did next, and candidate generation.

A training-free stand-in for MMSRARec's collaborative stage, in small rooms:

- :mod:`.bm25` — the BM25 kernel (score matrix, exact top-k with MaxScore pruning);
- :mod:`.interactions` — interactions as columns, read in chunks (JSONL, CSV, Parquet);
- :mod:`.index` — :class:`CollaborativeIndex`: sequences, transitions, popularity, BM25 indexes;
- :mod:`.construct` — building and growing an index; :mod:`.transitions` — windowed item transitions;
- :mod:`.components` — the scoring functions and their blend; :mod:`.weights` — :class:`BlendWeights`;
- :mod:`.neighbourhood` — :func:`query`: one :class:`Neighbourhood` per request;
- :mod:`.tune` — :func:`tune_index`: the blend chosen by leave-one-out validation on the index's data;
- :mod:`.store` — save and load an index folder;
- :mod:`.leakage` — :func:`interactions_before`, what an evaluation may index.
"""

from __future__ import annotations

from .bm25 import okapi_bm25
from .index import CollaborativeIndex
from .interactions import Interactions, read_interactions
from .leakage import interactions_before
from .neighbourhood import Neighbourhood, Support, query
from .tune import TuneResult, tune_index
from .weights import DEFAULT_BLEND, BlendWeights

__all__ = [
    "DEFAULT_BLEND",
    "BlendWeights",
    "CollaborativeIndex",
    "Interactions",
    "Neighbourhood",
    "Support",
    "TuneResult",
    "interactions_before",
    "okapi_bm25",
    "query",
    "read_interactions",
    "tune_index",
]
