"""Item keywords in batches: calls, wall time and MMSRARec's keyword reward per ``summary_batch``.

For each batch size, over the same items (the first N of a catalog, e.g. MovieLens-100k from
``msrkit data movielens --out /tmp/ml``), with a fresh cache folder per size:

1. ``msrkit summarize ITEMS --json`` with ``MSRKIT_SUMMARY_BATCH=<size>``: LLM calls, tokens, seconds;
2. ``msrkit eval-keywords ITEMS --summary-batch <size> --json`` over the same cache: the summaries
   are the ones step 1 made (cache hits), so only the reward's reconstruction calls are new; prints
   keyword count, similarity, reconstruction and the reward.

    python bench/bench_summary_batch.py /tmp/ml/items.jsonl --items 200 --sizes 1 4 8 16
    python bench/bench_summary_batch.py /tmp/ml/items.jsonl --items 1682 --reward-items 300 --sizes 1 8

``--reward-items N`` scores the reward on the first N items only (their summaries are the whole run's; the
reward's reconstruction costs one call per item scored).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cli(*args: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "msrkit.cli", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **env})  # fmt: skip
    if done.returncode not in (0, 6):
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--backend", default="llamacpp/default")
    ap.add_argument("--reward-items", type=int, help="score the reward on the first N items only (default: all)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sliced = Path(tmp) / "items.jsonl"
        lines = args.catalog.read_text(encoding="utf-8").splitlines()[: args.items]
        sliced.write_text("\n".join(lines) + "\n", encoding="utf-8")
        print("| summary_batch | items | LLM calls | prompt+completion tokens | seconds | keywords | similarity "
              "| reconstruction | reward (items scored) |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.sizes:
            env = {"MSRKIT_SUMMARY_BATCH": str(size), "MSRKIT_CACHE_DIR": str(Path(tmp) / f"cache{size}")}
            t = time.perf_counter()
            made = cli("summarize", str(sliced), "--backend", args.backend, "--json", "-q", env=env)
            seconds = time.perf_counter() - t
            limit = ["--limit", str(args.reward_items)] if args.reward_items else []
            scores = cli("eval-keywords", str(sliced), "--backend", args.backend, "--summary-batch", str(size),
                         *limit, "--json", "-q", env=env)  # fmt: skip
            row = next(iter(scores.values()))
            u = made["usage"]
            print(f"| {size} | {made['items']} | {u['llm_calls']} | {u['prompt_tokens']}+{u['completion_tokens']} "
                  f"| {seconds:.0f} | {row['keywords']:.2f} | {row['similarity']:.3f} | {row['reconstruction']:.3f} "
                  f"| {row['reward']:.3f} ({args.reward_items or made['items']}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
