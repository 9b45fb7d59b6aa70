"""Rank many users in one run and write one JSON line per user as it goes.

    python examples/batch_rank.py users.jsonl rankings.jsonl [--backend none]

One user's failure is written as an error line; the others go on. Run it again
after an interruption and it ranks only the users not yet in the file (failed
ones are tried again): ``msrkit rank users.jsonl --out rankings.jsonl`` does the same.
"""

from __future__ import annotations

import argparse

from msrkit import Recommender, load_histories, load_settings
from msrkit.jobs.batch import rank_batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("users")
    parser.add_argument("out")
    parser.add_argument("--backend", help="default: msrkit.toml / MSRKIT_BACKEND, else auto")
    parser.add_argument("--catalog")
    args = parser.parse_args()
    histories = load_histories(args.users)
    # flags over MSRKIT_* variables over msrkit.toml, as on the command line
    settings, _ = load_settings({"backend": args.backend, "catalog": args.catalog})
    with Recommender(settings=settings) as rec:
        summary = rank_batch(rec.rank, histories, out=args.out)
    print(f"{summary.ranked} ranked, {summary.failed} failed, {summary.skipped} already there -> {args.out}")


if __name__ == "__main__":
    main()
