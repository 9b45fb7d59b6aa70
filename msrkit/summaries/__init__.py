"""Item understanding (keywords, image descriptions) and the recurrent preference summary."""

from __future__ import annotations

from .items import ItemSummarizer, parse_keywords
from .preferences import PreferenceSummarizer, blocks

__all__ = ["ItemSummarizer", "PreferenceSummarizer", "blocks", "parse_keywords"]
