"""``--engine ray`` against the single-process run: Ray start-up, per-user overhead, throughput, bounded concurrency.

A loopback OpenAI-compatible server (its own process, 127.0.0.1) answers each
chat completion after a fixed latency (default 50 ms, a stand-in for model
time) and records the most requests it ever had in flight. Ray is started
once, locally (``num_cpus=2``, no dashboard). Prints:

1. Ray start-up (``ray.init``), and per-user overhead with ``--backend none``
   (no model): the seconds per user of one Ray actor minus the single-process
   ``rank_batch`` (what ``msrkit rank --out`` runs), from the slope between
   N and 2N users, so fixed costs (actor start) are not counted per user;
2. ranking through the server: ``rank_batch`` (one user at a time, as the CLI),
   ``Recommender.arank`` at the same concurrency as one actor, and
   ``rank_to_shards`` (what ``msrkit rank --engine ray`` runs) with 1 and 2
   actors; req/s (one request per user: rank-only stages), ratios, and the peak
   in flight (never above actors x concurrency);
3. ``summarize_to_shards`` (``msrkit summarize --engine ray``) over a synthetic
   catalog: items/s and the peak in flight.

    python bench/bench_distributed.py                     # 1,200 users, 10,000 items, 50 ms, concurrency 8
    python bench/bench_distributed.py --users 400 --items 2000 --latency 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WORDS = ["space", "robots", "comedy", "drama", "heist", "noir", "western", "jazz", "ocean", "winter", "city", "forest",
         "war", "love", "music", "road"]  # fmt: skip


def serve(latency: float, port_out: Any) -> None:
    """The loopback model: ranks candidates in reverse, answers anything else with keywords; GET /peak."""
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the peak since the last GET, then reset
            with lock:
                payload, state["peak"] = json.dumps(state["peak"]).encode(), 0
            self._send(payload)

        def do_POST(self) -> None:  # noqa: N802
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                time.sleep(latency)
            finally:
                with lock:
                    state["now"] -= 1
            prompt = body["messages"][-1]["content"]
            prompt = prompt if isinstance(prompt, str) else " ".join(p.get("text", "") for p in prompt)
            numbers = re.findall(r"^\[(\d+)\]", prompt, flags=re.M)
            answer = " > ".join(f"[{n}]" for n in reversed(numbers)) or "space, robots, comedy"
            self._send(json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "x",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66},
            }).encode())  # fmt: skip

        def _send(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


def peak(url: str) -> int:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/peak", timeout=10) as resp:  # noqa: S310 (loopback)
        return int(json.loads(resp.read()))


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


class Clock:
    """``on_progress`` for a run: when the first block of results came back, and the last."""

    def __init__(self) -> None:
        self.first = self.last = 0.0
        self.in_first = 0

    def __call__(self, finished: int, total: int) -> None:
        now = time.perf_counter()
        if not self.first:
            self.first = now
        if now - self.first < 0.01:  # the records of the first block arrive together
            self.in_first = finished
        self.last = now

    def steady(self, finished: int) -> float:
        """Records per second after the first block (actor start-up and the pipeline's fill left out)."""
        return (finished - self.in_first) / (self.last - self.first) if self.last > self.first else float("nan")


def sharded(kind: str, path: Path, out: Path, s: Any) -> tuple[float, float, Any]:
    """(wall seconds, steady records/s, ShardRun) of one run on the running Ray."""
    from msrkit.distributed import rank_to_shards, summarize_to_shards

    clock = Clock()
    fn = rank_to_shards if kind == "rank" else summarize_to_shards
    started = time.perf_counter()
    run = fn(path, out, s, on_progress=clock)
    wall = time.perf_counter() - started
    assert run.failed == 0 and not run.degraded, (run.failures, run.degraded)
    return wall, clock.steady(run.done), run


def single(path: Path, s: Any) -> float:
    """Seconds of ``rank_batch`` (the single-process ``msrkit rank --out``) over ``path``."""
    from msrkit.batch import rank_batch
    from msrkit.io import load_histories
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
    from msrkit.io import load_histories
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
    users = write_users(tmp / "none.jsonl", n)
    sharded("rank", write_users(tmp / "warm.jsonl", 50), tmp / "warm-out", s)  # worker processes started once
    alone = single(users, s)
    wall, steady, _ = sharded("rank", users, tmp / "none-out", s)
    per_single, per_ray = alone / n * 1000, 1000 / steady
    print(f"--backend none, {n} users: single process {alone:.2f} s = {per_single:.2f} ms/user; Ray, 1 actor: "
          f"{wall:.2f} s wall, {per_ray:.2f} ms/user after the first block -> overhead {per_ray - per_single:+.2f} "
          f"ms/user, fixed {wall - n * per_ray / 1000:.2f} s per run (actor start, first block)")  # fmt: skip


def throughput(tmp: Path, url: str, n: int, concurrency: int, latency: float) -> None:
    users = write_users(tmp / "users.jsonl", n)
    s = settings(backend="openai/x", base_url=url, concurrency=concurrency)
    base = n / single(users, s)
    print(f"\nranking {n} users through the server ({latency * 1000:.0f} ms per answer), one request per user:")
    print(f"  single process, one user at a time (msrkit rank --out) {base:8.1f} req/s   1.00 x   peak {peak(url)}")
    arank = n / concurrent(users, s)
    print(f"  single process, Recommender.arank x{concurrency:<2}             {arank:8.1f} req/s "
          f"{arank / base:5.2f} x   peak {peak(url)}")  # fmt: skip
    for actors in (1, 2):
        on_ray = settings(**{**s.model_dump(), "actors": actors})
        wall, steady, _ = sharded("rank", users, tmp / f"rank-out{actors}", on_ray)
        print(f"  --engine ray, {actors} actor(s) x{concurrency:<2}                   {n / wall:8.1f} req/s "
              f"{n / wall / base:5.2f} x   peak {peak(url)} (<= {actors * concurrency}); steady {steady:.1f} req/s "
              f"= {steady / arank:.2f} x arank; {wall:.1f} s wall")  # fmt: skip


def summarize(tmp: Path, url: str, n: int, concurrency: int, actors: int) -> None:
    items = write_items(tmp / "items.jsonl", n)
    s = settings(backend="openai/x", base_url=url, concurrency=concurrency, actors=actors, cache=True,
                 cache_dir=tmp / "cache")  # fmt: skip
    peak(url)
    wall, steady, run = sharded("summarize", items, tmp / "summaries", s)
    print(f"\nsummarize --engine ray, {n} items, {actors} actors x{concurrency}: {n / wall:.1f} items/s wall "
          f"({wall:.1f} s), steady {steady:.1f} items/s; llm calls {run.usage.llm_calls}; "
          f"peak in flight {peak(url)} (<= {actors * concurrency})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1200)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="server seconds per completion")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--overhead-users", type=int, default=2000)
    args = parser.parse_args()

    ports: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(args.latency, ports), daemon=True)
    proc.start()
    url = f"http://127.0.0.1:{ports.get(timeout=10)}/v1"
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, logging_level="WARNING")
    print(f"Ray start-up (ray.init, local, 2 CPUs): {time.perf_counter() - started:.1f} s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            overhead(Path(tmp), args.overhead_users)
            throughput(Path(tmp), url, args.users, args.concurrency, args.latency)
            summarize(Path(tmp), url, args.items, args.concurrency, actors=2)
    finally:
        ray.shutdown()
        proc.terminate()


if __name__ == "__main__":
    main()
