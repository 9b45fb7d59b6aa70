"""The MCP server wherever it binds, fair between clients, bounded per call (issue 20, rows 2, 3, 10).

The HTTP app is the one ``msrkit mcp --transport http`` serves (:func:`msrkit.mcp.server.http_app`),
driven in-process (Starlette's TestClient: nothing binds); the refusal to start beyond loopback
is the real command. Fairness, queues, deadlines and cancellation run through the SDK's in-memory
client against a scripted backend that takes 50 ms a call (msrkit's own logic, not a model).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import pytest
from agent_world import catalog, history, interactions

pytest.importorskip("mcp")
from mcp import Client  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from msrkit.backends.fake import FakeBackend  # noqa: E402
from msrkit.data import Item  # noqa: E402
from msrkit.errors import ConfigError  # noqa: E402
from msrkit.inputs.io import Interaction  # noqa: E402
from msrkit.mcp.security import client_message  # noqa: E402
from msrkit.mcp.server import build_server, http_app  # noqa: E402
from msrkit.recommender import Recommender  # noqa: E402

pytestmark = pytest.mark.timeout(120)
TOKEN = "test-token-4f9a2c71"  # noqa: S105 - a test's own token
#: the wildcard address the app is built for; nothing binds it (the app is driven in-process)
ANY = "0.0.0.0"  # noqa: S104
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
        "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


# --------------------------------------------------------------------------- exposure


@pytest.mark.parametrize("host", [ANY, "::"])
def test_beyond_loopback_without_a_token_the_command_exits_4_with_one_line(tmp_path: Path, host: str) -> None:
    done = clirun.msrkit("mcp", "--transport", "http", "--host", host, "--backend", "none", "--no-cache", timeout=60)
    assert done.returncode == 4 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: refusing to serve MCP on {host} (beyond loopback) "
                                                   "without authentication: give --token")  # fmt: skip


class _App:
    """The app under Starlette's TestClient (its lifespan started once); ``status(**headers)`` of an initialize."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app, base_url="http://127.0.0.1:8765")

    def __enter__(self) -> _App:
        self.client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def status(self, **headers: str) -> int:
        return int(self.client.post("/mcp", json=INIT, headers={**HEADERS, **headers}).status_code)


@pytest.fixture
def rec() -> Iterator[Recommender]:
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False, mcp_token=TOKEN) as r:
        yield r


def test_with_a_token_no_token_is_401_a_foreign_host_421_a_foreign_origin_403(rec: Recommender) -> None:
    good = {"host": "127.0.0.1:8765", "authorization": f"Bearer {TOKEN}"}
    with _App(http_app(rec, host=ANY, port=8765)) as app:
        assert app.status(**good) == 200
        assert app.status(host="127.0.0.1:8765") == 401
        assert app.status(host="127.0.0.1:8765", authorization="Bearer wrong-token-000") == 401
        assert app.status(**{**good, "host": "evil.example"}) == 421
        assert app.status(**{**good, "host": "evil.example:8765"}) == 421
        assert app.status(**good, origin="http://evil.example") == 403
        assert app.status(**good, origin="http://127.0.0.1:8765") == 200


def test_allowed_hosts_and_origins_extend_the_list(tmp_path: Path) -> None:
    with Recommender("none", catalog=catalog(), cache=False, mcp_token=TOKEN, mcp_allowed_hosts=["recs.example"],
                     mcp_allowed_origins=["https://app.example"]) as r:  # fmt: skip
        auth = {"authorization": f"Bearer {TOKEN}"}
        with _App(http_app(r, host=ANY, port=8765)) as app:
            assert app.status(host="recs.example:8765", **auth) == 200
            assert app.status(host="recs.example:8765", origin="https://recs.example:8765", **auth) == 200
            assert app.status(host="recs.example", origin="https://app.example", **auth) == 200
            assert app.status(host="other.example", **auth) == 421


