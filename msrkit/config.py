"""Settings for ``rank`` and ``eval``, from four sources in increasing precedence.

1. built-in defaults (those of :class:`~msrkit.recommender.Recommender`);
2. a config file: ``--config PATH``, else ``$MSRKIT_CONFIG``, else
   ``./msrkit.toml``, else the ``[tool.msrkit]`` table of ``./pyproject.toml``;
3. ``MSRKIT_<KEY>`` environment variables (``MSRKIT_WINDOW=30``), typed by the field;
4. command-line flags.

Every value is validated where it comes from, so an error names its source
and key (``msrkit.toml: window: ...``, ``env MSRKIT_WINDOW: ...``). Relative
paths in a config file are read from that file's folder. ``msrkit config show``
prints each effective setting and where it came from.

Example ``msrkit.toml``::

    backend = "ollama/qwen2.5:7b"        # a cheap text model ranks ...
    vision_backend = "ollama/llava:7b"   # ... a vision model summarizes item images
    catalog = "data/items.jsonl"         # relative to this file
    window = 20
    fusion_weight = 0.6

    [backend_options]
    temperature = 0.0
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Settings",
    "settings_from",
    "load_settings",
    "find_config_file",
    "config_file_label",
    "PATH_KEYS",
    "CONFIG_FILE_NAME",
]

CONFIG_FILE_NAME = "msrkit.toml"
#: the fusion weight when neither the settings nor an adapter's manifest give one
DEFAULT_FUSION_WEIGHT = 0.5
#: keys holding paths: relative values in a config file are read from the file's folder
PATH_KEYS = frozenset({"catalog", "interactions", "index", "prompts", "cache_dir", "adapter"})
#: keys holding lists of paths (in ``MSRKIT_<KEY>``: separated by ``os.pathsep``)
PATH_LIST_KEYS = frozenset({"image_roots"})


class Settings(BaseModel):
    """Every option of the pipeline, with its default: the one place defaults live.

    :class:`~msrkit.recommender.Recommender` takes a ``Settings`` (or the same
    names as keyword arguments), and the command line fills one from flags,
    ``MSRKIT_*`` variables and the config file (:func:`load_settings`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- what to call, and with what data
    backend: str = "auto"
    base_url: str | None = None
    vision_backend: str | None = None
    backend_options: dict[str, Any] = Field(default_factory=dict)
    catalog: Path | None = None
    interactions: Path | None = None
    index: Path | None = None
    #: an index built here (not loaded from ``index``) chooses its retrieval blend on the
    #: interactions themselves, by leave-one-out validation (``msrkit index build --tune``)
    tune_index: bool = False
    prompts: Path | None = None
    cache: bool = True
    cache_dir: Path | None = None
    # -- which stages run (the ablations of ``msrkit eval``)
    item_summaries: bool = True
    preference_summary: bool = True
    collaborative: bool = True
    pointwise: bool = False
    explain: bool = True
    # -- stage knobs
    block_size: int = Field(default=3, ge=1)
    max_history: int = Field(default=60, ge=1)
    max_side: int = Field(default=768, ge=32)
    n_candidates: int = Field(default=20, ge=1)
    collaborative_k: int = Field(default=3, ge=0)
    window: int = Field(default=20, ge=2)
    stride: int | None = Field(default=None, ge=1)
    passes: int = Field(default=1, ge=1)
    #: the LLM's weight in the fusion with retrieval; None: the adapter's tuned weight
    #: (``msrkit eval --tune-fusion``), else 0.5. At 0 the LLM stage is skipped (no calls)
    fusion_weight: float | None = Field(default=None, ge=0.0, le=1.0)
    explain_top_k: int = Field(default=3, ge=0)
    seed: int = 0
    # -- reliability and throughput
    strict: bool = False
    retries: int = Field(default=4, ge=0)
    retry_max_seconds: float = Field(default=60.0, gt=0)
    concurrency: int = Field(default=8, ge=1)
    #: seconds one request (one user's ranking) may take, every stage, call and retry included;
    #: once passed, the remaining LLM stages are skipped and the ranking falls back (degraded)
    deadline: float = Field(default=120.0, gt=0)
    #: failures in a row after which the circuit breaker fails calls at once (0: no breaker) ...
    breaker_failures: int = Field(default=5, ge=0)
    #: ... for this many seconds, before one probe call decides
    breaker_cooldown: float = Field(default=30.0, gt=0)
    #: a model's answer is cut at this many characters before it is cached or used
    max_answer_chars: int = Field(default=16_000, ge=100)
    # -- images from outside (item ``image`` fields)
    #: seconds to download one image URL, in total (redirects included)
    image_timeout: float = Field(default=10.0, gt=0)
    #: allow image URLs on loopback, private, link-local and reserved addresses (off: such URLs are refused)
    image_private_hosts: bool = False
    #: local image files must lie under one of these folders (None: anywhere; []: no local files);
    #: server modes (MCP) set it
    image_roots: list[Path] | None = None
    # -- the agent (msrkit.agent): its bounds
    agent_max_turns: int = Field(default=6, ge=1)
    agent_max_tool_calls: int = Field(default=12, ge=1)
    agent_max_expensive: int = Field(default=1, ge=0)
    agent_max_invalid: int = Field(default=3, ge=1)
    agent_plan_first: bool = False
    agent_tool_choice: Literal["auto", "required"] = "auto"
    agent_shown: int = Field(default=5, ge=1)
    agent_max_tokens: int = Field(default=200, ge=16)
    # -- scale-out (msrkit.distributed): requests in flight to the model = actors x concurrency
    engine: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    actors: int = Field(default=1, ge=1)
    # -- fine-tuning (msrkit.training) and the order a ranking model is shown
    #: the order candidates are shown to the listwise model: retrieval's (best first), or as given
    #: (``msrkit finetune`` trains on a seeded shuffle shown as given, so a model learns to read, not to echo)
    shown_order: Literal["retrieval", "given"] = "retrieval"
    #: append retrieval's evidence to each candidate line (``| evidence: strong (12)``: how many other
    #: users took it after this user's items plus similar users who took it, and that count's level
    #: within the list): MMSRARec's collaborative signal as keywords, which a fine-tuned model learns to read
    candidate_evidence: bool = False
    # -- a fine-tuned adapter (msrkit.training.adapter)
    #: a folder made by ``msrkit finetune``: the llamacpp backend loads its ``adapter.gguf`` in-process
    #: (its base must be the backend's model); Ollama and OpenAI-compatible servers serve it themselves
    adapter: Path | None = None
    # -- keywords tuned by their reward (msrkit.summaries.best_of)
    #: keyword sets sampled per item by ``msrkit summarize``; the best by the keyword reward is kept (1: greedy only)
    best_of: int = Field(default=1, ge=1)
    #: the sampling temperature of samples 2..N (sample 1 is the greedy answer)
    best_of_temperature: float = Field(default=0.8, gt=0.0, le=2.0)
    #: the keyword count that still counts as fully brief in the reward
    best_of_budget: int = Field(default=5, ge=1)
    #: add reconstruction to the reward: one more call per sample (pick the item among 4 seeded distractors)
    best_of_reconstruction: bool = False

    # -- the MCP server (msrkit mcp): who may call it, and what one call may cost
    #: the bearer token HTTP clients must send (needed to serve beyond loopback; shown masked)
    mcp_token: SecretStr | None = None
    #: ``Host`` values served besides loopback and the bound address (``name`` or ``name:port``)
    mcp_allowed_hosts: list[str] = Field(default_factory=list)
    #: ``Origin`` values served besides those of the allowed hosts (``https://app.example``)
    mcp_allowed_origins: list[str] = Field(default_factory=list)
    #: seconds one tool call may take; past it the call ends (its model calls are cancelled)
    mcp_tool_deadline: float = Field(default=60.0, gt=0)
    #: tool calls one client session may have running or waiting; more are refused at once
    mcp_session_queue: int = Field(default=4, ge=1)
    #: tool calls running at once, all sessions together (each on a worker thread)
    mcp_workers: int = Field(default=8, ge=1)
    # -- cost (issue 21): calls per request, see docs/cost.md
    #: items whose keywords one call makes (1: one call per item); the answer is read per item,
    #: items it left out are summarized alone
    summary_batch: int = Field(default=8, ge=1)
    #: "single" (default): MMSRARec's one call, the recent items' keywords read by the ranking prompt itself;
    #: "recurrent": MLLM-MSR's preference summary, one call per block of history (cached per prefix)
    preference_mode: Literal["recurrent", "single"] = "single"

    # -- retrieval: self-selection and repeats (issue 22)
    #: an index built here (not loaded) picks its blend from the data with a quick validation
    #: search (msrkit.retrieval.select); ``tune_index`` (the full search) takes precedence
    index_select: bool = True
    #: ``exclude``: a user's past items never come back as candidates; ``allow``: they may,
    #: scored by the same components
    repeats: Literal["exclude", "allow"] = "exclude"

    @property
    def effective_fusion_weight(self) -> float:
        """``fusion_weight``, or :data:`DEFAULT_FUSION_WEIGHT` when unset."""
        return self.fusion_weight if self.fusion_weight is not None else DEFAULT_FUSION_WEIGHT

    @property
    def effective_stride(self) -> int:
        """``stride``, or half the window when unset."""
        return self.stride if self.stride is not None else max(1, self.window // 2)


def settings_from(base: Settings | None = None, **overrides: Any) -> Settings:
    """``base`` (or the defaults) with ``overrides`` applied and validated; a bad one is a :class:`ConfigError`."""
    data = (base or Settings()).model_dump()
    unknown = sorted(set(overrides) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; known: {', '.join(Settings.model_fields)}")
    try:
        settings = Settings.model_validate({**data, **overrides})
    except ValidationError as exc:
        raise ConfigError(_why(exc)) from None
    return check(settings)


def check(settings: Settings, sources: Mapping[str, str] | None = None) -> Settings:
    """Checks across settings (each value alone is checked by its field)."""
    if settings.stride is not None and settings.stride >= settings.window:
        where = f"{sources['stride']}: " if sources else ""
        raise ConfigError(f"{where}stride ({settings.stride}) must be smaller than window ({settings.window})")
    return settings


def _why(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"]) or "settings"
        parts.append(f"{key}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.resolve().relative_to(cwd.resolve()))
    except ValueError:
        return str(path)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            table: dict[str, Any] = tomllib.load(fh)
            return table
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None


def find_config_file(
    config: str | Path | None = None, *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Path, str, dict[str, Any]] | None:
    """The config file in use: ``(path, label, table)``, or ``None`` where there is none.

    An explicit ``config`` (or ``$MSRKIT_CONFIG``) must exist; ``./msrkit.toml``
    and ``[tool.msrkit]`` in ``./pyproject.toml`` are used when present.
    """
    env = os.environ if env is None else env
    here = Path(cwd) if cwd is not None else Path.cwd()
    explicit = config if config is not None else (env.get("MSRKIT_CONFIG") or None)
    if explicit is not None:
        path = Path(explicit).expanduser()
        path = path if path.is_absolute() else here / path
        return path, _display(path, here), _read_toml(path)
    local = here / CONFIG_FILE_NAME
    if local.is_file():
        return local, _display(local, here), _read_toml(local)
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("msrkit")
        if table is not None:
            if not isinstance(table, dict):
                raise ConfigError(f"{pyproject}: [tool.msrkit] must be a table")
            return pyproject, f"{_display(pyproject, here)} [tool.msrkit]", table
    return None


def _file_layer(path: Path, table: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key in PATH_KEYS and isinstance(value, str) and value:
            value = _relative_to(path, value)
        elif key in PATH_LIST_KEYS and isinstance(value, list):
            value = [_relative_to(path, v) if isinstance(v, str) and v else v for v in value]
        out[key] = value
    return out


def _relative_to(config_file: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else config_file.parent / p


def _env_layer(env: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """``key -> (variable name, value)`` for every ``MSRKIT_<KEY>`` that names a setting."""
    out: dict[str, tuple[str, Any]] = {}
    for key in Settings.model_fields:
        name = f"MSRKIT_{key.upper()}"
        if name not in env:
            continue
        value: Any = env[name]
        if value.strip() == "" and key not in ("backend", "backend_options"):
            value = None  # MSRKIT_STRIDE= unsets an optional value
        elif key == "backend_options":
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"env {name}: backend_options must be a JSON object, got {value!r}") from None
        elif key in PATH_LIST_KEYS:
            value = [Path(v) for v in value.split(os.pathsep) if v]
        out[key] = (name, value)
    return out


def _apply(settings: Settings, key: str, value: Any, source: str) -> None:
    if key not in Settings.model_fields:
        known = ", ".join(Settings.model_fields)
        raise ConfigError(f"{source}: unknown setting '{key}' (known: {known})")
    try:
        setattr(settings, key, value)
    except ValidationError as exc:
        why = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"{source}: {key}: {why} (got {value!r})") from None


def load_settings(
    cli_overrides: Mapping[str, Any] | None = None,
    *,
    config: str | Path | None = None,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """The effective settings and, per key, where each came from.

    ``cli_overrides`` holds flag values; ``None`` means the flag was not given.
    Sources are ``"default"``, the config file's label (``"msrkit.toml"``,
    ``"pyproject.toml [tool.msrkit]"``), ``"env MSRKIT_<KEY>"`` or ``"flag"``.

    >>> settings, sources = load_settings({"window": 30}, env={"MSRKIT_BACKEND": "none"})
    >>> settings.window, sources["window"], sources["backend"]
    (30, 'flag', 'env MSRKIT_BACKEND')
    """
    env = os.environ if env is None else env
    settings = Settings()
    sources = dict.fromkeys(Settings.model_fields, "default")
    found = find_config_file(config, cwd=cwd, env=env)
    if found is not None:
        path, label, table = found
        for key, value in _file_layer(path, table).items():
            _apply(settings, key, value, label)
            sources[key] = label
    for key, (name, value) in _env_layer(env).items():
        _apply(settings, key, value, f"env {name}")
        sources[key] = f"env {name}"
    for key, value in (cli_overrides or {}).items():
        if value is not None:
            _apply(settings, key, value, f"flag --{key.replace('_', '-')}")
            sources[key] = "flag"
    return check(settings, sources), sources


def config_file_label(
    config: str | Path | None = None, *, cwd: str | Path | None = None, env: Mapping[str, str] | None = None
) -> str | None:
    """The path of the config file in use (for ``msrkit config show``), or ``None``."""
    found = find_config_file(config, cwd=cwd, env=env)
    return str(found[0]) if found else None
