"""``msrkit prompts render``: exactly what the model sees, without calling it.

Stages that would need an earlier LLM answer (a preference summary, keywords)
show a visible placeholder instead, so the rendering is free and repeatable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .io import load_catalog, load_histories, resolve
from .prompts import PromptSet, render_item

__all__ = ["render_for_history"]

SUMMARY_PLACEHOLDER = "<preference summary from the recurrent summarizer>"


def render_for_history(
    task: str, path: str | Path, *, catalog: str | Path | None = None, prompts: str | Path | None = None
) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` of the first request the task would send for the first history in ``path``."""
    from .rerank import format_candidates

    template = PromptSet.load(prompts)[task]
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
        "candidate": render_item(candidates[0]) if candidates else "",
        "item": render_item(candidates[0] if candidates else items[0]),
        "max_keywords": 8,
    }
    request = template.request(**values)
    return [(m.role, m.text_content + "".join("\n<image>" for _ in m.images)) for m in request.messages]
