"""What a user of ``Recommender(backend="openai/x", base_url=...)`` gets when the server misbehaves.

Real stack: Recommender -> RetryingBackend -> OpenAIBackend -> the openai client
-> HTTP on loopback -> :class:`tests.faultserver.FaultServer`, which fails on cue.
Only the backoff is shortened (``initial`` 10 ms, ``max_wait`` 1.5 s) and the
client timeout is 0.5 s, so the file runs in seconds.

For every fault: retried then a normal ranking, or (``strict=False``) a
degraded ranking in the given order with a warning saying why, or
(``strict=True``) a clear msrkit error of the right class. Always: the
ranking is a permutation of the candidates.

The LLM stages are reduced to the listwise rerank (items carry keywords, no
preference summary) so each ``rank()`` is exactly one request plus its retries;
``test_fault_in_the_preference_summary_*`` runs the full pipeline.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    Reply,
    drop_mid_body,
    empty_content,
    hang,
    malformed_json,
    ok,
    rate_limited,
    server_error,
    status,
)

import msrkit.backends.stack as stack_module
from msrkit.backends.retry import RetryingBackend
from msrkit.errors import (
    BackendError,
    BackendPermanentError,
    BackendTransientError,
    BackendUnavailableError,
    MsrkitError,
    OutputParseError,
)
from msrkit.recommender import Recommender, Stages

pytestmark = pytest.mark.timeout(60)

pytest.importorskip("msrkit.backends.openai", reason="msrkit/backends/openai.py not written yet")
pytest.importorskip("msrkit.ranking", reason="msrkit/rerank.py not written yet")

RANK_ONLY = Stages(item_summaries=False, preference_summary=False, collaborative=False)
IDS = ["C1", "C2", "C3", "C4", "C5"]
TIMEOUT = 0.5


class FastRetry(RetryingBackend):
    """The Recommender's retry policy with test-sized waits (attempts and total time unchanged)."""

    def __init__(self, inner: Any, **kw: Any) -> None:
        super().__init__(inner, **{**kw, "initial": 0.01, "max_wait": 1.5, "jitter": 0.0})


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def history(prefix: str = "", n: int = len(IDS)) -> dict[str, Any]:
    return {
        "user_id": prefix or "u",
        "history": [{"item_id": "H1", "title": "Alien", "keywords": ["sci-fi"]}],
        "candidates": [{"item_id": f"C{i}", "title": f"{prefix}movie {i}", "keywords": ["k"]} for i in range(1, n + 1)],
    }


def recommender(url: str, **kw: Any) -> Recommender:
    options: dict[str, Any] = {
        "base_url": url,
        "api_key": "sk-test",
        "cache": False,
        "stages": RANK_ONLY,
        "retries": 3,
        "retry_max_seconds": 10.0,
        "fusion_weight": 1.0,
        "backend_options": {"timeout": TIMEOUT},
        **kw,
    }
    return Recommender(backend="openai/x", **options)


def assert_permutation(ranking: Any, ids: list[str] = IDS) -> None:
    assert sorted(ranking.item_ids()) == sorted(ids)
    assert [r.rank for r in ranking.ranking] == list(range(1, len(ids) + 1))


def assert_degraded_in_given_order(ranking: Any, *why: str) -> None:
    assert_permutation(ranking)
    assert ranking.degraded is True
    assert ranking.item_ids() == IDS, "without retrieval scores a degraded ranking keeps the given order"
    text = " ".join(ranking.warnings).lower()
    assert ranking.warnings and any(w.lower() in text for w in why), ranking.warnings


