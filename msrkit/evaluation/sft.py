"""Supervised fine-tuning data (the papers' last stage), byte for byte what inference sends.

The prompts come from :mod:`msrkit.ranking.prompting`, the one builder the
listwise reranker and the pointwise scorer use, so an example's system and
user messages are exactly the request the model sees at inference for the same
case, preference and collaborative context (one window, no reasons asked, no
JSON schema).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from ..backends.base import ChatRequest
from ..data import History, Item
from ..errors import InputError
from ..inputs.io import resolve
from ..jobs.runs import write_jsonl_atomic
from ..runtime.prompts import PromptSet
from .scoring import check_cases

__all__ = ["export_sft", "check_openai", "OPENAI_MIN_EXAMPLES"]

#: the fewest examples a hosted (OpenAI) fine-tuning job accepts
OPENAI_MIN_EXAMPLES = 10
_OPENAI_ROLES = frozenset({"system", "user", "assistant"})


def _default_preference(case: History) -> str:
    # The same text the Recommender uses when preference summaries are off.
    from ..runtime.pipeline import recent_items_text

    return recent_items_text(case.items())


def export_sft(
    cases: Sequence[History],
    *,
    task: Literal["listwise", "yesno"] = "listwise",
    prompts: PromptSet | None = None,
    out: str | Path | None = None,
    catalog: Mapping[str, Item] | None = None,
    preference: Callable[[History], str] | None = None,
    collaborative: Callable[[History], Sequence[str]] | None = None,
    format: Literal["chat", "openai"] = "chat",
) -> list[dict[str, Any]]:
    """Chat-format supervised fine-tuning examples, ``{"messages": [system, user, assistant]}``.

    ``listwise`` (template ``listwise_rank``): one example per case whose answer
    puts the target first, then the other candidates in their given order.
    ``yesno`` (template ``yes_no``): one example per candidate, ``Yes`` for the
    target and ``No`` otherwise. The preference text is, by default, the
    recent history as the Recommender renders it without summaries; pass
    ``preference``/``collaborative`` to use your own. With ``out`` the examples
    are also written as JSONL (atomically).

    Both formats write the same lines (``{"messages": [...]}``, the chat JSONL of
    hosted fine-tuning APIs and of TRL); ``openai`` first checks them against the
    hosted API's rules (:func:`check_openai`), so a file it would refuse fails here.
    """
    if task not in ("listwise", "yesno"):
        raise ValueError(f"task must be 'listwise' or 'yesno', not {task!r}")
    prompts = prompts or PromptSet.load()
    check_cases(cases)
    examples: list[dict[str, Any]] = []
    for case in cases:
        resolved = resolve(case, catalog)
        candidates = resolved.candidate_items()
        if not candidates:
            raise InputError("an SFT case needs candidates", source=case.source or str(case.user_id))
        pref = (preference or _default_preference)(resolved) or "(no summary available)"
        context = list(collaborative(resolved)) if collaborative else []
        if task == "listwise":
            examples.append(_listwise_example(prompts, resolved, candidates, pref, context))
        else:
            examples.extend(_yesno_examples(prompts, resolved, candidates, pref))
    if format == "openai":
        check_openai(examples, source=str(out) if out is not None else None)
    if out is not None:
        write_jsonl_atomic(out, examples)
    return examples


def check_openai(examples: Sequence[Mapping[str, Any]], *, source: str | None = None) -> None:
    """An :class:`~msrkit.errors.InputError` unless ``examples`` are a valid hosted fine-tuning file: at least
    :data:`OPENAI_MIN_EXAMPLES`, each only system/user/assistant turns of non-empty text, ending with the answer."""
    if len(examples) < OPENAI_MIN_EXAMPLES:
        raise InputError(f"a hosted fine-tuning job needs at least {OPENAI_MIN_EXAMPLES} examples, "
                         f"these cases give {len(examples)}", source=source)  # fmt: skip
    for line, example in enumerate(examples, 1):
        messages = example.get("messages") or []
        bad = [m.get("role") for m in messages if m.get("role") not in _OPENAI_ROLES or not m.get("content")]
        if bad or not messages or messages[-1].get("role") != "assistant":
            raise InputError(f"line {line}: not a hosted fine-tuning example (roles {bad or 'ok'}, "
                             f"last turn {messages[-1].get('role') if messages else None})", source=source)  # fmt: skip


def _chat(request: ChatRequest, answer: str) -> dict[str, Any]:
    """The request's messages (text: SFT data for text models) and the answer, in chat format."""
    messages = [{"role": m.role, "content": m.text_content} for m in request.messages]
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def _listwise_example(
    prompts: PromptSet, case: History, candidates: list[Item], pref: str, context: list[str]
) -> dict[str, Any]:
    """The request the listwise reranker sends for these candidates in one window (no schema, no reasons)."""
    from ..ranking.prompting import format_candidates, listwise_request

    request = listwise_request(
        prompts, preference=pref, context=context, candidates=format_candidates(candidates), count=len(candidates)
    )
    first = next(i for i, c in enumerate(candidates, 1) if c.item_id == case.target)
    order = [first] + [i for i in range(1, len(candidates) + 1) if i != first]
    return _chat(request, " > ".join(f"[{i}]" for i in order))


def _yesno_examples(prompts: PromptSet, case: History, candidates: list[Item], pref: str) -> list[dict[str, Any]]:
    from ..ranking.prompting import yes_no_request

    return [
        _chat(
            yes_no_request(prompts, preference=pref, candidate=c, top_logprobs=1),
            "Yes" if c.item_id == case.target else "No",
        )  # fmt: skip
        for c in candidates
    ]
