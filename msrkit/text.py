"""Words of item text, shared by keyword quality and the item-text BM25 index."""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "WORD", "words"]

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
