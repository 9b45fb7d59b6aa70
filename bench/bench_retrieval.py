"""Benchmark of msrkit.retrieval: a paper-style table on MovieLens-100k, Amazon Beauty and Sports, and scale.

Quality (the protocol of the literature, e.g. ICLRec): leave-one-out, every user, the last item
is the target, the index holds every sequence minus its last item, and the **full catalog**
minus the user's history is ranked by ``query(...).candidates`` (ties:
popularity, then index). Rows: each component alone (default knobs), the default blend, the
blend tuned by ``tune_index`` on the index's own data (validation = each user's last indexed
item; no test target is read), a plain transitions counter (last item -> next, raw counts),
popularity, and ICLRec's published figures read from the data's README. ms/user: one core,
wall time of ``query`` (the machine may be shared: compare rows of one run).

Amazon data: ``../shared/data/amazon-seq`` next to the repository (``--amazon``); skipped when absent.

Scale: ``--users`` x ``--per-user`` interactions drawn Zipf(``--zipf``) over ``--items`` items (as
columns: no object per row); build seconds and peak RSS, ``extend`` by 1% more users,
the similar-user search and ``query`` p50/p95.

    OMP_NUM_THREADS=1 python bench/bench_retrieval.py                      # everything
    OMP_NUM_THREADS=1 python bench/bench_retrieval.py --datasets ml-100k --skip-scale
    OMP_NUM_THREADS=1 python bench/bench_retrieval.py --skip-quality --users 1000000 [--select] [--long-cost]
    python bench/bench_retrieval.py --write /tmp/inter.jsonl    # the same synthetic rows as a file, then
    python bench/bench_retrieval.py --skip-quality --from /tmp/inter.jsonl   # read it (chunked, columnar) + build

(``--from`` reads in a fresh process, so its peak RSS is the reader's and the build's alone.)
"""

from __future__ import annotations

import argparse
import re
import resource
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from msrkit.retrieval import (
    DEFAULT_BLEND,
    BlendWeights,
    CollaborativeIndex,
    Interactions,
    build,
    extend,
    query,
    tune_index,
    with_weights,
)
from msrkit.retrieval.components import query_items
from msrkit.retrieval.neighbourhood import similar_users
from msrkit.retrieval.select import select_blend

ROOT = Path(__file__).resolve().parent.parent
AMAZON = ROOT.parent / "shared" / "data" / "amazon-seq"
FILES = {"Beauty": "Beauty.txt", "Sports": "Sports_and_Outdoors.txt"}
Sequences = dict[str, list[str]]


def columns(seqs: Sequences) -> Interactions:
    """The sequences as interaction columns, in sequence order (no timestamps)."""
    user_ids = list(seqs)
    item_code: dict[str, int] = {}
    items = [item_code.setdefault(i, len(item_code)) for s in seqs.values() for i in s]
    users = np.repeat(np.arange(len(user_ids)), [len(s) for s in seqs.values()])
    return Interactions(
        user_ids, list(item_code), users, np.asarray(items, dtype=np.int64), np.full(len(items), np.nan)
    )


def movielens() -> tuple[Sequences, dict[str, object]]:
    from msrkit.datasets import load_movielens_100k

    catalog, rows = load_movielens_100k()  # time-ordered per user
    seqs: Sequences = {}
    for r in rows:
        seqs.setdefault(r.user_id, []).append(r.item_id)
    return seqs, dict(catalog)


def amazon(name: str, folder: Path) -> Sequences:
    seqs: Sequences = {}
    for line in (folder / FILES[name]).read_text().splitlines():
        user, *items = line.split()
        seqs[user] = items
    return seqs


def iclrec(folder: Path) -> dict[str, tuple[float, float]]:
    """ICLRec's published HR@10 / NDCG@10, from the data's README table."""
    out = {}
    for name, hr, nd in re.findall(
        r"\| (\w+) \(ICLRec, trained\) \| ([\d.]+) \| ([\d.]+) \|", (folder / "README.md").read_text()
    ):
        out[name] = (float(hr), float(nd))
    return out


def only(component: str, base: BlendWeights = DEFAULT_BLEND) -> BlendWeights:
    zero = {"transitions": 0.0, "users": 0.0, "text": 0.0, "popularity": 0.0, "long": 0.0}
    return replace(base, **{**zero, component: 1.0})


PLAIN = replace(only("transitions"), t_window=1, t_gap_power=0.0, t_max_row=None, t_recent=1, t_alpha=0.0)


def evaluate(idx: CollaborativeIndex, hists: Sequences, targets: dict[str, str]) -> tuple[float, np.ndarray, float]:
    """HR@10 over all users, each user's NDCG@10, and ms per user of ``query``."""
    nd = np.zeros(len(hists))
    t0 = time.perf_counter()
    for n, (user, hist) in enumerate(hists.items()):
        top = [i for i, _ in query(idx, hist, n=10, exclude_user=user, context_k=0, support=False).candidates]
        if targets[user] in top:
            nd[n] = 1 / np.log2(top.index(targets[user]) + 2)
    ms = 1000 * (time.perf_counter() - t0) / len(hists)
    return float(np.count_nonzero(nd) / len(hists)), nd, ms


