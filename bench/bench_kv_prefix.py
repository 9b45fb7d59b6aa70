"""KV-prefix reuse in-process: prompt tokens per second for one user's calls, with and without.

llama-cpp-python keeps the KV state of the previous prompt and evaluates only the part of a new
prompt after the longest prefix the two share (``Llama.generate``). This bench ranks the same cold
users (last ``--history`` items of MovieLens-100k cases, ``--candidates`` given candidates, the
embedded model, no response cache) twice per round, alternating:

- **reuse**: as msrkit runs (the engine's prefix reuse on);
- **reset**: ``Llama.reset()`` before every chat completion, so every prompt is read from its
  first token.

It counts, per mode, the prompt tokens the calls sent, the prompt tokens the engine evaluated
(the first ``eval`` of each completion) and the seconds those evaluations took, and prints
**effective prompt tokens/s** (tokens sent / seconds spent reading prompts) and the ratio of the
two modes. Seconds are wall time inside ``Llama.eval`` (the machine may be shared: read the ratio,
measured in alternating rounds).

    python bench/bench_kv_prefix.py /tmp/ml --users 4 --rounds 2      # msrkit data movielens --out /tmp/ml
    python bench/bench_kv_prefix.py /tmp/ml --users 4 --rounds 2 --pointwise
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Counter:
    """Prompt tokens evaluated and the seconds they took, per completion's first ``eval``."""

    def __init__(self) -> None:
        self.sent = self.evaluated = self.calls = 0
        self.seconds = 0.0
        self.first = False

    def row(self, mode: str) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (f"| {mode} | {self.calls} | {self.sent} | {self.evaluated} ({self.evaluated / max(self.sent, 1):.0%}) "
                f"| {self.seconds:.2f} | {rate:.0f} |")  # fmt: skip


@contextmanager
def instrumented(counter: Counter, *, reset: bool) -> Iterator[None]:
    import llama_cpp

    llama = llama_cpp.Llama
    eval_, chat = llama.eval, llama.create_chat_completion

    def counting_eval(self: Any, tokens: Any) -> None:
        started = time.perf_counter()
        eval_(self, tokens)
        if counter.first:  # the prompt part this completion had to read (later evals: one generated token)
            counter.first = False
            counter.evaluated += len(tokens)
            counter.seconds += time.perf_counter() - started

    def counting_chat(self: Any, *args: Any, **kwargs: Any) -> Any:
        if reset:
            self.reset()
        counter.first = True
        out = chat(self, *args, **kwargs)
        counter.calls += 1
        counter.sent += int(out.get("usage", {}).get("prompt_tokens", 0))
        return out

    llama.eval, llama.create_chat_completion = counting_eval, counting_chat  # type: ignore[method-assign]
    try:
        yield
    finally:
        llama.eval, llama.create_chat_completion = eval_, chat  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of items.jsonl and cases.jsonl (msrkit data movielens --out)")
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--history", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--preference-mode", default="recurrent", choices=["recurrent", "single"])
    ap.add_argument("--pointwise", action="store_true", help="MLLM-MSR's yes/no scorer: one call per candidate")
    args = ap.parse_args()

    from msrkit import Recommender

    cases = []
    with (args.data / "cases.jsonl").open() as fh:
        for line in fh:
            case = json.loads(line)
            case["history"] = case["history"][-args.history :]
            case["candidates"] = case["candidates"][: args.candidates]
            case.pop("target", None)
            cases.append(case)
            if len(cases) == args.users:
                break
    counters = {"reuse": Counter(), "reset": Counter()}
    wall = dict.fromkeys(counters, 0.0)
    for r in range(args.rounds):
        for mode in ("reuse", "reset") if r % 2 == 0 else ("reset", "reuse"):
            with instrumented(counters[mode], reset=mode == "reset"):
                for case in cases:  # a fresh Recommender per user: a cold user, nothing kept in memory
                    options = {"preference_mode": args.preference_mode, "pointwise": args.pointwise, "deadline": 3600.0}
                    with Recommender("llamacpp/default", catalog=args.data / "items.jsonl", cache=False,
                                     **options) as rec:  # fmt: skip
                        started = time.perf_counter()
                        rec.rank(case)
                        wall[mode] += time.perf_counter() - started
    scorer = "pointwise" if args.pointwise else "listwise"
    print(f"{args.users} cold users x {args.rounds} rounds, {args.history} history items, {args.candidates} "
          f"candidates, preference_mode={args.preference_mode}, {scorer}, embedded model, no cache\n")  # fmt: skip
    print("| mode | calls | prompt tokens sent | prompt tokens evaluated | seconds reading prompts "
          "| effective prompt tokens/s |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
    for mode, counter in counters.items():
        print(counter.row(mode))
    a, b = counters["reuse"], counters["reset"]
    if a.seconds and b.seconds:
        ratio = wall["reset"] / wall["reuse"]
        print(f"\nprompt reading: reuse {b.seconds / a.seconds:.2f}x faster than reset; whole requests: "
              f"reuse {wall['reuse']:.1f} s, reset {wall['reset']:.1f} s ({ratio:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
