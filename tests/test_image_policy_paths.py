"""The image policy on every path that summarizes items (issue 20: two paths dropped it).

``ItemSummarizer.from_settings`` is the one constructor; these check the paths that used to build
the summarizer by hand: ``Recommender.item_summarizer()`` (what Ray's ``summarize_dataset`` actors
use) and, on a real local Ray, ``summarize_dataset`` itself, against a loopback OpenAI-compatible
server that records what it was sent. An image under ``image_roots`` is read and sent; one outside
is skipped (before: both were sent). MCP ``summarize_items``: tests/test_mcp_exposure.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faultserver import FaultServer

from msrkit.config import Settings
from msrkit.data import Item
from msrkit.recommender import Recommender

pytestmark = pytest.mark.timeout(240)


def _items(tmp_path: Path) -> tuple[list[Item], Path]:
    pil = pytest.importorskip("PIL.Image")
    inside, outside = tmp_path / "img", tmp_path / "private"
    for folder in (inside, outside):
        folder.mkdir()
        pil.new("RGB", (8, 8), "red").save(folder / "a.png")
    items = [Item(item_id="in", title="In", image=str(inside / "a.png")),
             Item(item_id="out", title="Out", image=str(outside / "a.png"))]  # fmt: skip
    return items, inside


def _with_images(server: FaultServer) -> int:
    return sum("image_url" in json.dumps(seen.body) for seen in server.requests)


def _settings(server: FaultServer, inside: Path, **extra: object) -> Settings:
    return Settings(backend="openai/x", base_url=server.url, backend_options={"vision": True}, image_roots=[inside],
                    cache=False, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_the_recommenders_item_summarizer_applies_every_image_setting(tmp_path: Path) -> None:
    items, inside = _items(tmp_path)
    with FaultServer() as server, Recommender(settings=_settings(server, inside, image_timeout=3.0, max_side=64,
                                                                 strict=False)) as rec:  # fmt: skip
        summarizer = rec.item_summarizer()
        assert summarizer.image_policy is not None and summarizer.image_policy.roots == (inside,)
        assert (summarizer.image_policy.timeout, summarizer.max_side) == (3.0, 64)
        done = summarizer.summarize(items)
        assert _with_images(server) == 1  # only the image inside image_roots was sent
    assert [i.image_description is not None for i in done] == [True, False]


@pytest.mark.slow
def test_ray_summarize_dataset_honours_image_roots(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="pip install 'msrkit[ray]'")
    pytest.importorskip("pyarrow")
    from msrkit.distributed import summarize_dataset

    items, inside = _items(tmp_path)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20, logging_level="WARNING")
    try:
        with FaultServer() as server:
            ds = ray.data.from_items([{"text": i.model_dump_json(), "key": i.item_id} for i in items])
            rows = summarize_dataset(ds, _settings(server, inside, concurrency=1)).take_all()
            sent = _with_images(server)
    finally:
        ray.shutdown()
    assert sent == 1
    described = {r["item_id"]: r["image_description"] for r in rows}
    assert described["out"] is None and described["in"]
    assert any("outside the folders images may be read from" in w for r in rows for w in r["warnings"])
