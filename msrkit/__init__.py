"""msrkit: multimodal sequential recommendation with (multimodal) LLMs.

    from msrkit import Recommender
    ranking = Recommender(backend="auto").rank("history.json")
    for r in ranking.ranking:
        print(r.rank, r.item_id, r.score, r.reason)

Heavy parts (model clients, llama.cpp, bm25s) are imported only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Item": "msrkit.data",
    "HistoryEntry": "msrkit.data",
    "History": "msrkit.data",
    "Ranking": "msrkit.data",
    "RankedItem": "msrkit.data",
    "Usage": "msrkit.data",
    "MsrkitError": "msrkit.errors",
    "UsageError": "msrkit.errors",
    "InputError": "msrkit.errors",
    "ConfigError": "msrkit.errors",
    "TemplateError": "msrkit.errors",
    "MissingDependencyError": "msrkit.errors",
    "BackendError": "msrkit.errors",
    "BackendTransientError": "msrkit.errors",
    "BackendPermanentError": "msrkit.errors",
    "BackendUnavailableError": "msrkit.errors",
    "OutputParseError": "msrkit.errors",
    "get_backend": "msrkit.backends",
    "FakeBackend": "msrkit.backends.fake",
    "PromptSet": "msrkit.prompts",
    "PromptTemplate": "msrkit.prompts",
    "Recommender": "msrkit.recommender",
    "ItemSummarizer": "msrkit.summaries",
    "PreferenceSummarizer": "msrkit.summaries.preferences",
    "load_histories": "msrkit.io",
    "load_catalog": "msrkit.io",
    "load_interactions": "msrkit.io",
    "Stages": "msrkit.recommender",
    "CollaborativeIndex": "msrkit.retrieval",
    "ListwiseReranker": "msrkit.ranking",
    "PointwiseScorer": "msrkit.ranking",
    "load_image": "msrkit.images",
    "write_html": "msrkit.report",
    "load_settings": "msrkit.config",
    "Settings": "msrkit.config",
    "Agent": "msrkit.agent",
    "AgentResult": "msrkit.agent",
    "TurnState": "msrkit.agent",
    "ToolCall": "msrkit.backends.base",
    "ToolSpec": "msrkit.backends.base",
}

__all__ = [
    "Agent",
    "AgentResult",
    "TurnState",
    "ToolCall",
    "ToolSpec",
    "BackendError",
    "CollaborativeIndex",
    "ListwiseReranker",
    "PointwiseScorer",
    "Settings",
    "Stages",
    "load_image",
    "load_settings",
    "write_html",
    "BackendPermanentError",
    "BackendTransientError",
    "BackendUnavailableError",
    "ConfigError",
    "FakeBackend",
    "History",
    "HistoryEntry",
    "InputError",
    "Item",
    "ItemSummarizer",
    "MissingDependencyError",
    "MsrkitError",
    "OutputParseError",
    "PreferenceSummarizer",
    "PromptSet",
    "PromptTemplate",
    "RankedItem",
    "Ranking",
    "Recommender",
    "TemplateError",
    "Usage",
    "UsageError",
    "__version__",
    "get_backend",
    "load_catalog",
    "load_histories",
    "load_interactions",
]

if TYPE_CHECKING:
    from .backends import get_backend
    from .backends.fake import FakeBackend
    from .config import Settings, load_settings
    from .data import History, HistoryEntry, Item, RankedItem, Ranking, Usage
    from .errors import (
        BackendError,
        BackendPermanentError,
        BackendTransientError,
        BackendUnavailableError,
        ConfigError,
        InputError,
        MissingDependencyError,
        MsrkitError,
        OutputParseError,
        TemplateError,
        UsageError,
    )
    from .images import load_image
    from .io import load_catalog, load_histories, load_interactions
    from .prompts import PromptSet, PromptTemplate
    from .ranking import ListwiseReranker, PointwiseScorer
    from .recommender import Recommender, Stages
    from .report import write_html
    from .retrieval import CollaborativeIndex
    from .summaries import ItemSummarizer
    from .summaries.preferences import PreferenceSummarizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'msrkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
