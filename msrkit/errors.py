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
        │   └── BackendUnavailableError  nothing answers at the address
        ├── BackendPermanentError   not worth retrying: 400, 401, unknown model, context too long
        └── OutputParseError        the model answered, but not in a usable form

Errors are mapped by class and HTTP status, never by message text. The CLI maps
each branch to a documented exit code (see ``EXIT_CODES``).
"""

from __future__ import annotations

import re


class MsrkitError(Exception):
    """Base of every error msrkit raises on purpose."""

    exit_code = 1


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


class BackendPermanentError(BackendError):
    """A failure that retrying will not fix."""


class OutputParseError(BackendError):
    """The model answered, but its output could not be used."""


TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


def error_for_status(
    status: int, message: str, *, backend: str, model: str, retry_after: float | None = None
) -> BackendError:
    """Map an HTTP status to the right branch of the tree."""
    cls = BackendTransientError if status in TRANSIENT_STATUS or status >= 500 else BackendPermanentError
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


def redact(text: str, limit: int = 300) -> str:
    """A log-safe, short version of an error message: anything shaped like a key is masked."""
    return _SECRET.sub("[redacted]", text)[:limit]
