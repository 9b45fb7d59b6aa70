"""A loopback HTTP server that speaks OpenAI's ``/v1/chat/completions`` and fails on cue.

    with FaultServer() as server:
        server.enqueue(rate_limited(retry_after=1), ok("[2] > [1]"))
        Recommender(backend="openai/x", base_url=server.url, api_key="sk-test", cache=False).rank(...)
        assert len(server.requests) == 2

Each POST takes the next scripted :class:`Reply` whose ``match`` text occurs in
the request's last message (``None`` matches all); with none left, the
standing reply of :meth:`FaultServer.always` if one is set, else the default
answers: the numbered candidates ``[n]`` in the order they were given, or a
short summary for other prompts. Every request is recorded (path, headers,
JSON body, time). Only ``127.0.0.1`` on a free port; a hang or a trickle is a
bounded wait (``max_hang``) that :meth:`FaultServer.close` cuts short, so no
test can outlive it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FaultServer",
    "Reply",
    "Seen",
    "ok",
    "rate_limited",
    "server_error",
    "hang",
    "drop_mid_body",
    "malformed_json",
    "empty_content",
    "status",
    "echo_order",
    "trickle",
    "insufficient_quota",
    "no_choices",
    "tool_calls",
    "open_sockets",
    "SlowImageServer",
    "StaticServer",
]

MAX_HANG = 5.0


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out or a dropped connection is the point of the test, not noise


@dataclass
class Reply:
    """One scripted answer. ``content`` goes into an OpenAI-shaped body unless ``raw`` is given."""

    status: int = 200
    content: str | None = "ok"
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    match: str | None = None
    trickle: float = 0.0  # seconds between the body's bytes (headers are sent at once)


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float

    @property
    def prompt(self) -> str:
        messages = self.body.get("messages") or [{}]
        content = messages[-1].get("content", "")
        if isinstance(content, list):
            return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)


def ok(content: str, **kw: Any) -> Reply:
    return Reply(200, content, **kw)


def rate_limited(retry_after: float | str | None = 1, *, retry_after_ms: float | str | None = None, **kw: Any) -> Reply:
    body = {"error": {"message": "Rate limit reached, slow down", "type": "rate_limit_error", "code": "rate_limit"}}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    if retry_after_ms is not None:
        headers["retry-after-ms"] = str(retry_after_ms)
    return Reply(429, None, json.dumps(body).encode(), headers, **kw)


def insufficient_quota(**kw: Any) -> Reply:
    """OpenAI's answer to an account without credit: a 429 that no wait fixes (told by ``code``, not the text)."""
    body = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                      "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}  # fmt: skip
    return Reply(429, None, json.dumps(body).encode(), {"Retry-After": "1"}, **kw)


def no_choices(**kw: Any) -> Reply:
    """A 200 whose body is JSON but has no ``choices`` (not a chat completion)."""
    return Reply(200, None, json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode(), **kw)


def tool_calls(*calls: tuple[str, str], **kw: Any) -> Reply:
    """An assistant message of tool calls ``(name, arguments as JSON text)``, in the OpenAI wire form."""
    wire = [{"id": f"c{n}", "type": "function", "function": {"name": name, "arguments": args}}
            for n, (name, args) in enumerate(calls)]  # fmt: skip
    message = {"role": "assistant", "content": None, "tool_calls": wire}
    body = {"id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": "x",
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}  # fmt: skip
    return Reply(200, None, json.dumps(body).encode(), **kw)


def trickle(interval: float = 1.0, content: str = "[1]", **kw: Any) -> Reply:
    """A correct answer, its body sent one byte every ``interval`` seconds (a per-read timeout never trips)."""
    return Reply(200, content, trickle=interval, **kw)


def status(code: int, message: str = "the server failed", **kw: Any) -> Reply:
    body = {"error": {"message": message, "type": "server_error" if code >= 500 else "invalid_request_error"}}
    return Reply(code, None, json.dumps(body).encode(), **kw)


def server_error(code: int = 500, **kw: Any) -> Reply:
    return status(code, **kw)


def hang(seconds: float, **kw: Any) -> Reply:
    """Answer (correctly) only after ``seconds`` (at most the server's ``max_hang``): past a client's limit, a hang."""
    return Reply(200, "[1]", delay=seconds, **kw)


