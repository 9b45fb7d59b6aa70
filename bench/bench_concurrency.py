"""Throughput of concurrent ``arank`` requests against the bare openai client, same calls, same concurrency.

A loopback OpenAI-compatible server (its own process, 127.0.0.1) answers each
chat completion after a fixed latency (a stand-in for model time). The same
number of requests, at the same concurrency, is sent

- by the bare ``openai.AsyncOpenAI`` client, with the exact messages msrkit
  would send (rendered by msrkit beforehand, so the bare side does no work);
- by ``Recommender.arank`` (rank-only stages: one listwise call per request,
  so one request is one chat completion, as on the bare side).

Prints requests/s for both and their ratio (target: msrkit >= 0.9 x bare).

    python bench/bench_concurrency.py                      # 200 requests, concurrency 8, 50 ms latency
    python bench/bench_concurrency.py --requests 400 --concurrency 16 --latency 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from stubserver import start


def histories(n: int) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"u{u}",
            "history": [{"item_id": f"h{i}", "title": f"Seen movie {i}", "keywords": ["drama"]} for i in range(5)],
            "candidates": [
                {"item_id": f"c{i}", "title": f"Candidate {u}-{i}", "keywords": ["comedy"]} for i in range(10)
            ],
        }
        for u in range(n)
    ]


def rendered_messages(hs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The messages msrkit sends for each history (so the bare client sends the same calls)."""
    from msrkit.backends.fake import FakeBackend
    from msrkit.backends.openai import to_openai_messages
    from msrkit.recommender import Recommender, Stages

    fake = FakeBackend()
    stages = Stages(item_summaries=False, preference_summary=False, collaborative=False)
    with Recommender(fake, cache=False, stages=stages, retries=0) as rec:
        for h in hs:
            rec.rank(h)
    return [to_openai_messages(r) for r in fake.requests]


async def bare(url: str, messages: list[list[dict[str, Any]]], concurrency: int) -> float:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(m: list[dict[str, Any]]) -> None:
        async with gate:
            await client.chat.completions.create(model="x", messages=m, max_tokens=160, temperature=0, seed=0)  # type: ignore[arg-type]

    started = time.perf_counter()
    await asyncio.gather(*(one(m) for m in messages))
    seconds = time.perf_counter() - started
    await client.close()
    return len(messages) / seconds


async def with_msrkit(url: str, hs: list[dict[str, Any]], concurrency: int) -> float:
    from msrkit.recommender import Recommender, Stages

    stages = Stages(item_summaries=False, preference_summary=False, collaborative=False)
    rec = Recommender("openai/x", base_url=url, cache=False, stages=stages, concurrency=concurrency)
    await rec.arank(hs[0])  # connect and warm up, as the bare client's first call would
    started = time.perf_counter()
    rankings = await asyncio.gather(*(rec.arank(h) for h in hs))
    seconds = time.perf_counter() - started
    rec.close()
    assert all(not r.degraded for r in rankings), "a request failed"
    return len(hs) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per completion")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    proc, url = start(args.latency)
    try:
        hs = histories(args.requests)
        messages = rendered_messages(hs)
        asyncio.run(bare(url, messages[:4], 4))  # warm-up
        ours, theirs = [], []
        for _ in range(args.rounds):
            theirs.append(asyncio.run(bare(url, messages, args.concurrency)))
            ours.append(asyncio.run(with_msrkit(url, hs, args.concurrency)))
    finally:
        proc.terminate()
    b, m = statistics.median(theirs), statistics.median(ours)
    ideal = args.concurrency / args.latency
    print(f"{args.requests} requests, concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms "
          f"(ideal {ideal:.0f} req/s), median of {args.rounds} rounds")  # fmt: skip
    print(f"bare openai.AsyncOpenAI    {b:8.1f} req/s   rounds: {', '.join(f'{x:.1f}' for x in theirs)}")
    print(f"msrkit Recommender.arank   {m:8.1f} req/s   rounds: {', '.join(f'{x:.1f}' for x in ours)}")
    print(f"ratio msrkit / bare        {m / b:8.3f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
