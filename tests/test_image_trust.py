"""Images from untrusted data: devices, FIFOs, folders, escapes, bombs, private addresses, slow servers.

Every case: a one-line InputError naming the reference, in bounded time, or
the safe behaviour (refused before any connection). Remote cases use loopback
servers on 127.0.0.1 with the private-address guard allowed, except where the
guard itself is tested.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
import warnings
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from faultserver import SlowImageServer, StaticServer
from PIL import Image

import msrkit.inputs.fetch as fetch_module
from msrkit.errors import InputError
from msrkit.inputs.fetch import fetch_url, is_public
from msrkit.inputs.images import ImagePolicy, check_image, load_image
from msrkit.recommender import Recommender
from msrkit.runtime.deadline import Deadline, active

pytestmark = pytest.mark.timeout(60)

ROCKET = Path(str(files("skimage") / "data" / "rocket.jpg"))
LOOPBACK = ImagePolicy(private_hosts=True)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_without_reading(device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"no {device} here")
    started = time.monotonic()
    with pytest.raises(InputError, match="character device, not a regular file"):
        load_image(device)
    assert time.monotonic() - started < 1.0


def test_a_fifo_and_a_folder_are_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "poster.jpg"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(InputError, match="FIFO"):
        check_image("poster.jpg", base_dir=tmp_path)  # no writer: a blocking open would wait forever
    assert time.monotonic() - started < 1.0
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(InputError, match="folder"):
        load_image("folder.jpg", base_dir=tmp_path)


def test_a_file_larger_than_the_cap_is_not_read_past_it(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(ROCKET.read_bytes())
    with pytest.raises(InputError, match="over the 1000-byte cap"):
        load_image(str(big), max_bytes=1000)


def test_local_paths_are_confined_to_the_roots_when_set(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "secret"
    root.mkdir()
    outside.mkdir()
    (root / "ok.jpg").write_bytes(ROCKET.read_bytes())
    (outside / "private.jpg").write_bytes(ROCKET.read_bytes())
    (root / "link.jpg").symlink_to(outside / "private.jpg")
    policy = ImagePolicy(roots=(root,))
    assert load_image("ok.jpg", base_dir=root, policy=policy, max_side=4096).data == ROCKET.read_bytes()
    for ref in ("../secret/private.jpg", "link.jpg", str(outside / "private.jpg")):
        with pytest.raises(InputError, match="outside the folders images may be read from"):
            load_image(ref, base_dir=root, policy=policy)
    with pytest.raises(InputError, match="outside"):
        check_image(str(root / "ok.jpg"), policy=ImagePolicy(roots=()))  # no local files at all


def test_confinement_comes_from_the_settings_and_names_the_item(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(ROCKET.read_bytes())
    history = {"history": [{"item_id": "h1", "title": "t", "image": str(tmp_path / "p.jpg")}],
               "candidates": [{"item_id": "c1"}]}  # fmt: skip
    rec = Recommender(backend="none", cache=False, image_roots=[tmp_path / "elsewhere"])
    with rec, pytest.raises(InputError) as info:
        rec.rank(history)
    assert "history[0].image" in str(info.value) and "'h1'" in str(info.value)
    with Recommender(backend="none", cache=False, image_roots=[tmp_path]) as rec:
        assert rec.rank(history).item_ids() == ["c1"]


def _png_uri(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_too_many_pixels_is_a_clean_error_and_never_a_raw_pillow_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    twelve_mp, eight_mp = _png_uri(4000, 3000), _png_uri(4000, 2000)
    with pytest.raises(InputError, match="4000x3000 pixels, over the 1000000-pixel cap"):
        load_image(twelve_mp, policy=ImagePolicy(max_pixels=1_000_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000_000)  # Pillow warns above this and fails above twice it
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for uri in (eight_mp, twelve_mp):
            with pytest.raises(InputError, match="too many pixels"):
                load_image(uri, policy=ImagePolicy(max_pixels=10**9))
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_a_data_uri_over_the_cap_is_refused_before_decoding() -> None:
    with pytest.raises(InputError, match="over the 100-byte cap"):
        load_image("data:image/png;base64," + "A" * 1000, max_bytes=100)


# -- the private-address guard -----------------------------------------------------------------

NOT_PUBLIC = ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",  # noqa: S104
              "224.0.0.1",
              "255.255.255.255", "100.64.0.1", "::1", "::", "fd00::1", "fe80::1%eth0", "ff02::1", "::ffff:127.0.0.1",
              "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe", "2001:db8::1"]  # fmt: skip


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:9/x.jpg", "http://2130706433/x.jpg", "http://0x7f000001/x.jpg", "http://017700000001/x.jpg",
     "http://[::1]/x.jpg", "http://[::ffff:127.0.0.1]/x.jpg", "http://169.254.169.254/latest/meta-data/",
     "http://10.0.0.1/x.jpg", "http://[fd00::1]/x.jpg", "http://localhost/x.jpg", "http://0.0.0.0/x.jpg"],
)  # fmt: skip
def test_urls_on_non_public_addresses_are_refused_before_connecting(url: str) -> None:
    started = time.monotonic()
    with pytest.raises(InputError, match="non-public address") as info:
        load_image(url)
    assert "image_private_hosts" in str(info.value)
    assert time.monotonic() - started < 2.0


@pytest.fixture
def web() -> Iterator[StaticServer]:
    with StaticServer() as server:
        yield server


def test_a_trickling_image_server_is_cut_off_at_the_total_limit() -> None:
    with SlowImageServer(interval=0.2) as slow:
        started = time.monotonic()
        with pytest.raises(InputError, match="could not be fetched as an image"):
            load_image(slow.url, policy=ImagePolicy(private_hosts=True, timeout=1.0))
        assert time.monotonic() - started < 2.0


def test_a_cancelled_request_cuts_its_download_at_once() -> None:
    request = Deadline(600)
    with SlowImageServer(interval=0.2) as slow:
        threading.Timer(0.5, request.cancel).start()
        started = time.monotonic()
        with active(request), pytest.raises(InputError):
            load_image(slow.url, policy=ImagePolicy(private_hosts=True, timeout=600))
        assert time.monotonic() - started < 1.5


def test_every_redirect_target_is_checked_again(web: StaticServer, monkeypatch: pytest.MonkeyPatch) -> None:
    web.routes = {"/hop": (302, {"Location": f"http://127.0.0.2:{web.port}/ok.jpg"}, b""),
                  "/ok.jpg": (200, {"Content-Type": "image/jpeg"}, ROCKET.read_bytes())}  # fmt: skip
    monkeypatch.setattr(fetch_module, "is_public", lambda address: address == "127.0.0.1")  # 127.0.0.1 "public"
    assert fetch_url(f"{web.base}/ok.jpg", timeout=5, max_bytes=10**7) == ROCKET.read_bytes()
    with pytest.raises(InputError, match=r"non-public address \(127\.0\.0\.2"):
        fetch_url(f"{web.base}/hop", timeout=5, max_bytes=10**7)


def test_the_connection_goes_to_the_address_that_was_checked(
    web: StaticServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second DNS lookup: a rebinding DNS server cannot answer the check and the connect differently."""
    web.routes = {"/ok.jpg": (200, {"Content-Type": "image/jpeg"}, ROCKET.read_bytes())}
    lookups: list[str] = []

    def resolve(host: str, port: int, limit: Any) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(fetch_module, "_resolve", resolve)
    data = fetch_url(f"http://rebind.test:{web.port}/ok.jpg", timeout=5, max_bytes=10**7, private_hosts=True)
    assert data == ROCKET.read_bytes()
    assert lookups == ["rebind.test"] and web.hosts == [f"rebind.test:{web.port}"]