def test_another_loopback_address_is_guarded_too_and_unauthenticated_needs_saying_so() -> None:
    with Recommender("none", catalog=catalog(), cache=False) as r:
        with _App(http_app(r, host="127.0.0.2", port=8765)) as app:  # loopback: no token, Host/Origin still checked
            assert app.status(host="127.0.0.2:8765") == 200
            assert app.status(host="evil.example") == 421
            assert app.status(host="127.0.0.2:8765", origin="http://evil.example") == 403
        with pytest.raises(ConfigError, match="refusing to serve MCP on 0.0.0.0"):
            http_app(r, host=ANY, port=8765)
        with _App(http_app(r, host=ANY, port=8765, allow_unauthenticated=True)) as app:
            assert app.status(host="127.0.0.1:8765") == 200
            assert app.status(host="evil.example") == 421


def test_errors_to_clients_carry_no_server_paths_or_addresses(tmp_path: Path) -> None:
    text = client_message(f"{tmp_path}/items.jsonl:3: image file '/srv/img/a.png' points to (10.1.2.3: private) "
                          "or fe80::1; took 12:30:00")  # fmt: skip
    assert str(tmp_path) not in text and "/srv/img" not in text and "10.1.2.3" not in text and "fe80" not in text
    assert text == "<path> image file '<path>' points to (<address>: private) or <address>; took 12:30:00"
    inside = tmp_path / "img"
    inside.mkdir()
    with Recommender("none", catalog=catalog(), cache=False, image_roots=[inside]) as r:
        outside = {"history": [{"item_id": "x", "image": str(tmp_path / "secret.png")}], "candidates": ["1", "2"]}
        (result,) = _calls(build_server(r), ("recommend", {"history": outside}))
    assert result.is_error and "outside the folders images may be read from" in result.content[0].text
    assert str(tmp_path) not in result.content[0].text


# --------------------------------------------------------------------------- schemas and caps


def _calls(server: Any, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
    async def go() -> list[Any]:
        async with Client(server) as client:
            return [await client.call_tool(name, args) for name, args in calls]

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("tool", "args", "field", "why"),
    [
        ("recommend", {"history": history(), "top_k": -1}, "top_k", "greater than or equal to 1"),
        ("rerank", {"history": history(), "top_k": 0}, "top_k", "greater than or equal to 1"),
        ("similar_users", {"item_ids": ["1"], "k": -1}, "k", "greater than or equal to 1"),
        ("search_catalog", {"query": "space", "limit": 1000}, "limit", "less than or equal to 100"),
        ("recommend", {"history": {"history": 5, "candidates": ["1"]}}, "history.history", "a valid list"),
        ("recommend", {"history": "u0 likes sci-fi"}, "history", "valid dictionary"),
        ("summarize_items", {"item_ids": [str(n) for n in range(101)]}, "item_ids", "at most 100 items"),
        ("recommend", {"history": {"history": ["1"], "candidates": [str(n) for n in range(201)]}},
         "history.candidates", "at most 200 items"),
        ("recommend", {"history": {"history": ["1"] * 201}}, "history.history", "at most 200 items"),
    ],
)  # fmt: skip
def test_a_bad_shape_or_a_value_past_a_cap_is_a_schema_error_naming_the_field(
    tool: str, args: dict[str, Any], field: str, why: str
) -> None:
    with Recommender("none", catalog=catalog(), interactions=interactions(), cache=False) as r:
        (result,) = _calls(build_server(r), (tool, args))
    text = result.content[0].text
    assert result.is_error and f"\n{field}\n" in text and why in text, text


# --------------------------------------------------------------------------- fairness and bounds

BIG = {f"i{n}": Item(item_id=f"i{n}", title=f"Title number {n} space") for n in range(120)}
ROWS = [Interaction(f"u{n % 12}", f"i{n}", float(n)) for n in range(120)]


def _slow(request: Any) -> str:
    time.sleep(0.05)
    return "alpha, beta"


def _slow_rec(**options: Any) -> Recommender:
    fake = FakeBackend(default=_slow)
    rec = Recommender(fake, catalog=BIG, interactions=ROWS, cache=False, **options)
    rec.fake = fake  # type: ignore[attr-defined]
    return rec


