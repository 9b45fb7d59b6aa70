"""Counting what a result costs: every LLM call of a request goes through one ``Meter``."""

from __future__ import annotations

import logging
import threading
import time

from ..backends.base import Backend, ChatRequest, ChatResponse, achat
from ..data import Usage
from ..errors import redact

__all__ = ["RESULT_WARNING", "Meter"]

log = logging.getLogger("msrkit")

#: set on the log records of warnings that also travel in the result (``Ranking.warnings``),
#: so a front end that prints the result can leave those records out instead of saying it twice
RESULT_WARNING = "msrkit_result_warning"


class Meter:
    """Calls a backend and adds up calls, tokens, cache hits and seconds; collects warnings."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.warnings: list[str] = []
        self._started = time.perf_counter()
        self._lock = threading.Lock()

    def record(self, response: ChatResponse) -> ChatResponse:
        with self._lock:
            if response.cached:
                self.usage.cache_hits += 1
            else:
                self.usage.llm_calls += 1
                self.usage.prompt_tokens += response.prompt_tokens
                self.usage.completion_tokens += response.completion_tokens
        for w in response.warnings:
            self.warn(w)
        return response

    def call(self, backend: Backend, request: ChatRequest) -> ChatResponse:
        return self.record(backend.chat(request))

    async def acall(self, backend: Backend, request: ChatRequest) -> ChatResponse:
        return self.record(await achat(backend, request))

    def reused(self) -> None:
        """Count a result reused without a call that the response cache did not answer (a stored item summary)."""
        with self._lock:
            self.usage.cache_hits += 1

    def warn(self, message: str) -> None:
        """Keep a warning once (repeats are dropped; secrets masked) and log it."""
        message = redact(message, None)
        with self._lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        log.warning(message, extra={RESULT_WARNING: True})

    def finish(self) -> Usage:
        self.usage.seconds = round(time.perf_counter() - self._started, 4)
        return self.usage
