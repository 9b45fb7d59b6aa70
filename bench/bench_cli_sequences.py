"""The command line on a whole leave-one-out benchmark: `msrkit index build` then `msrkit rank --backend none`.

What a user does with a sequence data set (one line per user: ``user item item ...``, oldest
first, as in the Amazon Beauty / Sports files): every user's sequence minus its last item
becomes ``interactions.jsonl`` and ``histories.jsonl`` (no candidates: msrkit generates them
from the full catalog; the item ids are ``items.jsonl``), the index is built once, and every
user is ranked by retrieval alone.
Prints the wall time of each command, ms per user, and HR@10 / NDCG@10 scored from the
``--out`` file against the held-out last items (so the figures are what the CLI wrote).

    python bench/bench_cli_sequences.py ../shared/data/amazon-seq/Beauty.txt [--tune] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sequences", type=Path, help="one line per user: user_id item_id item_id ...")
    ap.add_argument("--tune", action="store_true", help="msrkit index build --tune")
    ap.add_argument("--limit", type=int, default=None, help="only the first N users")
    args = ap.parse_args()
    seqs = [line.split() for line in args.sequences.read_text().splitlines() if len(line.split()) >= 3]
    seqs = seqs[: args.limit]
    msrkit = [sys.executable, "-m", "msrkit.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        with open(d / "interactions.jsonl", "w") as inter, open(d / "histories.jsonl", "w") as hist:
            for user, *items in seqs:
                for t, item in enumerate(items[:-1]):
                    inter.write(json.dumps({"user_id": user, "item_id": item, "timestamp": t}) + "\n")
                hist.write(json.dumps({"user_id": user, "history": items[:-1]}) + "\n")
        catalog = sorted({i for _, *items in seqs for i in items})  # ids only: these data have no titles
        (d / "items.jsonl").write_text("".join(json.dumps({"item_id": i}) + "\n" for i in catalog))
        build = [*msrkit, "index", "build", "--interactions", str(d / "interactions.jsonl"), "--out", str(d / "idx")]
        build_s = run(build + (["--tune"] if args.tune else []))
        rank = [*msrkit, "rank", str(d / "histories.jsonl"), "--index", str(d / "idx"),
                "--catalog", str(d / "items.jsonl"), "--backend", "none", "--top-k", "10", "--no-cache", "-q",
                "--out", str(d / "ranked.jsonl")]  # fmt: skip
        rank_s = run(rank)
        targets = {user: items[-1] for user, *items in seqs}
        hr = nd = 0.0
        n = 0
        for line in (d / "ranked.jsonl").read_text().splitlines():
            r = json.loads(line)
            top = [c["item_id"] for c in r.get("ranking", [])][:10]
            n += 1
            target = targets[r["user_id"]]
            if target in top:
                hr += 1
                nd += 1 / math.log2(top.index(target) + 2)
    users = len(seqs)
    print(f"{args.sequences.name}: {users} users, {sum(len(s) - 2 for s in seqs)} indexed interactions"
          f"{' (tuned)' if args.tune else ''}")  # fmt: skip
    print(
        f"msrkit index build: {build_s:.1f} s; msrkit rank --backend none: {rank_s:.1f} s "
        f"({1000 * rank_s / users:.2f} ms/user, process start included); total {build_s + rank_s:.1f} s"
    )
    print(f"scored from --out: {n} users, HR@10 {hr / users:.4f}, NDCG@10 {nd / users:.4f}")


if __name__ == "__main__":
    main()
