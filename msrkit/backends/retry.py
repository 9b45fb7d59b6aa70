"""Retrying transient backend failures: a backend that wraps a backend.

:class:`RetryingBackend` retries only :class:`~msrkit.errors.BackendTransientError`
(429, 408, 5xx, timeouts, and :class:`~msrkit.errors.BackendUnavailableError`),
with tenacity:

- jittered exponential backoff (``initial * 2**(n-1)`` plus up to ``jitter``
  seconds, capped by ``max_wait``);
- a server's ``Retry-After`` is honoured: the wait is at least that long,
  capped by ``max_wait``;
- bounded three times: at most ``attempts`` calls, no wait that would end past
  ``max_seconds`` after the first call began, and none that would end past the
  request's deadline (:mod:`msrkit.runtime.deadline`); a ``Retry-After`` longer than the
  time left is not waited for at all (``inf`` and huge values included);
- permanent errors, :class:`~msrkit.errors.OutputParseError`, an open circuit
  breaker (:class:`~msrkit.errors.CircuitOpenError`) and a passed deadline
  (:class:`~msrkit.errors.DeadlineExceededError`) fail at once.

On giving up, the last error is raised again with its class kept (callers
branch on it), its message saying how many attempts were made, for how long, and why no more.

Order of wrappers::

    CachedBackend(RetryingBackend(GuardedBackend(backend)))

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
    retry_if_not_exception_type,
    wait_exponential,
    wait_random,
)

from ..errors import (
    BackendError,
    BackendTransientError,
    CircuitOpenError,
    ConfigError,
    DeadlineExceededError,
    redact,
)
from ..runtime.deadline import MIN_CALL_SECONDS, current
from .base import Backend, ChatRequest, ChatResponse, achat
from .wrapper import Wrapper

__all__ = ["RetryingBackend"]

log = logging.getLogger("msrkit")


#: transient failures that retrying cannot fix now
_FINAL = (CircuitOpenError, DeadlineExceededError)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, BackendTransientError) and not isinstance(error, _FINAL)


class RetryingBackend(Wrapper):
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
        super().__init__(inner)
        self.attempts = attempts
        self.max_seconds = max_seconds
        self.max_wait = max_wait
        self._backoff = wait_exponential(multiplier=initial, max=max_wait) + wait_random(0, jitter)
        self._sleep = sleep
        self._asleep = asleep
        self._clock = clock

    # -- the policy ------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        """Backoff for this attempt, but never shorter than the server's Retry-After (capped)."""
        wait = min(float(self._backoff(state)), self.max_wait)
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(float(retry_after), self.max_wait))
        return wait

    def _stopper(self, started: float, why: list[str]) -> Callable[[RetryCallState], bool]:
        """Stop after the last attempt, or before a wait that would end past the time bound or the deadline."""

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.attempts:
                return True
            upcoming = float(getattr(state, "upcoming_sleep", 0.0) or 0.0)
            bound, deadline = self.max_seconds - (self._clock() - started), current().left()
            left = min(bound, deadline)
            whose = "of the request's deadline" if deadline < bound else "of retry_max_seconds"
            error = state.outcome.exception() if state.outcome is not None else None
            asked = getattr(error, "retry_after", None)
            if asked is not None and asked > left:
                why.append(f"the server asked to wait {asked:g} s, more than the {max(left, 0):.1f} s left {whose}")
                return True
            if upcoming + MIN_CALL_SECONDS > left:
                why.append(f"{max(left, 0):.1f} s left {whose}")
                return True
            return False

        return stop

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.info(
            "%s/%s: %s (attempt %d of %d); retrying in %.2f s",
            self.name, self.model, redact(f"{type(error).__name__}: {error}"),
            state.attempt_number, self.attempts, float(getattr(state, "upcoming_sleep", 0.0) or 0.0),
        )  # fmt: skip

    def _gave_up(self, started: float, why: list[str]) -> Callable[[RetryCallState], NoReturn]:
        def give_up(state: RetryCallState) -> NoReturn:
            assert state.outcome is not None
            error = state.outcome.exception()
            assert isinstance(error, BackendError)
            n, seconds = state.attempt_number, self._clock() - started
            because = f": {why[-1]}" if why else ""
            error.args = (f"{error} (gave up after {n} attempt{'s' if n != 1 else ''} in {seconds:.1f} s{because})",)
            error.attempts = n  # type: ignore[attr-defined]
            log.info("%s/%s: giving up after %d attempt(s) in %.1f s%s", self.name, self.model, n, seconds, because)
            raise error

        return give_up

    def _options(self, started: float) -> dict[str, object]:
        why: list[str] = []
        return {
            "retry": retry_if_exception_type(BackendTransientError) & retry_if_not_exception_type(_FINAL),
            "wait": self._wait,
            "stop": self._stopper(started, why),
            "before_sleep": self._log_retry,
            "retry_error_callback": self._gave_up(started, why),
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
            if not _retryable(exc):
                raise
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
            if not _retryable(exc):
                raise
            pending = [exc]

        async def attempt(req: ChatRequest) -> ChatResponse:
            if pending:
                raise pending.pop()
            return await achat(self.inner, req)

        retrying = AsyncRetrying(sleep=self._asleep, **self._options(started))  # type: ignore[arg-type]
        response: ChatResponse = await retrying(attempt, request)
        return response
