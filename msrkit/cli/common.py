"""What every command shares: the option types, settings from flags, one-line errors, safe printing.

A command only turns its flags into :class:`~msrkit.config.Settings`
(:func:`settings`), makes one library call, and prints. msrkit errors become
one line on stderr and their documented exit code (:data:`msrkit.errors.EXIT_CODES`),
never a traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
    "settings",
    "setup_logging",
]

T = TypeVar("T")

EPILOG = "Exit codes: " + ", ".join(f"{code} {text.split(' (')[0].split(':')[0]}" for code, text in EXIT_CODES.items())

# Options: a value of None means "not given", so msrkit.toml and MSRKIT_* fill it (see msrkit.config).
BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", "-b", help="auto | none | llamacpp/PATH.gguf | llamacpp/default | openai/MODEL | "
                 "ollama/NAME:TAG (default: auto)"),
]  # fmt: skip
BaseUrlOpt = Annotated[str | None, typer.Option("--base-url", help="Endpoint for openai/ollama backends.")]
BackendOptionOpt = Annotated[
    list[str] | None,
    typer.Option("--backend-option", "-o", help="KEY=VALUE option of the backend (repeat), e.g. -o n_ctx=2048."),
]
AdapterOpt = Annotated[
    Path | None,
    typer.Option("--adapter", help="A fine-tuned adapter folder (msrkit finetune --out): the llamacpp backend loads "
                 "its adapter.gguf; its base must be the backend's model."),
]  # fmt: skip
CatalogOpt = Annotated[Path | None, typer.Option("--catalog", help="items.jsonl resolving bare item ids.")]
InteractionsOpt = Annotated[
    Path | None, typer.Option("--interactions", help="interactions.jsonl/.csv for collaborative retrieval.")
]
TuneOpt = Annotated[
    bool | None,
    typer.Option(
        "--tune/--no-tune",
        help="Choose the retrieval blend on the interactions by leave-one-out validation (never a test target).",
    ),
]
IndexOpt = Annotated[Path | None, typer.Option("--index", help="A folder made by `msrkit index build`.")]
PromptsOpt = Annotated[
    Path | None, typer.Option("--prompts", help="A folder of templates overriding the shipped ones.")
]
CacheDirOpt = Annotated[Path | None, typer.Option("--cache-dir", help="Cache folder (env MSRKIT_CACHE_DIR).")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the response cache.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Config file (default: $MSRKIT_CONFIG, ./msrkit.toml, [tool.msrkit] in pyproject)."),
]
DeadlineOpt = Annotated[
    float | None,
    typer.Option("--deadline", min=0.001, help="Seconds one request may take, every call and retry included; "
                 "past it the remaining LLM stages are skipped (degraded). Default 120."),
]  # fmt: skip
EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="local (this process) | ray (Ray Data actors; --out is then a folder of shards)."),
]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="With --engine ray: a Ray cluster to join (default: start one).")
]
ActorsOpt = Annotated[
    int | None, typer.Option("--actors", min=1, help="With --engine ray: actors (in flight: actors x concurrency).")
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", min=1, help="Requests at once (per actor with --engine ray).")
]
FormatOpt = Annotated[str, typer.Option("--format", help="With --engine ray: shards as jsonl or parquet.")]
ShardSizeOpt = Annotated[int, typer.Option("--shard-size", min=1, help="With --engine ray: records per shard.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logging (-vv for debug).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]

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
    from ..meter import RESULT_WARNING  # the meter's backends stay unloaded until a command needs them

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


def _backend_options(pairs: list[str] | None) -> dict[str, Any] | None:
    """``["n_ctx=2048", "vision=true"]`` -> ``{"n_ctx": 2048, "vision": True}`` (values read as JSON, else text)."""
    import json

    from ..errors import ConfigError

    if not pairs:
        return None
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--backend-option takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def settings(flags: Mapping[str, Any], *, config: Path | None, no_cache: bool = False) -> Any:
    """The effective :class:`~msrkit.config.Settings`: flags over ``MSRKIT_*`` over the config file over defaults."""
    from ..config import load_settings

    given = dict(flags)
    if "backend_options" in given and isinstance(given["backend_options"], list):
        given["backend_options"] = _backend_options(given["backend_options"])
    if no_cache:
        given["cache"] = False
    loaded, _ = load_settings(given, config=config)
    return loaded


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
