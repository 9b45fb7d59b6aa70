"""The response cache: diskcache, keyed by everything that makes an answer differ.

A key hashes the backend's identity (kind, model, base URL: never an API key),
the prompt template tag (id, version, content hash), the decoding options and
the messages, with images by their content digest (not their path). Only
deterministic calls (temperature 0 or a seed) are cached unless asked.

:class:`CachedBackend` wraps any backend and is a backend itself, so it sits
outside retry: a cache hit never touches the network. A corrupted or
unreadable cache is reported once and bypassed, never a crash; ``msrkit cache
clear`` rebuilds it (:meth:`ResponseCache.clear`), leaving the other files of
the folder (the catalog store ``catalog.sqlite3``) alone.

A cache that cannot run code: values are JSON text, kept inline in diskcache's
sqlite file. The folder's contents are data, never code: an entry stored any
other way (a pickle planted by whoever can write there, a value file, a
pickled key) is refused and deleted, never unpickled or read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Backend, ChatRequest, ChatResponse, ImagePart, Message, TextPart, ToolCall
from .wrapper import Wrapper

__all__ = ["ResponseCache", "CachedBackend", "default_cache_dir", "forget", "request_key"]

log = logging.getLogger("msrkit")

KEY_VERSION = 2
#: the files diskcache keeps in a cache folder (its database and the folders of large values), nothing else
_CACHE_FILES = re.compile(r"^(cache\.db(-wal|-shm|-journal)?|[0-9a-f]{2})$")
#: values up to this size stay inside the database (every capped answer does), so no value file is ever read
_INLINE_BYTES = 1 << 30


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/msrkit``, else ``~/.cache/msrkit`` (``MSRKIT_CACHE_DIR`` is read with the settings)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msrkit"


def _part(part: TextPart | ImagePart) -> dict[str, str]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"image": part.digest, "mime": part.mime}


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role, "parts": [_part(p) for p in m.parts]}
    if m.tool_calls:  # tool fields enter a key only where present: keys of plain requests stay as they were
        out["tool_calls"] = [[c.id, c.name, dict(c.arguments), c.raw, c.error] for c in m.tool_calls]
    if m.tool_call_id is not None or m.name is not None:
        out["tool_call_id"], out["name"] = m.tool_call_id, m.name
    return out


def request_key(identity: dict[str, str], request: ChatRequest) -> str:
    """A stable digest of who answers and exactly what was asked (tools and tool messages included)."""
    body: dict[str, Any] = {
        "v": KEY_VERSION,
        "identity": identity,
        "tag": request.tag,
        "messages": [_message(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
        "json_schema": request.json_schema,
        "top_logprobs": request.top_logprobs,
        "stop": list(request.stop),
    }
    if request.tools:
        body["tools"] = [[t.name, t.description, dict(t.parameters)] for t in request.tools]
        body["tool_choice"] = request.tool_choice
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


_CACHE_ERRORS = (OSError, sqlite3.Error, ValueError, TypeError, KeyError, EOFError)


class UnsafeEntry(ValueError):
    """A cache entry stored other than as inline JSON text: refused, never unpickled or read."""


@functools.cache
def _json_disk() -> type:
    """diskcache's ``Disk`` that stores and returns JSON text only, and refuses anything else it finds."""
    import diskcache
    from diskcache.core import MODE_RAW, UNKNOWN

    class JsonTextDisk(diskcache.Disk):  # type: ignore[misc]
        def get(self, key: Any, raw: bool) -> Any:
            if not raw:
                raise UnsafeEntry("a pickled key")
            return super().get(key, raw)

        def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
            if read or not isinstance(value, str):
                raise TypeError("the response cache stores JSON text only")
            return super().store(value, read, key=key)

        def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
            if mode != MODE_RAW or filename is not None or read or not isinstance(value, str):
                raise UnsafeEntry(f"an entry stored as mode {mode}, not as inline JSON text")
            return value

        def remove(self, file_path: str) -> None:
            root = os.path.realpath(self._directory)
            if os.path.realpath(os.path.join(root, file_path)).startswith(root + os.sep):
                super().remove(file_path)

    return JsonTextDisk


