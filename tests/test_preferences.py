"""The recurrent preference summary: block arithmetic and call counts through the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from msrkit.backends.cache import CachedBackend, ResponseCache
from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.runtime.meter import Meter
from msrkit.summaries.preferences import PreferenceSummarizer, blocks


def test_block_arithmetic() -> None:
    # 7 items, k=3: [0,3) [3,6) [6,7)  -> ceil(7/3) = 3 calls
    assert blocks(7, block_size=3) == [(0, 3), (3, 6), (6, 7)]
    assert blocks(0, block_size=3) == []
    # 10 items, cap 6: drop ceil((10-6)/3)*3 = 6 oldest, so the cut moves only every 3 items
    assert blocks(10, block_size=3, max_items=6) == [(6, 9), (9, 10)]
    assert blocks(11, block_size=3, max_items=6) == [(6, 9), (9, 11)]
    assert blocks(13, block_size=3, max_items=6) == [(9, 12), (12, 13)]
    with pytest.raises(ValueError):
        blocks(3, block_size=0)


def items(n: int) -> list[Item]:
    return [Item(item_id=str(i), title=f"Movie {i}") for i in range(n)]


def summary_of(request_text: str) -> str:
    return "likes " + ",".join(w for w in request_text.split() if w.isdigit())


def test_recurrence_feeds_the_previous_summary_forward() -> None:
    fake = FakeBackend(default=lambda r: summary_of(r.messages[-1].text_content))
    out = PreferenceSummarizer(fake, block_size=3).summarize(items(5))
    assert fake.calls == 2
    assert "Movie 0" in fake.requests[0].messages[-1].text_content
    second = fake.requests[1].messages[-1].text_content
    assert "likes 0,1,2" in second and "Movie 3" in second and "Movie 0" not in second
    assert out.startswith("likes")


def test_returning_user_with_one_new_item_costs_one_call(tmp_path: Path) -> None:
    fake = FakeBackend(default=lambda r: summary_of(r.messages[-1].text_content))
    backend = CachedBackend(fake, ResponseCache(tmp_path))
    summarizer = PreferenceSummarizer(backend, block_size=3)
    cold = Meter()
    summarizer.summarize(items(7), meter=cold)
    assert cold.usage.llm_calls == 3  # ceil(7/3)
    for n in (8, 9, 10):
        warm = Meter()
        summarizer.summarize(items(n), meter=warm)
        assert warm.usage.llm_calls == 1, n
        assert warm.usage.cache_hits == len(blocks(n, block_size=3)) - 1
    assert fake.calls == 6


def test_empty_history_makes_no_call() -> None:
    fake = FakeBackend()
    assert PreferenceSummarizer(fake).summarize([]) == ""
    assert fake.calls == 0
