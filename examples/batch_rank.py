"""Rank many users in one run and write one JSON line per user as it goes.

    python examples/batch_rank.py users.jsonl rankings.jsonl [--backend none]

One user's failure is written as an error line; the others go on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from msrkit import MsrkitError, Recommender, load_histories, load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("users")
    parser.add_argument("out")
    parser.add_argument("--backend", help="default: msrkit.toml / MSRKIT_BACKEND, else auto")
    parser.add_argument("--catalog")
    args = parser.parse_args()
    histories = load_histories(args.users)
    ok = failed = 0
    # flags over MSRKIT_* variables over msrkit.toml, as on the command line
    settings, _ = load_settings({"backend": args.backend, "catalog": args.catalog})
    with Recommender(settings=settings) as rec, Path(args.out).open("w") as out:
        for history in histories:
            try:
                line = rec.rank(history).model_dump(mode="json")
                ok += 1
            except MsrkitError as exc:
                line = {"user_id": history.user_id, "error": str(exc)}
                failed += 1
            out.write(json.dumps(line) + "\n")
            out.flush()
    print(f"{ok} ranked, {failed} failed -> {args.out}")


if __name__ == "__main__":
    main()
