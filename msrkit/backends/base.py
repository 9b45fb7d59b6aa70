"""The one interface every model backend speaks.

A backend only translates: a :class:`ChatRequest` (messages of text and image
parts, decoding options, optional JSON schema, optional log-probabilities) into
its wire format, and the answer back into a :class:`ChatResponse`. Retry and
cache wrap a backend and are backends themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "TextPart",
    "ImagePart",
    "Message",
    "ChatRequest",
    "ChatResponse",
    "Capabilities",
    "Backend",
    "achat",
    "with_temperature",
]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image ready to send: encoded bytes (already downscaled) and their MIME type."""

    data: bytes
    mime: str = "image/jpeg"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


Part = TextPart | ImagePart


@dataclass(frozen=True)
class Message:
    role: Role
    parts: tuple[Part, ...]

    @classmethod
    def text(cls, role: Role, text: str) -> Message:
        return cls(role, (TextPart(text),))

    @property
    def text_content(self) -> str:
        """The message's text parts joined (images left out)."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. ``tag`` names the prompt template (id@version#hash) that made it.

    ``top_logprobs``: how many alternatives per generated token to return
    (``None``: no log-probabilities wanted).
    """

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = 0
    json_schema: dict[str, Any] | None = None
    top_logprobs: int | None = None
    stop: tuple[str, ...] = ()
    tag: str = ""

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0 or self.seed is not None

    def without_images(self) -> ChatRequest:
        msgs = tuple(Message(m.role, tuple(p for p in m.parts if isinstance(p, TextPart))) for m in self.messages)
        return ChatRequest(
            msgs, self.max_tokens, self.temperature, self.seed, self.json_schema, self.top_logprobs, self.stop, self.tag
        )

    @property
    def has_images(self) -> bool:
        return any(m.images for m in self.messages)


@dataclass
class ChatResponse:
    """A backend's answer.

    ``top_logprobs`` holds, per generated token, a mapping of candidate token
    text to its log-probability (only when asked for and supported).
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    top_logprobs: list[dict[str, float]] | None = None
    model: str = ""
    cached: bool = False
    seconds: float = 0.0
    finish_reason: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Capabilities:
    """What a backend's model can do; checked instead of the backend's class."""

    vision: bool = False
    logprobs: bool = False
    json_schema: bool = False
    context_size: int | None = None


@runtime_checkable
class Backend(Protocol):
    """A chat model. ``name`` is the backend kind (``openai``), ``model`` the model id."""

    name: str
    model: str

    @property
    def capabilities(self) -> Capabilities: ...

    def identity(self) -> dict[str, str]:
        """What makes this backend's answers differ (kind, model, base URL): never a secret."""
        ...

    def chat(self, request: ChatRequest) -> ChatResponse: ...

    def close(self) -> None: ...


async def achat(backend: Backend, request: ChatRequest) -> ChatResponse:
    """Call a backend from async code: its own ``achat`` if it has one, else a worker thread."""
    native = getattr(backend, "achat", None)
    if native is not None:
        result: ChatResponse = await native(request)
        return result
    return await asyncio.to_thread(backend.chat, request)


def with_temperature(request: ChatRequest, temperature: float | None) -> ChatRequest:
    """``request`` at the backend's configured temperature (``None``: the request's own)."""
    if temperature is None or temperature == request.temperature:
        return request
    from dataclasses import replace

    return replace(request, temperature=temperature)
