"""msrkit's own overhead per ``rank`` request, LLM time excluded.

A zero-latency scripted backend (FakeBackend) answers instantly, so what is
timed is msrkit: validation, prompt rendering, parsing, repair, fusion,
caching. Prints median and p95 per request, and LLM calls per request.

    python bench/bench_overhead.py            # 20 and 1,000 candidates, cold and cached
    python bench/bench_overhead.py --repeat 200
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from msrkit import FakeBackend, Recommender
from msrkit.recommender import Stages


def history(n_history: int, n_candidates: int, user: str = "u") -> dict[str, object]:
    return {
        "user_id": user,
        "history": [{"item_id": f"h{i}", "title": f"History movie {i}"} for i in range(n_history)],
        "candidates": [{"item_id": f"c{i}", "title": f"Candidate movie {i}"} for i in range(n_candidates)],
    }


class ScriptedModel(FakeBackend):
    """The zero-latency scripted backend, timing itself: its own work (reading the prompt to answer
    with the candidates' numbers) stands in for the model's time and is subtracted."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def chat(self, request: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super().chat(request)
        finally:
            self.seconds += time.perf_counter() - t0


def timed(fn: Callable[[], object], repeat: int, model: ScriptedModel | None = None) -> list[float]:
    """Milliseconds per call of ``fn``, the scripted model's own time taken out."""
    out = []
    for _ in range(repeat):
        inside = model.seconds if model is not None else 0.0
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0 - ((model.seconds - inside) if model is not None else 0.0)
        out.append(elapsed * 1000)
    return out


def report(label: str, ms: list[float], calls: float) -> None:
    p95 = sorted(ms)[int(0.95 * (len(ms) - 1))]
    print(f"{label:<48} median {statistics.median(ms):8.3f} ms   p95 {p95:8.3f} ms   llm calls/request {calls:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    stages = Stages(item_summaries=False, preference_summary=False, collaborative=False)
    for n in (20, 1000):
        fake = ScriptedModel()
        rec = Recommender(fake, cache=False, stages=stages, window=20, stride=10)
        h = history(10, n)
        rec.rank(h)  # warm imports
        before = fake.calls
        ms = timed(lambda rec=rec, h=h: rec.rank(h), args.repeat, fake)  # type: ignore[misc]
        report(f"overhead, {n} candidates, no cache", ms, (fake.calls - before) / args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeBackend()
        rec = Recommender(fake, cache=tmp, stages=Stages(collaborative=False))
        h = history(10, 20)
        rec.rank(h)
        before = fake.calls
        ms = timed(lambda: rec.rank(h), args.repeat)
        report("identical request again (cache hit), 20 candidates", ms, (fake.calls - before) / args.repeat)
        cold_calls = []
        for n_hist in (3, 7, 10):
            f2 = FakeBackend()
            r2 = Recommender(f2, cache=f"{tmp}/cold{n_hist}", stages=Stages(collaborative=False, item_summaries=False))
            r2.rank(history(n_hist, 20, user=f"cold{n_hist}"))
            cold_calls.append((n_hist, f2.calls))
        calls = ", ".join(f"n={n}: {c} calls" for n, c in cold_calls)
        print(f"cold user, k=3, 20 candidates, item summaries off: {calls}")
        # the returning user took one of the candidates ranked for them last time (its keywords are cached)
        model = FakeBackend(default=_answer)
        grow = Recommender(model, cache=f"{tmp}/grow", stages=Stages(collaborative=False))
        first = history(10, 21, user="returning")
        grow.rank(first)
        took = first["candidates"][0]  # type: ignore[index]
        again = {**first, "history": [*first["history"], took], "candidates": first["candidates"][1:]}  # type: ignore[index,misc]
        before = len(model.requests)
        ranking = grow.rank(again)
        new = model.requests[before:]
        by_stage = {t: sum(r.tag.startswith(t) for r in new) for t in ("item_keywords", "preference", "listwise")}
        print(
            f"returning user, 10 -> 11 history items (took a candidate): {len(new)} LLM calls "
            f"({by_stage['item_keywords']} item keywords, {by_stage['preference']} summary block, "
            f"{by_stage['listwise']} rerank), {ranking.usage.cache_hits} cache hits"
        )


def _answer(request: Any) -> str:
    """Rankings echo the candidates' order; summaries and keywords differ with their prompt (as a model's do)."""
    text = request.messages[-1].text_content
    if request.tag.startswith("listwise"):
        return " > ".join(f"[{n}]" for n in range(1, text.count("\n[") + 2))
    return f"summary {hash(text) % 10_000}, drama"


if __name__ == "__main__":
    main()
