"""The exceptions msrkit raises, as one small tree.

::

    MsrkitError
    ├── UsageError              you asked for something msrkit cannot do as asked
    │   ├── InputError          a data file or object is wrong (names file, path, field)
    │   ├── ConfigError         a backend string, option or setting is wrong
    │   └── TemplateError       a prompt template is missing, malformed or misses placeholders
    ├── MissingDependencyError  an optional extra is not installed (names the extra)
    └── BackendError            the model backend failed (names backend and model)
        ├── BackendTransientError   worth retrying: 429, 408, 409, 5xx, timeouts, connection
        │   ├── BackendUnavailableError  nothing answers at the address
        │   │   └── CircuitOpenError     the circuit breaker fails calls at once for a while
        │   └── DeadlineExceededError    the request's time is up (or it was cancelled): not retried
        ├── BackendPermanentError   not worth retrying: 400, context too long
        │   └── BackendRefusedError     the endpoint refuses every call: 401, 403, 404, insufficient_quota
        └── OutputParseError        the model answered, but not in a usable form

Errors are mapped by class, HTTP status and the structured error code of an
answer's body, never by message text. The CLI maps each branch to a documented
exit code (see ``EXIT_CODES``).

Secrets: :func:`register_secret` records a configured secret's value (an API
key, an ``Authorization`` header); :func:`redact` masks every registered value
and anything shaped like a key. Every msrkit error's message, every warning of
a :class:`~msrkit.data.Ranking` and every record of the ``msrkit`` logger pass
through it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

from .outcomes import Failure


class MsrkitError(Exception):
    """Base of every error msrkit raises on purpose (its message never holds a registered secret)."""

    exit_code = 1

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a, None) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:
        return redact(super().__str__(), None)


class UsageError(MsrkitError):
    """The caller asked for something msrkit cannot do as asked."""

    exit_code = 2


class InputError(UsageError):
    """A data file or object is invalid; the message names where and what to do."""

    exit_code = 3

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None) -> None:
        self.source = source
        self.path = path
        where = ": ".join(p for p in (source, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigError(UsageError):
    """A backend string, option or configuration value is invalid."""

    exit_code = 4


class TemplateError(UsageError):
    """A prompt template is missing, malformed or lacks required placeholders."""

    exit_code = 7


class MissingDependencyError(MsrkitError):
    """An optional dependency is missing; the message names the extra to install."""

    exit_code = 5

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(f"{purpose} needs the package '{package}': pip install 'msrkit[{extra}]'")


class BackendError(MsrkitError):
    """The model backend failed."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        backend: str = "",
        model: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.status = status
        self.retry_after = retry_after
        who = f"{backend}/{model}" if backend else model
        super().__init__(f"{who}: {message}" if who else message)


class BackendTransientError(BackendError):
    """A failure that may pass if the call is retried."""


class BackendUnavailableError(BackendTransientError):
    """Nothing answers at the backend's address."""


class CircuitOpenError(BackendUnavailableError):
    """The backend failed too often in a row: calls fail at once until ``until`` (a ``time.time()``).

    ``failure`` is the :data:`~msrkit.outcomes.Failure` of the failures that opened it.
    """

    def __init__(self, message: str, *, until: float, failure: Failure, backend: str = "", model: str = "") -> None:
        super().__init__(message, backend=backend, model=model)
        self.until = until
        self.failure = failure


class DeadlineExceededError(BackendTransientError):
    """The request ran out of time (its deadline passed, or it was cancelled); retrying cannot help it."""


class BackendPermanentError(BackendError):
    """A failure that retrying will not fix."""


class BackendRefusedError(BackendPermanentError):
    """The endpoint refuses every call: a bad key, no permission, no quota, an unknown model or path."""


class OutputParseError(BackendError):
    """The model answered, but its output could not be used."""


TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
REFUSED_STATUS = frozenset({401, 403, 404})
#: structured error codes (``error.code`` / ``error.type`` of an answer's body) that no retry fixes
REFUSED_CODES = frozenset(
    {"insufficient_quota", "billing_hard_limit_reached", "invalid_api_key", "account_deactivated"}
)


def error_for_status(
    status: int,
    message: str,
    *,
    backend: str,
    model: str,
    retry_after: float | None = None,
    codes: Sequence[object] = (),
) -> BackendError:
    """Map an HTTP status (and the body's structured error ``codes``: ``error.code``, ``error.type``) to the tree."""
    cls: type[BackendError]
    if status in REFUSED_STATUS or any(isinstance(c, str) and c in REFUSED_CODES for c in codes):
        cls = BackendRefusedError
    elif status in TRANSIENT_STATUS or status >= 500:
        cls = BackendTransientError
    else:
        cls = BackendPermanentError
    return cls(f"HTTP {status}: {message}", backend=backend, model=model, status=status, retry_after=retry_after)


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (please report it)",
    2: "usage error (bad command-line options)",
    3: "input error: a data file or field is invalid",
    4: "configuration error: backend string, option or setting",
    5: "a missing optional dependency (the message names the extra)",
    6: "the model backend failed or is unreachable",
    7: "a prompt template is invalid",
    130: "interrupted (Ctrl-C); partial output is valid",
}


_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+)")
#: shorter values are not registered: masking them would mangle ordinary text
MIN_SECRET_CHARS = 8
_secrets: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever msrkit's text leaves it (errors, warnings, logs), whatever it looks like.

    Called with every configured secret: the ``api_key`` given or read from
    ``OPENAI_API_KEY``, a password in a base URL, the value of an
    ``Authorization`` (or ``api-key``) header. ``Bearer `` is taken off a header
    value, so the bare token is masked too.
    """
    global _secrets
    if not value:
        return
    values = {value.strip(), value.strip().removeprefix("Bearer ").strip()}
    with _secrets_lock:
        known = set(_secrets) | {v for v in values if len(v) >= MIN_SECRET_CHARS}
        _secrets = tuple(sorted(known, key=len, reverse=True))


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret's value masked (nothing else changed: fit for a model's answer)."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def redact(text: str, limit: int | None = 300) -> str:
    """``text`` with every registered secret and anything shaped like a key masked, cut at ``limit`` characters."""
    text = _SECRET.sub("[redacted]", mask_secrets(text))
    return text if limit is None else text[:limit]


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message (see :func:`redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message, None)
        if masked != message:
            record.msg, record.args = masked, None
        return True


logging.getLogger("msrkit").addFilter(RedactingFilter())
