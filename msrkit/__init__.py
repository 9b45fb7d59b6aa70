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

#: The public names, each with the module that defines it: ``__all__`` and the lazy loader below
#: are made from this one table (the ``TYPE_CHECKING`` imports repeat it for type checkers;
#: ``tests/test_public_names.py`` checks that they agree).
_EXPORTS: dict[str, str] = {
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
    "ToolCall": "msrkit.backends.base",
    "ToolSpec": "msrkit.backends.base",
    "PromptSet": "msrkit.runtime.prompts",
    "PromptTemplate": "msrkit.runtime.prompts",
    "Recommender": "msrkit.recommender",
    "Stages": "msrkit.recommender",
    "ItemSummarizer": "msrkit.summaries",
    "PreferenceSummarizer": "msrkit.summaries.preferences",
    "load_histories": "msrkit.inputs.io",
    "load_catalog": "msrkit.inputs.io",
    "load_interactions": "msrkit.inputs.io",
    "CollaborativeIndex": "msrkit.retrieval",
    "ListwiseReranker": "msrkit.ranking",
    "PointwiseScorer": "msrkit.ranking",
    "load_image": "msrkit.inputs.images",
    "write_html": "msrkit.jobs.report",
    "load_settings": "msrkit.config",
    "Settings": "msrkit.config",
    "Agent": "msrkit.agent",
    "AgentResult": "msrkit.agent",
    "TurnState": "msrkit.agent",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the same names as explicit re-exports, for type checkers
    from .agent import Agent as Agent
    from .agent import AgentResult as AgentResult
    from .agent import TurnState as TurnState
    from .backends import get_backend as get_backend
    from .backends.base import ToolCall as ToolCall
    from .backends.base import ToolSpec as ToolSpec
    from .backends.fake import FakeBackend as FakeBackend
    from .config import Settings as Settings
    from .config import load_settings as load_settings
    from .data import History as History
    from .data import HistoryEntry as HistoryEntry
    from .data import Item as Item
    from .data import RankedItem as RankedItem
    from .data import Ranking as Ranking
    from .data import Usage as Usage
    from .errors import BackendError as BackendError
    from .errors import BackendPermanentError as BackendPermanentError
    from .errors import BackendTransientError as BackendTransientError
    from .errors import BackendUnavailableError as BackendUnavailableError
    from .errors import ConfigError as ConfigError
    from .errors import InputError as InputError
    from .errors import MissingDependencyError as MissingDependencyError
    from .errors import MsrkitError as MsrkitError
    from .errors import OutputParseError as OutputParseError
    from .errors import TemplateError as TemplateError
    from .errors import UsageError as UsageError
    from .inputs.images import load_image as load_image
    from .inputs.io import load_catalog as load_catalog
    from .inputs.io import load_histories as load_histories
    from .inputs.io import load_interactions as load_interactions
    from .jobs.report import write_html as write_html
    from .ranking import ListwiseReranker as ListwiseReranker
    from .ranking import PointwiseScorer as PointwiseScorer
    from .recommender import Recommender as Recommender
    from .recommender import Stages as Stages
    from .retrieval import CollaborativeIndex as CollaborativeIndex
    from .runtime.prompts import PromptSet as PromptSet
    from .runtime.prompts import PromptTemplate as PromptTemplate
    from .summaries import ItemSummarizer as ItemSummarizer
    from .summaries.preferences import PreferenceSummarizer as PreferenceSummarizer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'msrkit' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