# -- retried, then a normal ranking ------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [server_error(500), server_error(502), server_error(503), drop_mid_body(), hang(2.0)],
    ids=["500", "502", "503", "dropped-connection", "hang-past-timeout"],
)
def test_transient_fault_is_retried_then_ranked(server: FaultServer, fault: Reply) -> None:
    server.enqueue(fault, ok("[5] > [4] > [3] > [2] > [1]"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert len(server.requests) == 2
    assert ranking.degraded is False
    assert ranking.item_ids() == ["C5", "C4", "C3", "C2", "C1"]


def test_rate_limit_waits_at_least_retry_after(server: FaultServer) -> None:
    server.enqueue(rate_limited(retry_after=1), ok("[2] > [1]"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    first, second = server.requests
    assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    assert ranking.degraded is False
    assert ranking.item_ids()[:2] == ["C2", "C1"]
    assert_permutation(ranking)


def test_persistent_5xx_degrades_after_bounded_attempts(server: FaultServer) -> None:
    server.enqueue(*(server_error(503) for _ in range(4)))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert len(server.requests) == 4  # retries=3: 4 attempts, then no more
    assert_degraded_in_given_order(ranking, "503")


def test_persistent_5xx_with_strict_is_a_transient_error_saying_how_often(server: FaultServer) -> None:
    server.enqueue(*(server_error(500) for _ in range(4)))
    with recommender(server.url, strict=True) as rec, pytest.raises(BackendTransientError) as info:
        rec.rank(history())
    assert info.value.status == 500
    assert "gave up after 4 attempts" in str(info.value)


def test_retry_total_time_is_bounded_by_retry_max_seconds(server: FaultServer) -> None:
    server.enqueue(*(hang(2.0) for _ in range(10)))
    started = time.monotonic()
    rec = recommender(server.url, retries=9, retry_max_seconds=1.2, strict=True)
    with rec, pytest.raises(BackendTransientError, match="gave up after"):
        rec.rank(history())
    # each attempt is cut at the 0.5 s client timeout; no new wait may end past 1.2 s
    assert time.monotonic() - started < 1.2 + TIMEOUT + 1.0
    assert len(server.requests) <= 3


def test_authentication_failure_is_not_retried(server: FaultServer) -> None:
    server.enqueue(status(401, "Incorrect API key provided"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert len(server.requests) == 1
    assert_degraded_in_given_order(ranking, "401")
    server.enqueue(status(401, "Incorrect API key provided"))
    with recommender(server.url, strict=True) as rec, pytest.raises(BackendPermanentError) as info:
        rec.rank(history())
    assert info.value.status == 401 and "gave up" not in str(info.value)


@pytest.mark.parametrize("code", [400, 404])
def test_client_errors_fail_fast(server: FaultServer, code: int) -> None:
    server.enqueue(status(code, "no such model"))
    with recommender(server.url, strict=True) as rec, pytest.raises(BackendPermanentError):
        rec.rank(history())
    assert len(server.requests) == 1


def test_nothing_listening_is_unavailable(server: FaultServer) -> None:
    url = server.url
    server.close()  # the port is free again: connection refused
    with recommender(url, retries=1, strict=True) as rec, pytest.raises(BackendUnavailableError) as info:
        rec.rank(history())
    assert "gave up after 2 attempts" in str(info.value)
    with recommender(url, retries=1) as rec:
        assert_degraded_in_given_order(rec.rank(history()), "connect", "unavailable", "refused")


# -- the server answers, but not usefully ------------------------------------------------------


def test_malformed_json_body_never_leaks_a_decode_error(server: FaultServer) -> None:
    server.enqueue(*(malformed_json() for _ in range(4)))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert_permutation(ranking)
    assert ranking.degraded is True and ranking.warnings
    server.enqueue(*(malformed_json() for _ in range(4)))
    with recommender(server.url, strict=True) as rec, pytest.raises(BackendError):
        rec.rank(history())


def test_empty_content_degrades_with_a_warning(server: FaultServer) -> None:
    server.enqueue(empty_content())
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert len(server.requests) == 1, "an empty answer is not a transport fault: not retried"
    assert_degraded_in_given_order(ranking, "empty", "no usable", "could not", "unparseable", "parse")


def test_empty_content_with_strict_is_an_output_parse_error(server: FaultServer) -> None:
    server.enqueue(empty_content())
    with recommender(server.url, strict=True) as rec, pytest.raises(OutputParseError):
        rec.rank(history())


def test_ids_that_are_not_candidates_degrade(server: FaultServer) -> None:
    server.enqueue(ok("[42] > [77] > [0] > Z9"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert_degraded_in_given_order(ranking, "no usable", "could not", "unparseable", "parse", "unknown")


def test_partial_answer_is_repaired_not_degraded(server: FaultServer) -> None:
    server.enqueue(ok("[3] > [3] > [1] > [99]"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert ranking.degraded is False
    assert ranking.item_ids() == ["C3", "C1", "C2", "C4", "C5"]  # duplicate and unknown dropped, rest appended


def test_valid_ranking_is_used(server: FaultServer) -> None:
    server.enqueue(ok("<think>hmm</think>\n[4] > [2] > [5] > [1] > [3]"))
    with recommender(server.url) as rec:
        ranking = rec.rank(history())
    assert ranking.degraded is False and ranking.warnings == []
    assert ranking.item_ids() == ["C4", "C2", "C5", "C1", "C3"]
    assert ranking.usage.llm_calls == 1
    seen = server.requests[0]
    assert seen.path.endswith("/chat/completions") and seen.body["model"] == "x"
    assert all(f"movie {i}" in seen.prompt for i in range(1, 6))


def test_fault_in_the_preference_summary_ranks_without_it(server: FaultServer) -> None:
    full = Stages(item_summaries=False, preference_summary=True, collaborative=False)
    server.enqueue(*(server_error(503) for _ in range(4)), match="movie")  # not the summary
    server.enqueue(status(401, "nope"))  # the first request is the summary: permanent failure
    with recommender(server.url, stages=full, preference_mode="recurrent") as rec:  # the summary's own call
        ranking = rec.rank(history())
    assert_permutation(ranking)
    assert any("preference summary" in w for w in ranking.warnings)


# -- many users, some failing: nothing lost --------------------------------------------------------

# user k: k % 6 -> what the server does to that user's rank request
SCRIPT = {
    0: [],
    1: [server_error(503)],
    2: [server_error(500)] * 4,
    3: [empty_content()],
    4: [rate_limited(retry_after=0)],
    5: [drop_mid_body()],
}
FAILS = {2, 3}


def _script(server: FaultServer, users: int) -> list[dict[str, Any]]:
    histories = []
    for k in range(users):
        tag = f"u{k:02d}-"
        for reply in SCRIPT[k % 6]:
            server.enqueue(dataclasses.replace(reply), match=tag)
        histories.append(history(tag))
    return histories


def _candidates(h: dict[str, Any]) -> list[str]:
    return [c["item_id"] for c in h["candidates"]]


def test_a_batch_of_30_users_with_failures_loses_nobody(server: FaultServer) -> None:
    histories = _script(server, 30)
    with recommender(server.url) as rec:
        rankings = list(rec.rank_many(histories))
    assert [r.user_id for r in rankings] == [h["user_id"] for h in histories]
    for k, (h, r) in enumerate(zip(histories, rankings, strict=True)):
        assert sorted(r.item_ids()) == sorted(_candidates(h))
        assert r.degraded is (k % 6 in FAILS), (k, r.warnings)
    assert server.pending() == 0


def test_a_strict_batch_records_an_error_per_failing_user(server: FaultServer) -> None:
    histories = _script(server, 30)
    outcomes: dict[str, Any] = {}
    with recommender(server.url, strict=True) as rec:
        for h in histories:
            try:
                outcomes[h["user_id"]] = rec.rank(h)
            except MsrkitError as exc:
                outcomes[h["user_id"]] = exc
    assert len(outcomes) == 30
    for k, h in enumerate(histories):
        got = outcomes[h["user_id"]]
        if k % 6 == 2:
            assert isinstance(got, BackendTransientError) and "gave up after 4 attempts" in str(got)
        elif k % 6 == 3:
            assert isinstance(got, OutputParseError)
        else:
            assert sorted(got.item_ids()) == sorted(_candidates(h)) and not got.degraded
