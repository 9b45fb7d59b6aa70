"""The one place ranking prompts are built: inference, ``msrkit prompts render`` and SFT export all call these.

Every piece of item text and every model-written summary passes through
:func:`msrkit.runtime.prompts.quote` here, so an item cannot pose as instructions and
fine-tuning data is byte for byte what inference sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..backends.base import ChatRequest
from ..data import Item
from ..runtime.prompts import PromptSet, quote, render_item

__all__ = [
    "EVIDENCE_WORDS",
    "RANKING_SCHEMA",
    "candidate_line",
    "evidence_notes",
    "explain_instruction",
    "format_candidates",
    "format_context",
    "listwise_request",
    "preference_text",
    "ranking_schema",
    "yes_no_request",
]

RANKING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ranking": {"type": "array", "items": {"type": "integer"}}},
    "required": ["ranking"],
}
MAX_REASON_CHARS = 150


def ranking_schema(count: int, *, reasons: int = 0) -> dict[str, Any]:
    """:data:`RANKING_SCHEMA` for ``count`` candidates: exactly ``count`` numbers from 1 to ``count``.

    Backends that constrain decoding with the schema (llama.cpp grammars,
    Ollama ``format``) then cannot run on past the list; duplicates are still
    possible and repaired. ``reasons`` > 0 adds that many short reason strings,
    one per first-ranked item.
    """
    item = {"type": "integer", "minimum": 1, "maximum": count}
    properties: dict[str, Any] = {"ranking": {"type": "array", "items": item, "minItems": count, "maxItems": count}}
    if reasons:
        text = {"type": "string", "maxLength": MAX_REASON_CHARS}
        properties["reasons"] = {"type": "array", "items": text, "minItems": reasons, "maxItems": reasons}
        return {**RANKING_SCHEMA, "properties": properties, "required": ["ranking", "reasons"]}
    return {**RANKING_SCHEMA, "properties": properties}


def format_candidates(items: Sequence[Item], lines: Sequence[str] | None = None) -> str:
    """The numbered candidate lines of the listwise prompt: ``[1] title | keywords: ...``."""
    rendered = lines if lines is not None else [render_item(item) for item in items]
    return "\n".join(f"[{i}] {line}" for i, line in enumerate(rendered, 1))


def candidate_line(item: Item, note: str = "") -> str:
    """A candidate's line in a ranking prompt: the item as rendered, then ``note`` when given."""
    return render_item(item) + (f" | {note}" if note else "")


def evidence_notes(scores: Sequence[float]) -> list[str]:
    """Per candidate, retrieval's evidence for it as a word: its score's place in the list's range.

    ``top`` for the highest score, ``strong`` from two thirds of the way from the lowest score to
    the highest, ``some`` from one third, ``weak`` below. Relative to the list, so it reads the same
    on sparse and dense data and whatever scale a retrieval's scores have; equal scores share a word.
    """
    low, high = min(scores, default=0.0), max(scores, default=0.0)
    span = high - low
    return [f"evidence: {_level((s - low) / span if span > 0 else 1.0)}" for s in scores]


#: the evidence notes' words, best first
EVIDENCE_WORDS = ("top", "strong", "some", "weak")


def _level(share: float) -> str:
    top, strong, some, weak = EVIDENCE_WORDS
    return top if share >= 1.0 else strong if share >= 2 / 3 else some if share >= 1 / 3 else weak


def format_context(lines: Sequence[str]) -> str:
    """The collaborative context: one quoted line per similar users' next item."""
    return "\n".join(f"- {quote(line)}" for line in lines if quote(line)) or "(none)"


def preference_text(summary: str | None) -> str:
    return quote(summary) or "(unknown)"


def explain_instruction(k: int) -> str:
    """What the final ranking window asks for when reasons are wanted (empty for ``k`` = 0)."""
    if k <= 0:
        return ""
    return (
        f"\nThen, one line for each of your first {k} items, a short reason naming what of the user's "
        "preferences it matches, like: [2] because ..."
    )


def listwise_request(
    prompts: PromptSet,
    *,
    preference: str | None,
    context: Sequence[str],
    candidates: str,
    count: int,
    json_schema: bool = False,
    reasons: int = 0,
) -> ChatRequest:
    """The listwise request for numbered ``candidates`` (see :func:`format_candidates`)."""
    reasons = min(reasons, count)
    request = prompts["listwise_rank"].request(
        preference=preference_text(preference),
        collaborative=format_context(context),
        candidates=candidates,
        count=count,
        explain=explain_instruction(reasons),
    )
    if reasons:
        request = replace(request, max_tokens=request.max_tokens + 48 * reasons)
    if json_schema:
        request = replace(request, json_schema=ranking_schema(count, reasons=reasons))
    return request


def yes_no_request(
    prompts: PromptSet, *, preference: str | None, candidate: Item, top_logprobs: int, note: str = ""
) -> ChatRequest:
    """The pointwise yes/no request for one candidate (one token, with its alternatives); ``note``
    (an evidence note) follows the item's line."""
    line = candidate_line(candidate, note)
    request = prompts["yes_no"].request(preference=preference_text(preference), candidate=line)
    return replace(request, max_tokens=1, top_logprobs=top_logprobs)
