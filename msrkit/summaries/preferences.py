"""The recurrent preference summary of MLLM-MSR.

The history (oldest first) is cut into blocks of ``block_size`` items;
``summary_1 = LLM(block_1)`` and ``summary_i = LLM(summary_{i-1}, block_i)``.
Each call is cached, so a returning user with one new interaction costs one
new call: the blocks before it are the same requests as last time.

Long histories: only the most recent ``max_items`` items are summarized, and
the cut falls on a block boundary counted from the first item, so it moves
only every ``block_size`` interactions and the cached chain stays reusable.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..backends.base import Backend
from ..backends.cache import forget
from ..data import Item
from ..runtime.meter import Meter
from ..runtime.modeltext import one_line
from ..runtime.prompts import PromptSet, render_item

__all__ = ["MAX_SUMMARY_CHARS", "PreferenceSummarizer", "blocks", "parse_summary"]

#: a preference summary is kept to this many characters (the prompts ask for a few sentences)
MAX_SUMMARY_CHARS = 2_000


def parse_summary(text: str) -> str:
    """A summary from a model's answer: one line, ``<think>`` dropped, capped; ``""`` when it holds nothing."""
    return one_line(text, max_chars=MAX_SUMMARY_CHARS)


def blocks(n: int, *, block_size: int, max_items: int | None = None) -> list[tuple[int, int]]:
    """``[start, end)`` spans of the blocks to summarize for a history of ``n`` items.

    >>> blocks(7, block_size=3)
    [(0, 3), (3, 6), (6, 7)]
    >>> blocks(10, block_size=3, max_items=6)   # oldest items dropped on a block boundary
    [(6, 9), (9, 10)]
    """
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    start = 0
    if max_items is not None and n > max_items:
        start = -(-(n - max_items) // block_size) * block_size
    return [(i, min(i + block_size, n)) for i in range(start, n, block_size)]


class PreferenceSummarizer:
    """Summarize what a user likes, block by block."""

    def __init__(
        self,
        backend: Backend,
        *,
        prompts: PromptSet | None = None,
        block_size: int = 3,
        max_items: int | None = 60,
    ) -> None:
        self.backend = backend
        self.prompts = prompts or PromptSet.load()
        self.block_size = block_size
        self.max_items = max_items

    def summarize(self, items: Sequence[Item], *, meter: Meter | None = None) -> str:
        """The preference summary after the last block ("" for an empty history)."""
        meter = meter or Meter()
        summary = ""
        for start, end in blocks(len(items), block_size=self.block_size, max_items=self.max_items):
            lines = "\n".join(f"- {render_item(item)}" for item in items[start:end])
            if not summary:
                request = self.prompts["preference_first"].request(items=lines)
            else:
                request = self.prompts["preference_next"].request(previous=summary, items=lines)
            answer = parse_summary(meter.call(self.backend, request).text)
            if not answer:
                forget(self.backend, request)  # an empty answer keeps the previous summary, and is not cached
            summary = answer or summary
        return summary
