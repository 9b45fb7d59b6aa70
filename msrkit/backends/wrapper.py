"""The base of the backends that wrap a backend (guard, retry, cache): what passes through unchanged."""

from __future__ import annotations

from .base import Backend, Capabilities

__all__ = ["Wrapper"]


class Wrapper:
    """A backend around ``inner``: its name, model, capabilities and identity are the inner backend's.

    A wrapper never changes which answer a request gets, so cache keys made
    through it are those of the inner backend.
    """

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def close(self) -> None:
        self.inner.close()
