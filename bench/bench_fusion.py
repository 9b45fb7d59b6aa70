"""Does the LLM stage, fused with retrieval, do at least as well as retrieval alone? MovieLens-100k.

Leave-one-out by time (the target is each user's last interaction, 20 sampled
negatives, seed 0), the collaborative index built only from interactions
before each case's target. Variants, on the same cases:

- ``retrieval``: the BM25/transition blend alone (``--backend none``);
- ``llm+fusion``: the listwise LLM rerank fused with retrieval at the default
  weight (0.5, reciprocal-rank fusion);
- ``llm only``: the LLM order alone (fusion weight 1.0).

The LLM variants run the listwise stage only (no item or preference
summaries), so a case costs two calls (21 candidates, window 20, stride 10);
``--full`` runs the whole pipeline instead (many more calls per case).
Prints the metric table with bootstrap intervals and paired differences to
``retrieval``, and how often the LLM changed the retrieval order at all.

    python bench/bench_fusion.py --cases 200                    # embedded SmolLM2-135M
    python bench/bench_fusion.py --backend openai/MODEL --base-url URL --cases 500
"""

from __future__ import annotations

import argparse
import random
import time

from msrkit import evaluation as ev
from msrkit.datasets import leave_one_out, load_movielens_100k
from msrkit.inputs.io import resolve
from msrkit.recommender import Recommender, Stages
from msrkit.retrieval import build, interactions_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="llamacpp/default")
    parser.add_argument("--base-url")
    parser.add_argument("--cases", type=int, default=200, help="a seeded random sample of this many users")
    parser.add_argument("--max-history", type=int, default=20)
    parser.add_argument("--full", action="store_true", help="the whole pipeline, not the listwise stage alone")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (1 on a busy 2-core machine)")
    args = parser.parse_args()

    catalog, interactions = load_movielens_100k()
    cases = leave_one_out(catalog, interactions, negatives=20, seed=0, max_history=args.max_history)
    cases = sorted(random.Random(0).sample(cases, min(args.cases, len(cases))), key=lambda c: int(c.user_id or 0))
    cases = [resolve(c, catalog) for c in cases]
    index = build(interactions_before(interactions, cases), catalog=catalog)
    stages = Stages() if args.full else Stages(item_summaries=False, preference_summary=False, collaborative=False)
    cache = args.cache_dir or True

    reports = {}
    started = time.perf_counter()
    with Recommender("none", index=index, catalog=catalog, stages=Stages(llm=False), cache=False) as rec:
        reports["retrieval"] = ev.evaluate(cases, rec.rank, name="retrieval")
    moved = 0
    for name, weight in (("llm+fusion (0.5)", 0.5), ("llm only (1.0)", 1.0)):
        options = {"n_threads": args.threads} if args.threads and args.backend.startswith("llamacpp") else {}
        rec = Recommender(args.backend, base_url=args.base_url, index=index, catalog=catalog, stages=stages,
                          fusion_weight=weight, cache=cache, backend_options=options)  # fmt: skip
        with rec:
            if weight == 0.5:
                for case in cases:  # cached: the evaluate() below reads the same answers
                    ranking = rec.rank(case)
                    moved += any("LLM #" in r.reason and _moved(r.reason) for r in ranking.ranking)
            reports[name] = ev.evaluate(cases, rec.rank, name=name)
    seconds = time.perf_counter() - started
    comparison = ev.compare(reports, ks=(1, 5, 10))
    print(f"MovieLens-100k, {len(cases)} users, leave-one-out, 20 negatives; backend {args.backend}, "
          f"{'full pipeline' if args.full else 'listwise stage only'}; {seconds:.0f} s")  # fmt: skip
    print(ev.to_markdown(comparison))
    calls = sum(r.usage.llm_calls + r.usage.cache_hits for r in reports["llm+fusion (0.5)"].results)
    print(f"\nLLM calls per case: {calls / len(cases):.2f}; the LLM changed the retrieval order in "
          f"{moved} of {len(cases)} cases")  # fmt: skip


def _moved(reason: str) -> bool:
    """``... LLM #a; retrieval #b``: whether the LLM put this item elsewhere than retrieval did."""
    parts = dict(p.strip().split(" #") for p in reason.split(";") if " #" in p)
    return parts.get("LLM") != parts.get("retrieval")


if __name__ == "__main__":
    main()