class ResponseCache:
    """A diskcache directory of chat responses (JSON), safe to share between processes."""

    def __init__(self, directory: str | Path | None = None, *, size_limit: int = 2**30) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._size_limit = size_limit
        self._cache: Any = None
        self._broken: str | None = None
        self._why: str | None = None
        #: after :meth:`clear` or :meth:`rebuild`: why the cache had to be rebuilt (``None``: it was not)
        self.rebuilt: str | None = None

    def _open(self) -> Any:
        if self._cache is None and self._broken is None:
            try:
                import diskcache

                self._cache = diskcache.Cache(
                    str(self.directory),
                    size_limit=self._size_limit,
                    disk=_json_disk(),
                    disk_min_file_size=_INLINE_BYTES,
                )
            except _CACHE_ERRORS as exc:
                self._disable(f"cannot open the cache at {self.directory}: {exc}")
        return self._cache

    def _disable(self, why: str) -> None:
        self._why = why
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
            text = cache.get(key)
        except UnsafeEntry as exc:
            log.warning("cache entry refused and deleted (%s): %s holds data msrkit did not write", exc, self.directory)
            self._delete(cache, key)
            return None
        except _CACHE_ERRORS as exc:
            self._disable(f"cache read failed: {exc}")
            return None
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def delete(self, key: str) -> None:
        """Remove the entry ``key`` (nothing when there is none, or no working cache)."""
        cache = self._open()
        if cache is not None:
            self._delete(cache, key)

    def _delete(self, cache: Any, key: str) -> None:
        try:
            cache.delete(key)
        except _CACHE_ERRORS as exc:
            self._disable(f"cache write failed: {exc}")

    def set(self, key: str, value: dict[str, Any]) -> None:
        cache = self._open()
        if cache is None:
            return
        try:
            cache.set(key, json.dumps(value, ensure_ascii=False))
        except _CACHE_ERRORS as exc:
            self._disable(f"cache write failed: {exc}")

    def info(self) -> dict[str, Any]:
        cache = self._open()
        if cache is None:
            return {"directory": str(self.directory), "entries": 0, "bytes": 0, "problem": self._broken}
        try:
            return {"directory": str(self.directory), "entries": len(cache), "bytes": cache.volume(), "problem": None}
        except _CACHE_ERRORS as exc:
            self._disable(f"cache read failed: {exc}")
            return {"directory": str(self.directory), "entries": 0, "bytes": 0, "problem": self._broken}

    def clear(self) -> int:
        """Remove every cached response: how many. An unreadable cache is rebuilt empty (see :attr:`rebuilt`)."""
        self.rebuilt = None
        cache = self._open()
        if cache is not None:
            try:
                return int(cache.clear())
            except _CACHE_ERRORS as exc:
                self._why = f"clearing failed: {exc}"
        self.rebuild()
        return 0

    def rebuild(self) -> None:
        """Delete diskcache's files in the folder (and only those) and start an empty cache there."""
        why = self._why or "rebuilt on request"
        self.close()
        try:
            for path in self.directory.iterdir() if self.directory.exists() else ():
                if not _CACHE_FILES.match(path.name):
                    continue  # the catalog store and anything else of the folder's stay
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot rebuild the cache at {self.directory}: {exc.strerror or exc}") from None
        self._cache, self._broken, self._why = None, None, None
        if self._open() is None:
            raise ConfigError(f"cannot rebuild the cache at {self.directory}: {self._why}")
        self.rebuilt = why

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


class CachedBackend(Wrapper):
    """A backend that answers repeated deterministic requests from a :class:`ResponseCache`."""

    def __init__(self, inner: Backend, cache: ResponseCache, *, cache_nondeterministic: bool = False) -> None:
        super().__init__(inner)
        self.cache = cache
        self.cache_nondeterministic = cache_nondeterministic

    def _key(self, request: ChatRequest) -> str | None:
        if not (request.deterministic or self.cache_nondeterministic):
            return None
        return request_key(self.identity(), request)

    def _hit(self, key: str | None) -> ChatResponse | None:
        stored = self.cache.get(key) if key else None
        if stored is None or not isinstance(stored.get("text"), str):
            return None
        try:
            calls = [ToolCall(**c) for c in stored.get("tool_calls") or []]
            return ChatResponse(**{**stored, "cached": True, "seconds": 0.0, "tool_calls": calls})
        except TypeError:
            return None

    def _store(self, key: str | None, response: ChatResponse) -> None:
        if key and response.finish_reason != "error":
            self.cache.set(key, {**asdict(response), "cached": False})

    def forget(self, request: ChatRequest) -> bool:
        """Drop the stored answer to ``request`` (its stage could not use it); whether it could be cached."""
        key = self._key(request)
        if key:
            self.cache.delete(key)
        return key is not None

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


def forget(backend: Backend | None, request: ChatRequest) -> bool:
    """Drop the cached answer to ``request`` from the :class:`CachedBackend` among ``backend``'s wrappers.

    A stage calls it when it could not use an answer (no ranking, no keywords, no tool call in it):
    the raw answer is what the cache keeps and every stage parses it again on a hit, but an unusable
    one must not be served as good on every rerun, so the next run asks the model again.
    """
    layer: Any = backend
    while layer is not None:
        if isinstance(layer, CachedBackend):
            return layer.forget(request)
        layer = getattr(layer, "inner", None)
    return False
