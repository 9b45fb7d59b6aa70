"""The response cache: what enters a key, hits counted, corruption bypassed, secrets kept out."""

from __future__ import annotations

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
