"""An Ollama server, through its native chat API (``POST /api/chat``) and the ``ollama`` client.

Wire format (Ollama's API docs, "Generate a chat completion")::

    {"model": "llava:7b",
     "messages": [{"role": "user", "content": "text", "images": ["<base64>", ...]}],
     "options": {"temperature": 0.0, "seed": 0, "num_predict": 256, "stop": ["..."]},
     "format": {<JSON schema>},                  # only when a schema is asked for
     "logprobs": true, "top_logprobs": 5,        # only when log-probabilities are asked for
     "stream": false}

``images`` holds the plain base64 of each image's bytes (no ``data:`` prefix)
and is present only on messages with images. The answer's ``message.content``,
``done_reason``, ``prompt_eval_count``, ``eval_count`` and ``logprobs`` become a
:class:`~msrkit.backends.base.ChatResponse`.

Tools: ``"tools": [{"type": "function", "function": {"name", "description", "parameters"}}]``
(left out for ``tool_choice="none"``; the API has no ``tool_choice``, so ``"required"`` or a
tool's name cannot be enforced). The answer's ``message.tool_calls[].function.arguments`` is an
object (a JSON string is read too) and calls usually carry no id: a stable one is made from the
call. An assistant turn that made calls goes back as ``{"role": "assistant", "content", "tool_calls":
[{"function": {"name", "arguments": {...}}}]}``, a result as ``{"role": "tool", "content", "tool_name"}``.
A model without tool support answers HTTP 400: a :class:`~msrkit.errors.BackendPermanentError` naming it.

Whether the model sees images is asked of the server once (``POST /api/show``,
its ``capabilities`` list holding ``"vision"``) unless ``vision=`` is given.

A call's time limit is the whole call's, not a socket read's (:mod:`.aio`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import ollama
import pydantic

from ..errors import (
    BackendError,
    BackendPermanentError,
    BackendTransientError,
    BackendUnavailableError,
    error_for_status,
    redact,
)
from ..inputs.images import to_base64
from ..runtime.deadline import call_limit
from .aio import LoopThread, OnLoopThread, PerLoop, timed_out
from .auto import ollama_host, ollama_models
from .base import Capabilities, ChatRequest, ChatResponse, Message, read_tool_calls, with_temperature
from .kind import BackendKind
from .openai_wire import guess_vision, images_left_out_warning
from .options import OllamaOptions

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = ["OllamaBackend", "to_ollama_messages", "ollama_params", "parse_ollama_response"]

log = logging.getLogger("msrkit")

#: the most the one capabilities question (``/api/show``) may take
SHOW_TIMEOUT = 10.0


# -- translation (pure) -----------------------------------------------------------------------------


def _ollama_message(message: Message) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.text_content}
    if message.role == "tool":
        wire["tool_name"] = message.name
    if message.tool_calls:
        calls = message.tool_calls
        wire["tool_calls"] = [{"function": {"name": c.name, "arguments": dict(c.arguments)}} for c in calls]
    if message.images:
        wire["images"] = [to_base64(image) for image in message.images]
    return wire


def to_ollama_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages as ``/api/chat`` messages (``images``: base64 strings, only when there are some)."""
    return [_ollama_message(m) for m in request.messages]


