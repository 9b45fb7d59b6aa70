"""The response cache: what enters a key, hits counted, corruption bypassed and rebuilt, no code run, sizes capped."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from msrkit.backends.base import ChatRequest, ImagePart, Message, TextPart
from msrkit.backends.cache import CachedBackend, ResponseCache, request_key
from msrkit.backends.fake import FakeBackend


def req(text: str = "hi", **kw: object) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), **kw)  # type: ignore[arg-type]


def test_key_depends_on_everything_that_changes_an_answer() -> None:
    ident = {"backend": "openai", "model": "m", "base_url": "http://x"}
    base = request_key(ident, req())
    assert base == request_key(dict(ident), req())
    assert base != request_key({**ident, "model": "m2"}, req())
    assert base != request_key({**ident, "base_url": "http://y"}, req())
    assert base != request_key(ident, req("hi!"))
    assert base != request_key(ident, req(max_tokens=7))
    assert base != request_key(ident, req(tag="listwise_rank@v1#abc"))
    assert base != request_key(ident, req(top_logprobs=5))


def test_images_are_keyed_by_content_not_identity() -> None:
    ident = {"backend": "fake", "model": "m"}
    a = ChatRequest((Message("user", (ImagePart(b"abc"), TextPart("x"))),))
    b = ChatRequest((Message("user", (ImagePart(b"abc"), TextPart("x"))),))
    c = ChatRequest((Message("user", (ImagePart(b"abd"), TextPart("x"))),))
    assert request_key(ident, a) == request_key(ident, b) != request_key(ident, c)


def test_second_identical_call_is_a_hit_and_skips_the_backend(tmp_path: Path) -> None:
    fake = FakeBackend(default=lambda r: "answer")
    cached = CachedBackend(fake, ResponseCache(tmp_path))
    first = cached.chat(req())
    second = cached.chat(req())
    assert fake.calls == 1
    assert not first.cached and second.cached and second.text == "answer"


def test_nondeterministic_calls_are_not_cached_unless_asked(tmp_path: Path) -> None:
    fake = FakeBackend(default=lambda r: "x")
    cached = CachedBackend(fake, ResponseCache(tmp_path))
    cached.chat(req(temperature=0.8, seed=None))
    cached.chat(req(temperature=0.8, seed=None))
    assert fake.calls == 2
    opted = CachedBackend(fake, ResponseCache(tmp_path / "b"), cache_nondeterministic=True)
    opted.chat(req(temperature=0.8, seed=None))
    opted.chat(req(temperature=0.8, seed=None))
    assert fake.calls == 3


def test_shared_directory_between_two_cache_objects(tmp_path: Path) -> None:
    fake = FakeBackend(default=lambda r: "x")
    CachedBackend(fake, ResponseCache(tmp_path)).chat(req())
    assert CachedBackend(fake, ResponseCache(tmp_path)).chat(req()).cached
    assert fake.calls == 1


def test_corrupted_cache_is_reported_and_bypassed(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    (d / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    cache = ResponseCache(d)
    fake = FakeBackend(default=lambda r: "still works")
    out = CachedBackend(fake, cache).chat(req())
    assert out.text == "still works"
    assert cache.problem is not None and "without cache" in cache.problem


# -- a cache that cannot run code ---------------------------------------------------------------


class Planted:
    """What an attacker writes into a cache folder: a pickle whose loading runs code (here: makes a folder)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_a_planted_pickle_is_never_unpickled(tmp_path: Path) -> None:
    import diskcache

    folder, marker = tmp_path / "cache", tmp_path / "PWNED"
    fake = FakeBackend(default=lambda r: "honest answer")
    key = request_key(fake.identity(), req())
    with diskcache.Cache(str(folder)) as old_way:  # the default disk pickles values
        old_way.set(key, Planted(marker))
    with diskcache.Cache(str(folder)) as old_way:
        old_way.get(key)
    assert marker.is_dir(), "the plant does not work: reading it the old way must run os.mkdir"
    os.rmdir(marker)
    cached = CachedBackend(fake, ResponseCache(folder))
    assert cached.chat(req()).text == "honest answer"  # a miss: the planted entry was refused
    assert not marker.exists(), "the planted pickle ran"
    assert fake.calls == 1
    assert cached.chat(req()).cached, "the refused entry was replaced by a JSON one"


def test_values_are_json_text_inline_and_other_modes_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    fake = FakeBackend(default=lambda r: "answer")
    CachedBackend(fake, ResponseCache(folder)).chat(req())
    with sqlite3.connect(folder / "cache.db") as db:
        rows = db.execute("SELECT mode, filename, value FROM Cache").fetchall()
        assert len(rows) == 1 and rows[0][0] == 1 and rows[0][1] is None  # MODE_RAW, no value file
        assert json.loads(rows[0][2])["text"] == "answer"
        # a value file outside the folder, planted by editing the table: refused, never read
        db.execute("UPDATE Cache SET mode = 3, filename = '../../../etc/passwd', value = NULL")
    again = FakeBackend(default=lambda r: "fresh")
    assert CachedBackend(again, ResponseCache(folder)).chat(req()).text == "fresh"
    assert Path("/etc/passwd").exists(), "the refused entry's 'file' was not deleted either"


def test_cache_clear_rebuilds_a_corrupt_cache_and_keeps_the_catalog_store(tmp_path: Path) -> None:
    from msrkit.data import Item
    from msrkit.summaries.store import CatalogStore

    folder = tmp_path / "cache"
    folder.mkdir()
    store = CatalogStore(folder / "catalog.sqlite3")
    store.put(Item(item_id="i1", title="t", keywords=["k"]), tag="t1", model="m")
    store.close()
    (folder / "cache.db").write_bytes(b"this is not a sqlite database" * 100)
    (folder / "ab").mkdir()
    (folder / "ab" / "junk.val").write_bytes(b"junk")
    out = subprocess.run([sys.executable, "-m", "msrkit.cli", "cache", "clear", "--cache-dir", str(folder)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "could not be read" in out.stdout and "rebuilt it empty" in out.stdout
    cache = ResponseCache(folder)
    assert cache.problem is None and cache.info()["entries"] == 0
    CachedBackend(FakeBackend(default=lambda r: "x"), cache).chat(req())
    assert cache.info()["entries"] == 1
    assert CatalogStore(folder / "catalog.sqlite3").count() == 1, "the catalog store was deleted"
    assert not (folder / "ab").exists()
    out = subprocess.run([sys.executable, "-m", "msrkit.cli", "cache", "clear", "--cache-dir", str(folder)],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0 and "removed 1 entries" in out.stdout


def test_a_5_mb_answer_is_capped_before_the_cache_and_the_ranking(tmp_path: Path) -> None:
    from msrkit.recommender import Recommender, Stages

    huge = "likes " + "very " * 1_000_000  # 5 MB
    fake = FakeBackend(default=lambda r: "[1] > [2]" if "[1]" in r.messages[-1].text_content else huge)
    history = {"user_id": "u", "history": [{"item_id": "h", "title": "seen"}],
               "candidates": [{"item_id": "a", "title": "A"}, {"item_id": "b", "title": "B"}]}  # fmt: skip
    stages = Stages(item_summaries=False, preference_summary=True, collaborative=False)
    with Recommender(fake, cache=tmp_path / "c", stages=stages, preference_mode="recurrent") as rec:
        ranking = rec.rank(history)
    assert ranking.preference_summary is not None and len(ranking.preference_summary) <= 16_000
    assert any("cut to 16000" in w for w in ranking.warnings)
    stored = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert stored < 1_000_000, f"{stored} bytes in the cache folder"