def test_one_users_bad_image_is_that_users_recorded_error_never_the_batchs_end(tmp_path: Path) -> None:
    from msrkit.inputs.io import parse_history
    from msrkit.jobs.batch import rank_batch

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)

    def user(name: str, image: str | None) -> Any:
        entry = {"item_id": "h", "title": "seen", **({"image": image} if image else {})}
        return parse_history(
            {"user_id": name, "history": [entry], "candidates": [{"item_id": "c1"}, {"item_id": "c2"}]}
        )

    users = [user("ok1", None), user("zero", "/dev/zero"), user("fifo", str(fifo)), user("ok2", None)]
    out = tmp_path / "out.jsonl"
    with Recommender(backend="none", cache=False) as rec:
        summary = rank_batch(rec.rank, users, out=out)
    assert (summary.ranked, summary.failed) == (2, 2)
    errors = dict(summary.errors)
    assert "history[0].image" in str(errors["zero"]) and "character device" in str(errors["zero"])
    assert "history[0].image" in str(errors["fifo"]) and "FIFO" in str(errors["fifo"])
    assert len(out.read_text().splitlines()) == 4


@pytest.mark.parametrize("ref", ["~no-such-user-0/x.jpg", "poster\x00.jpg"], ids=["unknown-home", "nul-byte"])
def test_fixed_bug_odd_paths_are_input_errors(ref: str) -> None:
    """Found by the property tests: Path.expanduser raised RuntimeError, os.open ValueError."""
    with pytest.raises(InputError, match="does not exist|not a valid path"):
        load_image(ref)
