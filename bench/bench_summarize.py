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
import json
import multiprocessing
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(latency: float, port_out: Any, peak_out: Any) -> None:
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in separate writes

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - /peak: report and reset the peak concurrency
            with lock:
                payload, state["peak"] = json.dumps(state["peak"]).encode(), 0
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(latency)
            payload = json.dumps({
                "id": "x", "object": "chat.completion", "created": 0, "model": "x",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "space, robots, comedy"},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66},
            }).encode()  # fmt: skip
            with lock:
                state["now"] -= 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 512

    server = Server(("127.0.0.1", 0), Handler)
    port_out.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.02, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

    import urllib.request

    from msrkit.backends import get_backend
    from msrkit.data import Item
    from msrkit.meter import Meter
    from msrkit.summaries import ItemSummarizer

    ports: Any = multiprocessing.Queue()
    proc = multiprocessing.Process(target=serve, args=(args.latency, ports, None), daemon=True)
    proc.start()
    port = ports.get(timeout=10)
    url = f"http://127.0.0.1:{port}/v1"
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
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/peak") as resp:  # noqa: S310 - loopback
                peak = json.loads(resp.read())
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
