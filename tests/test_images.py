"""Images: read from paths, URLs and data URIs, checked, downscaled, encoded exactly.

Real photos from scikit-image's ``skimage/data``; remote images from a loopback
HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from faultserver import StaticServer
from PIL import Image

from msrkit.errors import InputError
from msrkit.inputs.images import ImagePolicy, check_image, load_image, to_base64, to_data_uri

ASTRONAUT = Path(str(files("skimage") / "data" / "astronaut.png"))  # 512 x 512 RGB PNG
ROCKET = Path(str(files("skimage") / "data" / "rocket.jpg"))


def test_small_image_is_sent_byte_for_byte() -> None:
    part = load_image(str(ROCKET), max_side=4096)
    assert part.data == ROCKET.read_bytes()
    assert part.mime == "image/jpeg"


def test_relative_path_is_read_from_base_dir() -> None:
    part = load_image("astronaut.png", base_dir=ASTRONAUT.parent, max_side=1024)
    assert part.data == ASTRONAUT.read_bytes() and part.mime == "image/png"


def test_large_image_is_downscaled_to_max_side() -> None:
    part = load_image(str(ASTRONAUT), max_side=128)
    with Image.open(io.BytesIO(part.data)) as img:
        assert max(img.size) == 128
        assert img.format == "JPEG"
    assert part.mime == "image/jpeg"
    assert len(part.data) < ASTRONAUT.stat().st_size


def test_transparency_is_kept_as_png(tmp_path: Path) -> None:
    path = tmp_path / "alpha.png"
    Image.new("RGBA", (400, 200), (255, 0, 0, 128)).save(path)
    part = load_image(str(path), max_side=100)
    with Image.open(io.BytesIO(part.data)) as img:
        assert img.size == (100, 50) and img.mode == "RGBA"
    assert part.mime == "image/png"


def test_data_uri_round_trip_and_exact_encodings() -> None:
    raw = ROCKET.read_bytes()
    uri = "data:image/jpeg;base64," + base64.b64encode(raw).decode()
    part = load_image(uri, max_side=4096)
    assert part.data == raw
    assert to_data_uri(part) == uri
    assert base64.b64decode(to_base64(part)) == raw and not to_base64(part).startswith("data:")


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("missing.jpg", "does not exist"),
        ("data:image/png;base64,@@@", "invalid base64"),
        ("data:text/plain;base64,aGk=", "data:image"),
        ("ftp://host/x.jpg", "scheme 'ftp'"),
        ("", "empty"),
    ],
)
def test_bad_references_are_input_errors(tmp_path: Path, ref: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_image(ref, base_dir=tmp_path)


def test_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "poster.jpg").write_text("this is text, not a JPEG")
    with pytest.raises(InputError, match="not a readable image"):
        load_image("poster.jpg", base_dir=tmp_path)
    with pytest.raises(InputError, match="not a readable image"):
        check_image("poster.jpg", base_dir=tmp_path)
    check_image(str(ASTRONAUT))  # a real one passes
    check_image("http://127.0.0.1:9/never-fetched.jpg")  # remote ones are checked when used


@pytest.fixture
def web() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


LOOPBACK = ImagePolicy(private_hosts=True)
UNUSABLE = "could not be fetched as an image"


def test_remote_images(web: StaticServer) -> None:
    jpeg = ROCKET.read_bytes()
    web.routes = {
        "/ok.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/page": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/fake.jpg": (200, {"Content-Type": "image/jpeg"}, b"not really"),
        "/to-file": (302, {"Location": "file:///etc/passwd"}, b""),
        "/to-ok": (302, {"Location": "/ok.jpg"}, b""),
        "/big.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
    }
    assert load_image(f"{web.base}/ok.jpg", max_side=4096, policy=LOOPBACK).data == jpeg
    assert load_image(f"{web.base}/to-ok", max_side=4096, policy=LOOPBACK).data == jpeg  # http -> http is followed
    with pytest.raises(InputError, match="not http"):
        load_image(f"{web.base}/to-file", policy=LOOPBACK)


def test_every_failed_download_reads_the_same_no_port_scanning_oracle(web: StaticServer) -> None:
    """Refused, HTTP 404, not an image, too large: one message (the detail goes to the debug log only)."""
    web.routes = {
        "/page": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/fake.jpg": (200, {"Content-Type": "image/jpeg"}, b"not really"),
        "/big.jpg": (200, {"Content-Type": "image/jpeg"}, ROCKET.read_bytes()),
    }
    closed = "http://127.0.0.1:9/x.jpg"
    messages = []
    for url, kw in [(f"{web.base}/page", {}), (f"{web.base}/fake.jpg", {}), (f"{web.base}/nothing.jpg", {}),
                    (f"{web.base}/big.jpg", {"max_bytes": 1000}), (closed, {})]:  # fmt: skip
        with pytest.raises(InputError, match=UNUSABLE) as info:
            load_image(url, policy=LOOPBACK, **kw)  # type: ignore[arg-type]
        messages.append(str(info.value).replace(url, "URL"))
    assert len(set(messages)) == 1, messages


def test_unreachable_url_is_an_input_error() -> None:
    with pytest.raises(InputError, match=UNUSABLE):
        load_image("http://127.0.0.1:9/x.jpg", timeout=1.0, policy=LOOPBACK)
