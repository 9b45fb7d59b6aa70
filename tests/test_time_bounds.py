"""Bounded time against a misbehaving OpenAI-compatible server: the issue's time table, on loopback.

Real stack: Recommender -> GuardedBackend (deadline, circuit breaker) -> RetryingBackend's
real policy (no shortened waits here) -> OpenAIBackend -> the openai client -> HTTP ->
:class:`tests.faultserver.FaultServer`, which misbehaves on every request.

Each behaviour, one user with 20 candidates and the full pipeline (item
summaries, preference summary, listwise rerank): a full permutation,
``degraded: true``, a warning naming the cause, within the bound. The bound is
the request's deadline: 30 s where the behaviour does not depend on it, 3 s
for the hang and the trickle (with the default 120 s they take 120 s; the
bench ``bench/bench_faults.py`` measures them at ``--deadline 25``). The
breaker tests (5 and 100 users) shorten the backoff waits; the bench measures
them with the real ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    Reply,
    hang,
    insufficient_quota,
    malformed_json,
    no_choices,
    rate_limited,
    server_error,
    status,
    trickle,
)

import msrkit.backends.stack as stack_module
from msrkit.backends.retry import RetryingBackend
from msrkit.inputs.io import parse_history
from msrkit.jobs.batch import rank_batch
from msrkit.recommender import Recommender

pytestmark = pytest.mark.timeout(120)

pytest.importorskip("openai")

IDS = [f"C{i:02d}" for i in range(20)]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(max_hang=60) as srv:
        yield srv


def history(user: str = "u") -> dict[str, Any]:
    return {
        "user_id": user,
        "history": [{"item_id": f"H{i}", "title": f"seen {i}", "description": "a film"} for i in range(4)],
        "candidates": [{"item_id": c, "title": f"movie {c}", "description": "a film"} for c in IDS],
    }


def recommender(url: str, **kw: Any) -> Recommender:
    return Recommender(backend="openai/x", base_url=url, api_key="k-test-0123456789", cache=False, **kw)


# behaviour -> (server reply, deadline, what a warning must say, degraded_by)
TABLE: dict[str, tuple[Reply, float, str, str]] = {
    "hang": (hang(60), 3.0, "left to the request", "deadline"),
    "trickle-1-byte-per-s": (trickle(1.0), 3.0, "left to the request", "deadline"),
    "429-retry-after-100000": (rate_limited(100000), 30.0, "asked to wait 100000 s", "backend_transient"),
    "429-retry-after-inf": (rate_limited("inf"), 30.0, "asked to wait inf s", "backend_transient"),
    "429-retry-after-ms-huge": (rate_limited(None, retry_after_ms=10**9), 30.0, "asked to wait", "backend_transient"),
    "429-insufficient-quota": (insufficient_quota(), 30.0, "HTTP 429: You exceeded your current quota",
                               "backend_permanent"),
    "500-always": (server_error(500), 30.0, "HTTP 500", "backend_transient"),
    "invalid-json": (malformed_json(), 30.0, "not valid JSON", "backend_transient"),
    "choices-empty": (no_choices(), 30.0, "no choices", "backend_transient"),
    "401-bad-key": (status(401, "Incorrect API key provided"), 30.0, "HTTP 401", "backend_permanent"),
}  # fmt: skip


@pytest.mark.parametrize("behaviour", list(TABLE))
def test_one_user_against_a_misbehaving_server_is_bounded_and_degraded(server: FaultServer, behaviour: str) -> None:
    reply, deadline, cause, failure = TABLE[behaviour]
    server.always(reply)
    with recommender(server.url, deadline=deadline) as rec:
        started = time.monotonic()
        ranking = rec.rank(history())
        took = time.monotonic() - started
    assert took <= deadline + 1.0, f"{behaviour}: {took:.1f} s"
    assert sorted(ranking.item_ids()) == IDS and [r.rank for r in ranking.ranking] == list(range(1, 21))
    assert ranking.degraded is True and ranking.degraded_by == failure, (ranking.degraded_by, ranking.warnings)
    assert any(cause in w for w in ranking.warnings), ranking.warnings


@pytest.mark.parametrize("behaviour", ["429-insufficient-quota", "401-bad-key"])
def test_permanent_conditions_are_not_retried(server: FaultServer, behaviour: str) -> None:
    server.always(TABLE[behaviour][0])
    with recommender(server.url, breaker_failures=0) as rec:
        rec.rank(history())
    bodies = [str(r.body.get("messages")) for r in server.requests]
    assert len(bodies) == len(set(bodies)), "no request was sent twice: nothing was retried"


def test_a_short_retry_after_is_honoured_and_succeeds(server: FaultServer) -> None:
    server.enqueue(rate_limited(retry_after=1), match="movie C00")
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    first, retried = [r for r in server.requests if "movie C00" in r.prompt][:2]
    assert first.body == retried.body and retried.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    assert ranking.degraded is False and sorted(ranking.item_ids()) == IDS


class FastRetry(RetryingBackend):
    """The default retry policy with test-sized waits: these tests are about the breaker, not the backoff."""

    def __init__(self, inner: Any, **kw: Any) -> None:
        super().__init__(inner, **{**kw, "initial": 0.01, "max_wait": 0.1, "jitter": 0.0})


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)


def test_five_users_against_http_500_are_fast_because_of_the_breaker(server: FaultServer, fast_retries: None) -> None:
    server.always(server_error(500))
    with recommender(server.url) as rec:
        started = time.monotonic()
        rankings = [rec.rank(history(f"u{k}")) for k in range(5)]
        took = time.monotonic() - started
    assert took < 5.0, took
    assert len(server.requests) == 5, "after 5 failures in a row no request reaches the server"
    assert all(r.degraded and sorted(r.item_ids()) == IDS for r in rankings)
    assert all(any("circuit breaker open" in w for w in r.warnings) for r in rankings[1:])


def test_a_hundred_users_against_a_dead_server_then_it_recovers(
    server: FaultServer, caplog: pytest.LogCaptureFixture, fast_retries: None
) -> None:
    server.always(server_error(503))
    histories = [parse_history(history(f"u{k:03d}")) for k in range(100)]
    with recommender(server.url, breaker_cooldown=1.0) as rec, caplog.at_level(logging.WARNING, logger="msrkit"):
        started = time.monotonic()
        got: dict[str, Any] = {}
        summary = rank_batch(rec.rank, histories, on_result=lambda key, outcome: got.__setitem__(key, outcome))
        took = time.monotonic() - started
        assert took <= 60.0, took
        assert summary.ranked == 100 and summary.failed == 0 and len(got) == 100
        assert all(r.degraded and sorted(r.item_ids()) == IDS for r in got.values())
        opened = [r for r in caplog.records if "circuit breaker open, calls fail at once" in r.getMessage()]
        assert len(opened) >= 1 and len(server.requests) < 100
        server.always(None)  # the server recovers
        time.sleep(1.1)  # the cooldown: the next call is the probe
        healthy = rec.rank(history("back"))
    assert healthy.degraded is False and sorted(healthy.item_ids()) == IDS
    assert not any("circuit breaker" in w for w in healthy.warnings)
