"""msrkit's tools for other agents, over the Model Context Protocol (the official ``mcp`` SDK, ``msrkit[mcp]``).

::

    msrkit mcp --catalog items.jsonl --interactions interactions.jsonl             # stdio
    msrkit mcp --transport http --port 8765 --catalog items.jsonl ...              # streamable HTTP at /mcp
    msrkit mcp --transport http --host 0.0.0.0 --token "$TOKEN" --allowed-host recs.example ...

Tools (each answers JSON):

- ``recommend(history, message?, agent?, top_k?)``: a ranking for one user (the fixed pipeline, or the
  agent with ``agent=true``, where ``message`` is what the user said);
- ``rerank(history, top_k?)``: the given candidates, ranked (a permutation of them);
- ``similar_users(item_ids, k?)``: users whose history matches those items, and what they took next;
- ``search_catalog(query, limit?)``: catalog items by keywords (BM25 over item text);
- ``summarize_items(item_ids)``: keywords and image descriptions (the catalog store; made where missing).

The catalog, index, backend and cache come from the usual :class:`~msrkit.config.Settings`
(one :class:`~msrkit.recommender.Recommender` serves every call). Inputs are typed
(:mod:`msrkit.mcp.inputs`): a wrong shape or a value past a cap is a schema error naming the field.

Fairness: no lock is held across model calls (a backend that cannot run two calls at once, such as
an in-process model, serialises its own calls), so a call that needs no model (``search_catalog``)
never waits behind one that does. Each call runs on a worker thread (``mcp_workers`` in all) under
its own deadline (``mcp_tool_deadline``); one session may have ``mcp_session_queue`` calls running
or waiting, more are refused at once; a client that cancels a call or goes away cancels its model
calls. Exposure over HTTP: :mod:`msrkit.mcp.security`. Image paths sent by a client are confined
by :func:`confine_local_images` (the ``image_roots`` setting). msrkit errors come back as tool
errors (``isError``) with their one-line message, server paths and addresses taken out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import InputError, MissingDependencyError, MsrkitError, register_secret
from ..escape import json_data
from ..runtime.deadline import Deadline, active
from .inputs import ItemIds, Limit, Message, NeighbourK, Query, ToolHistory, TopK

try:
    import anyio
    import anyio.to_thread
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise MissingDependencyError("mcp", "mcp", "the MCP server (msrkit mcp)") from exc

from .security import BearerToken, auth_settings, check_exposure, client_message, transport_security

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..config import Settings
    from ..recommender import Recommender

__all__ = ["build_server", "confine_local_images", "http_app", "serve"]

T = TypeVar("T")

#: seconds past a call's deadline that its worker thread may take to notice it, before the client is answered
GRACE_SECONDS = 2.0

INSTRUCTIONS = (
    "msrkit recommends items a user will take next, from their history (oldest first). Give a history "
    "as {'user_id': ..., 'history': [item ids or items], 'candidates': [...]} (candidates optional for recommend)."
)


def confine_local_images(history: ToolHistory, settings: Settings) -> None:
    """Image paths an MCP client sends: a client must not make the server read its files.

    With ``image_roots`` set, the Recommender's image policy (:class:`~msrkit.inputs.images.ImagePolicy`)
    confines local files to those folders when the history is loaded. Without it, every local path
    sent inline is refused here; ``data:`` URIs and http(s) URLs pass (under the same policy), and
    catalog items named by id keep the operator's own images.
    """
    if settings.image_roots is not None:
        return
    entries = [*history.history, *(history.candidates or [])]
    for n, entry in enumerate(entries):
        image = getattr(entry, "image", None)
        if image and not image.startswith(("data:", "http://", "https://")):
            why = "local image paths are not accepted from MCP clients (set image_roots to allow folders)"
            raise InputError(f"{why}: send a data: URI or an http(s) URL, or the item's catalog id",
                             path=f"items[{n}].image")  # fmt: skip


def _ranking(ranking: Any, top_k: int | None) -> dict[str, Any]:
    out: dict[str, Any] = json_data(ranking, exclude={"diagnostics"})
    if top_k is not None:
        out["ranking"] = out["ranking"][:top_k]
    return out


class _Gate:
    """Runs each tool call on a worker thread under its own deadline, at most ``per_session`` per session."""

    def __init__(self, *, per_session: int, workers: int, seconds: float) -> None:
        self.per_session = per_session
        self.seconds = seconds
        self._limiter = anyio.CapacityLimiter(workers)
        self._open: Counter[str] = Counter()

    async def run(self, session: str, fn: Callable[[], T]) -> T:
        """``fn()`` for ``session``'s client: refused past its queue, cancelled with the call, ended at the deadline."""
        key = session
        if self._open[key] >= self.per_session:
            raise ToolError(f"this session already has {self.per_session} tool calls running or waiting: "
                            "wait for one to finish")  # fmt: skip
        self._open[key] += 1
        deadline = Deadline(self.seconds)
        try:
            with anyio.fail_after(self.seconds + GRACE_SECONDS):
                return await anyio.to_thread.run_sync(_within, deadline, fn, limiter=self._limiter,
                                                      abandon_on_cancel=True)  # fmt: skip
        except TimeoutError:
            raise ToolError(f"the call ran past its deadline ({self.seconds:g} s)") from None
        finally:
            deadline.cancel()  # a call cancelled (or timed out) stops its model calls; a finished one has none left
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]


