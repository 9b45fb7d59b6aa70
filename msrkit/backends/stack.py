"""The one place a backend stack is built: ``CachedBackend(RetryingBackend(GuardedBackend(backend)))``.

Every command and the :class:`~msrkit.recommender.Recommender` call
:func:`backend_stack` (from the settings) or :func:`build_stack` (around a
backend object), so the guard, retries, the cache and their order are the same
wherever a model is called:

- :class:`~.guard.GuardedBackend`, innermost, sees every attempt: the request's
  deadline, the circuit breaker (one per stack, so shared by every request of
  a Recommender and by a batch), the answer size cap;
- :class:`~.retry.RetryingBackend` retries transient failures, never past the
  deadline and never an open breaker;
- :class:`~.cache.CachedBackend`, outermost: a hit never waits or touches the
  network, and only the final (capped) answer of a retried call is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..training.adapter import load_adapter
from .base import Backend
from .breaker import CircuitBreaker
from .cache import CachedBackend, ResponseCache
from .guard import MAX_ANSWER_CHARS, GuardedBackend
from .registry import get_backend
from .retry import RetryingBackend
from .wrapper import Wrapper

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["backend_stack", "build_stack"]


def build_stack(
    backend: Backend | None,
    *,
    cache: ResponseCache | None,
    retries: int = 4,
    retry_max_seconds: float = 60.0,
    breaker_failures: int = 5,
    breaker_cooldown: float = 30.0,
    max_answer_chars: int = MAX_ANSWER_CHARS,
) -> Backend | None:
    """Wrap ``backend`` in the guard, retry (``retries`` > 0) and then the cache (when given).

    ``None`` stays ``None``, a cached backend stays as it is, and one already
    wrapped by a caller (a guard or retry of their own) only gets the cache.
    ``breaker_failures`` = 0 turns the circuit breaker off.
    """
    if backend is None or isinstance(backend, CachedBackend):
        return backend
    if not isinstance(backend, Wrapper):
        breaker = None
        if breaker_failures > 0:
            breaker = CircuitBreaker(failures=breaker_failures, cooldown=breaker_cooldown, name=backend.name,
                                     model=backend.model)  # fmt: skip
        backend = GuardedBackend(backend, breaker=breaker, max_answer_chars=max_answer_chars)
        if retries > 0:
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
    (``settings.vision_backend``; ``None`` where there is none). The main
    backend serves ``settings.adapter`` (a fine-tuned LoRA) where one is set.
    """
    if backend is None:
        if vision:
            if settings.vision_backend is None:
                return None
            backend = get_backend(settings.vision_backend)
        else:
            adapter = load_adapter(settings.adapter) if settings.adapter is not None else None
            backend = get_backend(settings.backend, base_url=settings.base_url, api_key=api_key, adapter=adapter,
                                  **settings.backend_options)  # fmt: skip
    elif settings.adapter is not None and not vision and getattr(backend, "adapter", None) is None:
        raise ConfigError(f"the adapter setting ({settings.adapter}) applies to a backend named in the settings, "
                          f"not to a backend object: build it with adapter=load_adapter(DIR)")  # fmt: skip
    return build_stack(
        backend, cache=cache, retries=settings.retries, retry_max_seconds=settings.retry_max_seconds,
        breaker_failures=settings.breaker_failures, breaker_cooldown=settings.breaker_cooldown,
        max_answer_chars=settings.max_answer_chars,
    )  # fmt: skip
