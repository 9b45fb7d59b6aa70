"""Hostile input, continued: image sources and cache folders (hypothesis), the siblings of test_hostile_input.py.

Image references: any text, local files of any bytes, devices, FIFOs, folders,
symlink loops, data URIs of any payload, URLs on non-public addresses and odd
schemes. The contract: an :class:`~msrkit.inputs.images.ImagePart` or an
:class:`~msrkit.errors.InputError` naming the reference, within the example's
deadline, and never a network connection to a non-public address.

Cache folders: any bytes under the names diskcache uses, and rows of any mode,
file name and value in a real cache database. The contract: the cached
backend still answers (from the backend), nothing planted runs or is read
from outside the folder, and ``clear()`` leaves a working cache (or a
:class:`~msrkit.errors.ConfigError` saying why not).
"""

from __future__ import annotations

import base64
import os
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msrkit.backends.base import ChatRequest, ImagePart, Message
from msrkit.backends.cache import CachedBackend, ResponseCache
from msrkit.backends.fake import FakeBackend
from msrkit.errors import ConfigError, InputError
from msrkit.inputs.images import ImagePolicy, load_image

pytestmark = pytest.mark.timeout(180)

HOSTILE = settings(
    max_examples=60,
    deadline=timedelta(seconds=3),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

NON_PUBLIC_HOSTS = ["127.0.0.1", "2130706433", "0x7f.1", "[::1]", "[::ffff:7f00:1]", "10.0.0.1", "169.254.169.254",
                    "[fd00::1]", "0", "192.168.0.1", "[fe80::1]", "224.0.0.1"]  # fmt: skip
SPECIAL_PATHS = ["/dev/zero", "/dev/urandom", "/dev/null", "/proc/self/mem", "/", ".", ".."]

refs = st.one_of(
    st.text(max_size=40),
    st.sampled_from(SPECIAL_PATHS),
    st.builds(lambda host, path: f"http://{host}/{path}", st.sampled_from(NON_PUBLIC_HOSTS), st.text(max_size=10)),
    st.builds(lambda scheme, rest: f"{scheme}://{rest}", st.sampled_from(["file", "ftp", "gopher", "jar", "HTTP"]),
              st.text(max_size=20)),  # fmt: skip
    st.builds(lambda mime, payload: f"data:{mime};base64,{payload}",
              st.sampled_from(["image/png", "image/jpeg", "text/plain", "image/svg+xml", ""]),
              st.one_of(st.text(max_size=60), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))),
)  # fmt: skip


def _only_input_errors(call: Any) -> Any:
    try:
        return call()
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc), "one line naming the reference"
        return None


@HOSTILE
@given(ref=refs)
def test_any_image_reference_gives_an_image_or_an_input_error(ref: str) -> None:
    got = _only_input_errors(lambda: load_image(ref, policy=ImagePolicy(timeout=1.0)))
    assert got is None or (isinstance(got, ImagePart) and got.data)


@HOSTILE
@given(data=st.binary(max_size=2000), kind=st.sampled_from(["file", "fifo", "folder", "loop", "link-out"]))
def test_any_local_image_file_gives_an_image_or_an_input_error(data: bytes, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        path = root / "poster.jpg"
        if kind == "file":
            path.write_bytes(data)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "folder":
            path.mkdir()
        elif kind == "loop":
            path.symlink_to(path)
        else:
            (Path(tmp) / "outside.jpg").write_bytes(data)
            path.symlink_to(Path(tmp) / "outside.jpg")
        got = _only_input_errors(lambda: load_image("poster.jpg", base_dir=root, policy=ImagePolicy(roots=(root,))))
    assert got is None or kind == "file"


# -- cache folders ------------------------------------------------------------------------------------

CACHE_NAMES = ["cache.db", "cache.db-wal", "cache.db-shm", "ab", "catalog.sqlite3"]


def _req(text: str = "hi") -> ChatRequest:
    return ChatRequest((Message.text("user", text),))


def _still_answers(folder: Path) -> None:
    cache = ResponseCache(folder)
    fake = FakeBackend(default=lambda r: "from the backend")
    cached = CachedBackend(fake, cache)
    assert cached.chat(_req()).text == "from the backend"
    assert cached.chat(_req()).text == "from the backend"
    cache.info()
    try:
        cache.clear()
    except ConfigError as exc:  # a folder it cannot rebuild (e.g. a cache.db it may not delete) says so
        assert str(exc)
        return
    fresh = FakeBackend(default=lambda r: "again")
    assert CachedBackend(fresh, ResponseCache(folder)).chat(_req("other")).text == "again"
    if (folder / "catalog.sqlite3").exists():
        assert (folder / "catalog.sqlite3").is_file(), "clear() must leave the catalog store alone"


@HOSTILE
@given(planted=st.dictionaries(st.sampled_from(CACHE_NAMES), st.binary(max_size=600), min_size=1, max_size=3))
def test_any_bytes_in_a_cache_folder(planted: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        folder.mkdir()
        for name, data in planted.items():
            if name == "ab":
                (folder / name).mkdir()
                (folder / name / "x.val").write_bytes(data)
            else:
                (folder / name).write_bytes(data)
        _still_answers(folder)


@HOSTILE
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2, 3, 4, 7]),
            st.one_of(st.none(), st.sampled_from(["../../../etc/passwd", "/dev/zero", "ab/cd.val", ".."])),
            st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=200)),
        ),  # fmt: skip
        min_size=1,
        max_size=4,
    )
)
def test_any_rows_in_a_real_cache_database(rows: list[tuple[int, str | None, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cache"
        fake = FakeBackend(default=lambda r: "seed")
        CachedBackend(fake, ResponseCache(folder)).chat(_req())
        with sqlite3.connect(folder / "cache.db") as db:
            template = db.execute("SELECT key, raw FROM Cache").fetchone()
            db.execute("DELETE FROM Cache")
            for i, (mode, filename, value) in enumerate(rows):
                key = template[0] if i == 0 else f"k{i}"
                db.execute(
                    "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, "
                    "mode, filename, value) VALUES (?, ?, 0, NULL, 0, 0, NULL, 0, ?, ?, ?)",
                    (key, template[1], mode, filename, value),
                )
        _still_answers(folder)
        assert Path("/etc/passwd").exists() or not Path("/etc").exists()
