"""Typed options per backend: what ``backend_options`` (config file, ``--backend-option``, Python) may hold.

Each backend kind has one pydantic model; an unknown or mistyped option is a
:class:`~msrkit.errors.ConfigError` naming the option and the allowed ones.
``temperature`` sets the backend's sampling temperature for every call (it
enters the cache key through the backend's identity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

#: the two forms of a structured-answer request on the OpenAI wire (see :mod:`.openai_wire`)
JsonFormat = Literal["json_schema", "json_object"]

__all__ = ["LlamaCppOptions", "NoOptions", "OllamaOptions", "OpenAIOptions", "validate_options"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class NoOptions(_Options):
    """A backend that takes no options (``none``)."""


class LlamaCppOptions(_Options):
    """llama-cpp-python in-process (``llamacpp/PATH.gguf``)."""

    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int | None = Field(default=None, ge=1)
    n_gpu_layers: int = 0
    mmproj: str | None = None
    chat_handler: str | None = None
    chat_format: str | None = None
    tool_format: str = "chatml-function-calling"
    vision: bool | None = None
    verbose: bool = False
    seed: int = 0
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    llama_options: dict[str, Any] = Field(default_factory=dict)


class OpenAIOptions(_Options):
    """Any OpenAI-compatible endpoint (``openai/MODEL``)."""

    timeout: float = Field(default=60.0, gt=0)
    vision: bool | None = None
    logprobs: bool = True
    json_schema: bool | None = None
    json_format: JsonFormat | None = None
    tools: bool = True
    organization: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    default_headers: dict[str, str] | None = None
    capabilities: Any = None


class OllamaOptions(_Options):
    """An Ollama server (``ollama/NAME:TAG``)."""

    host: str | None = None
    timeout: float = Field(default=120.0, gt=0)
    vision: bool | None = None
    keep_alive: float | str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    capabilities: Any = None


def validate_options(kind: str, model: type[BaseModel], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against the backend's model: only the ones given, as typed values."""
    try:
        checked = model.model_validate(dict(options))
    except ValidationError as exc:
        allowed = ", ".join(model.model_fields) or "none"
        problems: dict[str, list[str]] = {}
        for e in exc.errors():
            key = str(e["loc"][0]) if e["loc"] else "?"
            why = "not an option of this backend" if e["type"] == "extra_forbidden" else e["msg"]
            problems.setdefault(key, []).append(why)
        said = "; ".join(f"'{key}': {' or '.join(whys)}" for key, whys in problems.items())
        raise ConfigError(f"backend_options for {kind}: {said} (allowed: {allowed})") from None
    return {k: getattr(checked, k) for k in options}
