"""Reading keywords out of a model's answer (one item's, or one entry of a batch answer)."""

from __future__ import annotations

import re

__all__ = ["parse_keywords"]

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def parse_keywords(text: str, *, limit: int) -> list[str]:
    """Keywords from a model's answer: split on commas/lines, bullets and quotes stripped, deduplicated."""
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.S | re.I)
    text = re.sub(r"^\s*keywords?\s*:", "", text.strip(), flags=re.I)
    out: list[str] = []
    seen: set[str] = set()
    for raw in re.split(r"[,;\n]", text):
        word = _BULLET.sub("", raw).strip(" .\"'`*#").strip()
        if not word or len(word) > 40 or len(word.split()) > 4:
            continue
        low = word.lower()
        if low not in seen:
            seen.add(low)
            out.append(low)
        if len(out) >= limit:
            break
    return out
