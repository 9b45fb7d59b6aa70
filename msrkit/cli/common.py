"""What every command does around its one library call: logging, one-line errors, safe printing, sharded runs.

A command only turns its flags into :class:`~msrkit.config.Settings`
(:func:`.options.settings`, with the shared options of :mod:`.options`), makes one
library call, and prints. msrkit errors become one line on stderr and their documented
exit code (:data:`msrkit.errors.EXIT_CODES`), never a traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from ..errors import EXIT_CODES
from ..escape import escape_surrogates

__all__ = [
    "EPILOG",
    "guard",
    "hide_result_warnings",
    "run_sharded",
    "err",
    "safe",
    "setup_logging",
]

T = TypeVar("T")

EPILOG = "Exit codes: " + ", ".join(f"{code} {text.split(' (')[0].split(':')[0]}" for code, text in EXIT_CODES.items())

_CONTROL = re.compile(
    r"(?:\x1b[\]P_^X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, APC...: links, titles
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing
    r"|\x1b[ -/]*[0-~]"  # any other escape sequence
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # and any control character left
)


def safe(text: str | None) -> str:
    """Text fit for a terminal: escape sequences (whole, with their payload) and control characters removed.

    Item titles and model answers are data, not commands: an OSC 8 hyperlink
    (``ESC ] 8 ;; url BEL``), a window title or a colour code in them is dropped.
    """
    return escape_surrogates(_CONTROL.sub("", text or ""))


def setup_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr, every record (any library's) with its secrets masked."""
    from ..errors import RedactingFilter

    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())


def hide_result_warnings() -> None:
    """Leave out of the log the warnings a printed result shows anyway (each is then said once)."""
    from ..runtime.meter import RESULT_WARNING  # the meter's backends stay unloaded until a command needs them

    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: not getattr(record, RESULT_WARNING, False))


def err(message: str) -> None:
    typer.echo(f"error: {safe(message)}", err=True)


def guard(fn: Callable[[], T]) -> T:
    """Run a command body: msrkit errors become one line and their exit code, never a traceback."""
    from ..errors import MsrkitError

    try:
        return fn()
    except MsrkitError as exc:
        err(str(exc))
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err("interrupted")
        raise typer.Exit(130) from None


def run_sharded(
    start: Callable[[Callable[[int, int], None]], Any], *, out: Path, quiet: bool, noun: str = "users"
) -> Any:
    """Run a sharded Ray job with a progress bar on stderr; print what it did; exit with a failure's code.

    ``start(on_progress)`` makes the one library call. Exit codes come from the
    failed records' error classes (:data:`msrkit.errors.EXIT_CODES`).
    """
    from rich.console import Console
    from rich.progress import Progress

    from .. import errors

    with Progress(console=Console(stderr=True), disable=quiet, transient=True) as progress:
        task = progress.add_task(noun, total=None)
        run = start(lambda finished, total: progress.update(task, completed=finished, total=total))
    if not quiet:
        u = run.usage
        typer.echo(
            f"{run.records} {noun} in {run.shards} shard(s) -> {out}: {run.done} done, {run.failed} failed, "
            f"{run.skipped} already complete ({run.shards_skipped} shard(s)); llm calls {u.llm_calls}, "
            f"tokens {u.prompt_tokens}+{u.completion_tokens}, cache hits {u.cache_hits}; "
            f"{run.seconds:.1f} s (Ray start {run.startup_seconds:.1f} s)",
            err=True,
        )
    for name, n in sorted(run.failures.items()):
        err(f"{n} of the {noun} failed with {name} (error rows in {out}; run again to retry them)")
    if run.failures:
        codes = [getattr(getattr(errors, name, None), "exit_code", 1) for name in run.failures]
        raise typer.Exit(min(codes))
    return run
