"""API keys never reach the cache, the logs, error messages or results.

A sentinel key is planted (through ``api_key=`` and through ``OPENAI_API_KEY``),
a full pipeline runs against the loopback :mod:`faultserver` with caching on
and every logger (msrkit, openai, httpx, httpcore) captured at DEBUG, through
good answers and error paths (5xx with retries, 401, timeouts, refused
connections). Then every byte of the cache folder, every log record, every
exception (with its causes) and every Ranking's JSON is searched for the key.
The server must have received the key, or its absence would prove nothing.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultserver import FaultServer, hang, server_error, status

import msrkit.backends.stack as stack_module
from msrkit.backends.retry import RetryingBackend
from msrkit.errors import BackendError, BackendPermanentError, MsrkitError
from msrkit.recommender import Recommender, Stages

pytestmark = pytest.mark.timeout(60)

pytest.importorskip("msrkit.backends.openai", reason="msrkit/backends/openai.py not written yet")
pytest.importorskip("msrkit.ranking", reason="msrkit/rerank.py not written yet")

LOGGERS = ("msrkit", "openai", "httpx", "httpcore", "")


class FastRetry(RetryingBackend):
    def __init__(self, inner: Any, **kw: Any) -> None:
        super().__init__(inner, **{**kw, "initial": 0.01, "max_wait": 0.1, "jitter": 0.0})


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> pytest.LogCaptureFixture:
    monkeypatch.setenv("OPENAI_LOG", "debug")
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def sentinel() -> str:
    return f"sk-SENTINEL-{uuid.uuid4().hex}"


def history(n: int = 4) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "history": [{"item_id": f"H{i}", "title": f"seen {i}", "description": "a film"} for i in range(4)],
        "candidates": [{"item_id": f"C{i}", "title": f"movie {i}"} for i in range(1, n + 1)],
    }


def recommender(url: str, cache_dir: Path, *, api_key: str | None, **kw: Any) -> Recommender:
    return Recommender(
        backend="openai/x", base_url=url, api_key=api_key, cache=cache_dir, retries=2, retry_max_seconds=5.0,
        backend_options={"timeout": 0.5}, **kw,
    )  # fmt: skip


def _exception_text(exc: BaseException) -> str:
    """The message, repr, attributes and the chain a traceback shows (a context hidden by ``from None`` is not)."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        parts += [str(cur), repr(cur), repr(vars(cur)) if hasattr(cur, "__dict__") else ""]
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return "\n".join(parts)


def _cache_bytes(cache_dir: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in sorted(cache_dir.rglob("*")) if p.is_file()]


def assert_absent(secret: str, *, cache_dir: Path, logs: pytest.LogCaptureFixture, texts: list[str]) -> None:
    needles = [secret.encode(), secret.removeprefix("sk-SENTINEL-").encode()]
    files = _cache_bytes(cache_dir)
    assert files, "the cache was not written: the scan would prove nothing"
    for path, data in files:
        for needle in needles:
            assert needle not in data, f"API key found in cache file {path}"
    log_text = "\n".join(f"{r.name} {r.levelname} {r.getMessage()} {r.args!r}" for r in logs.records)
    for needle in needles:
        assert needle.decode() not in log_text, "API key found in a log record"
        for text in texts:
            assert needle.decode() not in text, f"API key found in: {text[:200]}"


def _rank_through_faults(rec: Recommender, server: FaultServer) -> list[str]:
    """A good rank, a rank whose rerank fails (degraded), then strict failures; returns what a user sees."""
    seen: list[str] = [rec.rank(history()).model_dump_json()]
    seen.append(rec.rank(history()).model_dump_json())  # the same again: served from the cache
    server.enqueue(*(server_error(503) for _ in range(3)), match="movie 5")
    seen.append(rec.rank(history(5)).model_dump_json())
    return seen


def test_explicit_api_key_never_leaks(server: FaultServer, tmp_path: Path, debug_logs: Any) -> None:
    key = sentinel()
    cache_dir = tmp_path / "cache"
    texts: list[str] = []
    with recommender(server.url, cache_dir, api_key=key) as rec:
        texts += _rank_through_faults(rec, server)
        texts.append(repr(rec.backend) + repr(rec.backend.identity() if rec.backend else None))
        strict = Recommender(backend=rec.backend, cache=False, strict=True, retries=0,
                             stages=Stages(item_summaries=False, preference_summary=False))  # fmt: skip
        for fault in (status(401, "Incorrect API key provided"), *(server_error(500) for _ in range(3))):
            server.enqueue(fault)
        for _ in range(2):
            with pytest.raises(BackendError) as info:
                strict.rank(history(6))
            texts.append(_exception_text(info.value))
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests), "key never sent"
    assert_absent(key, cache_dir=cache_dir, logs=debug_logs, texts=texts)


