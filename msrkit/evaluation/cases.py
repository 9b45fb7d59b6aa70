"""An evaluation's inputs: its cases, and the collaborative index that cannot see a case's future.

Both the experiments (:mod:`.experiments`) and the simulated user (:mod:`.agent`) read them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..data import History, Item
from ..inputs.io import load_histories

if TYPE_CHECKING:
    from ..config import Settings
    from ..retrieval import CollaborativeIndex

__all__ = ["load_cases", "load_index"]


def load_cases(cases: str | Path | Sequence[History], *, limit: int | None = None) -> list[History]:
    """The cases (a file of histories, or the histories themselves), the first ``limit`` of them."""
    loaded = load_histories(cases) if isinstance(cases, (str, Path)) else list(cases)
    return loaded[:limit]


def load_index(settings: Settings, cases: Sequence[History], catalog: dict[str, Item]) -> CollaborativeIndex | None:
    """The evaluation's index (:func:`~msrkit.retrieval.build_index`, as every path builds it): the
    interactions less each case's target and what came after it; none without interactions."""
    from ..retrieval import build_index

    if settings.interactions is None:
        return None
    return build_index(settings, catalog=catalog, cases=cases)
