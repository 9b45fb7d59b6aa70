"""The HTML report: every candidate once and in rank order, text escaped, real photos embedded,
a broken image shown as a box that says why; then the same page loaded by a real headless Chromium."""

from __future__ import annotations

import base64
import http.server
import io
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import chromium as _chromium
from browser import needs_chromium
from PIL import Image

from msrkit.data import History, Ranking
from msrkit.inputs.images import ImagePolicy
from msrkit.inputs.io import load_histories
from msrkit.jobs.report import render_eval_html, render_html, write_eval_html, write_html
from msrkit.recommender import Recommender

skimage_data = pytest.importorskip("skimage.data")
PHOTOS = Path(skimage_data.__file__).parent
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "history.json"
HOSTILE = "<script>alert(1)</script>"


class _Page(HTMLParser):
    """What a test needs from the page: candidate rows in order, <img> sources, script elements, text."""

    def __init__(self) -> None:
        super().__init__()
        self.candidates: list[str] = []
        self.images: list[str] = []
        self.broken: int = 0
        self.scripts: int = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "candidate" in classes:
            self.candidates.append(a["data-item-id"] or "")
        if tag == "img":
            self.images.append(a.get("src") or "")
        if "broken" in classes:
            self.broken += 1
        if tag == "script":
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    return p


def _history(tmp_path: Path) -> History:
    """Real photos: one absolute path, one relative to the history's folder; a title that is markup."""
    shutil.copy(PHOTOS / "rocket.jpg", tmp_path / "rocket.jpg")
    return History.model_validate(
        {
            "user_id": "u<1>",
            "history": [
                {"item_id": "h1", "title": "Astronaut", "image": str(PHOTOS / "astronaut.png")},
                {"item_id": "h2", "title": "Rocket & launch", "image": "rocket.jpg"},
            ],
            "candidates": [
                {"item_id": "c1", "title": HOSTILE, "image": "rocket.jpg"},
                {"item_id": "c2", "title": "Coffee", "image": str(PHOTOS / "coffee.png")},
                {"item_id": "c3", "title": "No picture"},
                {"item_id": "c4", "title": "Chelsea the cat", "image": str(PHOTOS / "chelsea.png")},
            ],
        }
    ).with_base_dir(tmp_path)


def _rank(history: History) -> Ranking:
    with Recommender("none", cache=False) as rec:
        return rec.rank(history)


def test_every_candidate_once_in_rank_order_with_escaped_text_and_embedded_photos(tmp_path: Path) -> None:
    history = _history(tmp_path)
    ranking = _rank(history)
    path = write_html(tmp_path / "out" / "report.html", [(history, ranking)], max_side=96)
    page = path.read_text(encoding="utf-8")
    parsed = parse(page)

    assert parsed.candidates == ranking.item_ids()
    assert sorted(parsed.candidates) == ["c1", "c2", "c3", "c4"]
    assert parsed.scripts == 0 and HOSTILE not in page
    assert HOSTILE in "".join(parsed.text)  # shown as text, exactly as given
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "u&lt;1&gt;" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    # 2 history photos + 3 candidate photos; each a data URI that decodes to an image within max_side
    assert len(parsed.images) == 5 and all(src.startswith("data:image/") for src in parsed.images)
    for src in parsed.images:
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert max(image.size) <= 96 and _colors(image) > 100  # a photo, not a fill


def test_broken_and_missing_images_become_placeholders_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not an image")
    history = History.model_validate(
        {"history": [{"item_id": "h", "image": "missing.jpg"}],
         "candidates": [{"item_id": "a", "image": "bad.png"}, {"item_id": "b", "image": "bad.png"}]}
    ).with_base_dir(tmp_path)  # fmt: skip
    ranking = Ranking.model_validate(
        {"ranking": [{"item_id": "b", "rank": 1, "score": 2.0, "reason": "r<b>"},
                     {"item_id": "a", "rank": 2, "score": 1.0}],
         "degraded": True, "warnings": ["w & <i>"], "collaborative_context": ["user x took <a>"]}
    )  # fmt: skip
    page = write_html(tmp_path / "r.html", [(history, ranking)]).read_text(encoding="utf-8")
    parsed = parse(page)
    assert parsed.candidates == ["b", "a"] and parsed.images == [] and parsed.broken == 3
    assert "does not exist" in page and "not a readable image" in page
    assert "DEGRADED" in page and "w &amp; &lt;i&gt;" in page and "user x took &lt;a&gt;" in page
    assert "r&lt;b&gt;" in page


