"""Reading keywords out of a model's answer (one item's, or one entry of a batch answer)."""

from __future__ import annotations

import re

from ..runtime.modeltext import strip_think

__all__ = ["parse_keywords"]

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_LABEL = re.compile(r"^\s*keywords?\s*:", re.I)
_SEPARATOR = re.compile(r"[,;\n]")


def parse_keywords(text: str, *, limit: int) -> list[str]:
    """Keywords from a model's answer: split on commas/lines, bullets and quotes stripped, deduplicated.

    Total: any text gives a list, ``[]`` when nothing in it is a keyword (see :mod:`msrkit.runtime.modeltext`).
    """
    text = _LABEL.sub("", strip_think(text).strip())
    out: list[str] = []
    seen: set[str] = set()
    for raw in _SEPARATOR.split(text):
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
