"""KV-prefix reuse in-process: prompt tokens per second for one user's calls, with and without.

The requests are exactly those one cold user's ranking sends (captured through the scripted
fake backend: item keyword batches, preference blocks, the ranking), replayed on the embedded
model (llama-cpp-python, in-process) with ``max_tokens=1`` so prompt evaluation is what is
timed, three ways:

- ``none``: the model's KV state is reset before each call: every prompt read from its first token;
- ``previous`` (llama-cpp-python's default, what msrkit gets): a call reuses the longest prefix it
  shares with the call just before;
- ``ram cache``: a ``LlamaRAMCache`` also keeps the states of earlier prompts, so a call resumes
  from the longest prefix among them (the same instruction of a batch two calls back).

Prints prompt tokens, seconds and prompt tokens/s per way (the best of ``--repeat`` runs).

    python bench/bench_kv_prefix.py /tmp/ml10/cases.jsonl --catalog /tmp/ml10/items.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def requests_of_one_user(cases: Path, catalog: Path) -> list[Any]:
    from msrkit.backends.fake import FakeBackend
    from msrkit.io import load_histories
    from msrkit.recommender import Recommender

    fake = FakeBackend()
    with Recommender(fake, catalog=catalog, cache=False, retries=0) as rec:
        rec.rank(load_histories(cases)[0])
    return list(fake.requests)


def replay(llama: Any, requests: list[Any], *, way: str) -> tuple[int, float]:
    import llama_cpp

    from msrkit.backends.llamacpp_wire import to_llamacpp_messages

    llama.set_cache(llama_cpp.LlamaRAMCache(capacity_bytes=2 << 30) if way == "ram cache" else None)
    llama.reset()
    tokens, seconds = 0, 0.0
    for request in requests:
        if way == "none":
            llama.reset()
        t = time.perf_counter()
        out = llama.create_chat_completion(to_llamacpp_messages(request), max_tokens=1, temperature=0.0, seed=0)
        seconds += time.perf_counter() - t
        tokens += out["usage"]["prompt_tokens"]
    return tokens, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", type=Path)
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import llama_cpp

    from msrkit.backends.registry import embedded_model_path

    requests = requests_of_one_user(args.cases, args.catalog)
    llama = llama_cpp.Llama(model_path=str(embedded_model_path()), n_ctx=4096, verbose=False, seed=0)
    print(f"{len(requests)} requests of one cold user ({', '.join(sorted({r.tag.split('@')[0] for r in requests}))})")
    print("| KV reuse | prompt tokens | seconds | prompt tokens/s |\n|---|---:|---:|---:|")
    for way in ("none", "previous", "ram cache"):
        tokens, seconds = min((replay(llama, requests, way=way) for _ in range(args.repeat)), key=lambda r: r[1])
        print(f"| {way} | {tokens} | {seconds:.2f} | {tokens / seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