class _Photo(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        found = self.path == "/rocket.jpg"
        body = (PHOTOS / "rocket.jpg").read_bytes() if found else b"nope"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "image/jpeg" if found else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Photo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_images_are_fetched_and_embedded_or_explained(web: str, tmp_path: Path) -> None:
    history = History.model_validate(
        {"history": [{"item_id": "h", "image": f"{web}/rocket.jpg"}],
         "candidates": [{"item_id": "a", "image": f"{web}/gone.jpg"}]}
    )  # fmt: skip
    ranking = Ranking.model_validate({"ranking": [{"item_id": "a", "rank": 1, "score": 1.0}]})
    loopback = ImagePolicy(private_hosts=True)
    page = write_html(tmp_path / "r.html", [(history, ranking)], image_policy=loopback).read_text(encoding="utf-8")
    parsed = parse(page)
    assert len(parsed.images) == 1 and parsed.images[0].startswith("data:image/jpeg;base64,")
    assert parsed.broken == 1 and "could not be fetched as an image" in page
    guarded = write_html(tmp_path / "g.html", [(history, ranking)]).read_text(encoding="utf-8")
    assert parse(guarded).broken == 2 and "non-public address" in guarded  # the default: no private hosts


def test_eval_page_has_one_row_per_variant_with_intervals(tmp_path: Path) -> None:
    comparison = {
        "ks": [1],
        "baseline": "retrieval",
        "rows": [
            {"name": "retrieval", "n": 3, "metrics": {"HR@1": {"mean": 0.25, "low": 0.1, "high": 0.4}}},
            {"name": "<llm>", "n": 3, "metrics": {"HR@1": {"mean": 0.5, "low": 0.3, "high": 0.7}}},
        ],
    }
    page = write_eval_html(tmp_path / "e.html", comparison).read_text(encoding="utf-8")
    assert page.count('class="variant"') == 2 and "&lt;llm&gt;" in page and "[0.3000, 0.7000]" in page
    assert render_eval_html(comparison) == page


def test_cli_rank_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "msrkit.cli", "rank", str(EXAMPLE), "--backend", "none", "--no-cache",
         "--json", "--html", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stderr
    import json

    expected = [r["item_id"] for r in json.loads(done.stdout)["ranking"]]
    assert parse(out.read_text(encoding="utf-8")).candidates == expected


def test_cli_report_covers_every_user_of_a_batch(tmp_path: Path) -> None:
    import json

    one = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    users = [{**one, "user_id": "a"}, {**one, "user_id": "b", "candidates": one["candidates"][:3]}]
    (tmp_path / "users.jsonl").write_text("".join(json.dumps(u) + "\n" for u in users), encoding="utf-8")
    out = tmp_path / "many.html"
    done = subprocess.run(
        [sys.executable, "-m", "msrkit.cli", "rank", "users.jsonl", "--backend", "none", "--no-cache", "-q",
         "--html", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert page.count('<section class="user"') == 2 and 'data-user-id="b"' in page
    assert len(parse(page).candidates) == len(one["candidates"]) + 3


# -- a real browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, History, Ranking]:
    tmp = tmp_path_factory.mktemp("browser")
    history = _history(tmp)
    ranking = _rank(history)
    return write_html(tmp / "report.html", [(history, ranking)], max_side=160), history, ranking


@pytest.mark.slow
@needs_chromium
def test_chromium_renders_every_candidate_in_rank_order_and_no_injected_script(
    browser_page: tuple[Path, History, Ranking], tmp_path: Path
) -> None:
    page, _, ranking = browser_page
    done = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    dom = parse(done.stdout)
    assert dom.candidates == ranking.item_ids()
    assert dom.scripts == 0  # the hostile title stayed text
    assert HOSTILE in "".join(dom.text)
    assert len(dom.images) == 5


def _colors(image: Image.Image) -> int:
    rgb = image.convert("RGB")
    return len(rgb.getcolors(rgb.width * rgb.height) or [])


def _photo_blocks(shot: Image.Image, side: int = 40) -> int:
    """40-px blocks holding a photo: over 400 distinct colours (anti-aliased text on a flat
    background stays under ~250, a missing image is one flat box)."""
    return sum(
        _colors(shot.crop((x, y, x + side, y + side))) > 400
        for y in range(0, shot.height - side, side)
        for x in range(0, shot.width - side, side)
    )


@pytest.mark.slow
@needs_chromium
def test_chromium_screenshot_shows_the_decoded_photos(
    browser_page: tuple[Path, History, Ranking], tmp_path: Path
) -> None:
    page, _, _ = browser_page
    shots = {}
    # control: the same page with every image source emptied, as if no image had decoded
    blank = tmp_path / "no-images.html"
    blank.write_text(re.sub(r'src="data:[^"]*"', 'src=""', page.read_text(encoding="utf-8")), encoding="utf-8")
    for name, html_file in (("report", page), ("control", blank)):
        shot_path = tmp_path / f"{name}.png"
        done = _chromium(tmp_path, f"--screenshot={shot_path}", "--window-size=1200,2000", html_file.as_uri())
        assert done.returncode == 0 and shot_path.exists(), done.stderr[-2000:]
        shots[name] = Image.open(shot_path)
    shot = shots["report"]
    assert shot.size == (1200, 2000)
    assert _colors(shot) > 10_000  # not blank: photos, not only text
    # five photos of ~160 x 120 px cover well over 30 blocks; without them there are none
    assert _photo_blocks(shot) >= 30
    assert _photo_blocks(shots["control"]) == 0


def test_page_has_no_external_references(tmp_path: Path) -> None:
    history = _history(tmp_path)
    page = write_html(tmp_path / "r.html", [(history, _rank(history))]).read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)


def test_a_streamed_report_is_the_page_of_the_whole_list(tmp_path: Path) -> None:
    # issue 21: --html writes each user as it comes (a generator), so it must not differ from the list's page
    history = load_histories(EXAMPLE)[0]
    ranking = _rank(history)
    pairs = [(history, ranking), (history, ranking.model_copy(update={"user_id": "b"}))]
    page = write_html(tmp_path / "r.html", (p for p in pairs)).read_text(encoding="utf-8")
    assert page == render_html(pairs) and page.count('<section class="user"') == 2
