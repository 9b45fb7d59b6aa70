"""The options commands share, each declared once, and the one way flags become :class:`~msrkit.config.Settings`.

A lone shared option is a typed alias (``config: ConfigOpt = None``). Options that go
together are an :class:`OptionGroup`: a frozen dataclass whose fields are the options and
whose :meth:`~OptionGroup.overrides` are the settings they set. A command decorated with
:func:`option_groups` takes a group as one keyword parameter (``model: ModelOptions``);
``--help`` lists the group's options in its place, and :func:`settings` turns the groups
and the command's own flags into the effective settings.

A value of None means "not given", so msrkit.toml and ``MSRKIT_*`` fill it (see msrkit.config).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar, get_type_hints

import typer

__all__ = [
    "BackendOptions",
    "CacheOptions",
    "DataOptions",
    "ModelOptions",
    "OptionGroup",
    "RayOptions",
    "RetrievalOptions",
    "GeneralOptions",
    "option_groups",
    "settings",
]

T = TypeVar("T")

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
RetriesOpt = Annotated[int | None, typer.Option(min=0, help="Retries of transient failures (429, 5xx...).")]
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


@dataclass(frozen=True)
class OptionGroup:
    """Options that go together, as one typed value: each field sets the setting of its name."""

    #: The fields that set no setting (what a command writes or prints, how much it logs).
    not_settings: ClassVar[frozenset[str]] = frozenset()

    def overrides(self) -> dict[str, Any]:
        """The settings these options set (None: not given)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.not_settings}


@dataclass(frozen=True)
class BackendOptions(OptionGroup):
    """``--backend``, ``--base-url``, ``--backend-option``: the backend that answers."""

    backend: BackendOpt = None
    base_url: BaseUrlOpt = None
    backend_options: BackendOptionOpt = None

    def overrides(self) -> dict[str, Any]:
        return {**super().overrides(), "backend_options": _backend_options(self.backend_options)}


@dataclass(frozen=True)
class ModelOptions(BackendOptions):
    """The backend's options and ``--adapter``: the model that answers."""

    adapter: AdapterOpt = None


@dataclass(frozen=True)
class DataOptions(OptionGroup):
    """``--catalog``, ``--interactions``: the user's data."""

    catalog: CatalogOpt = None
    interactions: InteractionsOpt = None


@dataclass(frozen=True)
class RetrievalOptions(DataOptions):
    """The user's data and ``--index``: all that retrieval reads."""

    index: IndexOpt = None


@dataclass(frozen=True)
class CacheOptions(OptionGroup):
    """``--cache-dir``, ``--no-cache``: where responses are kept, and whether at all."""

    not_settings = frozenset({"no_cache"})
    cache_dir: CacheDirOpt = None
    no_cache: NoCacheOpt = False

    def overrides(self) -> dict[str, Any]:
        return {**super().overrides(), **({"cache": False} if self.no_cache else {})}


@dataclass(frozen=True)
class RayOptions(OptionGroup):
    """``--engine``, ``--ray-address``, ``--actors``, ``--format``, ``--shard-size``: where a batch runs."""

    not_settings = frozenset({"out_format", "shard_size"})
    engine: EngineOpt = None
    ray_address: RayAddressOpt = None
    actors: ActorsOpt = None
    out_format: FormatOpt = "jsonl"
    shard_size: ShardSizeOpt = 1000


@dataclass(frozen=True)
class GeneralOptions(OptionGroup):
    """``--config``, ``--verbose``, ``--quiet``: where settings come from, how much is logged."""

    not_settings = frozenset({"config", "verbose", "quiet"})
    config: ConfigOpt = None
    verbose: VerboseOpt = 0
    quiet: QuietOpt = False


def option_groups(command: Callable[..., T]) -> Callable[..., T]:
    """The command as Typer should see it: each :class:`OptionGroup` parameter spread into its options.

    The command is called with the group built from those options; every parameter is passed by keyword.
    """
    hints = get_type_hints(command, include_extras=True)
    groups: dict[str, type[OptionGroup]] = {}
    params: list[inspect.Parameter] = []
    for param in inspect.signature(command).parameters.values():
        hint = hints.get(param.name, param.annotation)
        if isinstance(hint, type) and issubclass(hint, OptionGroup):
            groups[param.name] = hint
            params += _fields_as_parameters(hint)
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))

    @functools.wraps(command)
    def spread(**given: Any) -> T:
        for name, group in groups.items():
            given[name] = group(**{f.name: given.pop(f.name) for f in fields(group)})
        return command(**given)

    spread.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    spread.__annotations__ = {p.name: p.annotation for p in params}
    return spread


def _fields_as_parameters(group: type[OptionGroup]) -> list[inspect.Parameter]:
    hints = get_type_hints(group, include_extras=True)
    kind = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter(f.name, kind, default=f.default, annotation=hints[f.name]) for f in fields(group)]


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


def settings(*groups: OptionGroup, config: Path | None, **flags: Any) -> Any:
    """The effective :class:`~msrkit.config.Settings`: flags over ``MSRKIT_*`` over the config file over defaults.

    ``groups`` give their :meth:`~OptionGroup.overrides`, ``flags`` are settings by name (None: not given).
    """
    from ..config import load_settings

    given: dict[str, Any] = {}
    for group in groups:
        given.update(group.overrides())
    loaded, _ = load_settings({**given, **flags}, config=config)
    return loaded