def drop_mid_body(**kw: Any) -> Reply:
    """Promise a long body, send a piece, close the connection."""
    return Reply(200, None, b'{"id": "chatcmpl-x", "object": "chat.comp', drop=True, **kw)


def malformed_json(**kw: Any) -> Reply:
    return Reply(200, None, b'{"id": "chatcmpl-x", "choices": [{"message": {"content": "[1] > [2]"', **kw)


def empty_content(**kw: Any) -> Reply:
    return Reply(200, "", **kw)


def echo_order(prompt: str) -> str:
    """The default model: candidates in the order given (``[1] > [2] > ...``), else a summary line."""
    numbers = re.findall(r"^\[(\d+)\]", prompt, flags=re.M)
    return " > ".join(f"[{n}]" for n in numbers) if numbers else "likes: things"


def completion(content: str, model: str = "x") -> dict[str, Any]:
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class FaultServer:
    """An OpenAI-compatible server on ``127.0.0.1`` whose replies a test scripts one by one."""

    def __init__(self, *, default: Callable[[str], str] = echo_order, max_hang: float = MAX_HANG) -> None:
        self.default = default
        self.max_hang = max_hang
        self.requests: list[Seen] = []
        self._script: list[Reply] = []
        self._always: Reply | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The ``base_url`` to give an OpenAI client (ends in ``/v1``)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def enqueue(self, *replies: Reply, match: str | None = None) -> FaultServer:
        """Script the next replies (for requests whose last message contains ``match``, if given)."""
        with self._lock:
            for reply in replies:
                if match is not None:
                    reply.match = match
                self._script.append(reply)
        return self

    def always(self, reply: Reply | None) -> FaultServer:
        """Answer every request not scripted otherwise with ``reply`` (``None``: the default model again)."""
        with self._lock:
            self._always = reply
        return self

    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            for i, reply in enumerate(self._script):
                if reply.match is None or reply.match in seen.prompt:
                    return self._script.pop(i)
            if self._always is not None:
                return dataclasses.replace(self._always)
        return Reply(200, self.default(seen.prompt))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                self._send(200, json.dumps({"object": "list", "data": [{"id": "x", "object": "model"}]}).encode())

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                reply = server._next(seen)
                if reply.delay and server._closing.wait(min(reply.delay, server.max_hang)):
                    return
                payload = reply.raw
                if payload is None:
                    payload = json.dumps(completion(reply.content or "", str(body.get("model", "x")))).encode()
                if reply.drop:
                    self._drop(payload)
                elif reply.trickle:
                    self._trickle(payload, reply.trickle)
                else:
                    self._send(reply.status, payload, reply.headers)

            def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def _trickle(self, payload: bytes, interval: float) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.flush()
                ends = time.monotonic() + server.max_hang
                for i in range(len(payload)):
                    if server._closing.wait(interval) or time.monotonic() > ends:
                        break
                    try:
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                    except OSError:
                        break
                self.close_connection = True

            def _drop(self, piece: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(piece) + 4096))
                self.end_headers()
                self.wfile.write(piece)
                self.wfile.flush()
                self.close_connection = True
                self.connection.close()

        return Handler

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class SlowImageServer:
    """An image server on ``127.0.0.1`` that sends one byte every ``interval`` seconds: every read succeeds,
    so only a total time limit ends the download (:meth:`close` ends it too)."""

    def __init__(self, interval: float = 0.5) -> None:
        stop = self._stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", "1000000")
                self.end_headers()
                while not stop.wait(interval):
                    try:
                        self.wfile.write(b"\xff")
                        self.wfile.flush()
                    except OSError:
                        return

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/poster.jpg"

    def __enter__(self) -> SlowImageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class StaticServer:
    """Fixed answers by path on ``127.0.0.1``: ``routes`` maps a path to ``(status, headers, body)``
    (anything else is a 404); ``hosts`` records each request's ``Host`` header."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None) -> None:
        self.routes = dict(routes or {})
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                server.hosts.append(self.headers.get("Host", ""))
                code, headers, body = server.routes.get(self.path) or (404, {}, b"")
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (paths are added to it)."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def open_sockets() -> int:
    """How many sockets this process holds open (Linux: through ``/proc/self/fd``)."""
    import os

    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count
