"""The Recommender's own contracts, with a scripted backend: async concurrency bounds, cleanup."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from msrkit.backends.base import ChatRequest, ChatResponse
from msrkit.backends.fake import FakeBackend
from msrkit.errors import ConfigError
from msrkit.recommender import Recommender, Stages

RANK_ONLY = Stages(item_summaries=False, preference_summary=False, collaborative=False)


class SlowFake(FakeBackend):
    """Answers after a short sleep and records how many calls were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            time.sleep(0.02)
            return super().chat(request)
        finally:
            with self._lock:
                self.in_flight -= 1


def history(user: str) -> dict[str, Any]:
    return {"user_id": user, "history": [], "candidates": [{"item_id": f"c{i}", "title": f"t{i}"} for i in range(4)]}


def test_arank_runs_at_most_concurrency_requests_at_once() -> None:
    fake = SlowFake()
    rec = Recommender(fake, cache=False, stages=RANK_ONLY, retries=0, concurrency=3)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(rec.arank(history(f"u{i}")) for i in range(24)))

    before = threading.active_count()
    rankings = asyncio.run(burst())
    assert [r.user_id for r in rankings] == [f"u{i}" for i in range(24)]
    assert all(sorted(r.item_ids()) == ["c0", "c1", "c2", "c3"] for r in rankings)
    assert fake.calls == 24
    assert 1 < fake.peak <= 3, fake.peak  # concurrent, but bounded
    assert threading.active_count() - before <= 3
    rec.close()
    assert threading.active_count() <= before


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        Recommender(FakeBackend(), cache=False, concurrency=0)


class AsyncFake(FakeBackend):
    """A backend with a native ``achat``: records on which thread its calls ran and how many overlapped."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()
        self.in_flight = 0
        self.peak = 0

    async def achat(self, request: ChatRequest) -> ChatResponse:
        self.threads.add(threading.get_ident())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            return FakeBackend.chat(self, request)
        finally:
            self.in_flight -= 1


def test_arank_runs_model_calls_on_the_event_loop_when_the_backend_is_async() -> None:
    fake = AsyncFake()
    rec = Recommender(fake, cache=False, stages=RANK_ONLY, retries=0, concurrency=4)

    async def burst() -> tuple[list[Any], int]:
        rankings = await asyncio.gather(*(rec.arank(history(f"u{i}")) for i in range(16)))
        return rankings, threading.get_ident()

    rankings, loop_thread = asyncio.run(burst())
    rec.close()
    assert all(sorted(r.item_ids()) == ["c0", "c1", "c2", "c3"] for r in rankings)
    assert fake.calls == 16 and fake.threads == {loop_thread}  # every call ran on the loop, none on a worker
    assert 1 < fake.peak <= 4
    assert rec.rank(history("sync")).item_ids()  # plain rank() still calls the backend directly


def test_cancelling_arank_stops_its_work_and_the_next_request_is_served_at_once() -> None:
    from faultserver import SlowImageServer

    with SlowImageServer(interval=0.5) as images:
        slow = {"user_id": "slow", "history": [{"item_id": "h", "title": "seen", "image": images.url}],
                "candidates": [{"item_id": f"c{i}", "title": f"t{i}"} for i in range(4)]}  # fmt: skip
        rec = Recommender(AsyncFake(), cache=False, retries=0, concurrency=8, image_private_hosts=True,
                          image_timeout=600, stages=Stages(item_summaries=True, preference_summary=False,
                                                           collaborative=False))  # fmt: skip

        async def scenario() -> float:
            stuck = [asyncio.create_task(rec.arank(slow)) for _ in range(8)]
            await asyncio.sleep(1.0)  # every worker is now inside a trickling download
            assert not any(task.done() for task in stuck)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
            started = time.monotonic()
            ranking = await rec.arank(history("next"))
            assert sorted(ranking.item_ids()) == ["c0", "c1", "c2", "c3"]
            return time.monotonic() - started

        with rec:
            took = asyncio.run(scenario())
    assert took < 2.0, f"the next request waited {took:.1f} s for a worker"