def test_one_clients_summaries_do_not_hold_up_another_and_leaving_cancels_them() -> None:
    with _slow_rec() as rec:
        server = build_server(rec)

        async def go() -> tuple[float, int, int]:
            async with Client(server) as a, Client(server) as b:
                job = asyncio.create_task(a.call_tool("summarize_items", {"item_ids": list(BIG)[:100]}))  # ~5 s
                await asyncio.sleep(0.5)
                start = time.monotonic()
                found = await b.call_tool("search_catalog", {"query": "space", "limit": 3})
                waited = time.monotonic() - start
                assert not found.is_error
                job.cancel()
                at_cancel = rec.fake.calls  # type: ignore[attr-defined]
                await asyncio.gather(job, return_exceptions=True)
            await asyncio.sleep(1.0)
            return waited, at_cancel, rec.fake.calls  # type: ignore[attr-defined]

        waited, at_cancel, later = asyncio.run(go())
    assert waited < 1.0  # was the whole of A's summaries (43.5 s in the issue)
    assert 0 < at_cancel < 60 and later - at_cancel <= 1  # at most the call under way finishes


def test_a_session_may_queue_only_so_many_calls_and_each_call_has_a_deadline() -> None:
    with _slow_rec(mcp_session_queue=2, mcp_tool_deadline=1.0) as rec:
        server = build_server(rec)

        async def go() -> tuple[list[Any], float]:
            async with Client(server) as client:
                start = time.monotonic()
                calls = [client.call_tool("summarize_items", {"item_ids": list(BIG)[n * 40 : n * 40 + 40]})
                         for n in range(3)]  # fmt: skip
                results = await asyncio.gather(*calls)
                return results, time.monotonic() - start

        results, seconds = asyncio.run(go())
        calls = rec.fake.calls  # type: ignore[attr-defined]
    refused = [r for r in results if r.is_error]
    assert len(refused) == 1 and "already has 2 tool calls running or waiting" in refused[0].content[0].text
    done = [r for r in results if not r.is_error]
    assert seconds < 1.0 + 2.5 and calls < 2 * 40  # each call stopped at its 1 s deadline (40 items = 2 s)
    summaries = [s for r in done for s in r.structured_content["result"]]
    assert any(s["keywords"] is None for s in summaries) and any(s["keywords"] == ["alpha", "beta"] for s in summaries)


# --------------------------------------------------------------------------- the image policy


def test_mcp_summarize_items_honours_image_roots(tmp_path: Path) -> None:
    pil = pytest.importorskip("PIL.Image")
    inside, outside = tmp_path / "img", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    for folder in (inside, outside):
        pil.new("RGB", (8, 8), "red").save(folder / "a.png")
    items = {"in": Item(item_id="in", title="In", image=str(inside / "a.png")),
             "out": Item(item_id="out", title="Out", image=str(outside / "a.png"))}  # fmt: skip
    fake = FakeBackend(default=lambda request: "a red square")
    with Recommender(fake, catalog=items, cache=False, image_roots=[inside]) as r:
        (result,) = _calls(build_server(r), ("summarize_items", {"item_ids": ["in", "out"]}))
    assert not result.is_error
    with_images = [q for q in fake.requests if q.has_images]
    assert len(with_images) == 1  # only the image inside image_roots was read (both were, before)
    described = {s["item_id"]: s["image_description"] for s in result.structured_content["result"]}
    assert described == {"in": "a red square", "out": None}


def test_the_real_command_on_loopback_with_a_token_wants_it(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MSRKIT_", "OPENAI_", "OLLAMA_"))}
    env.update(PYTHONPATH=str(clirun.ROOT) + os.pathsep + env.get("PYTHONPATH", ""), MSRKIT_MCP_TOKEN=TOKEN)
    proc = subprocess.Popen([sys.executable, "-m", "msrkit.cli", "mcp", "--transport", "http", "--port", str(port),
                             "--backend", "none", "--no-cache"], cwd=clirun.ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                answer = httpx.post(url, json=INIT, headers=HEADERS, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.3)
        assert answer.status_code == 401
        ok = httpx.post(url, json=INIT, headers={**HEADERS, "authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert ok.status_code == 200
        assert httpx.post(url, json=INIT, headers={**HEADERS, "authorization": f"Bearer {TOKEN}",
                                                   "host": "evil.example"}, timeout=5).status_code == 421  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)
