"""Ranking candidates: listwise (with repair, windows, passes), pointwise p(yes), fusion, reasons.

- :mod:`.parse` — read any reasonable answer into a permutation (:func:`parse_order`, :func:`repair`);
- :mod:`.windows` — sliding windows and Borda merging;
- :mod:`.prompting` — the one builder of ranking prompts (inference, ``prompts render``, SFT export);
- :mod:`.listwise` / :mod:`.pointwise` — the two scorers, both returning a :class:`Scored`;
- :mod:`.fusion` — the LLM's verdict fused with retrieval's;
- :mod:`.reasons` — a readable reason per ranked item.
"""

from __future__ import annotations

from .fusion import RRF_K, fuse
from .listwise import ListwiseReranker
from .parse import Parsed, Repaired, parse_order, repair, strip_think
from .pointwise import PointwiseScorer, p_yes
from .prompting import RANKING_SCHEMA, format_candidates, listwise_request, ranking_schema, yes_no_request
from .result import Scored
from .windows import borda, window_starts

__all__ = [
    "RANKING_SCHEMA",
    "RRF_K",
    "ListwiseReranker",
    "Parsed",
    "PointwiseScorer",
    "Repaired",
    "Scored",
    "borda",
    "format_candidates",
    "fuse",
    "listwise_request",
    "p_yes",
    "parse_order",
    "ranking_schema",
    "repair",
    "strip_think",
    "window_starts",
    "yes_no_request",
]
