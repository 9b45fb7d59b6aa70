"""The request's deadline: what it is, how retry and the pipeline respect it (scripted backend, fake clocks)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fakeclock import Clock

from msrkit.backends.base import ChatRequest, Message
from msrkit.backends.fake import FakeBackend
from msrkit.backends.retry import RetryingBackend
from msrkit.errors import BackendTransientError, CircuitOpenError, DeadlineExceededError
from msrkit.recommender import Recommender, Stages
from msrkit.runtime.deadline import Deadline, active, call_limit, current


def req() -> ChatRequest:
    return ChatRequest((Message.text("user", "hi"),))


def test_a_deadline_counts_down_and_a_child_ends_with_its_parent() -> None:
    clock = Clock()
    parent = Deadline(10.0, clock=clock)
    child = parent.child(30.0)
    short = parent.child(2.0)
    assert parent.left() == child.left() == 10.0 and short.left() == 2.0
    clock.now = 4.0
    assert parent.left() == child.left() == 6.0 and short.expired
    assert "deadline (2 s)" in short.reason()
    clock.now = 11.0
    assert child.expired and "deadline (10 s)" in child.reason()
    assert Deadline().left() == float("inf") and not Deadline().expired


def test_cancel_runs_the_watchers_once_and_reaches_children() -> None:
    parent = Deadline(60.0)
    child = parent.child(None)
    seen: list[str] = []
    with child.watch(lambda: seen.append("child")), parent.watch(lambda: seen.append("parent")):
        parent.cancel()
        parent.cancel()
    assert sorted(seen) == ["child", "parent"]
    assert child.cancelled and child.expired and child.reason() == "the request was cancelled"
    with child.watch(lambda: seen.append("late")):
        pass
    assert seen[-1] == "late", "watching an already cancelled deadline runs the callback at once"


def test_the_current_deadline_is_per_context_and_never_passes_outside_a_request() -> None:
    assert current().left() == float("inf")
    inside: list[float] = []
    with active(Deadline(5.0)):
        assert current().left() <= 5.0
        thread = threading.Thread(target=lambda: inside.append(current().left()))
        thread.start()
        thread.join()
    assert inside == [float("inf")], "a plain thread does not inherit it: workers are handed it explicitly"
    assert current().left() == float("inf")


def test_call_limit_is_the_smaller_of_timeout_and_time_left() -> None:
    clock = Clock()
    with active(Deadline(8.0, clock=clock)):
        assert call_limit(60.0) == (8.0, True)
        assert call_limit(3.0) == (3.0, False)
        clock.now = 8.0
        with pytest.raises(DeadlineExceededError, match="deadline"):
            call_limit(60.0)


def retrying(fake: FakeBackend, clock: Clock, **kw: Any) -> RetryingBackend:
    options: dict[str, Any] = {"initial": 1.0, "max_wait": 20.0, "jitter": 0.0, "max_seconds": 1000.0, **kw}
    return RetryingBackend(fake, sleep=clock.sleep, clock=clock, **options)


def test_retry_never_waits_past_the_request_deadline() -> None:
    clock = Clock()
    fake = FakeBackend(default=None).enqueue(*(BackendTransientError("HTTP 503", status=503) for _ in range(9)))
    with active(Deadline(2.5, clock=clock)), pytest.raises(BackendTransientError) as info:
        retrying(fake, clock, attempts=10).chat(req())
    assert clock.sleeps == [1.0] and fake.calls == 2  # the next wait (2 s) would end past 2.5 s
    assert "left of the request's deadline" in str(info.value)


@pytest.mark.parametrize("asked", [100_000.0, float("inf"), 31.0])
def test_a_retry_after_longer_than_the_time_left_is_not_waited_for(asked: float) -> None:
    clock = Clock()
    fake = FakeBackend(default=None).enqueue(BackendTransientError("HTTP 429", status=429, retry_after=asked), "ok")
    with active(Deadline(30.0, clock=clock)), pytest.raises(BackendTransientError) as info:
        retrying(fake, clock).chat(req())
    assert clock.sleeps == [] and fake.calls == 1
    assert "the server asked to wait" in str(info.value) and "gave up after 1 attempt" in str(info.value)


def test_a_short_retry_after_within_the_deadline_is_honoured() -> None:
    clock = Clock()
    fake = FakeBackend(default=None).enqueue(BackendTransientError("HTTP 429", status=429, retry_after=3.0), "ok")
    with active(Deadline(30.0, clock=clock)):
        assert retrying(fake, clock).chat(req()).text == "ok"
    assert clock.sleeps == [3.0]


@pytest.mark.parametrize(
    "error",
    [DeadlineExceededError("the request was cancelled"), CircuitOpenError("open", until=0.0, failure="x")],
    ids=["deadline", "breaker-open"],
)
def test_a_passed_deadline_and_an_open_breaker_are_not_retried(error: BackendTransientError) -> None:
    clock = Clock()
    fake = FakeBackend(default=None).enqueue(error, "never")
    with pytest.raises(type(error)) as info:
        retrying(fake, clock).chat(req())
    assert info.value is error and "gave up" not in str(error)
    assert fake.calls == 1 and clock.sleeps == []


HISTORY = {
    "user_id": "u",
    "history": [{"item_id": f"H{i}", "title": f"seen {i}"} for i in range(6)],
    "candidates": [{"item_id": f"C{i}", "title": f"movie {i}"} for i in range(5)],
}


def test_once_the_deadline_passes_the_remaining_llm_stages_are_skipped_and_the_ranking_falls_back() -> None:
    def slow(request: ChatRequest) -> str:
        time.sleep(0.15)
        return "keyword, other"

    fake = FakeBackend(default=slow)
    with Recommender(fake, cache=False, retries=0, deadline=0.5) as rec:
        started = time.monotonic()
        ranking = rec.rank(HISTORY)
        took = time.monotonic() - started
    assert took < 1.2
    assert ranking.degraded and ranking.degraded_by == "deadline"
    assert sorted(ranking.item_ids()) == [f"C{i}" for i in range(5)]
    assert any("deadline (0.5 s) has passed" in w and "LLM ranking skipped" in w for w in ranking.warnings)
    assert fake.calls <= 4, "no call starts after the deadline"


def test_pointwise_scoring_falls_back_too_when_the_backend_fails() -> None:
    fake = FakeBackend(default=None).enqueue(BackendTransientError("HTTP 503", status=503))
    stages = Stages(item_summaries=False, preference_summary=False, collaborative=False)
    with Recommender(fake, cache=False, retries=0, stages=stages, pointwise=True) as rec:
        ranking = rec.rank(HISTORY)
    assert ranking.degraded and ranking.degraded_by == "backend_transient"
    assert any("LLM scoring failed" in w for w in ranking.warnings)


class SlowAsync(FakeBackend):
    """A backend with a native ``achat`` that takes 0.3 s per call and notes the time left it sees."""

    seen: list[float] = []

    async def achat(self, request: ChatRequest) -> Any:
        import asyncio

        self.seen.append(current().left())
        await asyncio.sleep(0.3)
        return FakeBackend.chat(self, request)


def test_arank_keeps_the_request_deadline_on_the_event_loop_too() -> None:
    import asyncio

    fake = SlowAsync(default=lambda r: "keyword, other")
    with Recommender(fake, cache=False, retries=0, deadline=0.5) as rec:
        started = time.monotonic()
        ranking = asyncio.run(rec.arank(HISTORY))
        took = time.monotonic() - started
    assert took < 1.5 and ranking.degraded and ranking.degraded_by == "deadline"
    assert fake.calls <= 3
    assert fake.seen and all(0 < left <= 0.5 for left in fake.seen), "calls on the loop see the request's deadline"
