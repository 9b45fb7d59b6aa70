"""The response cache: diskcache, keyed by everything that makes an answer differ.

A key hashes the backend's identity (kind, model, base URL: never an API key),
the prompt template tag (id, version, content hash), the decoding options and
the messages, with images by their content digest (not their path). Only
deterministic calls (temperature 0 or a seed) are cached unless asked.

:class:`CachedBackend` wraps any backend and is a backend itself, so it sits
outside retry: a cache hit never touches the network. A corrupted or
unreadable cache is reported once and bypassed, never a crash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .base import Backend, Capabilities, ChatRequest, ChatResponse, ImagePart, TextPart

__all__ = ["ResponseCache", "CachedBackend", "default_cache_dir", "request_key"]

log = logging.getLogger("msrkit")

KEY_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/msrkit``, else ``~/.cache/msrkit`` (``MSRKIT_CACHE_DIR`` is read with the settings)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msrkit"


def _part(part: TextPart | ImagePart) -> dict[str, str]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"image": part.digest, "mime": part.mime}


def request_key(identity: dict[str, str], request: ChatRequest) -> str:
    """A stable digest of who answers and exactly what was asked."""
    body = {
        "v": KEY_VERSION,
        "identity": identity,
        "tag": request.tag,
        "messages": [{"role": m.role, "parts": [_part(p) for p in m.parts]} for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "json_schema": request.json_schema,
        "top_logprobs": request.top_logprobs,
        "stop": list(request.stop),
    }
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


_CACHE_ERRORS = (OSError, sqlite3.Error, ValueError, TypeError, KeyError, EOFError)


class ResponseCache:
    """A diskcache directory of chat responses, safe to share between processes."""

    def __init__(self, directory: str | Path | None = None, *, size_limit: int = 2**30) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._size_limit = size_limit
        self._cache: Any = None
        self._broken: str | None = None

    def _open(self) -> Any:
        if self._cache is None and self._broken is None:
            try:
                import diskcache

                self._cache = diskcache.Cache(str(self.directory), size_limit=self._size_limit)
            except _CACHE_ERRORS as exc:
                self._disable(f"cannot open the cache at {self.directory}: {exc}")
        return self._cache

    def _disable(self, why: str) -> None:
        self._broken = f"{why}; running without cache (clear it with `msrkit cache clear`)"
        log.warning(self._broken)

    @property
    def problem(self) -> str | None:
        """Why the cache is bypassed, or ``None`` when it works."""
        return self._broken

    def get(self, key: str) -> dict[str, Any] | None:
        cache = self._open()
        if cache is None:
            return None
        try:
            value = cache.get(key)
        except _CACHE_ERRORS as exc:
            self._disable(f"cache read failed: {exc}")
            return None
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        cache = self._open()
        if cache is None:
            return
        try:
            cache.set(key, value)
        except _CACHE_ERRORS as exc:
            self._disable(f"cache write failed: {exc}")

    def info(self) -> dict[str, Any]:
        cache = self._open()
        if cache is None:
            return {"directory": str(self.directory), "entries": 0, "bytes": 0, "problem": self._broken}
        return {"directory": str(self.directory), "entries": len(cache), "bytes": cache.volume(), "problem": None}

    def clear(self) -> int:
        cache = self._open()
        return int(cache.clear()) if cache is not None else 0

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


class CachedBackend:
    """A backend that answers repeated deterministic requests from a :class:`ResponseCache`."""

    def __init__(self, inner: Backend, cache: ResponseCache, *, cache_nondeterministic: bool = False) -> None:
        self.inner = inner
        self.cache = cache
        self.cache_nondeterministic = cache_nondeterministic
        self.name = inner.name
        self.model = inner.model

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def _key(self, request: ChatRequest) -> str | None:
        if not (request.deterministic or self.cache_nondeterministic):
            return None
        return request_key(self.identity(), request)

    def _hit(self, key: str | None) -> ChatResponse | None:
        stored = self.cache.get(key) if key else None
        if stored is None:
            return None
        try:
            return ChatResponse(**{**stored, "cached": True, "seconds": 0.0})
        except TypeError:
            return None

    def _store(self, key: str | None, response: ChatResponse) -> None:
        if key and response.finish_reason != "error":
            self.cache.set(key, {**asdict(response), "cached": False})

    def chat(self, request: ChatRequest) -> ChatResponse:
        key = self._key(request)
        hit = self._hit(key)
        if hit is not None:
            return hit
        response = self.inner.chat(request)
        self._store(key, response)
        return response

    async def achat(self, request: ChatRequest) -> ChatResponse:
        from .base import achat

        key = self._key(request)
        hit = self._hit(key)
        if hit is not None:
            return hit
        response = await achat(self.inner, request)
        self._store(key, response)
        return response

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
