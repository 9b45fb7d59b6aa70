"""Item text: which attributes describe an item, and its words (one spelling for every stage).

Prompts (:func:`msrkit.runtime.prompts.render_item`), keyword quality, the item-text
BM25 index and the reasons given with a ranking all read an item's
descriptive attributes through :func:`attribute_values`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..data import Item

__all__ = [
    "DESCRIPTIVE_ATTRIBUTES",
    "STOPWORDS",
    "WORD",
    "attribute_values",
    "item_terms",
    "item_words",
    "source_text",
    "words",
]

#: The attributes that describe what an item is (in this order), where a catalog has them.
DESCRIPTIVE_ATTRIBUTES = ("genres", "genre", "category", "categories", "brand")
_SPLIT = re.compile(r"[|,;]")

WORD = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "with",
        "will",
        "your",
        "you",
        "our",
        "their",
        "his",
        "her",
        "they",
        "them",
        "not",
        "but",
        "if",
        "into",
        "than",
        "then",
        "so",
        "such",
        "can",
        "all",
    ]
)


def words(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stopwords."""
    return [w for w in WORD.findall(text.lower()) if w not in STOPWORDS]


def attribute_values(item: Item) -> list[tuple[str, list[str]]]:
    """``[(attribute, values), ...]`` of the item's descriptive attributes; ``"a|b"`` strings are split."""
    out = []
    for key in DESCRIPTIVE_ATTRIBUTES:
        value = item.attributes.get(key)
        if not value:
            continue
        values = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if key in ("genres", "categories") and len(values) == 1:
            values = [v.strip() for v in _SPLIT.split(values[0])]
        values = [v for v in values if v]
        if values:
            out.append((key, values))
    return out


def item_terms(item: Item) -> list[str]:
    """The item's keywords and descriptive attribute values, lower-cased, deduplicated, in order."""
    terms = [k.lower() for k in item.keywords or [] if k]
    terms += [v.lower() for _, values in attribute_values(item) for v in values]
    return list(dict.fromkeys(t.strip() for t in terms if t.strip()))


def source_text(item: Item) -> str:
    """What an item's summary should capture: title, description and descriptive attributes."""
    parts = [item.title or "", item.description or ""]
    parts += [v for _, values in attribute_values(item) for v in values]
    return " ".join(p for p in parts if p)


def item_words(item: Item) -> list[str]:
    """The words the item-text index holds: title, keywords, image description and attribute values."""
    parts = [item.title or "", *(item.keywords or []), item.image_description or ""]
    parts += [v for _, values in attribute_values(item) for v in values]
    return words(" ".join(parts))
