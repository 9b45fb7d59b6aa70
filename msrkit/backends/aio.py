"""Wall-clock limits on HTTP backend calls, for sync and async callers alike.

The ``openai`` and ``ollama`` clients (httpx) time out per socket operation: a
server that trickles one byte a second never trips a read timeout, and a call
can last forever. An ``asyncio`` timeout around the whole call cuts it at its
limit, wherever it is (connecting, sending, waiting, reading), and cancels it
cleanly. So the HTTP backends make every call on their async client under
``asyncio.wait_for``:

- ``achat`` (async callers, :meth:`~msrkit.recommender.Recommender.arank`) on the caller's loop;
- ``chat`` (sync callers) on a private event loop in one daemon thread per backend
  (:class:`LoopThread`), the caller's thread waiting for the answer; cancelling
  the request (:meth:`~msrkit.deadline.Deadline.cancel`) cancels the call.

An httpx async client belongs to the event loop it was made on, so
:class:`PerLoop` keeps one client per loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..deadline import current
from ..errors import BackendTransientError, DeadlineExceededError
from .base import ChatRequest, ChatResponse

__all__ = ["LoopThread", "OnLoopThread", "PerLoop", "run_on", "timed_out"]

T = TypeVar("T")

log = logging.getLogger("msrkit")


class PerLoop(Generic[T]):
    """One object per running event loop, made by ``factory`` on first use in that loop."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            made = self._made.get(loop)
            if made is None:
                made = self._made[loop] = self._factory()
            return made

    def pop_current(self) -> T | None:
        """Forget the running loop's object and return it (``None`` when none was made)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._made.pop(loop, None)

    def pop_all(self) -> list[T]:
        """Forget every object (for closing them)."""
        with self._lock:
            made = list(self._made.values())
            self._made.clear()
            return made


def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], *, backend: str = "", model: str = "") -> T:
    """Run ``coro`` on ``loop`` (another thread's) and wait; cancelling the request (or Ctrl-C) cancels it."""
    deadline = current()
    try:
        deadline.check(backend=backend, model=model)
    except DeadlineExceededError:
        coro.close()
        raise
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        with deadline.watch(future.cancel):
            return future.result()
    except concurrent.futures.CancelledError:
        raise DeadlineExceededError(deadline.reason(), backend=backend, model=model) from None
    except BaseException:
        future.cancel()
        raise


class LoopThread:
    """A private event loop on a daemon thread, started on first use, where sync callers run coroutines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self.name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, backend: str = "", model: str = "") -> T:
        """Run ``coro`` on the loop and wait for it (see :func:`run_on`)."""
        return run_on(self._running(), coro, backend=backend, model=model)

    def close(self, last: Coroutine[Any, Any, Any] | None = None) -> None:
        """Run ``last`` (closing clients) and stop the loop and its thread."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            if last is not None:
                last.close()
            return
        if last is not None:
            try:
                asyncio.run_coroutine_threadsafe(last, loop).result(timeout=5)
            except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
                log.debug("%s: closing the client failed: %s", self.name, exc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


def timed_out(seconds: float, by_deadline: bool, *, backend: str, model: str) -> BackendTransientError:
    """The error for a call cut off at its limit: the request's deadline, or the backend's own timeout per call."""
    if by_deadline:
        return DeadlineExceededError(f"no answer within the {seconds:.1f} s left to the request",
                                     backend=backend, model=model)  # fmt: skip
    return BackendTransientError(f"no answer within {seconds:g} s (timeout per call)", backend=backend, model=model)


class OnLoopThread:
    """For HTTP backends whose ``achat`` does the work: ``chat`` runs it on their :class:`LoopThread`.

    A subclass sets ``_loop`` (a :class:`LoopThread`) and ``_clients`` (a
    :class:`PerLoop` of async clients with an async ``close()``).
    """

    name: str
    model: str
    _loop: LoopThread
    _clients: PerLoop[Any]

    async def achat(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One call, made on the async client on this backend's loop thread (so its total time is bounded)."""
        return self._loop.run(self.achat(request), backend=self.name, model=self.model)

    async def _close_client(self) -> None:
        client = self._clients.pop_current()
        if client is not None:
            await client.close()

    def close(self) -> None:
        """Close the client of the loop thread and stop it (a client of another loop is dropped with that loop)."""
        self._loop.close(self._close_client())
        self._clients.pop_all()

    async def aclose(self) -> None:
        """Close this event loop's client, then everything :meth:`close` closes."""
        await self._close_client()
        self.close()
