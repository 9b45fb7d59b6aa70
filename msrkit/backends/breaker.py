"""A circuit breaker per backend: after ``failures`` endpoint failures in a row, calls fail at once for a while.

::

    closed ──(N failures in a row)──> open ──(cooldown passed; the next call is the probe)──> half-open
      ^                                 ^                                                         │
      └──────── the probe answered ─────┴────────────── the probe failed ─────────────────────────┘

What counts as a failure of the endpoint: a transient error (5xx, 429, a
timeout, a refused or dropped connection, an answer that is not a chat
completion) or a refusal (401, 403, 404, ``insufficient_quota``: see
:class:`~msrkit.errors.BackendRefusedError`). Any answer, even one whose text
is unusable, shows the endpoint works and closes the streak. While open, a
call raises :class:`~msrkit.errors.CircuitOpenError` at once, saying until
when; after ``cooldown`` seconds exactly one call goes out as the probe (the
others still fail at once) and its outcome decides.

One breaker is shared by every request of a
:class:`~msrkit.recommender.Recommender` (threads and event loops alike: the
state sits behind a lock held only to read or change it, never during a call),
so a batch against a dead endpoint learns it once and degrades every user in
seconds. The opening is logged once, as a warning; the recovery as info.

Why not a library: pybreaker holds its lock for the whole guarded call (one
call at a time through a shared breaker) and supports async only through
tornado; circuitbreaker has no lock and lets every call through when
half-open; aiobreaker is asyncio-only and unmaintained since 2021; purgatory
lets every call through when half-open and reads the wall clock. None takes an
injected clock, which the state-by-state tests need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import (
    BackendError,
    BackendRefusedError,
    BackendTransientError,
    CircuitOpenError,
    ConfigError,
    redact,
)
from ..outcomes import Failure

__all__ = ["CircuitBreaker", "counts_against"]

log = logging.getLogger("msrkit")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def counts_against(error: BaseException) -> bool:
    """Whether ``error`` says the endpoint is failing (see the module docstring), not one request."""
    if isinstance(error, CircuitOpenError):
        return False
    return isinstance(error, (BackendTransientError, BackendRefusedError))  # a timed-out call too


@dataclass
class _Opened:
    at: float
    why: str
    failure: Failure


class CircuitBreaker:
    """The state machine (see the module docstring). ``clock`` replaces ``time.monotonic`` in tests.

    A call asks :meth:`admit` (raises when it may not go out; returns whether
    it is the half-open probe) and reports its outcome with :meth:`succeeded`,
    :meth:`failed` or, when it says nothing about the endpoint, :meth:`released`.
    """

    def __init__(
        self,
        *,
        failures: int = 5,
        cooldown: float = 30.0,
        name: str = "",
        model: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ConfigError(f"a circuit breaker needs failures >= 1 and cooldown > 0 (got {failures}, {cooldown})")
        self.failures = failures
        self.cooldown = cooldown
        self.name, self.model = name, model
        self._clock = clock
        self._lock = threading.Lock()
        self._streak = 0
        self._opened: _Opened | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open`` (a probe may go, or is out)."""
        with self._lock:
            if self._opened is None:
                return CLOSED
            return HALF_OPEN if self._probing or self._remaining() <= 0 else OPEN

    def _remaining(self) -> float:
        assert self._opened is not None
        return self._opened.at + self.cooldown - self._clock()

    def admit(self) -> bool:
        """May a call go out? ``True`` when it is the probe; raises :class:`CircuitOpenError` when it may not."""
        with self._lock:
            if self._opened is None:
                return False
            remaining = self._remaining()
            if remaining <= 0 and not self._probing:
                self._probing = True
                return True
            raise self._refusal(max(remaining, 0.0))

    def _refusal(self, remaining: float) -> CircuitOpenError:
        assert self._opened is not None
        until = time.time() + remaining
        when = time.strftime("%H:%M:%S", time.localtime(until))
        wait = f"until {when} (in {remaining:.0f} s)" if not self._probing else "while a probe call decides"
        return CircuitOpenError(
            f"circuit breaker open after {self.failures} failures in a row (last: {self._opened.why}); "
            f"calls fail at once {wait}",
            until=until, failure=self._opened.failure, backend=self.name, model=self.model,
        )  # fmt: skip

    def succeeded(self, probe: bool) -> None:
        """The endpoint answered: the streak ends; a probe closes the circuit."""
        with self._lock:
            self._streak = 0
            if probe or (self._opened is not None and not self._probing):
                recovered = self._opened is not None
                self._opened, self._probing = None, False
                if recovered:
                    log.info("%s/%s: the backend answers again: circuit breaker closed", self.name, self.model)

    def failed(self, error: BackendError, probe: bool) -> None:
        """The endpoint failed: one more in the streak; the N-th (or a failed probe) opens the circuit."""
        from ..data import failure_of

        with self._lock:
            self._streak += 1
            if not probe and (self._opened is not None or self._streak < self.failures):
                return
            first = self._opened is None
            why = redact(str(error), 160)
            self._opened, self._probing = _Opened(self._clock(), why, failure_of(error)), False
        if first:
            log.warning("%s/%s: %d failures in a row (last: %s): circuit breaker open, calls fail at once for %g s",
                        self.name, self.model, self.failures, why, self.cooldown)  # fmt: skip

    def released(self, probe: bool) -> None:
        """The call ended without telling anything about the endpoint (cancelled, a bug): a probe frees its slot."""
        if probe:
            with self._lock:
                self._probing = False
