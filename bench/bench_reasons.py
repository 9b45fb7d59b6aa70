"""How often a reason says that nothing connects the item to the history (issue 22's "Must show").

Two runs, retrieval only (``--backend none``), every reason written as ``msrkit rank`` writes it:

- **MovieLens-100k, 20-candidate cases** (``msrkit data movielens --out DIR``: each user's last
  item among 20 sampled negatives), the index holding what lies before each case's target;
- **Amazon Beauty, full catalog**: leave-one-out, the index holds every sequence minus its last
  item, and the 20 best unseen items of the whole catalog are generated and explained (the data
  carry no titles: transitions and similar users are all the evidence there is).

Prints, per run, the share of reasons that begin with :data:`~msrkit.ranking.reasons.NO_SIGNAL`,
overall and at rank 1, and which evidence the others cite.

    python bench/bench_reasons.py --movielens /tmp/ml --amazon ../shared/data/amazon-seq [--users 3000]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

from msrkit.data import Item
from msrkit.inputs.io import load_catalog, load_histories, load_interactions
from msrkit.ranking.reasons import NO_SIGNAL
from msrkit.recommender import Recommender
from msrkit.retrieval import build, interactions_before

KINDS = {"title": "Its title shares", "terms": "Shares ", "follows": "took it soon after",
         "similar": "users most like this one"}  # fmt: skip


def tally(reasons: list[tuple[int, str]], name: str, seconds: float) -> None:
    none = [rank for rank, r in reasons if r.startswith(NO_SIGNAL)]
    kinds = Counter(k for _, r in reasons for k, text in KINDS.items() if text in r)
    tops = sum(1 for rank, _ in reasons if rank == 1)
    print(f"{name}: {len(reasons)} reasons in {seconds:.0f} s; no signal: {len(none) / len(reasons):.1%} "
          f"(rank 1: {sum(1 for r in none if r == 1) / max(tops, 1):.1%}); "
          f"cite: {', '.join(f'{k} {n / len(reasons):.0%}' for k, n in kinds.most_common())}", flush=True)  # fmt: skip


def movielens(folder: Path, limit: int | None) -> None:
    catalog = load_catalog(folder / "items.jsonl")
    cases = load_histories(folder / "cases.jsonl")[:limit]
    idx = build(interactions_before(load_interactions(folder / "interactions.jsonl"), cases), catalog=catalog)
    out = []
    t = time.perf_counter()
    with Recommender("none", catalog=catalog, index=idx, cache=False) as rec:
        for case in cases:
            out += [(r.rank, r.reason) for r in rec.rank(case).ranking]
    tally(out, f"MovieLens-100k, {len(cases)} cases x {len(cases[0].candidates or [])} candidates",
          time.perf_counter() - t)  # fmt: skip


def beauty(folder: Path, users: int) -> None:
    from bench_retrieval import amazon, columns

    seqs = amazon("Beauty", folder)
    idx = build(columns({u: s[:-1] for u, s in seqs.items()}))
    picked = np.random.default_rng(0).choice(list(seqs), size=min(users, len(seqs)), replace=False).tolist()
    catalog = {i: Item(item_id=i) for i in idx.item_ids}
    out = []
    t = time.perf_counter()
    with Recommender("none", catalog=catalog, index=idx, cache=False, n_candidates=20) as rec:
        for u in picked:
            out += [(r.rank, r.reason) for r in rec.rank({"user_id": u, "history": seqs[u][:-1]}).ranking]
    tally(out, f"Amazon Beauty full catalog, {len(picked)} users x top 20", time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--movielens", type=Path, help="a folder written by msrkit data movielens --out")
    ap.add_argument("--amazon", type=Path, help="folder of Beauty.txt")
    ap.add_argument("--limit", type=int, help="MovieLens cases (default: all)")
    ap.add_argument("--users", type=int, default=3000, help="Beauty users (sampled, seed 0)")
    args = ap.parse_args()
    if args.movielens:
        movielens(args.movielens, args.limit)
    if args.amazon:
        beauty(args.amazon, args.users)


if __name__ == "__main__":
    main()
