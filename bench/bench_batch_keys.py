"""How long computing batch keys takes before the first user is ranked (issue 14: 40,000 users took 21 s).

Users with unique ids, with a tenth missing their id and a tenth repeated.
Prints the seconds :func:`msrkit.jobs.runs.record_keys` takes for each size, and
the old scheme (``ids.count(uid)`` per user, quadratic) for the small sizes.

    python bench/bench_batch_keys.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

from msrkit.jobs.runs import record_keys


def quadratic_keys(ids: Sequence[str | None]) -> list[str]:
    """The scheme before: one scan of every id per user."""
    return [u if u and ids.count(u) == 1 else f"#{i}" for i, u in enumerate(ids)]


def users(n: int) -> list[str | None]:
    return [None if i % 10 == 0 else f"u{i % (n - n // 10)}" for i in range(n)]


def seconds(fn: Callable[[Sequence[str | None]], list[str]], ids: list[str | None]) -> float:
    start = time.perf_counter()
    fn(ids)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,40000,100000,1000000")
    parser.add_argument("--old-up-to", type=int, default=40_000, help="time the quadratic scheme up to this size")
    args = parser.parse_args()
    print("| users | record_keys s | old scheme s |")
    print("|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        ids = users(n)
        old = f"{seconds(quadratic_keys, ids):.2f}" if n <= args.old_up_to else "–"
        print(f"| {n:,} | {seconds(record_keys, ids):.3f} | {old} |")


if __name__ == "__main__":
    main()
