"""``msrkit mcp``: the tools over the Model Context Protocol, through the official SDK's clients.

In memory (the SDK's in-process client against :func:`msrkit.mcp.server.build_server`), then the real
command as a subprocess over stdio and over streamable HTTP. The backend is ``none`` (retrieval only):
these tests prove the protocol and the tools' contracts, not a model.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_world import catalog, history, interactions

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters  # noqa: E402

from msrkit.mcp.server import build_server  # noqa: E402
from msrkit.recommender import Recommender  # noqa: E402

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parent.parent
TOOLS = ["recommend", "rerank", "similar_users", "search_catalog", "summarize_items"]


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False) as rec:
        yield build_server(rec)


def _calls(target: Any, *calls: tuple[str, dict[str, Any]]) -> tuple[list[str], list[Any]]:
    async def go() -> tuple[list[str], list[Any]]:
        async with Client(target) as client:
            listed = await client.list_tools()
            return [t.name for t in listed.tools], [await client.call_tool(n, a) for n, a in calls]

    return asyncio.run(go())


def _json(result: Any) -> Any:
    assert not result.is_error, result.content
    return result.structured_content.get("result", result.structured_content)


def test_in_memory_client_lists_and_calls_every_tool(server: Any) -> None:
    names, (search, users, ranked, summaries) = _calls(
        server, ("search_catalog", {"query": "romance comedy", "limit": 3}),
        ("similar_users", {"item_ids": ["1", "3"], "k": 2}), ("recommend", {"history": history(), "top_k": 3}),
        ("summarize_items", {"item_ids": ["6"]}),
    )  # fmt: skip
    assert names == TOOLS
    assert [h["item_id"] for h in _json(search)][:2] == ["6", "7"]
    found = _json(users)
    assert [u["user_id"] for u in found["users"]] and all(n["item_id"] not in ("1", "3") for n in found["next_items"])
    ranking = _json(ranked)
    assert len(ranking["ranking"]) == 3 and ranking["backend"] == "none"
    assert set(r["item_id"] for r in ranking["ranking"]) <= set(history()["candidates"])
    assert _json(summaries) == [{"item_id": "6", "title": "Office Party", "keywords": None, "image_description": None}]


def test_rerank_keeps_every_candidate_and_errors_are_tool_errors(server: Any) -> None:
    given = history()
    _, (ranked, missing, unknown, local_image) = _calls(
        server, ("rerank", {"history": given}), ("rerank", {"history": {"user_id": "u", "history": ["1"]}}),
        ("summarize_items", {"item_ids": ["404"]}),
        ("recommend", {"history": {"history": [{"item_id": "x", "image": "/etc/passwd"}], "candidates": ["1", "2"]}}),
    )  # fmt: skip
    assert sorted(r["item_id"] for r in _json(ranked)["ranking"]) == sorted(given["candidates"])
    assert missing.is_error and "rerank needs the 'candidates'" in missing.content[0].text
    assert unknown.is_error and "unknown item id(s) ['404']" in unknown.content[0].text
    assert local_image.is_error and "local image paths are not accepted" in local_image.content[0].text


@pytest.fixture
def world(tmp_path: Path) -> Path:
    (tmp_path / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in catalog().values()))
    rows = [{"user_id": r.user_id, "item_id": r.item_id, "timestamp": r.timestamp} for r in interactions()]
    (tmp_path / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def _args(world: Path) -> list[str]:
    return ["-m", "msrkit.cli", "mcp", "--backend", "none", "--no-cache", "--catalog", str(world / "items.jsonl"),
            "--interactions", str(world / "interactions.jsonl")]  # fmt: skip


def test_msrkit_mcp_over_stdio_as_a_subprocess(world: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=_args(world), env=dict(os.environ), cwd=str(ROOT))
    names, (search, ranked) = _calls(params, ("search_catalog", {"query": "space"}),
                                     ("rerank", {"history": history(), "top_k": 2}))  # fmt: skip
    assert names == TOOLS
    assert {h["item_id"] for h in _json(search)} and all(h["score"] > 0 for h in _json(search))
    assert len(_json(ranked)["ranking"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_msrkit_mcp_over_streamable_http(world: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, *_args(world), "--transport", "http", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        names, (search,) = _calls(f"http://127.0.0.1:{port}/mcp", ("search_catalog", {"query": "horror"}))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert names == TOOLS and [h["item_id"] for h in _json(search)][0] in ("8", "9")


def test_with_image_roots_local_images_are_confined_to_them(tmp_path: Path) -> None:
    inside = tmp_path / "img"
    inside.mkdir()
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False,
                     image_roots=[inside]) as rec:  # fmt: skip
        _, (outside,) = _calls(
            build_server(rec),
            (
                "recommend",
                {
                    "history": {
                        "history": [{"item_id": "x", "image": str(tmp_path / "secret.png")}],
                        "candidates": ["1", "2"],
                    }
                },
            ),
        )
    assert outside.is_error and "outside the folders images may be read from" in outside.content[0].text