def interval(values: np.ndarray, draws: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 95 % bootstrap interval of the mean over users."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(name: str, seqs: Sequences, catalog: dict[str, object] | None, published: tuple[float, float] | None,
          *, full_tune: bool = True) -> None:  # fmt: skip
    hists = {u: s[:-1] for u, s in seqs.items() if len(s) >= 2}
    targets = {u: seqs[u][-1] for u in hists}
    rows = columns({u: s[:-1] for u, s in seqs.items()})
    t = time.perf_counter()
    idx = build(rows, catalog=catalog)  # type: ignore[arg-type]
    build_s = time.perf_counter() - t
    n_items = len(idx.item_ids)
    print(f"\n### {name}: {len(hists)} users, {n_items} items, {len(rows) + len(hists)} interactions "
          f"(index built in {build_s:.1f} s)\n")  # fmt: skip
    print("| method | HR@10 | NDCG@10 [95 % interval] | ms/user |\n|---|---:|---:|---:|")

    def row(label: str, weights: BlendWeights) -> np.ndarray:
        hr, nd, ms = evaluate(with_weights(idx, weights), hists, targets)
        lo, hi = interval(nd)
        print(f"| {label} | {hr:.4f} | {nd.mean():.4f} [{lo:.4f}, {hi:.4f}] | {ms:.2f} |", flush=True)
        return nd

    row("popularity", only("popularity"))
    row("plain transitions counter (last item -> next, counts)", PLAIN)
    row("T: windowed transitions alone", only("transitions"))
    row("S: BM25 user-kNN alone", only("users"))
    if len(idx.words):
        row("X: item-text BM25 alone", only("text"))
    row("L: long-history co-occurrence alone", only("long"))
    before = row("**fixed default blend** (before: what every index used)", DEFAULT_BLEND)
    cpu = time.process_time()
    chosen = select_blend(idx)
    cpu = time.process_time() - cpu
    after = row("**self-selected blend** (the new default: msrkit index build)", chosen.weights)
    if full_tune:
        tuned = tune_index(idx)
        row("**tuned blend** (--tune: the full search)", tuned.weights)
    if published:
        print(f"| ICLRec (trained transformer, published) | {published[0]:.4f} | {published[1]:.4f} | - |")
    lo, hi = interval(after - before)
    print(f"\nself-selection: {chosen.evaluations} evaluations in {chosen.seconds:.1f} s wall, {cpu:.1f} s CPU (one "
          f"thread) on {chosen.users} validation "
          f"users; changed: {chosen.changed or 'nothing'}; paired NDCG@10 difference (new - before) "
          f"{(after - before).mean():+.4f} [{lo:+.4f}, {hi:+.4f}]")  # fmt: skip
    for line in chosen.why:
        print(f"  {line}")
    if full_tune:
        start, end = tuned.steps[0], tuned.steps[-1]
        print(f"tuning: {tuned.evaluations} evaluations in {tuned.seconds:.0f} s on {tuned.users} users; "
              f"validation NDCG@10 {start.ndcg:.4f} -> {end.ndcg:.4f}; "
              f"changed: {tuned.changed or 'nothing'}")  # fmt: skip


def synthetic(n_users: int, per_user: int, n_items: int, zipf: float, seed: int) -> Interactions:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** zipf
    items = rng.choice(n_items, size=n_users * per_user, p=p / p.sum())
    return Interactions(
        [f"u{u}" for u in range(n_users)], [f"m{i}" for i in range(n_items)],
        np.repeat(np.arange(n_users, dtype=np.int64), per_user), items.astype(np.int64),
        np.tile(np.arange(per_user, dtype=np.float64), n_users),
    )  # fmt: skip


