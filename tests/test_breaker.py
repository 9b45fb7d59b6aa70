"""The circuit breaker, state by state, with an injected clock; and the guard that puts it around a backend.

closed -> open after N endpoint failures in a row -> (cooldown) half-open, one probe ->
closed when it answers / open again when it fails. The inner backend is the
scripted FakeBackend raising the errors a real backend maps to.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from fakeclock import Clock

from msrkit.backends.base import ChatRequest, ChatResponse, Message
from msrkit.backends.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from msrkit.backends.fake import FakeBackend
from msrkit.backends.guard import GuardedBackend
from msrkit.data import failure_of
from msrkit.errors import (
    BackendError,
    BackendPermanentError,
    BackendRefusedError,
    BackendTransientError,
    BackendUnavailableError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    OutputParseError,
)
from msrkit.runtime.deadline import Deadline, active


def req() -> ChatRequest:
    return ChatRequest((Message.text("user", "hi"),))


def down(status: int = 503) -> BackendTransientError:
    return BackendTransientError(f"HTTP {status}", backend="fake", model="m", status=status)


def guarded(fake: FakeBackend, clock: Clock, *, failures: int = 3, cooldown: float = 10.0) -> GuardedBackend:
    breaker = CircuitBreaker(failures=failures, cooldown=cooldown, name="fake", model="m", clock=clock)
    return GuardedBackend(fake, breaker=breaker)


def fail_times(backend: GuardedBackend, n: int) -> None:
    for _ in range(n):
        with pytest.raises(BackendError):
            backend.chat(req())


def test_closed_stays_closed_below_the_threshold_and_an_answer_ends_the_streak() -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=lambda r: "ok").enqueue(down(), down(), "ok", down(), down())
    backend = guarded(fake, clock)
    fail_times(backend, 2)
    assert backend.chat(req()).text == "ok"
    fail_times(backend, 2)
    assert backend.breaker is not None and backend.breaker.state == CLOSED
    assert backend.chat(req()).text == "ok" and fake.calls == 6


def test_n_failures_in_a_row_open_it_and_then_calls_fail_at_once_saying_until_when(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=lambda r: "never reached").enqueue(down(500), down(502), down(503))
    backend = guarded(fake, clock)
    with caplog.at_level(logging.WARNING, logger="msrkit"):
        fail_times(backend, 3)
    assert backend.breaker is not None and backend.breaker.state == OPEN
    with pytest.raises(CircuitOpenError) as info:
        backend.chat(req())
    assert fake.calls == 3, "an open breaker must not call the backend"
    message = str(info.value)
    assert "circuit breaker open after 3 failures" in message and "HTTP 503" in message
    assert "until" in message and "(in 10 s)" in message
    assert isinstance(info.value, BackendUnavailableError) and info.value.until > 0
    assert failure_of(info.value) == "backend_transient"
    opened = [r for r in caplog.records if "circuit breaker open" in r.getMessage()]
    assert len(opened) == 1, "the opening is said once"
    fail_times(backend, 5)
    assert len([r for r in caplog.records if "circuit breaker open" in r.getMessage()]) == 1


def test_after_the_cooldown_one_probe_goes_and_an_answer_closes_it() -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=lambda r: "back").enqueue(down(), down(), down())
    backend = guarded(fake, clock)
    fail_times(backend, 3)
    clock.now += 9.9
    with pytest.raises(CircuitOpenError):
        backend.chat(req())
    clock.now += 0.2
    assert backend.breaker is not None and backend.breaker.state == HALF_OPEN
    assert backend.chat(req()).text == "back"  # the probe
    assert backend.breaker.state == CLOSED and fake.calls == 4
    assert backend.chat(req()).text == "back"


def test_a_failed_probe_opens_it_again_for_a_new_cooldown() -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=lambda r: "back").enqueue(down(), down(), down(), down(504))
    backend = guarded(fake, clock)
    fail_times(backend, 3)
    clock.now += 10.5
    with pytest.raises(BackendTransientError) as info:
        backend.chat(req())  # the probe fails
    assert not isinstance(info.value, CircuitOpenError) and info.value.status == 504
    assert backend.breaker is not None and backend.breaker.state == OPEN
    clock.now += 9.0
    with pytest.raises(CircuitOpenError, match="HTTP 504"):
        backend.chat(req())
    clock.now += 1.5
    assert backend.chat(req()).text == "back" and backend.breaker.state == CLOSED


def test_while_a_probe_is_out_every_other_call_fails_at_once() -> None:
    clock = Clock(100.0)
    release = threading.Event()
    entered = threading.Event()

    def slow(request: ChatRequest) -> str:
        entered.set()
        release.wait(5)
        return "probe answered"

    fake = FakeBackend(default=slow).enqueue(down(), down(), down())
    backend = guarded(fake, clock)
    fail_times(backend, 3)
    clock.now += 11
    results: list[Any] = []
    probe = threading.Thread(target=lambda: results.append(backend.chat(req())))
    probe.start()
    assert entered.wait(5)
    assert backend.breaker is not None and backend.breaker.state == HALF_OPEN
    with pytest.raises(CircuitOpenError, match="while a probe call decides"):
        backend.chat(req())
    release.set()
    probe.join(5)
    assert results[0].text == "probe answered" and backend.breaker.state == CLOSED
    assert fake.calls == 4


@pytest.mark.parametrize(
    "error",
    [
        OutputParseError("no numbers", backend="fake", model="m"),
        BackendPermanentError("HTTP 400: context too long", backend="fake", model="m", status=400),
    ],
)
def test_an_answer_of_any_kind_is_not_an_endpoint_failure(error: BackendError) -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=None).enqueue(down(), down(), error, down(), down())
    backend = guarded(fake, clock)
    fail_times(backend, 5)
    assert backend.breaker is not None and backend.breaker.state == CLOSED


def test_refusals_open_it_and_the_open_error_says_permanent() -> None:
    clock = Clock(100.0)
    refused = [BackendRefusedError("HTTP 401: bad key", backend="fake", model="m", status=401) for _ in range(3)]
    backend = guarded(FakeBackend(default=None).enqueue(*refused), clock)
    fail_times(backend, 3)
    with pytest.raises(CircuitOpenError) as info:
        backend.chat(req())
    assert failure_of(info.value) == "backend_permanent"  # the CLI exits 6 for it, as for the 401 itself


def test_a_cancelled_request_and_a_bug_say_nothing_about_the_endpoint() -> None:
    clock = Clock(100.0)
    deadline = Deadline(60)

    def cancelled(request: ChatRequest) -> str:
        deadline.cancel()
        raise DeadlineExceededError("the request was cancelled", backend="fake", model="m")

    fake = FakeBackend(default=cancelled).enqueue(down(), down(), ValueError("a bug"))
    backend = guarded(fake, clock)
    fail_times(backend, 2)
    with pytest.raises(ValueError):
        backend.chat(req())
    with active(deadline), pytest.raises(DeadlineExceededError):
        backend.chat(req())
    assert backend.breaker is not None and backend.breaker.state == CLOSED
    fake.enqueue(down())
    fail_times(backend, 1)  # the third endpoint failure in a row
    assert backend.breaker.state == OPEN


def test_the_async_path_shares_the_same_breaker() -> None:
    clock = Clock(100.0)
    fake = FakeBackend(default=lambda r: "ok").enqueue(down(), down(), down())
    backend = guarded(fake, clock)

    async def go() -> list[Any]:
        out: list[Any] = []
        for _ in range(4):
            try:
                out.append(await backend.achat(req()))
            except BackendError as exc:
                out.append(exc)
        return out

    results = asyncio.run(go())
    assert [type(r) for r in results] == [BackendTransientError] * 3 + [CircuitOpenError]
    assert fake.calls == 3


def test_nonsense_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        CircuitBreaker(failures=0)
    with pytest.raises(ConfigError):
        CircuitBreaker(cooldown=0)


def test_guard_caps_the_answer_and_its_logprobs_and_masks_registered_secrets() -> None:
    from msrkit.errors import register_secret

    secret = "plainsecret-0123456789"  # noqa: S105 - a sentinel, not a credential
    register_secret(secret)
    big = ChatResponse("x" * 50_000 + secret, top_logprobs=[{"a" * 500: -0.1}] * 10_000)
    backend = GuardedBackend(FakeBackend(default=lambda r: big), max_answer_chars=1000)
    out = backend.chat(ChatRequest((Message.text("user", "hi"),), max_tokens=16))
    assert len(out.text) == 1000
    assert any("cut to 1000" in w for w in out.warnings)
    assert out.top_logprobs is not None and len(out.top_logprobs) == 16
    assert all(len(token) <= 64 for row in out.top_logprobs for token in row)
    small = GuardedBackend(FakeBackend(default=lambda r: f"key {secret} echoed")).chat(req())
    assert secret not in small.text and "[redacted]" in small.text
