"""llama-cpp-python in-process: a GGUF file on this machine, no server.

    backend = LlamaCppBackend("model.gguf", n_ctx=4096)
    backend = LlamaCppBackend("llava.gguf", mmproj="mmproj.gguf", chat_handler="llava15")

The model loads on the first chat, once per process: backends built with the
same file and settings share one ``llama_cpp.Llama`` (a lock serialises calls,
since a ``Llama`` is not thread-safe). Log-probabilities need the model loaded
with ``logits_all=True``, which costs ``n_ctx x vocabulary`` floats of memory and
some prompt time, so that variant is loaded only when a request asks for them.

A vision model needs its projector file (``mmproj``) and the chat handler of its
family; images then travel as OpenAI-style ``image_url`` parts with ``data:``
URLs. A text-only model gets the request without its images and a warning.

Tools: llama-cpp-python passes ``tools`` to the chat handler, and only a
function-calling handler uses them (a model's own template, SmolLM2's say, drops
them without a word). A request with tools therefore goes to the handler named
by ``tool_format`` (default ``chatml-function-calling``), called directly on the
loaded model, so no second copy of the model is loaded. That handler:

- reads ``tool_choice="auto"`` (a grammar picks ``functions.NAME:`` or ``message:``;
  arguments follow the tool's JSON schema), a named function
  ``{"type": "function", "function": {"name": ...}}`` (a forced call) and ``"none"``;
  ``"required"`` fails an assertion inside it, so msrkit sends the named form when
  one tool is offered and ``"auto"`` otherwise;
- renders only system, user and assistant turns (a ``tool`` message would vanish),
  so tool results are sent as user turns (:func:`to_llamacpp_messages`);
- sees no images (they are left out with a warning).

A fine-tuned LoRA (``adapter=``, an :class:`~msrkit.training.adapter.Adapter`)
is loaded with the model (``Llama(lora_path=...)``): its base must be this
file (checked by hash when the backend is built), its hash is part of the
backend's identity (so of every cache key) and of the shared-model key (a base
and an adapted model coexist), and a request whose prompt differs from the one
the adapter was trained with gets a warning naming the template. With an
adapter loaded the backend does not constrain answers by JSON schema: the
adapter learned the plain-text answers its training examples hold (``[4]``),
and a grammar would force a form it never saw.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, BackendPermanentError, ConfigError, MissingDependencyError
from .auto import embedded_model_path
from .base import Capabilities, ChatRequest, ChatResponse, read_tool_calls, with_temperature
from .kind import BackendKind
from .llamacpp_amx import guard_amx
from .llamacpp_wire import completion_kwargs, llamacpp_tool_choice, parse_top_logprobs, to_llamacpp_messages
from .options import LlamaCppOptions

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = [
    "LlamaCppBackend",
    "completion_kwargs",
    "to_llamacpp_messages",
    "llamacpp_tool_choice",
    "parse_top_logprobs",
    "CHAT_HANDLERS",
    "TOOL_FORMAT",
]

log = logging.getLogger("msrkit")

# Our short names for the multimodal chat handlers in ``llama_cpp.llama_chat_format``.
# Only those the installed version defines can be used; ``mtmd`` uses the model's own template.
CHAT_HANDLERS: dict[str, str] = {
    "llava15": "Llava15ChatHandler",
    "llava16": "Llava16ChatHandler",
    "obsidian": "ObsidianChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "llama3-vision-alpha": "Llama3VisionAlphaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
    "mtmd": "MTMDChatHandler",
    "gemma3": "MTMDChatHandler",
    "gemma4": "Gemma4ChatHandler",
}
DEFAULT_HANDLER = "llava15"
#: The chat handler that serves requests with tools (its template renders them; grammars shape the calls).
TOOL_FORMAT = "chatml-function-calling"


# --------------------------------------------------------------------------- shared models


@dataclass
class _Loaded:
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_MODELS: dict[tuple[Any, ...], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def _acquire(key: tuple[Any, ...], load: Any) -> _Loaded:
    with _MODELS_LOCK:
        entry = _MODELS.get(key)
        if entry is None:
            entry = _MODELS[key] = _Loaded(load())
        entry.users += 1
        return entry


def _release(key: tuple[Any, ...]) -> None:
    with _MODELS_LOCK:
        entry = _MODELS.get(key)
        if entry is None:
            return
        entry.users -= 1
        if entry.users <= 0:
            del _MODELS[key]
            _close(entry.llama)


def _close_all() -> None:
    """Free the models still loaded at exit, while llama_cpp can still do it (a backend never closed
    would otherwise be freed during interpreter teardown, which llama_cpp reports as a traceback)."""
    with _MODELS_LOCK:
        entries = list(_MODELS.values())
        _MODELS.clear()
    for entry in entries:
        if entry.lock.acquire(timeout=1.0):  # never under a generation still running
            try:
                _close(entry.llama)
            finally:
                entry.lock.release()


def _close(llama: Any) -> None:
    close = getattr(llama, "close", None)
    if close is not None:
        close()


atexit.register(_close_all)


def _handler_class(name: str) -> Any:
    from llama_cpp import llama_chat_format

    attr = CHAT_HANDLERS.get(name)
    cls = getattr(llama_chat_format, attr, None) if attr else None
    if cls is None:
        known = ", ".join(k for k, v in CHAT_HANDLERS.items() if hasattr(llama_chat_format, v))
        raise ConfigError(f"unknown llama.cpp chat_handler '{name}': use one of {known}")
    return cls


# --------------------------------------------------------------------------- backend


class LlamaCppBackend(BackendKind):
    """A GGUF model run in-process by llama-cpp-python (``llamacpp/default``: the embedded model)."""

    name = "llamacpp"
    options_model = LlamaCppOptions
    package = "llama_cpp"
    extra = "local"
    loads_adapters = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        mmproj: str | Path | None = None,
        chat_handler: str | None = None,
        chat_format: str | None = None,
        tool_format: str = TOOL_FORMAT,
        vision: bool | None = None,
        verbose: bool = False,
        seed: int = 0,
        temperature: float | None = None,
        llama_options: Mapping[str, Any] | None = None,
        adapter: Adapter | None = None,
        **more_llama_options: Any,
    ) -> None:
        llama_options = {**(llama_options or {}), **more_llama_options}
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"llama.cpp model file not found: {path}")
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingDependencyError("llama-cpp-python", "local", "the llamacpp backend")
        mmproj_path = Path(mmproj).expanduser() if mmproj else None
        if mmproj_path is not None and not mmproj_path.is_file():
            raise ConfigError(f"llama.cpp projector (mmproj) file not found: {mmproj_path}")
        if chat_handler is not None and mmproj_path is None:
            raise ConfigError(f"chat_handler='{chat_handler}' needs mmproj=PATH (the vision projector file)")
        self.path = path.resolve()
        if adapter is not None:
            adapter.check_base(self.path)
        self.adapter = adapter
        self.model = path.name.removesuffix(".gguf")
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_gpu_layers = n_gpu_layers
        self.mmproj = mmproj_path.resolve() if mmproj_path else None
        self.chat_handler = (chat_handler or DEFAULT_HANDLER) if self.mmproj else None
        self.chat_format = chat_format
        self.tool_format = tool_format
        self.verbose = verbose
        self.seed = seed
        self.temperature = temperature
        if n_threads is not None:
            # prompt processing too: more threads than free cores make llama.cpp's spinning workers crawl
            llama_options.setdefault("n_threads_batch", n_threads)
        self.llama_options = llama_options
        self._vision = bool(self.mmproj) if vision is None else vision
        self._held: dict[tuple[Any, ...], _Loaded] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_spec(
        cls, model: str, *, base_url: str | None, api_key: str | None, adapter: Adapter | None, **options: Any
    ) -> LlamaCppBackend:
        return cls(str(embedded_model_path()) if model == "default" else model, adapter=adapter, **options)

    @classmethod
    def status(cls, env: Mapping[str, str]) -> str:
        if not cls.installed():
            return super().status(env)
        try:
            return f"embedded model: {embedded_model_path()}"
        except MissingDependencyError as exc:
            return str(exc)

    @property
    def capabilities(self) -> Capabilities:
        schema = self.adapter is None  # an adapter answers in the plain text it was trained on
        return Capabilities(vision=self._vision, logprobs=True, json_schema=schema, context_size=self.n_ctx, tools=True)

    def identity(self) -> dict[str, str]:
        stat = self.path.stat()
        digest = hashlib.sha256(f"{self.path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        return {
            "kind": self.name,
            "model": self.model,
            "path_digest": digest,
            "n_ctx": str(self.n_ctx),
            "mmproj": self.mmproj.name if self.mmproj else "",
            **({"temperature": str(self.temperature)} if self.temperature is not None else {}),
            **({"adapter": self.adapter.identity} if self.adapter is not None else {}),
        }

    # ----------------------------------------------------------------- loading

    def _key(self, logits_all: bool) -> tuple[Any, ...]:
        options = tuple(sorted((k, repr(v)) for k, v in self.llama_options.items()))
        return (
            str(self.path),
            self.n_ctx,
            self.n_threads,
            self.n_gpu_layers,
            str(self.mmproj or ""),
            self.chat_handler,
            self.chat_format,
            logits_all,
            options,
            self.adapter.identity if self.adapter is not None else "",
        )

    def _load(self, logits_all: bool) -> Any:
        try:
            import llama_cpp
        except ImportError as exc:
            raise MissingDependencyError("llama-cpp-python", "local", "the llamacpp backend") from exc
        guard_amx(llama_cpp.llama_cpp)
        handler = None
        if self.mmproj is not None:
            handler = _handler_class(self.chat_handler or DEFAULT_HANDLER)(
                clip_model_path=str(self.mmproj), verbose=self.verbose
            )
        started = time.perf_counter()
        try:
            llama = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                chat_handler=handler,
                chat_format=self.chat_format,
                logits_all=logits_all,
                seed=self.seed,
                verbose=self.verbose,
                lora_path=str(self.adapter.gguf_path) if self.adapter is not None else None,
                **self.llama_options,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendPermanentError(
                f"could not load {self.path}: {exc}", backend=self.name, model=self.model
            ) from exc
        lora = f" + LoRA {self.adapter.directory.name}" if self.adapter is not None else ""
        log.info("llamacpp: loaded %s%s (n_ctx=%d) in %.1fs", self.path.name, lora, self.n_ctx,
                 time.perf_counter() - started)  # fmt: skip
        return llama

    def _model(self, *, logprobs: bool) -> _Loaded:
        """The shared model for this call; a model loaded with ``logits_all`` serves every call."""
        with self._lock:
            logits_all = logprobs or self._key(True) in self._held
            key = self._key(logits_all)
            if key not in self._held:
                self._held[key] = _acquire(key, lambda: self._load(logits_all))
            return self._held[key]

    # ----------------------------------------------------------------- chat

    def chat(self, request: ChatRequest) -> ChatResponse:
        warnings = self.adapter.prompt_warnings([request.tag]) if self.adapter is not None else []
        request = with_temperature(request, self.temperature)
        if request.has_images and not self._vision:
            count = sum(len(m.images) for m in request.messages)
            warnings.append(
                f"{self.name}/{self.model} cannot see images (text-only; pass mmproj=... for a vision model): "
                f"{count} image(s) left out"
            )
            request = request.without_images()
        if request.tools and request.has_images:
            warnings.append(f"{self.name}/{self.model}: the tool-calling chat format sees no images: left out")
            request = request.without_images()
        entry = self._model(logprobs=request.top_logprobs is not None)
        messages = to_llamacpp_messages(request, fold_tool_results=bool(request.tools) and self._folds())
        kwargs = completion_kwargs(request, default_seed=self.seed)
        started = time.perf_counter()
        with entry.lock:
            try:
                if request.tools:
                    raw = self._tool_handler()(llama=entry.llama, messages=messages, **kwargs)
                else:
                    raw = entry.llama.create_chat_completion(messages, **kwargs)
            except ValueError as exc:
                raise self._value_error(entry.llama, messages, exc) from exc
            except (RuntimeError, OSError, KeyError, TypeError, AssertionError) as exc:
                raise BackendError(f"llama.cpp failed: {exc}", backend=self.name, model=self.model) from exc
        return self._response(raw, time.perf_counter() - started, warnings)

    def _folds(self) -> bool:
        """Whether the tool format's template drops ``tool`` messages (so results go as user turns)."""
        return self.tool_format == TOOL_FORMAT

    def _tool_handler(self) -> Any:
        """The function-calling chat handler, from llama-cpp-python's registry (works on any loaded model)."""
        from llama_cpp import llama_chat_format

        try:
            return llama_chat_format.get_chat_completion_handler(self.tool_format)
        except llama_chat_format.LlamaChatCompletionHandlerNotFoundException as exc:
            raise ConfigError(f"unknown llama.cpp tool_format '{self.tool_format}': {exc}") from None

    def _value_error(self, llama: Any, messages: list[dict[str, Any]], exc: ValueError) -> BackendError:
        """llama-cpp-python raises a bare ValueError for bad input; tell a too-long prompt apart by counting."""
        text = "\n".join(m["content"] if isinstance(m["content"], str) else "" for m in messages)
        n_tokens = len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))
        if n_tokens + 16 * len(messages) >= self.n_ctx:  # template tokens per message are a small overhead
            return BackendPermanentError(
                f"the prompt has about {n_tokens} tokens but n_ctx is {self.n_ctx}: raise n_ctx "
                f"(e.g. n_ctx={2 * self.n_ctx}) or shorten the history / candidate list",
                backend=self.name,
                model=self.model,
            )
        return BackendPermanentError(f"llama.cpp rejected the request: {exc}", backend=self.name, model=self.model)

    def _response(self, raw: dict[str, Any], seconds: float, warnings: list[str]) -> ChatResponse:
        choice = raw["choices"][0]
        usage = raw.get("usage") or {}
        return ChatResponse(
            tool_calls=read_tool_calls(choice["message"].get("tool_calls")),
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            top_logprobs=parse_top_logprobs(choice.get("logprobs")),
            model=self.model,
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
            warnings=warnings,
        )

    def close(self) -> None:
        """Release this backend's hold on its shared models (freed when no backend holds them)."""
        with self._lock:
            for key in self._held:
                _release(key)
            self._held.clear()
