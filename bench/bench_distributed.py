"""``--engine ray`` against the single-process run: Ray start-up, per-user overhead, throughput, bounded concurrency.

A loopback OpenAI-compatible server (its own process, 127.0.0.1) answers each
chat completion after a fixed latency (default 50 ms, a stand-in for model
time) and records the most requests it ever had in flight, and its requests/s
from its first request to its last ("served": Ray's start-up left out). Ray is
started once, locally (``num_cpus=2``, no dashboard). Prints:

1. Ray start-up (``ray.init``), and the per-user overhead with ``--backend none``
   (no model): seconds per user of one Ray actor minus those of the
   single-process ``rank_batch`` (what ``msrkit rank --out`` runs), from the
   slope between N and 2N users, so fixed costs (actor start) are apart;
2. ranking through the server: ``rank_batch`` (one user at a time, as the CLI),
   ``Recommender.arank`` at one actor's concurrency, and ``rank_to_shards``
   (what ``msrkit rank --engine ray`` runs) with 1 and 2 actors; req/s (one
   request per user: rank-only stages), ratios, and the peak in flight (never
   above actors x concurrency);
3. ``summarize_to_shards`` (``msrkit summarize --engine ray``) over a synthetic
   catalog: items/s and the peak in flight.

    python bench/bench_distributed.py                     # 1,200 users, 10,000 items, 50 ms, concurrency 8
    python bench/bench_distributed.py --users 400 --items 2000 --latency 0.02 --parts rank
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from stubserver import start, stats

WORDS = ["space", "robots", "comedy", "drama", "heist", "noir", "western", "jazz", "ocean", "winter", "city", "forest",
         "war", "love", "music", "road"]  # fmt: skip


class Seen:
    """What the server saw during one run: the peak in flight, and requests/s from its first to its last."""

    def __init__(self, url: str) -> None:
        state = stats(url)
        self.peak = int(state["peak"])
        span = state["last"] - state["first"]
        self.rate = state["n"] / span if span > 0 else float("nan")


def write_users(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for u in range(n):
            history = [{"item_id": f"h{i}", "title": f"Seen {WORDS[(u + i) % 15]} {i}", "keywords": ["drama"]}
                       for i in range(5)]  # fmt: skip
            candidates = [{"item_id": f"c{i}", "title": f"Candidate {WORDS[(u * 3 + i) % 15]} {i}",
                           "keywords": [WORDS[i % 15]]} for i in range(10)]  # fmt: skip
            fh.write(json.dumps({"user_id": f"u{u}", "history": history, "candidates": candidates}) + "\n")
    return path


def write_items(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            words = [WORDS[(i * k) % 15] for k in (1, 3, 7)]
            text = f"A {words[0]} story about {words[1]} and {words[2]}."
            fh.write(json.dumps({"item_id": f"i{i}", "title": f"Item {i}: {' '.join(words)}", "description": text}))
            fh.write("\n")
    return path


def settings(**kw: Any) -> Any:
    from msrkit.config import Settings

    rank_only = {"item_summaries": False, "preference_summary": False, "collaborative": False}
    return Settings(**{**rank_only, "cache": False, **kw})


def sharded(kind: str, path: Path, out: Path, s: Any) -> tuple[float, Any]:
    """(wall seconds, ShardRun) of one run on the running Ray."""
    from msrkit.distributed import rank_to_shards, summarize_to_shards

    fn = rank_to_shards if kind == "rank" else summarize_to_shards
    started = time.perf_counter()
    run = fn(path, out, s)
    wall = time.perf_counter() - started
    assert run.failed == 0 and not run.degraded, (run.failures, run.degraded)
    return wall, run


def single(path: Path, s: Any) -> float:
    """Seconds of ``rank_batch`` (the single-process ``msrkit rank --out``) over ``path``."""
    from msrkit.inputs.io import load_histories
    from msrkit.jobs.batch import rank_batch
    from msrkit.recommender import Recommender

    histories = load_histories(path)
    with Recommender(settings=s) as rec, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = rank_batch(rec.rank, histories, out=Path(tmp) / "out.jsonl")
        seconds = time.perf_counter() - started
    assert summary.failed == 0
    return seconds


def concurrent(path: Path, s: Any) -> float:
    """Seconds of ``Recommender.arank`` over ``path`` with ``s.concurrency`` at once (one process)."""
    from msrkit.inputs.io import load_histories
    from msrkit.recommender import Recommender

    histories = load_histories(path)

    async def go(rec: Any) -> float:
        await rec.arank(histories[0])
        started = time.perf_counter()
        await asyncio.gather(*(rec.arank(h) for h in histories))
        return time.perf_counter() - started

    with Recommender(settings=s) as rec:
        return asyncio.run(go(rec))


def overhead(tmp: Path, n: int) -> None:
    s = settings(backend="none", actors=1)
    small, large = write_users(tmp / "none1.jsonl", n), write_users(tmp / "none2.jsonl", 2 * n)
    few = write_users(tmp / "few.jsonl", 50)
    cold, _ = sharded("rank", few, tmp / "few-out1", s)  # the first run also starts Ray's worker processes
    fixed, _ = sharded("rank", few, tmp / "few-out2", s)
    one, two = single(small, s), single(large, s)
    r1, _ = sharded("rank", small, tmp / "none-out1", s)
    r2, _ = sharded("rank", large, tmp / "none-out2", s)
    per_single, per_ray = (two - one) / n * 1000, (r2 - r1) / n * 1000
    print(f"a Ray run of 50 users, --backend none, 1 actor (actor start, one batch, one shard): {cold:.1f} s the "
          f"first time, {fixed:.1f} s after")  # fmt: skip
    print(f"--backend none: single process {one:.2f} s for {n} users, {two:.2f} s for {2 * n}; Ray, 1 actor: "
          f"{r1:.2f} s, {r2:.2f} s")  # fmt: skip
    print(f"  per user (slope): single process {per_single:.2f} ms, Ray {per_ray:.2f} ms -> Ray's overhead "
          f"{per_ray - per_single:+.2f} ms/user")  # fmt: skip


def throughput(tmp: Path, url: str, n: int, concurrency: int, latency: float) -> None:
    users = write_users(tmp / "users.jsonl", n)
    s = settings(backend="openai/x", base_url=url, concurrency=concurrency)
    Seen(url)
    base = n / single(users, s)
    seen = Seen(url)
    print(f"\nranking {n} users through the server ({latency * 1000:.0f} ms per answer), one request per user; "
          "wall: the whole run, served: from the server's first request to its last")  # fmt: skip
    print(f"  single process, one user at a time (msrkit rank --out) {base:7.1f} req/s wall  1.00 x   "
          f"served {seen.rate:6.1f} req/s   peak {seen.peak}")  # fmt: skip
    arank = n / concurrent(users, s)
    seen = Seen(url)
    print(f"  single process, Recommender.arank x{concurrency:<2}             {arank:7.1f} req/s wall "
          f"{arank / base:5.2f} x   served {seen.rate:6.1f} req/s   peak {seen.peak}")  # fmt: skip
    for actors in (1, 2):
        wall, _ = sharded("rank", users, tmp / f"rank-out{actors}", settings(**{**s.model_dump(), "actors": actors}))
        seen = Seen(url)
        print(f"  --engine ray, {actors} actor(s) x{concurrency:<2}                  {n / wall:7.1f} req/s wall "
              f"{n / wall / base:5.2f} x   served {seen.rate:6.1f} req/s = {seen.rate / arank:.2f} x arank   "
              f"peak {seen.peak} (<= {actors * concurrency}); {wall:.1f} s")  # fmt: skip


def summarize(tmp: Path, url: str, n: int, concurrency: int, actors: int) -> None:
    items = write_items(tmp / "items.jsonl", n)
    s = settings(backend="openai/x", base_url=url, concurrency=concurrency, actors=actors, cache=True,
                 cache_dir=tmp / "cache")  # fmt: skip
    Seen(url)
    wall, run = sharded("summarize", items, tmp / "summaries", s)
    seen = Seen(url)
    print(f"\nsummarize --engine ray, {n} items, {actors} actors x{concurrency}: {n / wall:.1f} items/s wall "
          f"({wall:.1f} s), served {seen.rate:.1f} req/s; llm calls {run.usage.llm_calls}; "
          f"peak in flight {seen.peak} (<= {actors * concurrency})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1200)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per completion")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--overhead-users", type=int, default=3000)
    parser.add_argument("--parts", nargs="+", choices=["overhead", "rank", "summarize"],
                        default=["overhead", "rank", "summarize"])  # fmt: skip
    args = parser.parse_args()

    proc, url = start(args.latency)
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, logging_level="WARNING")
    print(f"Ray start-up (ray.init, local, 2 CPUs): {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "overhead" in args.parts:
                overhead(Path(tmp), args.overhead_users)
            if "rank" in args.parts:
                throughput(Path(tmp), url, args.users, args.concurrency, args.latency)
            if "summarize" in args.parts:
                summarize(Path(tmp), url, args.items, args.concurrency, actors=2)
    finally:
        ray.shutdown()
        proc.terminate()


if __name__ == "__main__":
    main()
