"""``msrkit backends | prompts | cache | config``: look at what msrkit would use, and clear what it keeps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import guard, safe
from .options import CacheDirOpt, CatalogOpt, ConfigOpt, JsonOpt, PromptsOpt, settings

__all__ = ["backends", "cache_app", "config_app", "prompts_app"]

prompts_app = typer.Typer(help="See the prompt templates and exactly what the model sees.", no_args_is_help=True)
cache_app = typer.Typer(help="Inspect or clear the response cache and the catalog store.", no_args_is_help=True)
config_app = typer.Typer(help="See the effective settings and where each came from.", no_args_is_help=True)


def backends(json_out: JsonOpt = False, config: ConfigOpt = None) -> None:
    """Show which backends are installed and reachable, and what the settings (or `auto`) pick."""

    def run() -> None:
        from ..backends import auto_choice, available_backends
        from ..config import load_settings

        rows = available_backends()
        current, sources = load_settings({}, config=config)
        if current.backend == "auto":
            choice = auto_choice()
            spec, why = choice.spec, f"auto: {choice.why}"
        else:
            spec, why = current.backend, f"from {sources['backend']}"
        if json_out:
            typer.echo(json.dumps({"backends": rows, "auto": {"backend": spec, "why": why}}))
            return
        for row in rows:
            typer.echo(f"{row['backend']:<9} {row['status']}")
        typer.echo(f"backend  ->  {spec}  ({why})")

    guard(run)


@prompts_app.command("list")
def prompts_list(prompts: PromptsOpt = None) -> None:
    """List templates with id, version and content hash."""

    def run() -> None:
        from ..runtime.prompts import PromptSet

        for t in PromptSet.load(prompts):
            typer.echo(f"{t.tag:<40} {t.description}")

    guard(run)


@prompts_app.command("show")
def prompts_show(name: str, prompts: PromptsOpt = None) -> None:
    """Print one template's source (system and user parts)."""

    def run() -> None:
        from ..runtime.prompts import PromptSet

        t = PromptSet.load(prompts)[name]
        typer.echo(f"# {t.tag}  ({t.source})\n## system\n{t.system}\n## user\n{t.user}")

    guard(run)


@prompts_app.command("render", epilog="Example: msrkit prompts render listwise_rank examples/history.json")
def prompts_render(
    name: str,
    path: Annotated[Path, typer.Argument(help="history.json to fill the template with.")],
    catalog: CatalogOpt = None,
    prompts: PromptsOpt = None,
) -> None:
    """Show exactly what the model sees for one history (no LLM call; summaries left as placeholders)."""

    def run() -> None:
        from ..jobs.render import render_for_history

        for role, text in render_for_history(name, path, catalog=catalog, prompts=prompts):
            typer.echo(f"--- {role} ---\n{text}")

    guard(run)


def _cache_root(cache_dir: Path | None, config: Path | None) -> Path:
    from ..backends.cache import default_cache_dir

    return settings(config=config, cache_dir=cache_dir).cache_dir or default_cache_dir()


@cache_app.command("info")
def cache_info(cache_dir: CacheDirOpt = None, config: ConfigOpt = None) -> None:
    """Where the cache lives, how many entries and bytes, and how many items the catalog store holds."""

    def run() -> None:
        from ..backends.cache import ResponseCache
        from ..summaries.store import CatalogStore, store_path

        root = _cache_root(cache_dir, config)
        info = ResponseCache(root).info()
        store = store_path(root)
        info["catalog_store"] = {"path": str(store), "items": CatalogStore(store).count() if store.exists() else 0}
        typer.echo(json.dumps(info))

    guard(run)


@cache_app.command("clear")
def cache_clear(
    cache_dir: CacheDirOpt = None,
    config: ConfigOpt = None,
    summaries: Annotated[bool, typer.Option("--summaries", help="Also forget the stored item summaries.")] = False,
) -> None:
    """Remove every cached response (and, with --summaries, the catalog store); rebuild a cache that is unreadable."""

    def run() -> None:
        from ..backends.cache import ResponseCache
        from ..summaries.store import CatalogStore, store_path

        root = _cache_root(cache_dir, config)
        cache = ResponseCache(root)
        removed = cache.clear()
        if cache.rebuilt is not None:
            typer.echo(f"the cache at {root} could not be read ({safe(cache.rebuilt)}): rebuilt it empty")
        else:
            typer.echo(f"removed {removed} entries")
        if summaries and store_path(root).exists():
            typer.echo(f"removed the summaries of {CatalogStore(store_path(root)).clear()} items")

    guard(run)


@config_app.command("show", epilog="Example: MSRKIT_WINDOW=30 msrkit config show --json")
def config_show(config: ConfigOpt = None, json_out: JsonOpt = False) -> None:
    """Print each setting: defaults < config file < MSRKIT_* variables < flags."""

    def run() -> None:
        from ..config import config_file_label, load_settings

        loaded, sources = load_settings({}, config=config)
        values = loaded.model_dump(mode="json")
        if json_out:
            rows = {k: {"value": v, "source": sources[k]} for k, v in values.items()}
            typer.echo(json.dumps({"config_file": config_file_label(config), "settings": rows}))
            return
        typer.echo(f"# config file: {config_file_label(config) or 'none'}")
        for key, value in values.items():
            typer.echo(f"{key:<20} = {json.dumps(value):<32} # {sources[key]}")

    guard(run)
