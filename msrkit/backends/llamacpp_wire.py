"""llama-cpp-python's chat-completion arguments, as pure functions: requests out, answers in.

Messages are OpenAI-style (images as ``image_url`` parts with ``data:`` URLs);
tool results are folded into user turns for function-calling handlers that
render no ``tool`` role (see :mod:`.llamacpp`).
"""

from __future__ import annotations

from typing import Any

from ..inputs.images import to_data_uri
from .base import ChatRequest, Message, TextPart, wire_tool_choice

__all__ = ["completion_kwargs", "llamacpp_tool_choice", "parse_top_logprobs", "to_llamacpp_messages"]


def _tool_message(message: Message, *, fold_results: bool) -> dict[str, Any]:
    if message.role == "tool":
        if fold_results:
            return {"role": "user", "content": f"Result of {message.name} (call {message.tool_call_id}):\n"
                                               f"{message.text_content}"}  # fmt: skip
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text_content}
    calls = [c.as_function_call() for c in message.tool_calls]
    return {"role": "assistant", "content": message.text_content, "tool_calls": calls}


def to_llamacpp_messages(request: ChatRequest, *, fold_tool_results: bool = False) -> list[dict[str, Any]]:
    """The request's messages as llama-cpp-python chat messages.

    Text-only messages carry a string; a message with images carries OpenAI-style
    content parts, images as ``image_url`` parts with ``data:`` URLs, in order.
    An assistant turn that made calls carries ``tool_calls`` (arguments as JSON
    text); a tool's result is a ``tool`` message, or with ``fold_tool_results``
    a user turn naming the tool (for templates that render no ``tool`` role).
    """
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "tool" or message.tool_calls:
            out.append(_tool_message(message, fold_results=fold_tool_results))
            continue
        if not message.images:
            out.append({"role": message.role, "content": message.text_content})
            continue
        parts: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            else:
                parts.append({"type": "image_url", "image_url": {"url": to_data_uri(part)}})
        out.append({"role": message.role, "content": parts})
    return out


def parse_top_logprobs(logprobs: dict[str, Any] | None) -> list[dict[str, float]] | None:
    """``choices[0]["logprobs"]`` (chat form) as one ``{token: logprob}`` per generated token."""
    if not logprobs or not logprobs.get("content"):
        return None
    out: list[dict[str, float]] = []
    for entry in logprobs["content"]:
        alternatives: dict[str, float] = {}
        for alt in entry.get("top_logprobs") or []:
            alternatives.setdefault(str(alt["token"]), float(alt["logprob"]))  # numpy float32 -> float
        if not alternatives:
            alternatives[str(entry["token"])] = float(entry["logprob"])
        out.append(alternatives)
    return out


def llamacpp_tool_choice(request: ChatRequest) -> str | dict[str, Any] | None:
    """``tool_choice`` as the function-calling handler takes it (``None`` without tools).

    ``"required"`` becomes the named form when one tool is offered (the handler asserts on
    ``"required"``), else ``"auto"``: a forced choice among several tools cannot be expressed.
    """
    if not request.tools:
        return None
    choice = request.tool_choice
    if choice == "required":
        if len(request.tools) != 1:
            return "auto"
        choice = request.tools[0].name
    return wire_tool_choice(choice)


def completion_kwargs(request: ChatRequest, *, default_seed: int) -> dict[str, Any]:
    """Keyword arguments for ``Llama.create_chat_completion`` (messages left out)."""
    kwargs: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": default_seed if request.seed is None else request.seed,
        "stop": list(request.stop),
    }
    if request.top_logprobs is not None:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = request.top_logprobs
    if request.json_schema is not None:
        kwargs["response_format"] = {"type": "json_object", "schema": request.json_schema}
    if request.tools:
        kwargs["tools"] = [t.as_function() for t in request.tools]
        kwargs["tool_choice"] = llamacpp_tool_choice(request)
    return kwargs
