"""RetryingBackend: what is retried, how long it waits, when it gives up, and how it composes with the cache.

The inner backend is the scripted FakeBackend (it raises the errors a real
backend maps to); sleeps and the clock are hooks, so nothing here really waits.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from fakeclock import Clock

from msrkit.backends.base import ChatRequest, Message
from msrkit.backends.cache import CachedBackend, ResponseCache
from msrkit.backends.fake import FakeBackend
from msrkit.backends.guard import GuardedBackend
from msrkit.backends.retry import RetryingBackend
from msrkit.errors import (
    BackendError,
    BackendPermanentError,
    BackendTransientError,
    BackendUnavailableError,
    ConfigError,
    OutputParseError,
)
from msrkit.recommender import Recommender


def req(text: str = "hi") -> ChatRequest:
    return ChatRequest((Message.text("user", text),))


def transient(status: int = 503, retry_after: float | None = None) -> BackendTransientError:
    return BackendTransientError(f"HTTP {status}", backend="fake", model="m", status=status, retry_after=retry_after)


def retrying(fake: FakeBackend, clock: Clock, **kw: object) -> RetryingBackend:
    options: dict[str, object] = {"initial": 0.5, "max_wait": 20.0, "jitter": 0.0, **kw}
    return RetryingBackend(fake, sleep=clock.sleep, asleep=clock.asleep, clock=clock, **options)  # type: ignore[arg-type]


def test_transient_errors_are_retried_with_exponential_backoff() -> None:
    fake = FakeBackend(default=None).enqueue(transient(500), BackendUnavailableError("refused"), "fine")
    clock = Clock()
    answer = retrying(fake, clock).chat(req())
    assert answer.text == "fine"
    assert fake.calls == 3
    assert clock.sleeps == [0.5, 1.0]  # initial * 2**(n-1), jitter off


def test_jitter_adds_at_most_its_bound_and_max_wait_caps_the_backoff() -> None:
    fake = FakeBackend(default=None).enqueue(*(transient() for _ in range(5)), "ok")
    clock = Clock()
    retrying(fake, clock, attempts=6, initial=1.0, max_wait=3.0, jitter=0.25, max_seconds=1000).chat(req())
    assert len(clock.sleeps) == 5
    for n, slept in enumerate(clock.sleeps):
        assert min(2.0**n, 3.0) <= slept <= 3.0
    assert clock.sleeps[-1] == 3.0


def test_retry_after_is_a_lower_bound_capped_by_max_wait() -> None:
    fake = FakeBackend(default=None).enqueue(transient(429, retry_after=7.0), transient(429, retry_after=500.0), "ok")
    clock = Clock()
    retrying(fake, clock, max_wait=20.0, max_seconds=1000).chat(req())
    assert clock.sleeps == [7.0, 20.0]


@pytest.mark.parametrize(
    "error",
    [
        BackendPermanentError("HTTP 401: bad key", backend="fake", model="m", status=401),
        OutputParseError("not JSON", backend="fake", model="m"),
        BackendError("no scripted answer left", backend="fake", model="m"),
    ],
)
def test_permanent_and_parse_errors_fail_fast_and_unchanged(error: BackendError) -> None:
    fake = FakeBackend(default=None).enqueue(error, "never reached")
    clock = Clock()
    with pytest.raises(type(error)) as info:
        retrying(fake, clock).chat(req())
    assert info.value is error
    assert "gave up" not in str(info.value)
    assert fake.calls == 1 and clock.sleeps == []


def test_foreign_exceptions_are_not_retried() -> None:
    fake = FakeBackend(default=None).enqueue(ValueError("a bug"), "never reached")
    with pytest.raises(ValueError, match="a bug"):
        retrying(fake, Clock()).chat(req())
    assert fake.calls == 1


def test_giving_up_keeps_the_class_and_says_how_many_attempts() -> None:
    fake = FakeBackend(default=None).enqueue(*(BackendUnavailableError("refused", backend="fake") for _ in range(9)))
    clock = Clock()
    with pytest.raises(BackendUnavailableError) as info:
        retrying(fake, clock, attempts=4).chat(req())
    assert fake.calls == 4
    assert len(clock.sleeps) == 3  # no pointless wait after the last attempt
    assert "gave up after 4 attempts" in str(info.value)
    assert "refused" in str(info.value)
    assert info.value.attempts == 4  # type: ignore[attr-defined]


def test_status_and_retry_after_survive_giving_up() -> None:
    fake = FakeBackend(default=None).enqueue(transient(429, 0.1), transient(429, 0.2))
    with pytest.raises(BackendTransientError) as info:
        retrying(fake, Clock(), attempts=2).chat(req())
    assert info.value.status == 429 and info.value.retry_after == 0.2


def test_total_time_bound_stops_before_a_wait_that_would_overrun_it() -> None:
    # waits 1, 2, 4...: after attempt 2 (t=1) the next wait (2 s) would end at t=3 > 2.5
    fake = FakeBackend(default=None).enqueue(*(transient() for _ in range(9)))
    clock = Clock()
    with pytest.raises(BackendTransientError, match="gave up after 2 attempts"):
        retrying(fake, clock, attempts=10, initial=1.0, max_seconds=2.5).chat(req())
    assert fake.calls == 2 and clock.sleeps == [1.0]


def test_slow_attempts_count_against_the_total_time() -> None:
    clock = Clock()

    def slow(request: ChatRequest) -> str:
        clock.now += 10.0  # each attempt takes 10 s (e.g. until the client timeout)
        raise transient(504)

    fake = FakeBackend(default=slow)
    with pytest.raises(BackendTransientError, match="gave up after 3 attempts"):
        retrying(fake, clock, attempts=10, initial=0.1, max_seconds=25.0).chat(req())
    assert fake.calls == 3


def test_a_retry_after_beyond_the_time_budget_gives_up_at_once() -> None:
    fake = FakeBackend(default=None).enqueue(transient(429, retry_after=30.0), "ok")
    clock = Clock()
    with pytest.raises(BackendTransientError, match="gave up after 1 attempt "):
        retrying(fake, clock, max_wait=60.0, max_seconds=10.0).chat(req())
    assert clock.sleeps == []


def test_each_retry_is_logged_at_info_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    leaky = BackendTransientError("HTTP 503: key sk-abcdef123456 Bearer sk-zzz999999", backend="fake", status=503)
    fake = FakeBackend(default=None).enqueue(leaky, "ok")
    with caplog.at_level(logging.INFO, logger="msrkit"):
        retrying(fake, Clock()).chat(req())
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("attempt 1 of 4" in line and "retrying in 0.50 s" in line for line in lines)
    assert all("sk-abcdef" not in line and "sk-zzz" not in line for line in lines)


def test_async_twin_retries_with_the_async_sleep() -> None:
    fake = FakeBackend(default=None).enqueue(transient(429, 2.0), transient(500), "fine")
    clock = Clock()
    answer = asyncio.run(retrying(fake, clock).achat(req()))
    assert answer.text == "fine"
    assert clock.sleeps == [2.0, 1.0]


def test_async_twin_gives_up_with_the_same_class() -> None:
    fake = FakeBackend(default=None).enqueue(*(transient() for _ in range(3)))
    with pytest.raises(BackendTransientError, match="gave up after 3 attempts"):
        asyncio.run(retrying(fake, Clock(), attempts=3).achat(req()))
    fake2 = FakeBackend(default=None).enqueue(OutputParseError("x"), "never")
    with pytest.raises(OutputParseError):
        asyncio.run(retrying(fake2, Clock()).achat(req()))
    assert fake2.calls == 1


def test_it_is_a_backend_that_passes_identity_and_capabilities_through() -> None:
    fake = FakeBackend("m1")
    wrapped = retrying(fake, Clock())
    assert (wrapped.name, wrapped.model) == ("fake", "m1")
    assert wrapped.identity() == fake.identity()
    assert wrapped.capabilities == fake.capabilities


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"max_seconds": 0}, {"initial": -1}, {"jitter": -0.1}])
def test_nonsense_options_are_config_errors(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        RetryingBackend(FakeBackend(), **bad)  # type: ignore[arg-type]


def test_cache_outside_retry_stores_only_the_final_answer(tmp_path: Path) -> None:
    fake = FakeBackend(default=None).enqueue(transient(), "answer")
    clock = Clock()
    backend = CachedBackend(retrying(fake, clock), ResponseCache(tmp_path))
    assert backend.chat(req()).text == "answer"
    again = backend.chat(req())
    assert again.cached and again.text == "answer"
    assert fake.calls == 2 and len(clock.sleeps) == 1  # the hit neither called nor waited


def test_a_call_that_failed_after_retries_is_not_cached(tmp_path: Path) -> None:
    fake = FakeBackend(default=None).enqueue(transient(), transient(), "late answer")
    backend = CachedBackend(retrying(fake, Clock(), attempts=2), ResponseCache(tmp_path))
    with pytest.raises(BackendTransientError):
        backend.chat(req())
    assert backend.chat(req()).text == "late answer"


def test_recommender_wraps_cache_outside_retry_outside_the_guard(tmp_path: Path) -> None:
    rec = Recommender(backend=FakeBackend(), cache=tmp_path, retries=2, retry_max_seconds=9.0)
    assert isinstance(rec.backend, CachedBackend)
    inner = rec.backend.inner
    assert isinstance(inner, RetryingBackend)
    assert (inner.attempts, inner.max_seconds) == (3, 9.0)
    assert isinstance(inner.inner, GuardedBackend) and isinstance(inner.inner.inner, FakeBackend)


def test_recommender_retries_zero_disables_and_no_cache_leaves_retry_outermost() -> None:
    guarded = Recommender(backend=FakeBackend(), cache=False, retries=0).backend
    assert isinstance(guarded, GuardedBackend) and isinstance(guarded.inner, FakeBackend)
    outer = Recommender(backend=FakeBackend(), cache=False).backend
    assert isinstance(outer, RetryingBackend) and outer.attempts == 5


def test_recommender_does_not_double_wrap_a_retrying_backend() -> None:
    mine = RetryingBackend(FakeBackend(), attempts=2)
    assert Recommender(backend=mine, cache=False).backend is mine
