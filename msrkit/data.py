"""The data msrkit takes in and gives back, as pydantic models.

Formats are those of the design brief: an ``Item`` (one catalog line), a
``History`` (one ``history.json``: what one user took, oldest first, and the
candidates to rank), and the ``Ranking`` that comes back.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .escape import escape_value
from .outcomes import FAILURES, Failure, ScoreKind

__all__ = ["FAILURES", "Item", "HistoryEntry", "History", "RankedItem", "Ranking", "Usage", "failure_of"]

_ITEM_FIELDS = {"item_id", "title", "description", "image", "attributes", "keywords", "image_description"}


def _id(value: Any) -> Any:
    # MovieLens and many catalogs use integer ids: accept them as text.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


@functools.cache
def _known_fields(cls: type[BaseModel]) -> frozenset[str]:
    return frozenset(_ITEM_FIELDS | set(cls.model_fields))


class Item(BaseModel):
    """One item of a catalog. Only ``item_id`` is required.

    Unknown keys are kept in ``attributes``, never dropped. ``keywords`` and
    ``image_description`` are filled by the item summarizer (or given by you).
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    item_id: str = Field(min_length=1)
    title: str | None = None
    description: str | None = None
    image: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    keywords: list[str] | None = None
    image_description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = _known_fields(cls)
        if known.issuperset(data):
            return data
        extra = {k: v for k, v in data.items() if k not in known}
        kept = {k: v for k, v in data.items() if k in known}
        if not isinstance(kept.get("attributes") or {}, dict):
            return data  # validation then names 'attributes' as the field to fix
        attributes = dict(kept.get("attributes") or {})
        attributes.update(extra)
        kept["attributes"] = attributes
        return kept

    @field_validator("item_id", mode="before")
    @classmethod
    def _normalize_id(cls, value: Any) -> Any:
        return escape_value(_id(value))

    @field_validator("title", "description", "image", "image_description", "keywords", mode="before")
    @classmethod
    def _encodable(cls, value: Any) -> Any:
        # an escaped lone surrogate ("\ud800") in a file: kept as its escape (pydantic refuses it as text)
        return escape_value(value)

    def label(self) -> str:
        """The item's title, or its id where it has none."""
        return self.title or self.item_id


class HistoryEntry(Item):
    """An item the user interacted with, with the time it happened (optional)."""

    timestamp: float | None = None


class History(BaseModel):
    """One user's history (oldest first) and the candidates to rank.

    Entries may be bare item ids; :func:`msrkit.inputs.io.resolve` replaces them with
    catalog items. ``target`` is used by evaluation cases only.
    """

    model_config = ConfigDict(extra="allow")

    user_id: str | None = None
    history: list[HistoryEntry | str] = Field(default_factory=list)
    candidates: list[Item | str] | None = None
    target: str | None = None
    _base_dir: Path | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    @field_validator("user_id", "target", mode="before")
    @classmethod
    def _normalize_ids(cls, value: Any) -> Any:
        return _id(value)

    @field_validator("history", "candidates", mode="before")
    @classmethod
    def _ints_are_ids(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_id(v) for v in value]
        return value

    @property
    def base_dir(self) -> Path | None:
        """The folder relative image paths are read from (the history file's)."""
        return self._base_dir

    @property
    def source(self) -> str | None:
        """Where this history was read from (``file`` or ``file:line``), for error messages."""
        return self._source

    def with_base_dir(self, base_dir: Path | None, source: str | None = None) -> History:
        self._base_dir = base_dir
        if source is not None:
            self._source = source
        return self

    def items(self) -> list[HistoryEntry]:
        """The resolved history entries (raises if a bare id is left)."""
        out = [e for e in self.history if isinstance(e, HistoryEntry)]
        if len(out) != len(self.history):
            raise ValueError("history holds unresolved item ids: call msrkit.inputs.io.resolve() first")
        return out

    def candidate_items(self) -> list[Item]:
        """The resolved candidates (raises if a bare id is left)."""
        cands = self.candidates or []
        out = [c for c in cands if isinstance(c, Item)]
        if len(out) != len(cands):
            raise ValueError("candidates hold unresolved item ids: call msrkit.inputs.io.resolve() first")
        return out


class Usage(BaseModel):
    """What a result cost."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    seconds: float = 0.0

    def add(self, other: Usage) -> None:
        self.llm_calls += other.llm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cache_hits += other.cache_hits
        self.seconds += other.seconds


class RankedItem(BaseModel):
    """One candidate in its place. ``rank`` starts at 1.

    ``score`` is in ``[0, 1]``, higher is better, never rising down the ranking,
    comparable within one ranking only; ``Ranking.score_kind`` says what it
    measures (:mod:`msrkit.ranking.scale`).
    """

    item_id: str
    rank: int
    score: float
    reason: str = ""
    title: str | None = None


class Ranking(BaseModel):
    """The result of ranking one user's candidates.

    ``ranking`` is always a permutation of the candidates: none lost, none
    invented, whatever the model answered. ``degraded`` is true when the LLM
    stage failed or was unusable and the order fell back to retrieval;
    ``degraded_by`` then says why (a :data:`~msrkit.outcomes.Failure`: one of
    :data:`FAILURES`). ``score_kind`` says what the items' ``score`` measures
    (a :data:`~msrkit.outcomes.ScoreKind`): ``fused``, ``p_yes``,
    ``retrieval`` or ``rank`` (a stand-in made from the order alone); see
    :mod:`msrkit.ranking.scale`. ``None`` where the ranking was made by hand.
    """

    user_id: str | None = None
    ranking: list[RankedItem]
    preference_summary: str | None = None
    degraded: bool = False
    degraded_by: Failure | None = None
    score_kind: ScoreKind | None = None
    warnings: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    backend: str | None = None
    prompts: dict[str, str] = Field(default_factory=dict)
    collaborative_context: list[str] = Field(default_factory=list)
    diagnostics: dict[str, Any] = Field(default_factory=dict)

    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.ranking]


def failure_of(exc: BaseException) -> Failure:
    """The :data:`FAILURES` entry for a backend error (by class, never by message).

    An open circuit breaker reports the kind of the failures that opened it.
    """
    from .errors import (
        BackendPermanentError,
        BackendUnavailableError,
        CircuitOpenError,
        DeadlineExceededError,
        OutputParseError,
    )

    if isinstance(exc, CircuitOpenError):
        return exc.failure
    if isinstance(exc, DeadlineExceededError):
        return "deadline"
    if isinstance(exc, BackendUnavailableError):
        return "backend_unavailable"
    if isinstance(exc, OutputParseError):
        return "unparseable"
    if isinstance(exc, BackendPermanentError):
        return "backend_permanent"
    return "backend_transient"
