"""The photo example (``examples/photos``): real photographs, small and licensed; a text-only model says
once that it did not see them and how to give it a vision backend, ``--backend none`` says nothing of
the kind; the HTML report renders every image in a real Chromium with no request leaving the page.

Set ``MSRKIT_SCREENSHOT_DIR`` to keep the browser's screenshot (``report-photos.png``; the docs' one is
made so: ``MSRKIT_SCREENSHOT_DIR=docs/img pytest tests/test_photos_example.py -k chromium``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import CHROMIUM, IMAGES_JS, DevToolsPage, needs_chromium
from clirun import msrkit
from PIL import Image

from msrkit.backends.base import Capabilities
from msrkit.backends.fake import FakeBackend
from msrkit.recommender import Recommender

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
HISTORY = PHOTOS / "history.json"
INTERACTIONS = PHOTOS / "interactions.jsonl"
UNSEEN = "images were not seen"


def _example() -> dict[str, list[dict[str, str]]]:
    data: dict[str, list[dict[str, str]]] = json.loads(HISTORY.read_text(encoding="utf-8"))
    return data


def _one_line(text: str) -> str:
    """Terminal output as one line (rich wraps long warnings)."""
    return " ".join(text.split())


def test_every_item_has_a_small_real_photo_named_in_the_licence_file() -> None:
    data = _example()
    items = [*data["history"], *data["candidates"]]
    licence = (PHOTOS / "LICENSE.md").read_text(encoding="utf-8")
    assert len(items) == 9 and len({i["image"] for i in items}) == 9
    total = 0
    for item in items:
        path = PHOTOS / item["image"]
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 256, (path, image.size)
            rgb = image.convert("RGB")
            assert len(rgb.getcolors(rgb.width * rgb.height) or []) > 100, path  # a photograph, not a fill
        assert f"`{item['image']}`" in licence, item["image"]
        assert item["title"] and item["description"]
        total += path.stat().st_size
    assert total < 200_000  # small enough for the sdist


def test_make_images_remakes_the_committed_images_from_scikit_image(tmp_path: Path) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_images", PHOTOS / "make_images.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for made in module.make(Path(skimage_data.__file__).parent, tmp_path):
        with Image.open(made) as new, Image.open(PHOTOS / "img" / made.name) as committed:
            assert new.size == committed.size
            pixels = zip(new.convert("L").tobytes(), committed.convert("L").tobytes(), strict=True)
            diff = sum(abs(a - b) for a, b in pixels)
            assert diff / (new.width * new.height) < 3.0, made.name  # the same picture (JPEG encoders may differ)


def _rank_with(backend: FakeBackend, *, store_dir: Path, **options: object) -> list[str]:
    with Recommender(backend, cache=store_dir, explain=False, **options) as rec:  # type: ignore[arg-type]
        return rec.rank(HISTORY).warnings


def test_a_text_only_model_says_once_per_request_that_images_were_not_seen(tmp_path: Path) -> None:
    text_only = Capabilities(vision=False, logprobs=True)
    for _ in range(2):  # the second request reads every item summary from the store, and still says it
        warnings = _rank_with(FakeBackend(capabilities=text_only), store_dir=tmp_path / "text")
        unseen = [w for w in warnings if w.startswith(UNSEEN)]
        assert len(unseen) == 1, warnings
        assert "vision_backend" in unseen[0] and "--vision-backend" in unseen[0] and "fake/scripted" in unseen[0]
    seeing = FakeBackend(capabilities=Capabilities(vision=True))
    assert not [w for w in _rank_with(seeing, store_dir=tmp_path / "vision") if w.startswith(UNSEEN)]
    vision = FakeBackend("describer", capabilities=Capabilities(vision=True))
    with Recommender(FakeBackend(capabilities=text_only), vision_backend=vision, cache=False) as rec:
        assert not [w for w in rec.rank(HISTORY).warnings if w.startswith(UNSEEN)]
        assert vision.calls == 9  # one description per image: they were seen
    off = _rank_with(FakeBackend(), store_dir=tmp_path / "off", item_summaries=False)
    assert [w for w in off if w.startswith(UNSEEN)] == [
        "images were not seen: item summaries are off, and only they look at images; turn them on "
        "(--item-summaries) with a vision model as the backend or as vision_backend"
    ]


def test_backend_none_ranks_the_example_without_the_warning_and_shows_every_photo(tmp_path: Path) -> None:
    page_path = tmp_path / "report.html"
    done = msrkit("rank", str(HISTORY), "--backend", "none", "--no-cache", "--html", str(page_path))
    assert done.returncode == 0, done.stderr
    assert UNSEEN not in done.stdout + done.stderr
    page = page_path.read_text(encoding="utf-8")
    assert UNSEEN not in page and 'class="thumb broken"' not in page and "no image" not in page
    assert len(re.findall(r'<img class="thumb" src="data:image/jpeg;base64,', page)) == 9


# -- the embedded model, and a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("photos-cache")


@pytest.mark.slow
def test_the_embedded_model_prints_the_unseen_images_warning_exactly_once(
    embedded_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    page_path = tmp_path / "report.html"
    done = msrkit("rank", str(HISTORY), "--backend", "llamacpp/default", "--cache-dir", str(cache_dir),
                  "--html", str(page_path), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    said = _one_line(done.stdout + "\n" + done.stderr)
    assert said.count(UNSEEN) == 1, said
    assert "give a vision model as vision_backend (--vision-backend, MSRKIT_VISION_BACKEND or msrkit.toml)" in said
    assert page_path.read_text(encoding="utf-8").count(UNSEEN) == 1
    listed = msrkit("rank", str(HISTORY), "--backend", "llamacpp/default", "--cache-dir", str(cache_dir), "--json",
                    timeout=900)  # fmt: skip
    ranking = json.loads(listed.stdout)
    assert [w for w in ranking["warnings"] if w.startswith(UNSEEN)] and ranking["score_kind"] == "rank"
    scores = [r["score"] for r in ranking["ranking"]]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.fixture(scope="module")
def fused_report(embedded_model: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's second quickstart command: the embedded model fused with retrieval, as a page."""
    page_path = tmp_path_factory.mktemp("photos-report") / "report.html"
    done = msrkit("rank", str(HISTORY), "--backend", "llamacpp/default", "--interactions", str(INTERACTIONS),
                  "--cache-dir", str(cache_dir), "--html", str(page_path), timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return page_path


@pytest.mark.slow
@needs_chromium
def test_chromium_renders_every_history_and_candidate_photo_and_no_request_leaves(
    fused_report: Path, tmp_path: Path
) -> None:
    assert CHROMIUM is not None
    data = _example()
    page = DevToolsPage(tmp_path / "profile")
    try:
        page.open(fused_report.as_uri())
        images = page.evaluate(IMAGES_JS)
        requested = page.requested()
        shot = page.screenshot(tmp_path / "report-photos.png")
        # control: the monitor sees a request that would leave the page (loopback, port 9: nothing listens)
        leaky = tmp_path / "leaky.html"
        leaky.write_text(fused_report.read_text(encoding="utf-8").replace(
            "</body>", '<img src="http://127.0.0.1:9/tracker.png"></body>'), encoding="utf-8")  # fmt: skip
        page.open(leaky.as_uri())
        leaked = [u for u in page.requested() if not u.startswith(("file:", "data:"))]
    finally:
        page.close()
    history = {i["item_id"] for i in data["history"]}
    candidates = {i["item_id"] for i in data["candidates"]}
    assert {i["item"] for i in images if i["history"]} == history
    assert {i["item"] for i in images if i["candidate"]} == candidates
    assert len(images) == 9
    for image in images:
        assert image["decoded"] and image["width"] > 0 and image["height"] > 0, image
    assert requested and all(u.startswith(("file:", "data:")) for u in requested), requested[:3]
    assert leaked == ["http://127.0.0.1:9/tracker.png"]
    with Image.open(shot) as png:
        rgb = png.convert("RGB")
        assert png.width == 1200 and len(rgb.getcolors(rgb.width * rgb.height) or []) > 10_000  # photos, not text
        if os.environ.get("MSRKIT_SCREENSHOT_DIR"):  # kept for the docs, in 256 colours (a third of the bytes)
            rgb.quantize(256).save(Path(os.environ["MSRKIT_SCREENSHOT_DIR"]) / "report-photos.png", optimize=True)
