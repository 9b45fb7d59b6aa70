"""The loopback model the benchmarks call: an OpenAI-compatible chat server in its own process.

Each ``POST .../chat/completions`` is answered after a fixed ``latency`` (a stand-in for
model time): a ranking prompt (lines ``[n] ...``) gets its candidates in reverse order,
anything else the keywords ``space, robots, comedy``. ``GET /stats`` returns what the
server saw since the previous ``GET`` (``peak``: the most requests in flight at once,
``n``: requests, ``first``/``last``: wall-clock times of the first start and the last
end), then resets it.

    proc, url = start(latency=0.05)   # url: http://127.0.0.1:PORT/v1
    ...
    seen = stats(url)
    proc.terminate()
"""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEYWORDS = "space, robots, comedy"


def serve(latency: float, port_out: Any, queue_size: int = 256) -> None:
    """Run the server (blocks); its port goes into the queue ``port_out``."""
    state: dict[str, float] = {"now": 0, "peak": 0, "n": 0, "first": 0.0, "last": 0.0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - what the server saw since the last GET, then reset
            with lock:
                payload = json.dumps(state).encode()
                state.update(peak=0, n=0, first=0.0, last=0.0)
            self._send(payload)

        def do_POST(self) -> None:  # noqa: N802
            with lock:
                state["now"] += 1
                state["n"] += 1
                state["peak"] = max(state["peak"], state["now"])
                state["first"] = state["first"] or time.time()
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                time.sleep(latency)
            finally:
                with lock:
                    state["now"] -= 1
                    state["last"] = time.time()
            prompt = body["messages"][-1]["content"]
            prompt = prompt if isinstance(prompt, str) else " ".join(p.get("text", "") for p in prompt)
            numbers = re.findall(r"^\[(\d+)\]", prompt, flags=re.M)
            answer = " > ".join(f"[{n}]" for n in reversed(numbers)) or KEYWORDS
            self._send(json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "x",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66},
            }).encode())  # fmt: skip

        def _send(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = queue_size

    server = Server(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


def start(latency: float, *, queue_size: int = 256) -> tuple[multiprocessing.Process, str]:
    """Start the server in its own process; returns the process and the base URL (``.../v1``)."""
    ports: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(latency, ports, queue_size), daemon=True)
    proc.start()
    return proc, f"http://127.0.0.1:{ports.get(timeout=10)}/v1"


def stats(url: str) -> dict[str, float]:
    """What the server at ``url`` saw since the last call (see the module docstring), then reset."""
    with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as resp:  # noqa: S310 (loopback)
        return dict(json.loads(resp.read()))
