"""Model backends: one interface, a registry by name, and the wrappers every call goes through.

- :mod:`.base` — the interface (:class:`Backend`) and its request/response types;
- :mod:`.registry` — :func:`get_backend` by name, from the classes that declare the kinds (:mod:`.kind`);
- :mod:`.auto` — what ``auto`` picks (:func:`auto_choice`): a running Ollama, the OpenAI env, the embedded model;
- :mod:`.options` — a typed options model per backend kind;
- :mod:`.llamacpp`, :mod:`.openai`, :mod:`.ollama` — the translators (imported only when used);
- :mod:`.retry`, :mod:`.cache` — wrappers that are backends themselves;
- :mod:`.stack` — the one function that builds ``cache(retry(backend))`` from the settings;
- :mod:`.fake` — a scripted model for tests of msrkit's own logic.
"""

from __future__ import annotations

from .auto import AutoChoice, auto_choice, embedded_model_path, ollama_host
from .base import Backend, Capabilities, ChatRequest, ChatResponse, ImagePart, Message, TextPart, achat
from .registry import KINDS, available_backends, get_backend, parse_spec

__all__ = [
    "KINDS",
    "AutoChoice",
    "Backend",
    "Capabilities",
    "ChatRequest",
    "ChatResponse",
    "ImagePart",
    "Message",
    "TextPart",
    "achat",
    "auto_choice",
    "available_backends",
    "embedded_model_path",
    "get_backend",
    "ollama_host",
    "parse_spec",
]
