"""Catalog summarization through a remote backend: throughput at bounded concurrency.

A loopback OpenAI-compatible server (its own process, 127.0.0.1) answers each
keyword request after a fixed latency, a stand-in for a hosted model. The
catalog (synthetic items with titles and descriptions) is summarized with
``ItemSummarizer`` at several concurrency levels; prints items/s, the peak
number of requests the server saw at once (never above the concurrency), and
threads used.

    python bench/bench_summarize.py                    # 10,000 items, concurrency 1/8/32, 20 ms latency
    python bench/bench_summarize.py --items 2000 --latency 0.05
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from stubserver import start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    from msrkit.backends import get_backend
    from msrkit.data import Item
    from msrkit.runtime.meter import Meter
    from msrkit.summaries import ItemSummarizer

    proc, url = start(args.latency, queue_size=512)
    items = [
        Item(item_id=f"i{n}", title=f"Item number {n}", description=f"A product, kind {n % 97}, line {n % 13}.")
        for n in range(args.items)
    ]
    print(f"{args.items} items, server latency {args.latency * 1000:.0f} ms per request (loopback, own process)")
    try:
        for concurrency in args.concurrency:
            n = args.items if concurrency > 1 else min(args.items, 500)  # sequential: a sample is enough
            backend = get_backend("openai/x", base_url=url)
            assert backend is not None
            summarizer = ItemSummarizer(backend)
            meter = Meter()
            threads_before = threading.active_count()
            done: list[Any] = []
            started = time.perf_counter()
            out = summarizer.summarize(items[:n], meter=meter, concurrency=concurrency, on_item=done.append)
            seconds = time.perf_counter() - started
            peak = int(stats(url)["peak"])
            backend.close()
            assert all(i.keywords for i in out) and len(done) == n
            ideal = concurrency / args.latency
            print(
                f"concurrency {concurrency:>3}: {n / seconds:8.1f} items/s over {n} items "
                f"(ideal {ideal:.0f}/s), server saw at most {peak} at once, "
                f"threads after: {threading.active_count() - threads_before:+d}, calls {meter.usage.llm_calls}"
            )
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