def test_key_from_the_environment_never_leaks(
    server: FaultServer, tmp_path: Path, debug_logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = sentinel()
    monkeypatch.setenv("OPENAI_API_KEY", key)
    cache_dir = tmp_path / "cache"
    texts: list[str] = []
    with recommender(server.url, cache_dir, api_key=None) as rec:
        texts += _rank_through_faults(rec, server)
        server.enqueue(*(hang(2.0) for _ in range(3)), match="movie 7")
        texts.append(rec.rank(history(7)).model_dump_json())  # timeouts, retried, then degraded
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests), "key never sent"
    assert_absent(key, cache_dir=cache_dir, logs=debug_logs, texts=texts)


def test_refused_connection_error_carries_no_key(tmp_path: Path, debug_logs: Any) -> None:
    key = sentinel()
    with FaultServer() as srv:
        url = srv.url
    (tmp_path / "cache").mkdir()
    with recommender(url, tmp_path / "cache", api_key=key, strict=True) as rec, pytest.raises(MsrkitError) as info:
        rec.rank(history())
    text = _exception_text(info.value)
    assert key not in text and key.removeprefix("sk-SENTINEL-") not in text
    assert key not in debug_logs.text


def test_a_server_that_echoes_the_key_in_its_error_does_not_leak_it(
    server: FaultServer, tmp_path: Path, debug_logs: Any
) -> None:
    """Some proxies put the whole key in a 401 message; msrkit must not pass it on."""
    key = sentinel()
    server.enqueue(status(401, f"Incorrect API key provided: {key}. Find your key at https://example.invalid"))
    rec = recommender(server.url, tmp_path / "cache", api_key=key, strict=True,
                      stages=Stages(item_summaries=False, preference_summary=False))  # fmt: skip
    with rec, pytest.raises(BackendPermanentError) as info:
        rec.rank(history())
    text = _exception_text(info.value)
    assert key not in str(info.value), "the 401 message with the key reached the user"
    assert key not in debug_logs.text
    assert key not in text


# -- a key of any shape, echoed back: masked by its value --------------------------------------


def plain_sentinel() -> str:
    """A key that looks like nothing in particular (no ``sk-``, no ``Bearer``): only its value can be matched."""
    return f"plainKEY{uuid.uuid4().hex}"


def test_an_echoed_key_of_any_shape_never_reaches_json_warnings_the_html_report_or_stderr(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    key = plain_sentinel()
    history = tmp_path / "h.json"
    candidates = [{"item_id": f"c{i}", "title": f"t{i}"} for i in range(3)]
    history.write_text(json.dumps({"user_id": "u", "history": [{"item_id": "h", "title": "seen"}],
                                   "candidates": candidates}))  # fmt: skip
    with FaultServer() as server:
        server.always(status(500, f"upstream rejected the token {key} for this route"))
        report = tmp_path / "report.html"
        env = {**os.environ, "OPENAI_API_KEY": key, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        out = subprocess.run(
            [sys.executable, "-m", "msrkit.cli", "rank", str(history), "--backend", "openai/x", "--base-url",
             server.url, "--json", "--html", str(report), "--no-cache", "--retries", "1", "--deadline", "20", "-vv"],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in server.requests), "key never sent"
    assert "upstream rejected the token [redacted]" in out.stdout, "the echo did reach the warnings (masked)"
    for where, text in (("stdout (--json)", out.stdout), ("stderr", out.stderr), ("HTML report", report.read_text())):
        assert key not in text, f"the key leaked into {where}"


def test_an_authorization_header_and_a_url_password_are_registered_too(server: FaultServer, debug_logs: Any) -> None:
    from msrkit.errors import redact

    token, password = plain_sentinel(), plain_sentinel()
    server.enqueue(status(401, f"header {token} and password {password} are wrong"))
    url = server.url.replace("http://", f"http://user:{password}@")
    rec = Recommender(backend="openai/x", base_url=url, api_key="k-placeholder-000", cache=False, retries=0,
                      backend_options={"default_headers": {"Authorization": f"Bearer {token}"}},
                      stages=Stages(item_summaries=False, preference_summary=False))  # fmt: skip
    with rec:
        ranking = rec.rank(history())
    text = ranking.model_dump_json()
    assert "[redacted]" in text and token not in text and password not in text
    assert token not in debug_logs.text
    # httpx itself logs the request URL, password included: a record of another library, which the
    # CLI's log handler masks (RedactingFilter); msrkit's own records never hold it
    msrkit_records = " ".join(r.getMessage() for r in debug_logs.records if r.name.startswith("msrkit"))
    assert password not in msrkit_records and "[redacted]" in msrkit_records
    assert redact(f"x {token} y") == "x [redacted] y"
