"""Sliding windows over long candidate lists, and Borda merging of several passes.

Longer lists are ranked with a sliding window from the back of the list to the
front (window ``w``, stride ``s``): the best items bubble up into the next
window, so ``ceil((n - w) / s) + 1`` calls rank ``n`` candidates. Several
passes over shuffled orders are merged by Borda count (position bias evens out).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["borda", "window_starts"]


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Start positions of the sliding windows, back to front; the last one starts at 0."""
    if n <= window:
        return [0]
    starts = list(range(n - window, 0, -stride))
    return [*starts, 0]


def borda(orders: Sequence[Sequence[int]], n: int) -> list[float]:
    """Borda points per item over several orders (``n - position`` per order), averaged."""
    points = [0.0] * n
    for order in orders:
        for position, index in enumerate(order):
            points[index] += n - position
    return [p / max(len(orders), 1) for p in points]
