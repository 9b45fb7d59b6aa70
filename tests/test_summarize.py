"""Item summaries: keyword parsing, text-only degradation, one call per item across users (cache)."""

from __future__ import annotations

from pathlib import Path

from msrkit.backends.base import Capabilities, ImagePart
from msrkit.backends.cache import CachedBackend, ResponseCache
from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.runtime.meter import Meter
from msrkit.summaries import ItemSummarizer, parse_keywords


def test_parse_keywords_handles_lists_bullets_think_and_limits() -> None:
    assert parse_keywords("Keywords: Sci-Fi, space,  SPACE, adventure.", limit=8) == ["sci-fi", "space", "adventure"]
    assert parse_keywords("<think>hmm, long</think>\n1. drama\n2) war\n- history", limit=2) == ["drama", "war"]
    long_phrase = "this is far too long to be a keyword at all"
    assert parse_keywords(f"{long_phrase}, ok", limit=5) == ["ok"]
    assert parse_keywords("", limit=3) == []


def test_text_only_backend_skips_images_with_one_warning(tmp_path: Path) -> None:
    fake = FakeBackend(capabilities=Capabilities(vision=False), default=lambda r: "drama, war")
    items = [Item(item_id=str(i), title=f"T{i}", image=f"img{i}.jpg") for i in range(3)]
    meter = Meter()
    out = ItemSummarizer(fake).summarize(items, meter=meter, base_dir=tmp_path)
    assert [i.keywords for i in out] == [["drama", "war"]] * 3
    assert all(i.image_description is None for i in out)
    assert fake.calls == 3 and not any(r.has_images for r in fake.requests)
    assert len(meter.warnings) == 1 and "cannot see images" in meter.warnings[0]


def test_vision_backend_describes_then_merges_into_keywords(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "red.png")
    fake = FakeBackend(capabilities=Capabilities(vision=True))
    fake.enqueue("A plain red square poster.", "red, poster, minimal")
    [out] = ItemSummarizer(fake).summarize([Item(item_id="a", title="Red", image="red.png")], base_dir=tmp_path)
    assert out.image_description == "A plain red square poster."
    assert out.keywords == ["red", "poster", "minimal"]
    first, second = fake.requests
    assert isinstance(first.messages[-1].parts[0], ImagePart) and not second.has_images
    assert "A plain red square poster." in second.messages[-1].text_content  # image summary merged into keywords


def test_items_are_summarized_once_across_users(tmp_path: Path) -> None:
    fake = FakeBackend(default=lambda r: "comedy")
    summarizer = ItemSummarizer(CachedBackend(fake, ResponseCache(tmp_path)))
    shared = [Item(item_id="x", title="Shared Movie"), Item(item_id="y", title="Other")]
    summarizer.summarize(shared)
    meter = Meter()
    again = summarizer.summarize(list(reversed(shared)), meter=meter)
    assert fake.calls == 2 and meter.usage.llm_calls == 0 and meter.usage.cache_hits == 2
    assert [i.keywords for i in again] == [["comedy"], ["comedy"]]


def test_concurrent_summaries_keep_order_and_count_every_call() -> None:
    fake = FakeBackend(default=lambda r: r.messages[-1].text_content.split("<<<\n")[1].split()[0])
    items = [Item(item_id=str(i), title=f"w{i}") for i in range(20)]
    meter = Meter()
    out = ItemSummarizer(fake).summarize(items, meter=meter, concurrency=4)
    assert [i.keywords for i in out] == [[f"w{i}"] for i in range(20)]
    assert meter.usage.llm_calls == 20


def test_items_without_text_cost_nothing() -> None:
    fake = FakeBackend()
    [out] = ItemSummarizer(fake).summarize([Item(item_id="bare")])
    assert out.keywords == [] and fake.calls == 0