def _session(ctx: Context) -> str:
    """The client's session: its ``Mcp-Session-Id`` over HTTP; over stdio the process serves one client."""
    headers = ctx.headers or {}
    return headers.get("mcp-session-id") or "stdio"


def _within(deadline: Deadline, fn: Callable[[], T]) -> T:
    with active(deadline):
        try:
            return fn()
        except MsrkitError as exc:
            raise ToolError(client_message(str(exc))) from None


class _Tools:
    """The tool functions over one Recommender (each call through the :class:`_Gate`)."""

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec
        s = rec.settings
        self.gate = _Gate(per_session=s.mcp_session_queue, workers=s.mcp_workers, seconds=s.mcp_tool_deadline)

    async def recommend(self, history: ToolHistory, ctx: Context, message: Message = "", agent: bool = False,
                        top_k: TopK = 10) -> dict[str, Any]:  # fmt: skip
        """Rank what this user takes next (the fixed pipeline, or the agent when ``agent`` is true)."""

        def run() -> dict[str, Any]:
            confine_local_images(history, self.rec.settings)
            ranking = self.rec.chat(history, message or None).ranking if agent else self.rec.rank(history)
            return _ranking(ranking, top_k)

        return await self.gate.run(_session(ctx), run)

    async def rerank(self, history: ToolHistory, ctx: Context, top_k: TopK | None = None) -> dict[str, Any]:
        """Rank the history's given ``candidates`` for this user: every one of them, best first."""

        def run() -> dict[str, Any]:
            confine_local_images(history, self.rec.settings)
            if not history.candidates:
                raise InputError("rerank needs the 'candidates' to rank", path="candidates")
            return _ranking(self.rec.rank(history), top_k)

        return await self.gate.run(_session(ctx), run)

    async def similar_users(self, item_ids: ItemIds, ctx: Context, k: NeighbourK = 5) -> dict[str, Any]:
        """Users whose histories best match these items (BM25), and the items they took right after them."""
        from ..retrieval import query

        def run() -> dict[str, Any]:
            hood = query(self._index(), item_ids, n=0, context_k=k)
            nexts = [{"user_id": u, "item_id": i, "title": self._title(i)} for u, i in hood.next_items]
            users = [{"user_id": u, "score": round(s, 4)} for u, s in hood.similar_users[:k]]
            return {"users": users, "next_items": nexts}

        return await self.gate.run(_session(ctx), run)

    async def search_catalog(self, query: Query, ctx: Context, limit: Limit = 10) -> list[dict[str, Any]]:
        """Catalog items whose text (title, keywords, image description, genres) matches the query."""
        from ..retrieval.search import search_items

        def run() -> list[dict[str, Any]]:
            hits = search_items(self._index(), query, k=limit)
            return [{"item_id": i, "title": self._title(i), "score": round(s, 4)} for i, s in hits]

        return await self.gate.run(_session(ctx), run)

    async def summarize_items(self, item_ids: ItemIds, ctx: Context) -> list[dict[str, Any]]:
        """Each item's keywords and image description (from the catalog store; summarized now where missing)."""
        return await self.gate.run(_session(ctx), lambda: self._summaries(item_ids))

    def _summaries(self, item_ids: list[str]) -> list[dict[str, Any]]:
        missing = [i for i in item_ids if i not in self.rec.catalog]
        if missing:
            raise InputError(f"unknown item id(s) {missing[:5]}: not in the catalog")
        items = [self.rec.catalog[i] for i in item_ids]
        if self.rec.store is not None:
            enriched = self.rec.store.enrich({i.item_id: i for i in items})
            items = [enriched[i.item_id] for i in items]
        if self.rec.backend is not None and any(i.keywords is None for i in items):
            items = self.rec.item_summarizer().summarize(items)
        keys = ("item_id", "title", "keywords", "image_description")
        return [{k: getattr(i, k) for k in keys} for i in items]

    def _index(self) -> Any:
        if self.rec.index is None:
            raise InputError("the server has no collaborative index: start it with --interactions or --index")
        return self.rec.index

    def _title(self, item_id: str) -> str | None:
        item = self.rec.catalog.get(item_id)
        return item.title if item is not None else None


