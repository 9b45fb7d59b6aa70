"""``msrkit mcp``: serve msrkit's tools to other agents over the Model Context Protocol (stdio or streamable HTTP)."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import guard, setup_logging
from .options import BackendOptions, CacheOptions, ConfigOpt, RetrievalOptions, VerboseOpt, option_groups, settings

__all__ = ["mcp_cmd"]


@option_groups
def mcp_cmd(
    *,
    transport: Annotated[str, typer.Option("--transport", help="stdio | http (streamable HTTP at /mcp).")] = "stdio",
    host: Annotated[str, typer.Option("--host", help="Address for --transport http.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --transport http.")] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="Bearer token HTTP clients must send (env MSRKIT_MCP_TOKEN); needed beyond loopback."
        ),
    ] = None,
    allow_unauthenticated: Annotated[
        bool, typer.Option("--allow-unauthenticated", help="Serve beyond loopback without a token (anyone may call).")
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="A Host header value to serve (NAME or NAME:PORT; repeat) besides loopback and the bound address.",
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None, typer.Option("--allowed-origin", help="An Origin to serve (https://app.example; repeat).")
    ] = None,
    backend: BackendOptions,
    data: RetrievalOptions,
    cache: CacheOptions,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
) -> None:
    """Serve recommend, rerank, similar_users, search_catalog, summarize_items over MCP (needs msrkit[mcp])."""
    setup_logging(verbose, quiet=False)

    def run() -> None:
        from ..errors import ConfigError
        from ..mcp.security import check_exposure
        from ..mcp.server import serve
        from ..recommender import Recommender

        if transport not in ("stdio", "http"):
            raise ConfigError(f"--transport must be stdio or http, not {transport!r}")
        s = settings(backend, data, cache, config=config, mcp_token=token,
                     mcp_allowed_hosts=allowed_host, mcp_allowed_origins=allowed_origin)  # fmt: skip
        if transport == "http" and not allow_unauthenticated:  # before anything is loaded: a refusal costs nothing
            secret = s.mcp_token.get_secret_value() if s.mcp_token is not None else None
            check_exposure(host, token=secret, allow_unauthenticated=allow_unauthenticated)
        with Recommender(settings=s) as rec:
            serve(rec, transport=transport, host=host, port=port, allow_unauthenticated=allow_unauthenticated)

    guard(run)
