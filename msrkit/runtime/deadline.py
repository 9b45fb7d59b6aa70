"""A request's time budget, and its cancellation, seen by every stage and every backend call.

:class:`~msrkit.recommender.Recommender` makes one :class:`Deadline` per request
(``Settings.deadline`` seconds) and makes it current for that request with
:func:`active` (a context variable, so worker threads and event-loop tasks of
one request see theirs, and no other request's). Then:

- the pipeline skips the LLM stages that remain once it has passed, and the
  ranking falls back (degraded, with a warning naming the deadline);
- retry never waits past it, nor for a ``Retry-After`` longer than the time left;
- a backend call is limited to ``min(its own timeout, the time left)`` of wall-clock
  time in total (not per socket read), see :func:`call_limit`;
- an image download is limited the same way, and stops at once when the request is cancelled.

Outside a request :func:`current` is a deadline that never passes.

>>> with active(Deadline(30.0)):             # doctest: +SKIP
...     ranking = run(parts, history, meter, backend)
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import DeadlineExceededError

__all__ = ["Deadline", "active", "call_limit", "current"]

#: a call needs at least this long to be worth starting
MIN_CALL_SECONDS = 0.05


class Deadline:
    """``seconds`` from now (``None``: no limit), unless cancelled first; optionally within a ``parent``.

    ``clock`` replaces ``time.monotonic`` (tests). Cancelling runs the callbacks
    registered with :meth:`watch` (they cut sockets and cancel futures), once.
    """

    def __init__(
        self,
        seconds: float | None = None,
        *,
        parent: Deadline | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds = seconds
        self.parent = parent
        self._clock = clock
        self._ends = math.inf if seconds is None else clock() + seconds
        self._cancelled = False
        self._callbacks: dict[int, Callable[[], object]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def child(self, seconds: float | None) -> Deadline:
        """A deadline ``seconds`` from now that also ends when this one does (or is cancelled)."""
        return Deadline(seconds, parent=self, clock=self._clock)

    def left(self) -> float:
        """Seconds left (``inf`` without a limit, 0 once passed or cancelled)."""
        if self.cancelled:
            return 0.0
        own = max(0.0, self._ends - self._clock())
        return min(own, self.parent.left()) if self.parent is not None else own

    @property
    def expired(self) -> bool:
        return self.left() <= 0.0

    @property
    def cancelled(self) -> bool:
        return self._cancelled or (self.parent is not None and self.parent.cancelled)

    def reason(self) -> str:
        """Why no time is left, for messages: cancelled, or whose deadline passed."""
        if self.cancelled:
            return "the request was cancelled"
        own = max(0.0, self._ends - self._clock())
        if self.parent is not None and (self.seconds is None or self.parent.left() <= own):
            return self.parent.reason()  # the parent's limit is the one that binds
        if self.seconds is None:
            return "no time is left for another call"
        return f"the request's deadline ({self.seconds:g} s) has passed"

    def check(self, *, backend: str = "", model: str = "") -> None:
        """Raise :class:`~msrkit.errors.DeadlineExceededError` when no time is left."""
        if self.left() < MIN_CALL_SECONDS:
            raise DeadlineExceededError(self.reason(), backend=backend, model=model)

    def cancel(self) -> None:
        """End this deadline now and run the registered callbacks (sockets cut, futures cancelled)."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            callback()

    @contextmanager
    def watch(self, on_cancel: Callable[[], object]) -> Iterator[None]:
        """Within the block, ``on_cancel`` runs if this deadline (or a parent) is cancelled."""
        with self._lock:
            key = next(self._ids)
            self._callbacks[key] = on_cancel
        try:
            if self.parent is not None:
                with self.parent.watch(on_cancel):
                    if self._cancelled:
                        on_cancel()
                    yield
            else:
                if self._cancelled:
                    on_cancel()
                yield
        finally:
            with self._lock:
                self._callbacks.pop(key, None)


_current: ContextVar[Deadline | None] = ContextVar("msrkit_deadline", default=None)


def current() -> Deadline:
    """The current request's deadline (one that never passes outside a request)."""
    return _current.get() or Deadline()


@contextmanager
def active(deadline: Deadline) -> Iterator[Deadline]:
    """Make ``deadline`` the current one within the block (this thread / task and what it starts)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def call_limit(timeout: float, *, backend: str = "", model: str = "") -> tuple[float, bool]:
    """Seconds one backend call may take in total, and whether the request's deadline (not ``timeout``) set them.

    Raises :class:`~msrkit.errors.DeadlineExceededError` when too little time is left to start a call.
    """
    deadline = current()
    deadline.check(backend=backend, model=model)
    left = deadline.left()
    return (left, True) if left < timeout else (timeout, False)
