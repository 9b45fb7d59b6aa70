"""The one place a backend stack is built: ``CachedBackend(RetryingBackend(backend))``.

Every command and the :class:`~msrkit.recommender.Recommender` call
:func:`backend_stack` (from the settings) or :func:`build_stack` (around a
backend object), so retries, the cache and their order are the same wherever
a model is called. The cache sits outside retry: a hit never waits or touches
the network, and only the final answer of a retried call is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Backend
from .cache import CachedBackend, ResponseCache
from .registry import get_backend
from .retry import RetryingBackend

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["backend_stack", "build_stack"]


def build_stack(
    backend: Backend | None,
    *,
    cache: ResponseCache | None,
    retries: int = 4,
    retry_max_seconds: float = 60.0,
) -> Backend | None:
    """Wrap ``backend`` in retry (``retries`` > 0) and then the cache (when given); ``None`` stays ``None``."""
    if backend is None or isinstance(backend, CachedBackend):
        return backend
    if retries > 0 and not isinstance(backend, RetryingBackend):
        backend = RetryingBackend(backend, attempts=retries + 1, max_seconds=retry_max_seconds)
    return backend if cache is None else CachedBackend(backend, cache)


def backend_stack(
    backend: Backend | None,
    settings: Settings,
    cache: ResponseCache | None,
    *,
    api_key: str | None = None,
    vision: bool = False,
) -> Backend | None:
    """The wrapped backend the settings name (or ``backend``, an object standing in for the name).

    ``vision=True`` builds the separate vision backend of item summaries
    (``settings.vision_backend``; ``None`` where there is none).
    """
    if backend is None:
        if vision:
            if settings.vision_backend is None:
                return None
            backend = get_backend(settings.vision_backend)
        else:
            backend = get_backend(settings.backend, base_url=settings.base_url, api_key=api_key,
                                  **settings.backend_options)  # fmt: skip
    return build_stack(backend, cache=cache, retries=settings.retries, retry_max_seconds=settings.retry_max_seconds)
