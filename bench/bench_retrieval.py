"""Benchmark of msrkit.retrieval: quality on MovieLens-100k and scale on synthetic data.

Quality: leave-one-out by time, every user, full-catalog ranking (all items not in the user's
history), index built from ``interactions_before`` (the user's own target and later rows hidden).
Prints HR@10 / NDCG@10 of each blend component alone and of the blend; ``--grid`` also prints a
small weight grid (tuned on this same data: read it as an upper bound, not a held-out figure).

Scale: ``--users`` users x ``--per-user`` items drawn Zipf(``--zipf``) over ``--items`` items;
index build seconds, similar-user query p50/p95 over ``--queries`` queries, peak memory.

    python bench/bench_retrieval.py                 # full: 943 users, then 1M x 10
    python bench/bench_retrieval.py --users 100000  # quicker scale run
"""

from __future__ import annotations

import argparse
import gc
import itertools
import resource
import time
from dataclasses import asdict, replace

import numpy as np

from msrkit.datasets import leave_one_out, load_movielens_100k
from msrkit.evaluation.metrics import summarize
from msrkit.io import Interaction
from msrkit.retrieval import DEFAULT_BLEND, BlendWeights, CollaborativeIndex, interactions_before

COMPONENTS = ("transitions", "users", "text", "popularity")


def _rank(scores: np.ndarray, seen: np.ndarray, target: int) -> float:
    v = scores.copy()
    v[seen] = -np.inf
    s = v[target]
    return float(1 + np.sum(v > s) + np.sum(v[:target] == s))  # ties: index order, as generate_candidates


def quality(args: argparse.Namespace) -> None:
    catalog, interactions = load_movielens_100k()
    cases = leave_one_out(catalog, interactions, negatives=0, max_history=args.max_history)
    t = time.perf_counter()
    index = CollaborativeIndex.build(interactions_before(interactions, cases), catalog=catalog)
    print(f"MovieLens-100k: {len(cases)} users, {len(catalog)} items; index built in {time.perf_counter() - t:.2f} s")
    comps, seens, targets = [], [], []
    t = time.perf_counter()
    for case in cases:
        seen = [e.item_id for e in case.history]
        comps.append(index.components(seen, exclude_user=case.user_id))
        seens.append(index.seen_indices(seen))
        targets.append(index.item_index[case.target])
    print(f"components: {1000 * (time.perf_counter() - t) / len(cases):.1f} ms per user")

    def evaluate(w: BlendWeights) -> dict[str, float]:
        ranks = []
        for c, seen, target in zip(comps, seens, targets, strict=False):
            blend = sum(getattr(w, name) * c[name] for name in COMPONENTS)
            ranks.append(_rank(blend, seen, target))
        return summarize(ranks, (10,))

    print(f"{'method':<34} HR@10   NDCG@10")
    rows = [(name, BlendWeights(**{n: float(n == name) for n in COMPONENTS})) for name in COMPONENTS]
    rows.append(("blend (default weights)", DEFAULT_BLEND))
    for name, w in rows:
        r = evaluate(w)
        print(f"{name + ' only' if name in COMPONENTS else name:<34} {r['HR@10']:.4f}  {r['NDCG@10']:.4f}")
    print("default weights:", {k: v for k, v in asdict(DEFAULT_BLEND).items()})
    if args.grid:
        results = []
        for tr, us, tx, po in itertools.product(
            (1.0,), (0.0, 0.5, 1.0, 2.0), (0.0, 0.05, 0.1, 0.2), (0.0, 0.1, 0.3, 0.6)
        ):
            w = replace(DEFAULT_BLEND, transitions=tr, users=us, text=tx, popularity=po)
            r = evaluate(w)
            results.append((r["NDCG@10"], r["HR@10"], (tr, us, tx, po)))
        print("grid, best 5 by NDCG@10 (transitions, users, text, popularity):")
        for nd, hr, ws in sorted(results, reverse=True)[:5]:
            print(f"  {ws}: HR@10 {hr:.4f} NDCG@10 {nd:.4f}")


def synthetic(n_users: int, per_user: int, n_items: int, zipf: float, seed: int) -> list[Interaction]:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** zipf
    p /= p.sum()
    items = rng.choice(n_items, size=(n_users, per_user), p=p)
    ts = np.arange(per_user, dtype=np.float64)
    return [
        Interaction(f"u{u}", f"m{i}", float(t))
        for u, row in enumerate(items.tolist())
        for i, t in zip(row, ts.tolist(), strict=False)
    ]


def scale(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    rows = synthetic(args.users, args.per_user, args.items, args.zipf, args.seed)
    print(
        f"\nsynthetic: {args.users} users x {args.per_user} items, Zipf({args.zipf}) over {args.items} items "
        f"({len(rows)} rows, generated in {time.perf_counter() - t:.1f} s)"
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    index = CollaborativeIndex.build(rows, keyword_tokens=False)
    build_s = time.perf_counter() - t
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"index build: {build_s:.1f} s  {index.stats()}")
    rng = np.random.default_rng(args.seed + 1)
    users = rng.choice(args.users, size=args.queries, replace=False)
    histories = {u: [r.item_id for r in rows[u * args.per_user : (u + 1) * args.per_user]] for u in users.tolist()}
    del rows  # an application queries a loaded index, not 10M row objects held in memory
    gc.collect()
    times = []
    for u in users.tolist():
        seen = histories[u]
        t = time.perf_counter()
        index.similar_users(seen, k=3, exclude_user=f"u{u}")
        times.append(1000 * (time.perf_counter() - t))
    gen = []
    for u in users.tolist()[: min(50, args.queries)]:
        seen = histories[u]
        t = time.perf_counter()
        index.generate_candidates(seen, n=20, exclude_user=f"u{u}")
        gen.append(1000 * (time.perf_counter() - t))
    print(
        f"similar_users(k=3): p50 {np.percentile(times, 50):.2f} ms  p95 {np.percentile(times, 95):.2f} ms "
        f"over {len(times)} queries"
    )
    print(f"generate_candidates(n=20, full blend): p50 {np.percentile(gen, 50):.1f} ms over {len(gen)} queries")
    print(f"peak RSS: {rss_after:.0f} MiB (before build, with the input rows: {rss_before:.0f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000, help="synthetic users (scale part)")
    ap.add_argument("--per-user", type=int, default=10)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="popularity skew exponent")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-history", type=int, default=50, help="history items per user used as the query")
    ap.add_argument("--grid", action="store_true", help="also print a weight grid on MovieLens-100k")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    if not args.skip_quality:
        quality(args)
    if not args.skip_scale:
        scale(args)


if __name__ == "__main__":
    main()
