"""``msrkit mcp``: serve msrkit's tools to other agents over the Model Context Protocol (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    BackendOpt,
    BackendOptionOpt,
    BaseUrlOpt,
    CacheDirOpt,
    CatalogOpt,
    ConfigOpt,
    IndexOpt,
    InteractionsOpt,
    NoCacheOpt,
    VerboseOpt,
    guard,
    settings,
    setup_logging,
)

__all__ = ["mcp_cmd"]


def mcp_cmd(
    transport: Annotated[str, typer.Option("--transport", help="stdio | http (streamable HTTP at /mcp).")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="Address for --transport http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --transport http.")] = 8765,
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    backend_option: BackendOptionOpt = None,
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    index: IndexOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Serve recommend, rerank, similar_users, search_catalog, summarize_items over MCP (needs msrkit[mcp])."""
    setup_logging(verbose, quiet=False)
    flags = dict(backend=backend, base_url=base_url, backend_options=backend_option, catalog=catalog,
                 interactions=interactions, index=index, cache_dir=cache_dir)  # fmt: skip

    def run() -> None:
        from ..errors import ConfigError
        from ..mcp_server import serve
        from ..recommender import Recommender

        if transport not in ("stdio", "http"):
            raise ConfigError(f"--transport must be stdio or http, not {transport!r}")
        with Recommender(settings=settings(flags, config=config, no_cache=no_cache)) as rec:
            serve(rec, transport=transport, host=host, port=port)

    guard(run)
