"""Any OpenAI-compatible chat endpoint: OpenAI itself, vLLM, LM Studio, llama.cpp's server, Ollama's ``/v1``.

The wire format is :mod:`.openai_wire` (pure functions, tested on canned payloads).

Errors are mapped by the client's exception class, the HTTP status and the
body's structured ``error.code`` / ``error.type`` (``insufficient_quota`` is a
refusal, not a rate limit), never by message text. No message msrkit builds
carries the API key: it is registered as a secret (:func:`~msrkit.errors.register_secret`)
and masked wherever it would show.

Each call is bounded in total, ``min(timeout, the time left to the request)``, by :mod:`.aio`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import httpx
import openai

from ..errors import (
    BackendError,
    BackendTransientError,
    BackendUnavailableError,
    ConfigError,
    error_for_status,
    redact,
    register_secret,
)
from ..runtime.deadline import call_limit
from .aio import LoopThread, OnLoopThread, PerLoop, timed_out
from .base import Capabilities, ChatRequest, ChatResponse, with_temperature
from .kind import BackendKind
from .openai_wire import (
    guess_vision,
    images_left_out_warning,
    openai_params,
    parse_openai_completion,
    parse_retry_after,
    to_openai_messages,
)
from .options import JsonFormat, OpenAIOptions

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = [
    "OpenAIBackend",
    "guess_vision",
    "to_openai_messages",
    "openai_params",
    "parse_openai_completion",
    "parse_retry_after",
    "images_left_out_warning",
]

LOCAL_PLACEHOLDER_KEY = "not-needed"


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, Mapping) else inner
        if message:
            return redact(str(message), 200)
    return redact(str(exc.message), 200)


def _connect_error_classes() -> tuple[type[BaseException], ...]:
    classes: list[type[BaseException]] = [httpx.ConnectError, ConnectionRefusedError, socket.gaierror]
    try:  # recent openai clients use their own fork of httpx
        import httpx2

        classes.append(httpx2.ConnectError)
    except ImportError:
        pass
    return tuple(classes)


_CONNECT_ERRORS = _connect_error_classes()


def _could_not_connect(exc: BaseException) -> bool:
    """Whether a connection error's chain says nothing answered (refused, unknown host), not a cut-off answer."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, _CONNECT_ERRORS):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class OpenAIBackend(OnLoopThread, BackendKind):
    """A model behind an OpenAI-compatible Chat Completions endpoint.

    >>> OpenAIBackend("gpt-4o-mini")                                            # doctest: +SKIP
    >>> OpenAIBackend("qwen2.5vl", base_url="http://127.0.0.1:8080/v1")         # doctest: +SKIP

    ``base_url`` falls back to ``OPENAI_BASE_URL`` (else OpenAI's own endpoint),
    ``api_key`` to ``OPENAI_API_KEY`` (a local server needs none). Capabilities:

    - ``vision``: as given, else guessed from the model name (:func:`guess_vision`);
      a text-only model gets its requests without images and a warning;
    - ``logprobs``: ``True`` unless ``logprobs=False`` (some servers ignore the option);
    - ``json_schema``: as given, else ``True`` only for OpenAI's own endpoint, or when
      ``json_format`` is given: ``"json_schema"`` (structured outputs, the default form) or
      ``"json_object"`` (``{"type": "json_object", "schema": ...}``, what ``llama_cpp.server``
      reads; it refuses the other form);
    - ``tools``: ``True`` unless ``tools=False`` (a server whose chat template ignores
      tools, e.g. ``llama_cpp.server`` without ``--chat_format chatml-function-calling``,
      answers in text: the agent then reads calls from the text);
    - or ``capabilities=Capabilities(...)`` to set them all.

    The client never retries (``max_retries=0``): wrap in :class:`~msrkit.retry.RetryingBackend`.
    ``timeout`` bounds each call in total (not per read). ``client_options`` go
    to ``openai.AsyncOpenAI`` (e.g. ``default_headers``); calls from sync code
    run on that client too, on this backend's own event-loop thread.
    """

    name = "openai"
    options_model = OpenAIOptions
    package = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        vision: bool | None = None,
        logprobs: bool = True,
        json_schema: bool | None = None,
        json_format: JsonFormat | None = None,
        tools: bool = True,
        capabilities: Capabilities | None = None,
        organization: str | None = None,
        temperature: float | None = None,
        **client_options: Any,
    ) -> None:
        self.model = model
        self.temperature = temperature
        self.json_format: JsonFormat = json_format or "json_schema"
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/") or None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url is None:
            raise ConfigError(
                f"openai/{model}: no API key: set OPENAI_API_KEY, pass api_key=, or give base_url= for a local server"
            )
        _register_secrets(key, self.base_url, client_options.get("default_headers"))
        self.timeout = float(timeout)
        self._settings: dict[str, Any] = {
            "api_key": key or LOCAL_PLACEHOLDER_KEY,
            "base_url": self.base_url,
            "organization": organization,
            "timeout": self.timeout,
            "max_retries": 0,
            **client_options,
        }
        self._capabilities = capabilities or Capabilities(
            vision=guess_vision(model) if vision is None else vision,
            logprobs=logprobs,
            json_schema=(self.base_url is None or json_format is not None) if json_schema is None else json_schema,
            context_size=None,
            tools=tools,
        )
        async_settings = {k: v for k, v in self._settings.items() if k != "http_client"}
        self._clients = PerLoop(lambda: openai.AsyncOpenAI(**async_settings))
        self._loop = LoopThread(f"msrkit-openai-{model}")

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self._where()!r})"

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @classmethod
    def from_spec(
        cls, model: str, *, base_url: str | None, api_key: str | None, adapter: Adapter | None, **options: Any
    ) -> OpenAIBackend:
        return cls(model, base_url=base_url, api_key=api_key, **options)

    @classmethod
    def status(cls, env: Mapping[str, str]) -> str:
        key = "set" if env.get("OPENAI_API_KEY") else "not set"
        return (
            f"{super().status(env)}; OPENAI_BASE_URL={env.get('OPENAI_BASE_URL') or '(default)'}; OPENAI_API_KEY {key}"
        )

    @classmethod
    def adapter_hint(cls, model: str, adapter: Adapter) -> str:
        where = adapter.directory
        return (f"an OpenAI-compatible server applies the adapter itself: vLLM 'vllm serve BASE --enable-lora "
                f"--lora-modules NAME={where / 'peft'}', or llama.cpp's server '--lora {where / 'adapter.gguf'}'; "
                f"then use --backend openai/NAME without --adapter (see docs/finetune-serving.md)")  # fmt: skip

    def _where(self) -> str:
        return _without_userinfo(self.base_url) if self.base_url else "default"

    def identity(self) -> dict[str, str]:
        out = {"kind": self.name, "model": self.model, "base_url": self._where()}
        if self._capabilities.json_schema and self.base_url is not None:
            out["json_format"] = self.json_format  # constrained answers are not the free ones: their own cache keys
        return {**out, "temperature": str(self.temperature)} if self.temperature is not None else out

    # -- calls --------------------------------------------------------------------------------------

    def _prepare(self, request: ChatRequest) -> tuple[dict[str, Any], list[str]]:
        warnings: list[str] = []
        request = with_temperature(request, self.temperature)
        if request.has_images and not self._capabilities.vision:
            warnings.append(images_left_out_warning(self.name, self.model, request))
            request = request.without_images()
        return openai_params(request, self.model, self._capabilities, json_format=self.json_format), warnings

    def _finish(self, completion: Any, started: float, warnings: list[str]) -> ChatResponse:
        try:
            response = parse_openai_completion(completion)
        except BackendError as exc:
            exc.backend, exc.model = self.name, self.model
            exc.args = (f"{self.name}/{self.model}: {exc}",)
            raise
        response.seconds = time.perf_counter() - started
        response.warnings.extend(warnings)
        return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        """The call from async code, on an ``openai.AsyncOpenAI`` client, cut off at its time limit."""
        params, warnings = self._prepare(request)
        seconds, by_deadline = call_limit(self.timeout, backend=self.name, model=self.model)
        client = self._clients.get()
        started = time.perf_counter()
        try:
            create = client.chat.completions.create(**params, timeout=seconds)
            completion = await asyncio.wait_for(create, seconds)
        except Exception as exc:  # noqa: BLE001 - every client failure becomes an msrkit error
            self._raise(exc, seconds=seconds, by_deadline=by_deadline)
        return self._finish(completion, started, warnings)

    def _raise(self, exc: Exception, *, seconds: float, by_deadline: bool) -> NoReturn:
        """Raise the msrkit error for a client failure; the raw cause is kept only where it cannot hold a secret."""
        who: dict[str, Any] = {"backend": self.name, "model": self.model}
        if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError)):
            raise timed_out(seconds, by_deadline, **who) from None
        if isinstance(exc, openai.APIConnectionError):
            if _could_not_connect(exc):
                raise BackendUnavailableError(f"could not connect to {self._where()}", **who) from exc
            raise BackendTransientError(f"connection to {self._where()} failed or was cut off", **who) from exc
        if isinstance(exc, openai.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers)
            codes = (getattr(exc, "code", None), getattr(exc, "type", None))
            error = error_for_status(exc.status_code, _status_message(exc), retry_after=retry_after, codes=codes, **who)
            raise error from None  # the client's exception holds the raw body, which may echo the key
        if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError)):
            raise BackendTransientError("the server's answer was not valid JSON for a chat completion", **who) from None
        if isinstance(exc, BackendError):
            raise exc
        raise BackendError(redact(f"unexpected {type(exc).__name__}: {exc}", 300), **who) from None


def _register_secrets(key: str | None, base_url: str | None, headers: Mapping[str, str] | None) -> None:
    """Every secret this backend is configured with: the key, a base URL's password, auth headers."""
    register_secret(key)
    if base_url:
        register_secret(urlsplit(base_url).password)
    for name, value in (headers or {}).items():
        if name.lower() in ("authorization", "api-key", "x-api-key", "proxy-authorization"):
            register_secret(str(value))