def ollama_params(
    request: ChatRequest,
    model: str,
    capabilities: Capabilities,
    *,
    options: Mapping[str, Any] | None = None,
    keep_alive: float | str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``ollama.Client.chat`` for a request (the request's settings win over ``options``)."""
    opts: dict[str, Any] = {**(options or {}), "temperature": request.temperature, "num_predict": request.max_tokens}
    if request.seed is not None:
        opts["seed"] = request.seed
    if request.stop:
        opts["stop"] = list(request.stop)
    params: dict[str, Any] = {"model": model, "messages": to_ollama_messages(request), "options": opts, "stream": False}
    if request.json_schema is not None and capabilities.json_schema:
        params["format"] = request.json_schema
    if request.top_logprobs and capabilities.logprobs:
        params["logprobs"] = True
        params["top_logprobs"] = request.top_logprobs
    if keep_alive is not None:
        params["keep_alive"] = keep_alive
    if request.tools and capabilities.tools and request.tool_choice != "none":
        params["tools"] = [t.as_function() for t in request.tools]
    return params


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _top_logprobs(logprobs: Any) -> list[dict[str, float]] | None:
    if not logprobs:
        return None
    rows: list[dict[str, float]] = []
    for token in logprobs:
        row: dict[str, float] = {}
        for alt in _get(token, "top_logprobs") or [token]:
            row.setdefault(str(_get(alt, "token")), float(_get(alt, "logprob")))
        rows.append(row)
    return rows


def parse_ollama_response(resp: Any) -> ChatResponse:
    """An ``/api/chat`` answer (the client's ``ChatResponse`` or its JSON dict) as a :class:`ChatResponse`."""
    message = _get(resp, "message")
    return ChatResponse(
        text=(_get(message, "content") or "") if message is not None else "",
        prompt_tokens=int(_get(resp, "prompt_eval_count") or 0),
        completion_tokens=int(_get(resp, "eval_count") or 0),
        top_logprobs=_top_logprobs(_get(resp, "logprobs")),
        model=str(_get(resp, "model") or ""),
        finish_reason=_get(resp, "done_reason"),
        tool_calls=read_tool_calls(_get(message, "tool_calls")) if message is not None else [],
    )


class OllamaBackend(OnLoopThread, BackendKind):
    """A model served by Ollama (``ollama serve``), e.g. ``OllamaBackend("llava:7b")``.

    ``host`` falls back to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``.
    ``vision``: as given, else the server's ``/api/show`` capabilities (asked
    once, lazily), else a guess from the name. ``options`` are Ollama model
    options sent with every call (e.g. ``{"num_ctx": 8192}``); ``keep_alive``
    how long the server keeps the model loaded. Log-probabilities and JSON
    schemas (``format``) are passed through; an old server ignores the first.
    """

    name = "ollama"
    options_model = OllamaOptions
    package = "ollama"

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        timeout: float = 120.0,
        vision: bool | None = None,
        keep_alive: float | str | None = None,
        options: Mapping[str, Any] | None = None,
        capabilities: Capabilities | None = None,
        temperature: float | None = None,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.host = (host if host and "://" in host else f"http://{host}" if host else ollama_host()).rstrip("/")
        self.timeout = float(timeout)
        self.keep_alive = keep_alive
        self.options = dict(options or {})
        self._vision = vision
        self._capabilities = capabilities
        self._clients = PerLoop(lambda: ollama.AsyncClient(host=self.host, timeout=self.timeout))
        self._loop = LoopThread(f"msrkit-ollama-{model}")

    @classmethod
    def from_spec(
        cls, model: str, *, base_url: str | None, api_key: str | None, adapter: Adapter | None, **options: Any
    ) -> OllamaBackend:
        """``base_url`` (``--base-url``) wins over the ``host`` option; an Ollama server needs no key."""
        host = options.pop("host", None)
        return cls(model, host=base_url or host, **options)

    @classmethod
    def status(cls, env: Mapping[str, str]) -> str:
        models, host = ollama_models(ollama_host(env)), ollama_host(env)
        listed = ", ".join(models) if models else ("no models" if models == [] else "not reachable")
        return f"{super().status(env)}; server at {host}: {listed}"

    @classmethod
    def adapter_hint(cls, model: str, adapter: Adapter) -> str:
        return (f"the ollama backend does not load adapters itself: write a Modelfile with 'FROM {model}' and "
                f"'ADAPTER {adapter.directory / 'adapter.gguf'}', run 'ollama create NAME -f Modelfile', then use "
                f"--backend ollama/NAME without --adapter")  # fmt: skip

    def __repr__(self) -> str:
        return f"OllamaBackend(model={self.model!r}, host={self.host!r})"

    @property
    def capabilities(self) -> Capabilities:
        if self._capabilities is None:
            vision = self._vision if self._vision is not None else self._ask_vision()
            num_ctx = self.options.get("num_ctx")
            self._capabilities = Capabilities(
                vision=vision, logprobs=True, json_schema=True, context_size=int(num_ctx) if num_ctx else None,
                tools=True,
            )  # fmt: skip
        return self._capabilities

    def _ask_vision(self) -> bool:
        """The server's word on whether the model takes images; the name's guess if it cannot say."""
        try:
            shown = self._loop.run(self._show(), backend=self.name, model=self.model)
        except Exception as exc:  # noqa: BLE001 - any failure falls back to the guess
            guess = guess_vision(self.model)
            log.info("ollama/%s: could not ask %s for its capabilities (%s); guessing vision=%s from the name",
                     self.model, self.host, redact(f"{type(exc).__name__}: {exc}", 200), guess)  # fmt: skip
            return guess
        listed = shown.capabilities
        return "vision" in listed if listed is not None else guess_vision(self.model)

    async def _show(self) -> Any:
        seconds, _ = call_limit(min(self.timeout, SHOW_TIMEOUT), backend=self.name, model=self.model)
        return await asyncio.wait_for(self._clients.get().show(self.model), seconds)

    def identity(self) -> dict[str, str]:
        out = {"kind": self.name, "model": self.model, "base_url": self.host}
        return {**out, "temperature": str(self.temperature)} if self.temperature is not None else out

    # -- calls --------------------------------------------------------------------------------------

    def _prepare(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        warnings: list[str] = []
        request = with_temperature(request, self.temperature)
        caps = self.capabilities
        if request.has_images and not caps.vision:
            warnings.append(images_left_out_warning(self.name, self.model, request))
            request = request.without_images()
        return ollama_params(request, self.model, caps, options=self.options, keep_alive=self.keep_alive), warnings

    def _finish(self, resp: Any, started: float, warnings: list[str]) -> ChatResponse:
        response = parse_ollama_response(resp)
        response.seconds = time.perf_counter() - started
        response.warnings.extend(warnings)
        return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """The call from async code, on an ``ollama.AsyncClient``, cut off at its time limit."""
        if self._capabilities is None:  # the one /api/show call goes to a thread, not the event loop
            await asyncio.to_thread(lambda: self.capabilities)
        params, warnings = self._prepare(request)
        seconds, by_deadline = call_limit(self.timeout, backend=self.name, model=self.model)
        client = self._clients.get()
        started = time.perf_counter()
        try:
            resp = await asyncio.wait_for(client.chat(**params), seconds)
        except Exception as exc:  # noqa: BLE001 - every client failure becomes an msrkit error
            self._raise(exc, seconds=seconds, by_deadline=by_deadline, tools="tools" in params)
        return self._finish(resp, started, warnings)

    def _raise(self, exc: Exception, *, seconds: float, by_deadline: bool, tools: bool = False) -> NoReturn:
        """Raise the msrkit error for a client failure, mapped by class and status."""
        who: dict[str, Any] = {"backend": self.name, "model": self.model}
        if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError)):
            raise timed_out(seconds, by_deadline, **who) from None
        if isinstance(exc, ollama.ResponseError):
            message = redact(str(exc.error), 200)
            if tools and exc.status_code == 400:  # what Ollama answers a request with tools for a model without
                raise BackendPermanentError(
                    f"the model '{self.model}' rejected a request with tools (HTTP 400: {message}); it may not "
                    "support tool calling: use a model that does (e.g. qwen2.5, llama3.1)", status=400, **who,
                ) from None  # fmt: skip
            if exc.status_code == 404:
                message += f" (is it pulled? `ollama pull {self.model}`)"
            if exc.status_code < 100:  # an error reported inside a 200 answer
                raise BackendTransientError(message, **who) from None
            raise error_for_status(exc.status_code, message, **who) from None
        if isinstance(exc, (ConnectionError, httpx.ConnectError)):  # the client turns ConnectError into ConnectionError
            message = f"could not connect to {self.host} (is `ollama serve` running?)"
            raise BackendUnavailableError(message, **who) from exc
        if isinstance(exc, httpx.HTTPError):
            raise BackendTransientError(f"connection to {self.host} failed: {type(exc).__name__}", **who) from exc
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):
            raise BackendTransientError("the server's answer was not a valid /api/chat response", **who) from None
        if isinstance(exc, BackendError):
            raise exc
        raise BackendError(redact(f"unexpected {type(exc).__name__}: {exc}", 300), **who) from None
