"""The innermost wrapper: every call to the real backend passes here, once per attempt.

Before the call: the request's deadline (:mod:`msrkit.runtime.deadline`) must leave
time for it, and the circuit breaker (:mod:`.breaker`) must let it out. After
it: the breaker learns whether the endpoint answered, and the answer is made
safe to keep: its text cut at ``max_answer_chars`` (with a warning), its
log-probabilities at one row per requested token, its tool calls at
:data:`MAX_TOOL_CALLS`, and every registered secret's value masked
(:func:`~msrkit.errors.register_secret`) in the text *and* in each tool call's
name, arguments and raw text (lone surrogates, which no UTF-8 file holds, replaced
too), so neither the cache, an agent's trace nor a :class:`~msrkit.data.Ranking`
can grow by what a server sends, hold a key it echoes, or fail to be written.

Order of wrappers (built by :mod:`.stack`)::

    CachedBackend(RetryingBackend(GuardedBackend(backend)))

Inside retry, the breaker sees every attempt (a dead endpoint opens it within
the first call's retries) and retry sees its :class:`~msrkit.errors.CircuitOpenError`,
which it does not retry; inside the cache, only capped answers are stored.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from ..errors import BackendError, mask_secrets
from ..runtime.deadline import current
from .base import Backend, ChatRequest, ChatResponse, ToolCall, achat
from .breaker import CircuitBreaker, counts_against
from .wrapper import Wrapper

__all__ = ["GuardedBackend", "MAX_ANSWER_CHARS", "MAX_TOOL_CALLS", "cap_answer", "mask_call"]

#: the default cap on a model's answer (Settings.max_answer_chars): ~4,000 tokens, far above what any prompt asks
MAX_ANSWER_CHARS = 16_000
#: alternatives kept per token, and characters per token text, in log-probabilities
MAX_ALTERNATIVES = 32
MAX_TOKEN_CHARS = 64
#: tool calls kept of one answer (an agent's budget is a dozen; the rest are dropped with a warning)
MAX_TOOL_CALLS = 256


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _safe(text: str) -> str:
    """``text`` with registered secrets masked and lone surrogates (which no UTF-8 file can hold) replaced."""
    return _LONE_SURROGATE.sub("\ufffd", mask_secrets(text))


def _masked(value: Any) -> Any:
    """``value`` (decoded JSON, nesting bounded by :func:`~.base.read_arguments`), secrets masked in every string."""
    if isinstance(value, str):
        return _safe(value)
    if isinstance(value, dict):
        return {_safe(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


def mask_call(call: ToolCall) -> ToolCall:
    """``call`` with every registered secret masked (and lone surrogates replaced) in all its text."""
    return ToolCall(_safe(call.id), _safe(call.name), _masked(dict(call.arguments)),
                    _safe(call.raw) if call.raw is not None else None,
                    _safe(call.error) if call.error is not None else None)  # fmt: skip


def _cap_logprobs(rows: list[dict[str, float]] | None, max_rows: int) -> list[dict[str, float]] | None:
    if rows is None:
        return None
    kept = rows[: max(1, max_rows)]
    return [{token[:MAX_TOKEN_CHARS]: lp for token, lp in list(row.items())[:MAX_ALTERNATIVES]} for row in kept]


def cap_answer(response: ChatResponse, request: ChatRequest, *, max_chars: int, who: str) -> ChatResponse:
    """``response`` with its text, log-probabilities and labels bounded and registered secrets masked."""
    text = _safe(response.text)
    warnings = list(response.warnings)
    if len(text) > max_chars:
        warnings.append(f"{who}: an answer of {len(text)} characters was cut to {max_chars} (max_answer_chars)")
        text = text[:max_chars]
    calls = response.tool_calls
    if len(calls) > MAX_TOOL_CALLS:
        warnings.append(f"{who}: an answer with {len(calls)} tool calls was cut to {MAX_TOOL_CALLS}")
    return replace(
        response,
        text=text,
        tool_calls=[mask_call(c) for c in calls[:MAX_TOOL_CALLS]],
        top_logprobs=_cap_logprobs(response.top_logprobs, request.max_tokens),
        model=response.model[:200],
        finish_reason=response.finish_reason[:40] if response.finish_reason else response.finish_reason,
        warnings=warnings,
    )


class GuardedBackend(Wrapper):
    """``inner`` under the request's deadline, a circuit breaker (``None``: none) and an answer size cap."""

    def __init__(
        self,
        inner: Backend,
        *,
        breaker: CircuitBreaker | None = None,
        max_answer_chars: int = MAX_ANSWER_CHARS,
    ) -> None:
        super().__init__(inner)
        self.breaker = breaker
        self.max_answer_chars = max_answer_chars

    def chat(self, request: ChatRequest) -> ChatResponse:
        probe = self._admit()
        try:
            response = self.inner.chat(request)
        except BaseException as exc:
            self._settle(exc, probe)
            raise
        return self._answer(request, response, probe)

    async def achat(self, request: ChatRequest) -> ChatResponse:
        probe = self._admit()
        try:
            response = await achat(self.inner, request)
        except BaseException as exc:
            self._settle(exc, probe)
            raise
        return self._answer(request, response, probe)

    def _admit(self) -> bool:
        current().check(backend=self.name, model=self.model)
        return self.breaker.admit() if self.breaker is not None else False

    def _settle(self, exc: BaseException, probe: bool) -> None:
        """Tell the breaker what a failed call says about the endpoint."""
        if self.breaker is None:
            return
        if not isinstance(exc, BackendError) or current().cancelled:
            self.breaker.released(probe)  # a bug or a cancelled request says nothing about the endpoint
        elif counts_against(exc):
            self.breaker.failed(exc, probe)
        else:
            self.breaker.succeeded(probe)  # it answered (unusably, or refused this one request)

    def _answer(self, request: ChatRequest, response: ChatResponse, probe: bool) -> ChatResponse:
        if self.breaker is not None:
            self.breaker.succeeded(probe)
        return cap_answer(response, request, max_chars=self.max_answer_chars, who=f"{self.name}/{self.model}")
