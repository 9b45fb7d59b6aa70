"""The one interface every model backend speaks.

A backend only translates: a :class:`ChatRequest` (messages of text and image
parts, decoding options, optional JSON schema, optional log-probabilities,
optional tools) into its wire format, and the answer back into a
:class:`ChatResponse`. Retry and cache wrap a backend and are backends themselves.

Tool calling is normalized across wire formats: a request offers
:class:`ToolSpec` s and a ``tool_choice``; an answer's calls come back as
:class:`ToolCall` s whose ``arguments`` are always a dict (``error`` says why
when the model's arguments were not a JSON object, so a caller can turn that
into an observation instead of a crash); a tool's result goes back as a
``Message`` of role ``"tool"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, runtime_checkable

from ..runtime.modeltext import MAX_JSON_DEPTH, nesting_ok

__all__ = [
    "TextPart",
    "ImagePart",
    "Message",
    "ToolSpec",
    "ToolCall",
    "ChatRequest",
    "ChatResponse",
    "Capabilities",
    "Backend",
    "achat",
    "with_temperature",
    "canonical_json",
    "read_arguments",
    "make_tool_call",
    "read_tool_calls",
    "wire_tool_choice",
]

Role = Literal["system", "user", "assistant", "tool"]

#: a tool call's arguments longer than this are refused unread (msrkit's tools take a few short fields)
MAX_ARGUMENT_CHARS = 8_000
#: of refused arguments, this much is kept in ``ToolCall.raw`` (for the trace)
MAX_RAW_KEPT = 200


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
class ToolSpec:
    """A tool the model may call: its name, what it does, and its parameters as a JSON schema (an object)."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def as_function(self) -> dict[str, Any]:
        """The OpenAI-style ``{"type": "function", "function": {...}}`` form (OpenAI, Ollama, llama.cpp)."""
        body = {"name": self.name, "description": self.description, "parameters": dict(self.parameters)}
        return {"type": "function", "function": body}


@dataclass(frozen=True)
class ToolCall:
    """One call the model made, the same whatever the wire format.

    ``arguments`` is always a dict; ``raw`` is the arguments as the model sent
    them when they came as text; ``error`` says why they could not be read (not
    JSON, not an object): the call is then invalid and ``arguments`` is empty.
    """

    id: str
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    raw: str | None = None
    error: str | None = None

    def as_function_call(self) -> dict[str, Any]:
        """The OpenAI-style wire form (arguments as JSON text), as OpenAI and llama.cpp take it back."""
        arguments = canonical_json(dict(self.arguments))
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": arguments}}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: two equal values give the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def read_arguments(arguments: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """A call's arguments as sent (an object, a JSON string, nothing): ``(arguments, raw, error)``.

    Bounded before any decoding: text over :data:`MAX_ARGUMENT_CHARS` characters or nested deeper than
    :data:`~msrkit.runtime.modeltext.MAX_JSON_DEPTH` is an invalid call (its ``raw`` kept short), never parsed.
    """
    if arguments is None or arguments == "":
        return {}, None, None
    if isinstance(arguments, Mapping):
        try:
            raw = canonical_json(dict(arguments))
        except (ValueError, TypeError, RecursionError):
            return {}, None, "arguments cannot be read as JSON"
        if len(raw) > MAX_ARGUMENT_CHARS or not nesting_ok(raw):
            return {}, raw[:MAX_RAW_KEPT], _too_big(raw)
        return dict(arguments), None, None
    raw = str(arguments)
    if len(raw) > MAX_ARGUMENT_CHARS or not nesting_ok(raw):
        return {}, raw[:MAX_RAW_KEPT], _too_big(raw)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {}, raw, f"arguments are not valid JSON ({exc.msg} at character {exc.pos})"
    except (ValueError, RecursionError) as exc:  # e.g. a number too long
        return {}, raw, f"arguments are not valid JSON ({type(exc).__name__})"
    if not isinstance(value, dict):
        return {}, raw, f"arguments must be a JSON object, not {type(value).__name__}"
    return value, raw, None


def _too_big(raw: str) -> str:
    if len(raw) > MAX_ARGUMENT_CHARS:
        return f"arguments of {len(raw)} characters are over the limit of {MAX_ARGUMENT_CHARS}"
    return f"arguments nest deeper than {MAX_JSON_DEPTH} levels"


def make_tool_call(call_id: Any, name: Any, arguments: Any, *, index: int) -> ToolCall:
    """A :class:`ToolCall` from a wire call; a missing id becomes a stable one (same call, same id)."""
    args, raw, error = read_arguments(arguments)
    name = str(name or "")
    if not call_id:
        body = raw if raw is not None else canonical_json(args)
        digest = hashlib.sha256(f"{name}\x00{body}".encode("utf-8", "surrogatepass")).hexdigest()
        call_id = f"call_{index}_" + digest[:12]
    return ToolCall(str(call_id), name, args, raw, error)


def wire_tool_choice(choice: str) -> str | dict[str, Any]:
    """``tool_choice`` in the OpenAI wire form: the keywords as they are, a tool's name as the named-function form."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def read_tool_calls(calls: Any) -> list[ToolCall]:
    """A message's ``tool_calls`` in the function-call shape all three wire formats share
    (``[{"id"?, "function": {"name", "arguments"}}]``, as dicts or client objects) as :class:`ToolCall` s.

    ``arguments`` may be JSON text (OpenAI) or an object (Ollama): both are read; text that is
    not a JSON object gives a call with ``error`` set; a missing id gets a stable one.
    """
    out: list[ToolCall] = []
    for index, call in enumerate(calls or []):
        function = _field(call, "function")
        if function is None:  # not a function call (e.g. a custom tool): nothing msrkit offered
            continue
        out.append(make_tool_call(_field(call, "id"), _field(function, "name"), _field(function, "arguments"),
                                  index=index))  # fmt: skip
    return out


@dataclass(frozen=True)
class Message:
    """A chat message. An assistant message may carry ``tool_calls``; a ``tool`` message
    answers the call ``tool_call_id`` of the tool ``name``."""

    role: Role
    parts: tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def text(cls, role: Role, text: str) -> Message:
        return cls(role, (TextPart(text),))

    @classmethod
    def calls(cls, calls: tuple[ToolCall, ...] | list[ToolCall], text: str = "") -> Message:
        """The assistant's turn that made ``calls`` (to send back with their results)."""
        return cls("assistant", (TextPart(text),) if text else (), tuple(calls))

    @classmethod
    def tool_result(cls, call: ToolCall, text: str) -> Message:
        """The result of ``call``, sent back to the model."""
        return cls("tool", (TextPart(text),), tool_call_id=call.id, name=call.name)

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
    (``None``: no log-probabilities wanted). ``tools``: what the model may call;
    ``tool_choice``: ``"auto"``, ``"none"``, ``"required"`` or a tool's name.
    """

    messages: tuple[Message, ...]
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = 0
    json_schema: dict[str, Any] | None = None
    top_logprobs: int | None = None
    stop: tuple[str, ...] = ()
    tag: str = ""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0 or self.seed is not None

    def without_images(self) -> ChatRequest:
        msgs = tuple(replace(m, parts=tuple(p for p in m.parts if isinstance(p, TextPart))) for m in self.messages)
        return replace(self, messages=msgs)

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
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class Capabilities:
    """What a backend's model can do; checked instead of the backend's class."""

    vision: bool = False
    logprobs: bool = False
    json_schema: bool = False
    context_size: int | None = None
    tools: bool = False


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
    return replace(request, temperature=temperature)
