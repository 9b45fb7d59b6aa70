"""msrkit's tools for other agents, over the Model Context Protocol (the official ``mcp`` SDK, ``msrkit[mcp]``).

::

    msrkit mcp --catalog items.jsonl --interactions interactions.jsonl             # stdio
    msrkit mcp --transport http --port 8765 --catalog items.jsonl ...              # streamable HTTP at /mcp

Tools (each answers JSON):

- ``recommend(history, message?, agent?, top_k?)``: a ranking for one user (the fixed pipeline, or the
  agent with ``agent=true``, where ``message`` is what the user said);
- ``rerank(history, top_k?)``: the given candidates, ranked (a permutation of them);
- ``similar_users(item_ids, k?)``: users whose history matches those items, and what they took next;
- ``search_catalog(query, limit?)``: catalog items by keywords (BM25 over item text);
- ``summarize_items(item_ids)``: keywords and image descriptions (the catalog store; made where missing).

The catalog, index, backend and cache come from the usual :class:`~msrkit.config.Settings`
(one :class:`~msrkit.recommender.Recommender` serves every call). A history is the
``history.json`` object; bare item ids resolve through the catalog. Image paths sent by a
client are confined by :func:`confine_local_images` (the ``image_roots`` setting). msrkit
errors come back as tool errors (``isError``) with their one-line message. The SDK is
imported here only, never by ``import msrkit``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import InputError, MissingDependencyError, MsrkitError

if TYPE_CHECKING:
    from .config import Settings
    from .recommender import Recommender

__all__ = ["build_server", "confine_local_images", "serve"]

T = TypeVar("T")

INSTRUCTIONS = (
    "msrkit recommends items a user will take next, from their history (oldest first). Give a history "
    "as {'user_id': ..., 'history': [item ids or items], 'candidates': [...]} (candidates optional for recommend)."
)


def _import_sdk() -> Any:
    try:
        from mcp.server.mcpserver import MCPServer
    except ImportError as exc:
        raise MissingDependencyError("mcp", "mcp", "the MCP server (msrkit mcp)") from exc
    return MCPServer


def confine_local_images(history: Mapping[str, Any], settings: Settings) -> None:
    """Image paths an MCP client sends: a client must not make the server read its files.

    With ``image_roots`` set, the Recommender's image policy (:class:`~msrkit.images.ImagePolicy`)
    confines local files to those folders when the history is loaded. Without it, every local path
    sent inline is refused here; ``data:`` URIs and http(s) URLs pass (under the same policy), and
    catalog items named by id keep the operator's own images.
    """
    if settings.image_roots is not None:
        return
    entries = [*(history.get("history") or []), *(history.get("candidates") or [])]
    for n, entry in enumerate(entries):
        image = entry.get("image") if isinstance(entry, Mapping) else None
        if image and not str(image).startswith(("data:", "http://", "https://")):
            why = "local image paths are not accepted from MCP clients (set image_roots to allow folders)"
            raise InputError(f"{why}: send a data: URI or an http(s) URL, or the item's catalog id",
                             path=f"items[{n}].image")  # fmt: skip


def _ranking(ranking: Any, top_k: int | None) -> dict[str, Any]:
    out: dict[str, Any] = ranking.model_dump(exclude={"diagnostics"})
    if top_k is not None:
        out["ranking"] = out["ranking"][:top_k]
    return out


class _Tools:
    """The tool functions over one Recommender (calls are serialised: a local model is not thread-safe)."""

    def __init__(self, rec: Recommender) -> None:
        self.rec = rec
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], T]) -> T:
        from mcp.server.mcpserver.exceptions import ToolError

        try:
            with self._lock:
                return fn()
        except MsrkitError as exc:
            raise ToolError(str(exc)) from None

    def recommend(self, history: dict[str, Any], message: str = "", agent: bool = False,
                  top_k: int = 10) -> dict[str, Any]:  # fmt: skip
        """Rank what this user takes next (the fixed pipeline, or the agent when ``agent`` is true)."""

        def run() -> dict[str, Any]:
            confine_local_images(history, self.rec.settings)
            ranking = self.rec.chat(history, message or None).ranking if agent else self.rec.rank(history)
            return _ranking(ranking, top_k)

        return self._call(run)

    def rerank(self, history: dict[str, Any], top_k: int | None = None) -> dict[str, Any]:
        """Rank the history's given ``candidates`` for this user: every one of them, best first."""

        def run() -> dict[str, Any]:
            confine_local_images(history, self.rec.settings)
            if not history.get("candidates"):
                raise InputError("rerank needs the 'candidates' to rank", path="candidates")
            return _ranking(self.rec.rank(history), top_k)

        return self._call(run)

    def similar_users(self, item_ids: list[str], k: int = 5) -> dict[str, Any]:
        """Users whose histories best match these items (BM25), and the items they took right after them."""
        from .retrieval import query

        def run() -> dict[str, Any]:
            hood = query(self._index(), item_ids, n=0, context_k=k)
            nexts = [{"user_id": u, "item_id": i, "title": self._title(i)} for u, i in hood.next_items]
            users = [{"user_id": u, "score": round(s, 4)} for u, s in hood.similar_users[:k]]
            return {"users": users, "next_items": nexts}

        return self._call(run)

    def search_catalog(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """Catalog items whose text (title, keywords, image description, genres) matches the query."""
        from .retrieval.search import search_items

        def run() -> list[dict[str, Any]]:
            hits = search_items(self._index(), query, k=max(1, min(limit, 100)))
            return [{"item_id": i, "title": self._title(i), "score": round(s, 4)} for i, s in hits]

        return self._call(run)

    def summarize_items(self, item_ids: list[str]) -> list[dict[str, Any]]:
        """Each item's keywords and image description (from the catalog store; summarized now where missing)."""
        return self._call(lambda: self._summaries(item_ids))

    def _summaries(self, item_ids: list[str]) -> list[dict[str, Any]]:
        from .summaries import ItemSummarizer

        missing = [i for i in item_ids if i not in self.rec.catalog]
        if missing:
            raise InputError(f"unknown item id(s) {missing[:5]}: not in the catalog")
        items = [self.rec.catalog[i] for i in item_ids]
        if self.rec.store is not None:
            enriched = self.rec.store.enrich({i.item_id: i for i in items})
            items = [enriched[i.item_id] for i in items]
        if self.rec.backend is not None and any(i.keywords is None for i in items):
            summarizer = ItemSummarizer(self.rec.backend, prompts=self.rec.prompts, store=self.rec.store,
                                        vision_backend=self.rec.vision_backend)  # fmt: skip
            items = summarizer.summarize(items)
        keys = ("item_id", "title", "keywords", "image_description")
        return [{k: getattr(i, k) for k in keys} for i in items]

    def _index(self) -> Any:
        if self.rec.index is None:
            raise InputError("the server has no collaborative index: start it with --interactions or --index")
        return self.rec.index

    def _title(self, item_id: str) -> str | None:
        item = self.rec.catalog.get(item_id)
        return item.title if item is not None else None


def build_server(rec: Recommender) -> Any:
    """An ``MCPServer`` exposing msrkit's tools over ``rec`` (its catalog, index, backend, cache)."""
    server_cls = _import_sdk()
    server = server_cls("msrkit", instructions=INSTRUCTIONS)
    tools = _Tools(rec)
    for fn in (tools.recommend, tools.rerank, tools.similar_users, tools.search_catalog, tools.summarize_items):
        server.add_tool(fn, name=fn.__name__)
    return server


def serve(rec: Recommender, *, transport: str = "stdio", host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until stopped: ``stdio`` (for a client that starts msrkit) or ``http`` (streamable HTTP at ``/mcp``)."""
    server = build_server(rec)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)
