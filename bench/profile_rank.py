"""Where the time of one ``msrkit rank`` goes, with the embedded model: tokens and seconds by stage.

Runs the full pipeline once on ``examples/history.json`` (cache off), with
every model call timed by prompt template, then prints per stage: calls,
prompt and completion tokens, model seconds; and msrkit's own time (wall time
minus model time) with the top msrkit functions by their own time (cProfile).

    python bench/profile_rank.py
    python bench/profile_rank.py --backend openai/MODEL --base-url URL
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from msrkit.backends import get_backend
from msrkit.backends.base import ChatRequest, ChatResponse
from msrkit.recommender import Recommender

ROOT = Path(__file__).resolve().parent.parent


class Timed:
    """A backend wrapper that records each call's stage, tokens and seconds."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.calls: list[tuple[str, int, int, float]] = []

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    def identity(self) -> dict[str, str]:
        return dict(self.inner.identity())

    def chat(self, request: ChatRequest) -> ChatResponse:
        t0 = time.perf_counter()
        response: ChatResponse = self.inner.chat(request)
        seconds = time.perf_counter() - t0
        self.calls.append((request.tag.split("@")[0], response.prompt_tokens, response.completion_tokens, seconds))
        return response

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="llamacpp/default")
    parser.add_argument("--base-url")
    parser.add_argument("--history", default=str(ROOT / "examples" / "history.json"))
    args = parser.parse_args()

    backend = Timed(get_backend(args.backend, base_url=args.base_url))
    rec = Recommender(backend, cache=False)
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    ranking = rec.rank(args.history)
    profiler.disable()
    wall = time.perf_counter() - t0
    rec.close()

    stages: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for tag, p, c, s in backend.calls:
        row = stages[tag]
        row[0] += 1
        row[1] += p
        row[2] += c
        row[3] += s
    model_s = sum(s for *_, s in backend.calls)
    print(f"one rank of {args.history} on {ranking.backend}: {wall:.2f} s wall, {len(backend.calls)} LLM calls")
    print(f"{'stage':<20} {'calls':>5} {'prompt tok':>10} {'compl. tok':>10} {'tok/call':>9} {'model s':>8}")
    for tag, (n, p, c, s) in sorted(stages.items(), key=lambda kv: -kv[1][3]):
        print(f"{tag:<20} {n:>5.0f} {p:>10.0f} {c:>10.0f} {(p + c) / n:>9.0f} {s:>8.2f}")
    own = wall - model_s
    print(f"model time {model_s:.2f} s ({100 * model_s / wall:.1f} %); msrkit's own time {own * 1000:.1f} ms "
          f"({100 * own / wall:.2f} %)")  # fmt: skip
    stats = pstats.Stats(profiler)
    rows = [
        (tt, nc, f"{Path(fn).name}:{line} {name}")
        for (fn, line, name), (_, nc, tt, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if "/msrkit/" in fn
    ]
    print("msrkit functions by own time (cProfile):")
    for tt, nc, where in sorted(rows, reverse=True)[:8]:
        print(f"  {tt * 1000:8.2f} ms  {nc:>6} calls  {where}")


if __name__ == "__main__":
    main()
