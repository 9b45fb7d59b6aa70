"""The OpenAI Chat Completions wire format, as pure functions: requests out, answers in.

Wire format (the Chat Completions API, ``POST {base_url}/chat/completions``):

- ``messages``: ``{"role": ..., "content": "text"}`` for a text-only message; a message
  with images gets a list of content parts, images first, then the text::

      [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..."}},
       {"type": "text", "text": "..."}]

- ``max_tokens``, ``temperature``, ``seed``, ``stop``;
- ``logprobs: true`` with ``top_logprobs: n`` (at most 20) when asked for and supported;
- ``response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict": false}}``
  (structured outputs) when a schema is asked for and supported; with ``json_format="json_object"``
  the older form ``{"type": "json_object", "schema": {...}}`` that ``llama_cpp.server`` reads (it
  refuses ``json_schema`` with HTTP 500) and turns into a grammar;
- ``tools: [{"type": "function", "function": {"name", "description", "parameters"}}]`` and
  ``tool_choice`` (``"auto"``, ``"none"``, ``"required"`` or ``{"type": "function", "function":
  {"name": ...}}``) when the request offers tools; an assistant turn that made calls is sent as
  ``{"role": "assistant", "content": ..., "tool_calls": [{"id", "type": "function", "function":
  {"name", "arguments": "<JSON text>"}}]}`` and each result as ``{"role": "tool", "tool_call_id", "content"}``.

The answer's ``choices[0].message.content``, ``message.tool_calls`` (arguments
are JSON text: read into a dict, an unreadable one kept as an invalid call),
``finish_reason``, ``choices[0].logprobs.content[i].top_logprobs`` and
``usage`` become a :class:`~msrkit.backends.base.ChatResponse`.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

from ..errors import BackendTransientError
from ..inputs.images import to_data_uri
from .base import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    read_tool_calls,
    wire_tool_choice,
)
from .options import JsonFormat

__all__ = [
    "MAX_TOP_LOGPROBS",
    "guess_vision",
    "images_left_out_warning",
    "openai_params",
    "parse_openai_completion",
    "parse_retry_after",
    "to_openai_messages",
]

MAX_TOP_LOGPROBS = 20  # the Chat Completions API's limit

# Model names that usually accept images. A guess only: pass ``vision=True/False`` to override it.
_VISION_NAMES = re.compile(
    r"gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-4-vision|gpt-5|chatgpt-4o|(?:^|[/:_-])o[134](?!-mini\b)(?:$|[-:_])|o4-mini"
    r"|llava|bakllava|vision|[-_.:]vl\b|vl[-_:]|qwen2\.5vl|qwen2-vl|qwen3-vl|internvl|gemma-?3(?![:_-]?(?:1b|270m))"
    r"|pixtral|minicpm-v|moondream|llama-?4|mistral-small-?3\.[12]|granite3\.2-vision|phi-?3\.5-vision"
    r"|phi-?4-multimodal|claude-3|claude-(?:sonnet|opus|haiku)-4|gemini",
    re.IGNORECASE,
)


def guess_vision(model: str) -> bool:
    """Whether a model's name says it can see images (``gpt-4o``, ``llava:7b``, ``qwen2.5vl``, ``gemma3:4b``...).

    Only a guess from the name: backends take ``vision=True`` or ``vision=False`` to override it.
    """
    return bool(_VISION_NAMES.search(model))


def images_left_out_warning(kind: str, model: str, request: ChatRequest) -> str:
    """The warning a text-only backend adds when it drops a request's images."""
    n = sum(len(m.images) for m in request.messages)
    return f"{kind}/{model} cannot see images (text-only): {n} image(s) left out; pass vision=True if it can"


# -- translation (pure) -----------------------------------------------------------------------------


def _image_url(image: ImagePart) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": to_data_uri(image)}}


def _openai_message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text_content}
    if message.tool_calls:
        calls = [c.as_function_call() for c in message.tool_calls]
        # "" rather than null: OpenAI takes either, llama_cpp.server's schema only a string
        return {"role": "assistant", "content": message.text_content, "tool_calls": calls}
    if not message.images:
        return {"role": message.role, "content": message.text_content}
    parts = [_image_url(p) for p in message.parts if isinstance(p, ImagePart)]
    parts += [{"type": "text", "text": p.text} for p in message.parts if isinstance(p, TextPart)]
    return {"role": message.role, "content": parts}


def to_openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages as Chat Completions ``messages`` (images inline as base64 data URIs, before the text)."""
    return [_openai_message(m) for m in request.messages]


def _schema_name(schema: Mapping[str, Any]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(schema.get("title") or "response"))
    return name[:64] or "response"


def openai_params(
    request: ChatRequest, model: str, capabilities: Capabilities, *, json_format: JsonFormat = "json_schema"
) -> dict[str, Any]:
    """The keyword arguments of ``client.chat.completions.create`` (the JSON body) for a request."""
    params: dict[str, Any] = {
        "model": model,
        "messages": to_openai_messages(request),
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if request.seed is not None:
        params["seed"] = request.seed
    if request.stop:
        params["stop"] = list(request.stop)
    if request.top_logprobs and capabilities.logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = min(request.top_logprobs, MAX_TOP_LOGPROBS)
    if request.json_schema is not None and capabilities.json_schema:
        schema = request.json_schema
        params["response_format"] = (
            {"type": "json_object", "schema": schema} if json_format == "json_object" else
            {"type": "json_schema", "json_schema": {"name": _schema_name(schema), "schema": schema, "strict": False}}
        )  # fmt: skip
    if request.tools and capabilities.tools:
        params["tools"] = [t.as_function() for t in request.tools]
        params["tool_choice"] = wire_tool_choice(request.tool_choice)
    return params


def _top_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    tokens = getattr(logprobs, "content", None) if logprobs is not None else None
    if not tokens:
        return None
    rows: list[dict[str, float]] = []
    for token in tokens:
        alternatives = getattr(token, "top_logprobs", None) or [token]
        row: dict[str, float] = {}
        for alt in alternatives:
            row.setdefault(str(alt.token), float(alt.logprob))
        rows.append(row)
    return rows


def parse_openai_completion(completion: Any) -> ChatResponse:
    """A ``ChatCompletion`` as a :class:`ChatResponse` (``text`` is ``""`` when the content is null).

    Raises :class:`~msrkit.errors.BackendTransientError` for an answer without choices (not an OpenAI answer).
    """
    choices = getattr(completion, "choices", None)
    if not choices:
        raise BackendTransientError("the server's answer has no choices (not a chat completion)")
    choice = choices[0]
    usage = getattr(completion, "usage", None)
    message = getattr(choice, "message", None)
    return ChatResponse(
        text=(getattr(message, "content", None) or "") if message is not None else "",
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        top_logprobs=_top_logprobs(getattr(choice, "logprobs", None)),
        model=str(getattr(completion, "model", "") or ""),
        finish_reason=getattr(choice, "finish_reason", None),
        tool_calls=read_tool_calls(getattr(message, "tool_calls", None)) if message is not None else [],
    )


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); ``None`` if absent."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
    except ValueError:
        pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# -- errors -----------------------------------------------------------------------------------------
