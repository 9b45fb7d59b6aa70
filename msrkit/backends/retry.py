"""Retrying transient backend failures: a backend that wraps a backend.

:class:`RetryingBackend` retries only :class:`~msrkit.errors.BackendTransientError`
(429, 408, 5xx, timeouts, and :class:`~msrkit.errors.BackendUnavailableError`),
with tenacity:

- jittered exponential backoff (``initial * 2**(n-1)`` plus up to ``jitter``
  seconds, capped by ``max_wait``);
- a server's ``Retry-After`` is honoured: the wait is at least that long,
  capped by ``max_wait``;
- bounded twice: at most ``attempts`` calls, and no wait that would end past
  ``max_seconds`` after the first call began (one attempt can still last as
  long as the backend's own timeout);
- permanent errors and :class:`~msrkit.errors.OutputParseError` fail at once.

On giving up, the last error is raised again with its class kept (callers
branch on it), its message saying how many attempts were made and for how long.

Order of wrappers::

    CachedBackend(RetryingBackend(backend))

The cache sits outside retry: a hit never waits or touches the network, and
only the final answer of a retried call is stored. Retry never changes an
answer, so its ``identity()`` is the inner backend's and cache keys are the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    wait_exponential,
    wait_random,
)

from ..errors import BackendError, BackendTransientError, ConfigError, redact
from .base import Backend, Capabilities, ChatRequest, ChatResponse, achat

__all__ = ["RetryingBackend"]

log = logging.getLogger("msrkit")


class RetryingBackend:
    """A backend that retries its inner backend's transient failures.

    >>> backend = RetryingBackend(get_backend("openai/gpt-4o-mini"), attempts=4)   # doctest: +SKIP

    ``sleep`` / ``asleep`` replace ``time.sleep`` / ``asyncio.sleep`` and
    ``clock`` replaces ``time.monotonic`` (tests use them so nothing really waits).
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 4,
        max_seconds: float = 60.0,
        initial: float = 0.5,
        max_wait: float = 20.0,
        jitter: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"attempts must be at least 1, got {attempts}")
        if max_seconds <= 0 or initial < 0 or max_wait < 0 or jitter < 0:
            raise ConfigError("max_seconds must be positive; initial, max_wait and jitter not negative")
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.max_wait = max_wait
        self._backoff = wait_exponential(multiplier=initial, max=max_wait) + wait_random(0, jitter)
        self._sleep = sleep
        self._asleep = asleep
        self._clock = clock

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    # -- the policy ------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """Backoff for this attempt, but never shorter than the server's Retry-After (capped)."""
        wait = min(float(self._backoff(state)), self.max_wait)
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(float(retry_after), self.max_wait))
        return wait

    def _stopper(self, started: float) -> Callable[[RetryCallState], bool]:
        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.attempts:
                return True
            upcoming = float(getattr(state, "upcoming_sleep", 0.0) or 0.0)
            return self._clock() - started + upcoming > self.max_seconds

        return stop

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.info(
            "%s/%s: %s (attempt %d of %d); retrying in %.2f s",
            self.name, self.model, redact(f"{type(error).__name__}: {error}"),
            state.attempt_number, self.attempts, float(getattr(state, "upcoming_sleep", 0.0) or 0.0),
        )  # fmt: skip

    def _gave_up(self, started: float) -> Callable[[RetryCallState], NoReturn]:
        def give_up(state: RetryCallState) -> NoReturn:
            assert state.outcome is not None
            error = state.outcome.exception()
            assert isinstance(error, BackendError)
            n, seconds = state.attempt_number, self._clock() - started
            error.args = (f"{error} (gave up after {n} attempt{'s' if n != 1 else ''} in {seconds:.1f} s)",)
            error.attempts = n  # type: ignore[attr-defined]
            log.info("%s/%s: giving up after %d attempt(s) in %.1f s", self.name, self.model, n, seconds)
            raise error

        return give_up

    def _options(self, started: float) -> dict[str, object]:
        return {
            "retry": retry_if_exception_type(BackendTransientError),
            "wait": self._wait,
            "stop": self._stopper(started),
            "before_sleep": self._log_retry,
            "retry_error_callback": self._gave_up(started),
        }

    # -- the backend -------------------------------------------------------------

    # The first attempt runs outside tenacity (most calls succeed: no retry machinery per call);
    # a transient failure hands over to tenacity, whose first "attempt" re-raises that failure,
    # so attempt counts, waits and the time bound are exactly as if tenacity had made every call.

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = self._clock()
        try:
            return self.inner.chat(request)
        except BackendTransientError as exc:
            pending = [exc]

        def attempt(req: ChatRequest) -> ChatResponse:
            if pending:
                raise pending.pop()
            return self.inner.chat(req)

        retrying = Retrying(sleep=self._sleep, **self._options(started))  # type: ignore[arg-type]
        response: ChatResponse = retrying(attempt, request)
        return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        started = self._clock()
        try:
            return await achat(self.inner, request)
        except BackendTransientError as exc:
            pending = [exc]

        async def attempt(req: ChatRequest) -> ChatResponse:
            if pending:
                raise pending.pop()
            return await achat(self.inner, req)

        retrying = AsyncRetrying(sleep=self._asleep, **self._options(started))  # type: ignore[arg-type]
        response: ChatResponse = await retrying(attempt, request)
        return response

    def close(self) -> None:
        self.inner.close()
