"""Backends by name: each kind is one class that declares itself (:mod:`.kind`), and what ``auto`` picks.

A model is named by one string, split at the first ``/`` only (Ollama names
hold ``:``, file paths hold ``/``):

=====================  ==========================================================
``llamacpp/PATH.gguf``  llama-cpp-python in-process (``llamacpp/default``: the embedded model)
``openai/MODEL``        any OpenAI-compatible endpoint (``base_url`` / ``OPENAI_BASE_URL``)
``ollama/NAME:TAG``     an Ollama server (``OLLAMA_HOST``)
``auto``                a running Ollama > OpenAI env > the embedded model (:mod:`.auto`)
``none``                no LLM: retrieval order only
=====================  ==========================================================

Kind ``NAME`` is the class of module ``msrkit.backends.NAME`` whose ``name`` is
``NAME``; that module is imported only when the kind is used, so ``import msrkit``
stays light.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError
from .auto import AutoChoice, auto_choice
from .base import Backend
from .kind import BackendKind
from .options import NoOptions, validate_options

if TYPE_CHECKING:
    from ..training.adapter import Adapter

__all__ = ["KINDS", "SHORTHANDS", "available_backends", "backend_class", "get_backend", "parse_spec"]

log = logging.getLogger("msrkit")

#: The backend kinds, each the name of its module and of the class in it that declares it.
KINDS = ("llamacpp", "openai", "ollama")
#: Bare names for one model of a kind.
SHORTHANDS = {"default": "llamacpp/default", "embedded": "llamacpp/default"}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``kind/model`` at the first ``/``: ``("ollama", "llava:7b")``."""
    spec = spec.strip()
    if spec in ("auto", "none") or spec in SHORTHANDS:
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


@functools.cache
def backend_class(kind: str) -> type[BackendKind]:
    """The class that declares ``kind`` (its module imported now)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown backend kind '{kind}': use one of {', '.join(KINDS)}")
    module = importlib.import_module(f"{__package__}.{kind}")
    found = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, BackendKind)
             and c.__module__ == module.__name__ and getattr(c, "name", None) == kind]  # fmt: skip
    if len(found) != 1:
        raise TypeError(f"{module.__name__} must define one BackendKind class named '{kind}', not {len(found)}")
    return found[0]


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
    if kind in SHORTHANDS:
        kind, model = parse_spec(SHORTHANDS[kind])
    cls = backend_class(kind)
    if adapter is not None and not cls.loads_adapters:
        raise ConfigError(cls.adapter_hint(model, adapter))
    checked = validate_options(kind, cls.options_model, options)
    return cast(Backend, cls.from_spec(model, base_url=base_url, api_key=api_key, adapter=adapter, **checked))


def available_backends(env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """What is installed and reachable, for ``msrkit backends``."""
    env = os.environ if env is None else env
    return [{"backend": kind, "status": backend_class(kind).status(env)} for kind in KINDS]