def build_server(rec: Recommender, *, token: str | None = None, host: str = "127.0.0.1", port: int = 8765) -> Any:
    """An ``MCPServer`` exposing msrkit's tools over ``rec``; with ``token``, HTTP clients must send it as a bearer."""
    auth: dict[str, Any] = {}
    if token:
        register_secret(token)
        auth = {"token_verifier": BearerToken(token), "auth": auth_settings(host, port)}
    server = MCPServer("msrkit", instructions=INSTRUCTIONS, **auth)
    tools = _Tools(rec)
    for fn in (tools.recommend, tools.rerank, tools.similar_users, tools.search_catalog, tools.summarize_items):
        server.add_tool(fn, name=fn.__name__)
    return server


def _token(settings: Settings) -> str | None:
    return settings.mcp_token.get_secret_value() if settings.mcp_token is not None else None


def _http_server(rec: Recommender, host: str, port: int, allow_unauthenticated: bool) -> tuple[Any, Any]:
    """The server and its Host/Origin guard for HTTP on ``host``, once the exposure is checked."""
    s = rec.settings
    token = _token(s)
    check_exposure(host, token=token, allow_unauthenticated=allow_unauthenticated)
    server = build_server(rec, token=token, host=host, port=port)
    return server, transport_security(host, hosts=s.mcp_allowed_hosts, origins=s.mcp_allowed_origins)


def http_app(rec: Recommender, *, host: str = "127.0.0.1", port: int = 8765,
             allow_unauthenticated: bool = False) -> Starlette:  # fmt: skip
    """The streamable-HTTP ASGI app (``/mcp``) :func:`serve` runs for ``host``: exposure checked, Host/Origin guarded.

    Raises :class:`~msrkit.errors.ConfigError` beyond loopback without ``mcp_token`` (unless
    ``allow_unauthenticated``). For tests (driven in-process) and for embedding in another ASGI server.
    """
    server, security = _http_server(rec, host, port, allow_unauthenticated)
    app: Starlette = server.streamable_http_app(host=host, transport_security=security)
    return app


def serve(rec: Recommender, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765,
          allow_unauthenticated: bool = False) -> None:  # fmt: skip
    """Serve until stopped: ``stdio`` (for a client that starts msrkit) or ``http`` (streamable HTTP at ``/mcp``)."""
    if transport == "stdio":
        build_server(rec).run("stdio")
        return
    server, security = _http_server(rec, host, port, allow_unauthenticated)
    server.run("streamable-http", host=host, port=port, transport_security=security)
