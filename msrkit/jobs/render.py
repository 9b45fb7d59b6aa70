"""``msrkit prompts render``: exactly what the model sees, without calling it.

Stages that would need an earlier LLM answer (a preference summary, keywords)
show a visible placeholder instead, so the rendering is free and repeatable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import Settings
from ..inputs.io import load_catalog, load_histories, resolve
from ..runtime.prompts import PromptSet, render_item

__all__ = ["render_for_history"]

SUMMARY_PLACEHOLDER = "<preference summary from the recurrent summarizer>"


def render_for_history(
    task: str,
    path: str | Path,
    *,
    catalog: str | Path | None = None,
    prompts: str | Path | None = None,
    settings: Settings | None = None,
) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` of a request the task would send for the first history in ``path``.

    Ranking tasks are built by the same functions inference uses
    (:mod:`msrkit.ranking.prompting`): ``listwise_rank`` shows the window
    holding the best candidates, as the listwise reranker sends it.
    """
    from ..ranking.prompting import format_candidates, listwise_request, yes_no_request

    settings = settings or Settings()
    prompt_set = PromptSet.load(prompts)
    template = prompt_set[task]
    history = resolve(load_histories(path)[0], load_catalog(catalog) if catalog else None, source=str(path))
    items = history.items()
    candidates = history.candidate_items() if history.candidates else []
    lines = "\n".join(f"- {render_item(i)}" for i in items[:3])
    values: dict[str, Any] = {
        "items": lines,
        "previous": SUMMARY_PLACEHOLDER,
        "preference": SUMMARY_PLACEHOLDER,
        "collaborative": "(none)",
        "candidates": format_candidates(candidates),
        "count": len(candidates),
        "explain": "",
        "candidate": render_item(candidates[0]) if candidates else "",
        "item": render_item(candidates[0] if candidates else items[0]),
        "max_keywords": 8,
    }
    if task == "listwise_rank":
        shown = candidates[: settings.window]
        reasons = settings.explain_top_k if settings.explain else 0
        request = listwise_request(prompt_set, preference=SUMMARY_PLACEHOLDER, context=[],
                                   candidates=format_candidates(shown), count=len(shown), reasons=reasons)  # fmt: skip
    elif task == "yes_no" and candidates:
        request = yes_no_request(prompt_set, preference=SUMMARY_PLACEHOLDER, candidate=candidates[0], top_logprobs=1)
    else:
        request = template.request(**values)
    return [(m.role, m.text_content + "".join("\n<image>" for _ in m.images)) for m in request.messages]
