"""A scripted backend for tests of msrkit's own logic (never evidence a real backend works).

    fake = FakeBackend()
    fake.enqueue("[2] > [1]")
    Recommender(backend=fake).rank(history)

Answers are taken in order from the queue; when it is empty the ``default``
callable answers (by default: the candidates in the order given). Every request
is kept in ``requests`` so tests can look at exactly what the model was sent.

Scripted tool calls: a :class:`~msrkit.backends.base.ToolCall` (or a list of
them: parallel calls) is answered as a response carrying those calls::

    fake.enqueue(ToolCall("c1", "search_catalog", {"query": "space"}), [ToolCall("c2", "finish", {...})])
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from ..errors import BackendError
from .base import Capabilities, ChatRequest, ChatResponse, ToolCall

__all__ = ["Answer", "FakeBackend"]

#: What a scripted model may answer: text, a full response, a tool call, parallel calls, an exception to raise.
Answer = str | ChatResponse | ToolCall | list[ToolCall] | BaseException


def _echo_order(request: ChatRequest) -> str:
    numbers = re.findall(r"^\[(\d+)\]", request.messages[-1].text_content, flags=re.M)
    return " > ".join(f"[{n}]" for n in numbers) or "ok"


class FakeBackend:
    name = "fake"

    def __init__(
        self,
        model: str = "scripted",
        *,
        capabilities: Capabilities | None = None,
        default: Callable[[ChatRequest], Answer] | None = _echo_order,
    ) -> None:
        self.model = model
        self._capabilities = capabilities or Capabilities(vision=True, logprobs=True, json_schema=False, tools=True)
        self._queue: deque[Answer] = deque()
        self._default = default
        self.requests: list[ChatRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    def enqueue(self, *answers: Answer) -> FakeBackend:
        """Queue answers (text, full responses, tool calls, lists of parallel tool calls, or exceptions to raise)."""
        self._queue.extend(answers)
        return self

    def identity(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model}

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        answer: Answer
        if self._queue:
            answer = self._queue.popleft()
        elif self._default is not None:
            answer = self._default(request)
        else:
            raise BackendError("no scripted answer left", backend=self.name, model=self.model)
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, ChatResponse):
            return replace(answer)
        prompt_tokens = sum(len(m.text_content.split()) for m in request.messages)
        if isinstance(answer, ToolCall):
            answer = [answer]
        if isinstance(answer, list):
            return ChatResponse("", prompt_tokens, 8 * len(answer), model=self.model, tool_calls=list(answer),
                                finish_reason="tool_calls")  # fmt: skip
        return ChatResponse(answer, prompt_tokens, len(answer.split()), model=self.model)

    @property
    def calls(self) -> int:
        return len(self.requests)

    def close(self) -> None:
        pass
