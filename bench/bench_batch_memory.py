"""Peak memory of a batch ``msrkit rank --backend none --out`` against the number of users.

A sequence data set (one line per user: ``user item item ...``, oldest first, as in the
Amazon Sports file) becomes ``interactions.jsonl`` (every sequence minus its last item),
``items.jsonl`` and ``histories.jsonl``; the index is built once. Then
``msrkit rank histories.jsonl --backend none --out r.jsonl -q --no-cache --top-k 10`` runs
in a child process over the first N users and over all of them (candidates generated from
the index), then over N and M synthetic users (random catalog items, 20 given candidates
each, the catalog but no index: the cheap path, so 200,000 users fit in a few minutes of CPU).
The peak RSS of each child is read with ``resource.getrusage(RUSAGE_CHILDREN)`` in a
fresh wrapper process (so one run's peak never hides another's). Prints peak MiB per run
and the ratio to the smallest run of its kind (flat memory: close to 1).

    python bench/bench_batch_memory.py ../shared/data/amazon-seq/Sports_and_Outdoors.txt
    python bench/bench_batch_memory.py SEQS --small 1000 --synthetic 200000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def peak_mib(cmd: list[str]) -> tuple[float, float]:
    """The child's peak RSS in MiB and its wall time in seconds."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _PEAK, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024, time.perf_counter() - t


def write_data(seqs: list[list[str]], d: Path) -> None:
    with open(d / "interactions.jsonl", "w") as inter:
        for user, *items in seqs:
            for t, item in enumerate(items[:-1]):
                inter.write(json.dumps({"user_id": user, "item_id": item, "timestamp": t}) + "\n")
    catalog = sorted({i for _, *items in seqs for i in items})
    (d / "items.jsonl").write_text("".join(json.dumps({"item_id": i}) + "\n" for i in catalog))


def write_histories(path: Path, users: list[dict[str, Any]]) -> None:
    with open(path, "w") as fh:
        for user in users:
            fh.write(json.dumps(user) + "\n")


def synthetic(n: int, catalog: list[str], *, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for u in range(n):
        picked = rng.sample(catalog, rng.randint(3, 12) + 20)
        out.append({"user_id": f"s{u}", "history": picked[20:], "candidates": picked[:20]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sequences", type=Path)
    ap.add_argument("--small", type=int, default=1000, help="users in the small run of each kind")
    ap.add_argument("--synthetic", type=int, default=200_000, help="synthetic users (0: none)")
    ap.add_argument("--no-sequences", action="store_true", help="only the synthetic runs")
    args = ap.parse_args()
    seqs = [line.split() for line in args.sequences.read_text().splitlines() if len(line.split()) >= 3]
    msrkit = [sys.executable, "-m", "msrkit.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_data(seqs, d)
        subprocess.run([*msrkit, "index", "build", "--interactions", str(d / "interactions.jsonl"),
                        "--out", str(d / "idx")], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        real = [{"user_id": u, "history": items[:-1]} for u, *items in seqs]
        catalog = sorted({i for _, *items in seqs for i in items})
        runs = (
            [] if args.no_sequences else [("sequences", args.small, real[: args.small]), ("sequences", len(real), real)]
        )
        if args.synthetic:
            fake = synthetic(args.synthetic, catalog)
            runs += [("synthetic", args.small, fake[: args.small]), ("synthetic", args.synthetic, fake)]
        base: dict[str, float] = {}
        for kind, n, users in runs:
            write_histories(d / "h.jsonl", users)
            (d / "r.jsonl").unlink(missing_ok=True)
            data = ["--catalog", str(d / "items.jsonl")] + (["--index", str(d / "idx")] if kind == "sequences" else [])
            cmd = [*msrkit, "rank", str(d / "h.jsonl"), *data, "--backend", "none", "--top-k", "10", "--no-cache",
                   "-q", "--out", str(d / "r.jsonl")]  # fmt: skip
            mib, secs = peak_mib(cmd)
            with open(d / "r.jsonl") as fh:
                lines = sum(1 for _ in fh)
            base.setdefault(kind, mib)
            print(f"{kind:9} {n:>7} users: peak RSS {mib:7.1f} MiB ({mib / base[kind]:.2f}x the {args.small}-user "
                  f"run), {secs:6.1f} s, {lines} lines in --out", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
