"""Keywords for several items in one call: the request, its JSON schema, and the answer read per item.

The items of one call are numbered 1..n in the prompt (short, and no item id
can pose as another's); the answer maps each number to the item's title and
its keywords. Where the backend takes a JSON schema, the schema asks for every
number and fixes each title (``const``), so the model writes an item's
keywords right after its title and cannot shift them onto the next item; any
answer is read leniently all the same, so a cut-off or malformed answer still
yields the items it finished: complete ``"3": {"title": ..., "keywords":
[...]}`` or ``"3": [...]`` entries of a JSON object, or ``3: a, b, c`` lines. What the answer left out is for the caller
to summarize alone (:class:`~msrkit.summaries.items.ItemSummarizer`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from ..backends.base import ChatRequest
from ..data import Item
from ..runtime.modeltext import clip, strip_think
from ..runtime.prompts import PromptTemplate, quote, render_item
from .keywords import parse_keywords

__all__ = ["batch_request", "batch_schema", "parse_batch"]

_NUMBER = r'"\s*\[?(\d+)\]?\s*"\s*:\s*'
_OBJECT_ENTRY = re.compile(_NUMBER + r'\{[^{}]*?"keywords"\s*:\s*\[([^\]]*)\]')
_LIST_ENTRY = re.compile(_NUMBER + r"\[([^\]]*)\]")
_TEXT_ENTRY = re.compile(_NUMBER + r'"([^"]*)"')
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^\s*(?:[\[(](\d+)[\])]|(\d+)\s*[:.)\-])\s*[:\-]?\s*(.+)$", re.M)


def batch_schema(titles: Sequence[str], *, max_keywords: int) -> dict[str, Any]:
    """The schema of an answer: ``{"1": {"title": <fixed>, "keywords": [str, ...]}, ...}``, every number required."""
    keywords = {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": max_keywords}
    props = {
        str(n): {"type": "object", "properties": {"title": {"const": title}, "keywords": keywords},
                 "required": ["title", "keywords"], "additionalProperties": False}
        for n, title in enumerate(titles, 1)
    }  # fmt: skip
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def batch_request(
    template: PromptTemplate, items: Sequence[Item], *, max_keywords: int, json_schema: bool
) -> ChatRequest:
    """One request for the keywords of ``items`` (numbered 1..n), with the schema where the backend takes one.

    The template's ``max_tokens`` is a budget per item: the request gets it times ``len(items)``.
    """
    lines = "\n".join(f"[{n}] {render_item(item.model_copy(update={'keywords': None}), max_chars=600)}"
                      for n, item in enumerate(items, 1))  # fmt: skip
    request = template.request(items=lines, count=len(items), max_keywords=max_keywords)
    titles = [quote(item.title or item.item_id)[:80] for item in items]
    schema = batch_schema(titles, max_keywords=max_keywords) if json_schema else None
    return dataclasses.replace(request, max_tokens=template.max_tokens * len(items), json_schema=schema)


def parse_batch(text: str, count: int, *, limit: int) -> dict[int, list[str]]:
    """Keywords per item number (1..``count``) found in an answer; numbers with no keywords are left out.

    >>> parse_batch('{"1": {"title": "Alien", "keywords": ["Space", "horror"]}, "2": ["drama"], "3": ["cut', 3, limit=8)
    {1: ['space', 'horror'], 2: ['drama']}
    >>> parse_batch("1: comedy, family\\n2. horror", 2, limit=8)
    {1: ['comedy', 'family'], 2: ['horror']}
    """
    text = strip_think(clip(text))
    found: dict[int, str] = {}
    for m in _OBJECT_ENTRY.finditer(text):
        found.setdefault(int(m.group(1)), ", ".join(_STRING.findall(m.group(2))))
    for m in _LIST_ENTRY.finditer(text):
        found.setdefault(int(m.group(1)), ", ".join(_STRING.findall(m.group(2))))
    for m in _TEXT_ENTRY.finditer(text):
        found.setdefault(int(m.group(1)), m.group(2))
    if not found:
        for m in _LINE.finditer(text):
            found.setdefault(int(m.group(1) or m.group(2)), m.group(3))
    out: dict[int, list[str]] = {}
    for n, raw in sorted(found.items()):
        words = parse_keywords(raw, limit=limit) if 1 <= n <= count else []
        if words:
            out[n] = words
    return out