def percentiles(fn: Callable[[str], object], users: list[str], warm: int = 50) -> tuple[float, float]:
    for u in users[:warm]:
        fn(u)
    times = []
    for u in users[warm:]:
        t = time.perf_counter()
        fn(u)
        times.append(1000 * (time.perf_counter() - t))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def write(path: Path, rows: Interactions) -> None:
    """The rows as JSONL, CSV or Parquet (by the suffix), in chunks."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        users, items = np.array(rows.user_ids), np.array(rows.item_ids)
        table = pa.table({"user_id": users[rows.users], "item_id": items[rows.items], "timestamp": rows.ts})
        pq.write_table(table, path)
        return
    with path.open("w") as fh:
        if path.suffix == ".csv":
            fh.write("user_id,item_id,timestamp\n")
        for lo in range(0, len(rows), 1_000_000):
            hi = min(lo + 1_000_000, len(rows))
            us, its, ts = rows.users[lo:hi].tolist(), rows.items[lo:hi].tolist(), rows.ts[lo:hi].tolist()
            if path.suffix == ".csv":
                fh.writelines(f"u{u},m{i},{t:g}\n" for u, i, t in zip(us, its, ts, strict=True))
            else:
                fh.writelines(f'{{"user_id": "u{u}", "item_id": "m{i}", "timestamp": {t:g}}}\n'
                              for u, i, t in zip(us, its, ts, strict=True))  # fmt: skip


def scale(args: argparse.Namespace) -> None:
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.source is not None:
        from msrkit.retrieval import read_interactions

        t = time.perf_counter()
        rows = read_interactions(args.source)
        read_s = time.perf_counter() - t
        rss_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\nread_interactions({args.source.name}): {len(rows):,} rows in {read_s:.1f} s, "
              f"peak RSS {rss_read:.0f} MiB (the interpreter and msrkit: {rss0:.0f} MiB)")  # fmt: skip
        args.users, args.per_user = len(rows.user_ids), len(rows) // max(len(rows.user_ids), 1)
    else:
        rows = synthetic(args.users, args.per_user, args.items, args.zipf, args.seed)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    idx = build(rows, keyword_tokens=False)
    build_s = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n### Scale: {args.users:,} users x {args.per_user} items, Zipf({args.zipf}) over {args.items:,} items\n")
    print(f"build: {build_s:.1f} s, peak RSS {rss:.0f} MiB (before the build, with the input columns: {rss0:.0f} MiB); "
          f"{idx.stats()}")  # fmt: skip
    if args.select:
        t = time.perf_counter()
        chosen = select_blend(idx)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"self-selection (msrkit index build's default): {time.perf_counter() - t:.1f} s, peak RSS {rss:.0f} "
              f"MiB; {chosen.evaluations} evaluations; changed: {chosen.changed or 'nothing'}")  # fmt: skip
    if args.long_cost:
        t = time.perf_counter()
        long = idx.long_matrix()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"L (long-history co-occurrence, l_window {idx.weights.l_window}, {len(long.nxt):,} entries): "
              f"{time.perf_counter() - t:.1f} s, peak RSS {rss:.0f} MiB")  # fmt: skip
    picked = np.random.default_rng(args.seed + 1).choice(len(idx.user_ids), args.queries, replace=False).tolist()
    seqs = {idx.user_ids[u]: [idx.item_ids[i] for i in idx.seq_items[idx.seq_ptr[u] : idx.seq_ptr[u + 1]]]
            for u in picked}  # fmt: skip
    users = list(seqs)
    w = idx.weights
    sim = percentiles(lambda u: similar_users(idx, query_items(idx.seen_indices(seqs[u]), recent=w.u_recent,
                                                               decay=w.u_decay), 3, u), users)  # fmt: skip
    gen = percentiles(lambda u: query(idx, seqs[u], n=20, exclude_user=u, context_k=0, support=False), users)
    print(f"similar_users(k=3): p50 {sim[0]:.2f} ms, p95 {sim[1]:.2f} ms; query(n=20, blend): "
          f"p50 {gen[0]:.2f} ms, p95 {gen[1]:.2f} ms ({len(users) - 50} queries after 50 warm-up)")  # fmt: skip
    more = synthetic(args.users // 100, args.per_user, args.items, args.zipf, args.seed + 2)
    more.user_ids = [f"new{u}" for u in range(len(more.user_ids))]
    t = time.perf_counter()
    idx = extend(idx, more)
    print(f"extend by {len(more.user_ids):,} new users ({len(more):,} rows): {time.perf_counter() - t:.1f} s "
          f"(the transitions and the user BM25 matrix are recomputed from the stored sequences)")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=["ml-100k", "Beauty", "Sports"])
    ap.add_argument("--amazon", type=Path, default=AMAZON, help="folder of Beauty.txt, Sports_and_Outdoors.txt")
    ap.add_argument("--users", type=int, default=1_000_000, help="synthetic users (scale part)")
    ap.add_argument("--per-user", type=int, default=10)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--zipf", type=float, default=1.0, help="popularity skew exponent")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--select", action="store_true", help="scale part: time the self-selection after the build")
    ap.add_argument("--long-cost", action="store_true", help="scale part: time building L after the build")
    ap.add_argument("--skip-tune", action="store_true", help="leave out the full --tune search (minutes per data set)")
    ap.add_argument("--write", type=Path, help="write the synthetic rows to this .jsonl/.csv/.parquet and stop")
    ap.add_argument("--from", dest="source", type=Path, help="scale part: read the rows from this file")
    args = ap.parse_args()
    if args.write:
        write(args.write, synthetic(args.users, args.per_user, args.items, args.zipf, args.seed))
        print(f"wrote {args.users * args.per_user:,} rows to {args.write}")
        return
    if not args.skip_quality:
        have_amazon = (args.amazon / "README.md").is_file()
        published = iclrec(args.amazon) if have_amazon else {}
        for name in args.datasets:
            if name == "ml-100k":
                seqs, catalog = movielens()
                table("MovieLens-100k", seqs, catalog, None, full_tune=not args.skip_tune)
            elif not have_amazon:
                print(f"\n### {name}: skipped (no Amazon data at {args.amazon})")
            else:
                table(name, amazon(name, args.amazon), None, published.get(name), full_tune=not args.skip_tune)
    if not args.skip_scale:
        scale(args)


if __name__ == "__main__":
    main()
