"""A fake monotonic clock for tests: only the test (or the fake sleeps) moves it, so nothing really waits."""

from __future__ import annotations

__all__ = ["Clock"]


class Clock:
    """``clock()`` reads the time; ``sleep``/``asleep`` record the wait and move the time on."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
