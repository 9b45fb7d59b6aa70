"""Collaborative retrieval: similar users by BM25, what they did next, and candidate generation.

A training-free stand-in for MMSRARec's collaborative stage, in small rooms:

- :mod:`.bm25` — the BM25 kernel (score matrix, exact top-k with MaxScore pruning);
- :mod:`.interactions` — interactions as columns, read in chunks (JSONL, CSV, Parquet);
- :mod:`.index` — :class:`CollaborativeIndex`: sequences, transitions, popularity, BM25 indexes;
- :mod:`.components` — the scoring functions and their blend (:class:`BlendWeights`);
- :mod:`.neighbourhood` — :func:`query`: one :class:`Neighbourhood` per request;
- :mod:`.store` — save and load an index folder;
- :mod:`.leakage` — :func:`interactions_before`, what an evaluation may index.
"""

from __future__ import annotations

from .bm25 import okapi_bm25
from .components import DEFAULT_BLEND, BlendWeights
from .index import CollaborativeIndex
from .interactions import Interactions, read_interactions
from .leakage import interactions_before
from .neighbourhood import Neighbourhood, Support, query

__all__ = [
    "DEFAULT_BLEND",
    "BlendWeights",
    "CollaborativeIndex",
    "Interactions",
    "Neighbourhood",
    "Support",
    "interactions_before",
    "okapi_bm25",
    "query",
    "read_interactions",
]
