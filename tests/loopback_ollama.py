"""A loopback server that speaks Ollama's native API and answers from a real llama.cpp model.

No Ollama server can be installed on the machines these tests run on, so this
small threaded ``http.server`` on ``127.0.0.1`` speaks enough of Ollama's
protocol for the real ``ollama`` Python client:

- ``POST /api/chat``: non-streaming JSON, or NDJSON chunks when the body says
  ``"stream": true``; ``options.temperature / seed / num_predict / stop``,
  ``format`` (``"json"`` or a JSON schema), ``logprobs`` / ``top_logprobs`` and
  base64 ``images`` (recorded; the text-only model does not see them);
- ``GET /api/tags``, ``POST /api/show`` (``capabilities: ["completion"]``),
  ``GET /api/version``;
- ``404 {"error": "model 'x' not found"}`` for any other model name.

Answers come from the REAL embedded model through
``llama_cpp.Llama.create_chat_completion``. It proves the msrkit -> ollama
client -> HTTP -> model path end to end with a real model; it does not prove
anything about Ollama itself. Every request body is recorded in
:attr:`LoopbackOllama.requests` so tests can check what the client sent.

    with LoopbackOllama(model_path) as server:
        OllamaBackend(server.model, host=server.url).chat(...)
        server.requests[-1].body["options"]
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["LoopbackOllama", "Seen", "MODEL_NAME"]

MODEL_NAME = "smollm2:135m"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: dict[str, Any]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Ollama messages as llama-cpp-python chat messages (images dropped: the model is text-only)."""
    return [{"role": m.get("role", "user"), "content": m.get("content") or ""} for m in body.get("messages", [])]


def _completion_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    options = body.get("options") or {}
    kwargs: dict[str, Any] = {
        "temperature": float(options.get("temperature", 0.8)),
        "max_tokens": int(options.get("num_predict", 128)),
    }
    if options.get("seed") is not None:
        kwargs["seed"] = int(options["seed"])
    if options.get("stop"):
        kwargs["stop"] = list(options["stop"])
    fmt = body.get("format")
    if fmt == "json":
        kwargs["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        kwargs["response_format"] = {"type": "json_object", "schema": fmt}
    if body.get("logprobs"):
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = int(body.get("top_logprobs") or 1)
    return kwargs


def _ollama_logprobs(logprobs: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    if not logprobs or not logprobs.get("content"):
        return None
    return [
        {
            "token": e["token"],
            "logprob": float(e["logprob"]),
            "top_logprobs": [
                {"token": a["token"], "logprob": float(a["logprob"])} for a in e.get("top_logprobs") or []
            ],
        }
        for e in logprobs["content"]
    ]


class LoopbackOllama:
    """Ollama's ``/api/chat`` on ``127.0.0.1:<free port>``, answered by ``llama_cpp.Llama``."""

    def __init__(self, model_path: str | Path, *, model: str = MODEL_NAME, n_ctx: int = 2048, n_threads: int = 1):
        import llama_cpp

        from msrkit.backends.llamacpp_amx import guard_amx

        guard_amx()  # as msrkit's own llamacpp backend loads models (AMX kernels can crash)
        self.model = model
        # logits_all: Ollama clients may ask for logprobs, which llama-cpp-python only gives with it.
        self._llama = llama_cpp.Llama(
            str(model_path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            logits_all=True,
            verbose=False,
            seed=0,
        )
        self._llama_lock = threading.Lock()
        self.requests: list[Seen] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-ollama", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LoopbackOllama:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._llama.close()

    # ------------------------------------------------------------------ answers

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter_ns()
        with self._llama_lock:
            raw = self._llama.create_chat_completion(_messages(body), **_completion_kwargs(body))
        choice = raw["choices"][0]
        answer: dict[str, Any] = {
            "model": self.model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": choice["message"].get("content") or ""},
            "done": True,
            "done_reason": choice.get("finish_reason") or "stop",
            "total_duration": time.perf_counter_ns() - started,
            "load_duration": 0,
            "prompt_eval_count": raw["usage"]["prompt_tokens"],
            "eval_count": raw["usage"]["completion_tokens"],
        }
        logprobs = _ollama_logprobs(choice.get("logprobs"))
        if logprobs is not None:
            answer["logprobs"] = logprobs
        return answer

    def tags(self) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": self.model,
                    "model": self.model,
                    "modified_at": _now(),
                    "size": 0,
                    "digest": "0" * 64,
                    "details": {"format": "gguf", "family": "llama", "parameter_size": "135M"},
                }
            ]
        }

    def show(self) -> dict[str, Any]:
        return {
            "modelfile": "",
            "template": "",
            "details": {"format": "gguf", "family": "llama", "parameter_size": "135M"},
            "model_info": {"general.architecture": "llama"},
            "capabilities": ["completion"],
            "modified_at": _now(),
        }

    # ------------------------------------------------------------------ HTTP

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict[str, Any]:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw.decode("utf-8")) if raw else {}
                server.requests.append(Seen(self.command, self.path, body))
                return body

            def _known(self, body: dict[str, Any]) -> bool:
                name = body.get("model") or body.get("name") or ""
                if name in (server.model, server.model.split(":")[0]):
                    return True
                self._send(404, {"error": f"model '{name}' not found"})
                return False

            def do_GET(self) -> None:  # noqa: N802
                server.requests.append(Seen("GET", self.path, {}))
                if self.path == "/api/tags":
                    self._send(200, server.tags())
                elif self.path == "/api/version":
                    self._send(200, {"version": "0.12.11-loopback"})
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                try:
                    body = self._body()
                except (ValueError, UnicodeDecodeError) as exc:
                    self._send(400, {"error": f"invalid JSON: {exc}"})
                    return
                if self.path == "/api/show":
                    if self._known(body):
                        self._send(200, server.show())
                elif self.path == "/api/chat":
                    if self._known(body):
                        self._chat(body)
                else:
                    self._send(404, {"error": f"no route {self.path}"})

            def _chat(self, body: dict[str, Any]) -> None:
                try:
                    answer = server.chat(body)
                except ValueError as exc:  # llama-cpp-python's error for a prompt longer than the context
                    self._send(400, {"error": str(exc)})
                    return
                if body.get("stream", True) is False:
                    self._send(200, answer)
                    return
                # Streaming: one chunk with the text, then the final chunk with the counts (NDJSON, chunked).
                first = {
                    "model": server.model,
                    "created_at": answer["created_at"],
                    "message": answer["message"],
                    "done": False,
                }
                last = {**answer, "message": {"role": "assistant", "content": ""}}
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for chunk in (first, last):
                    line = (json.dumps(chunk) + "\n").encode("utf-8")
                    self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

        return Handler
