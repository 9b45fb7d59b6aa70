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
  the request (:meth:`~msrkit.runtime.deadline.Deadline.cancel`) cancels the call.

An httpx async client belongs to the event loop it was made on, so
:class:`PerLoop` keeps one client per loop, and closes each *on its own loop*:
at once where that loop runs on another thread (or is idle), and, where it is
the caller's running loop, when that loop shuts down (``asyncio.run`` closes
the async generators of a loop before closing it, and each client has one whose
``finally`` closes it). So no client outlives its loop and no "Event loop is
closed" traceback comes at garbage collection; async code may also
``await backend.aclose()``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..errors import BackendTransientError, DeadlineExceededError
from ..runtime.deadline import current
from .base import ChatRequest, ChatResponse

__all__ = ["LoopThread", "OnLoopThread", "PerLoop", "run_on", "timed_out"]

T = TypeVar("T")

log = logging.getLogger("msrkit")


async def _close_client(client: Any) -> None:
    """Close an async client (``close()``, as the openai and ollama clients name it, else ``aclose()``)."""
    close = getattr(client, "close", None) or getattr(client, "aclose", None)
    if close is not None:
        await close()


def _closer(client: Any) -> AsyncGenerator[None, None]:
    """An async generator, started now on the running loop, whose ``finally`` closes ``client``.

    Starting it registers it with the loop (its first-iteration hook), so the loop's
    ``shutdown_asyncgens`` (run by ``asyncio.run`` before it closes the loop) closes the client.
    """

    async def closing() -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await _close_client(client)

    gen = closing()
    with contextlib.suppress(StopIteration):
        gen.__anext__().send(None)  # runs to the yield at once (nothing is awaited before it)
    return gen


class PerLoop(Generic[T]):
    """One async client per running event loop, made by ``factory`` on first use there, closed on that loop."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        with self._lock:
            made = self._made.get(loop)
            if made is None:
                for gone in [old for old in self._closers if old.is_closed()]:  # closed with their loop
                    self._made.pop(gone, None)
                    self._closers.pop(gone, None)
                made = self._made[loop] = self._factory()
                self._closers[loop] = _closer(made)
            return made

    async def aclose_current(self) -> None:
        """Close the running loop's client (if one was made) and forget it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._made.pop(loop, None)
            gen = self._closers.pop(loop, None)
        if gen is not None:
            await gen.aclose()

    def close_all(self) -> None:
        """Close every client on its own loop where that can be done now; the caller's running loop closes its
        own at shutdown (or ``await aclose_current()`` from it); a client of a closed loop was closed with it."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        with self._lock:
            pending = [(loop, gen) for loop, gen in self._closers.items() if loop is not running]
            for loop, _ in pending:
                self._made.pop(loop, None)
                self._closers.pop(loop, None)
        for loop, gen in pending:
            _close_on(loop, gen)


def _close_on(loop: asyncio.AbstractEventLoop, gen: AsyncGenerator[None, None]) -> None:
    """Run ``gen.aclose()`` (which closes its client) on ``loop``, from another thread or on the idle loop."""
    try:
        if loop.is_closed():
            return
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(gen.aclose(), loop).result(timeout=5)
        else:
            loop.run_until_complete(gen.aclose())
    except Exception as exc:  # noqa: BLE001 - closing must not fail the caller
        log.debug("closing an async client failed: %s", exc)


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

    def close(self) -> None:
        """Close the client of the loop thread and stop it, then every other loop's client (see :class:`PerLoop`)."""
        self._loop.close(self._clients.aclose_current())
        self._clients.close_all()

    async def aclose(self) -> None:
        """Close this event loop's client, then everything :meth:`close` closes."""
        await self._clients.aclose_current()
        self.close()
