"""Use msrkit from an application: rank one user's candidates, read the reasons and the cost.

python examples/library_app.py                      # the embedded model (weak: plumbing only)
MSRKIT_BACKEND=ollama/llava:7b python examples/library_app.py

The settings come from the same place as the command line's: ./msrkit.toml, then MSRKIT_* variables.
"""

from __future__ import annotations

from pathlib import Path

from msrkit import MsrkitError, Recommender, load_settings

HERE = Path(__file__).resolve().parent


def main() -> None:
    try:
        settings, _ = load_settings()  # msrkit.toml < MSRKIT_* variables (e.g. MSRKIT_BACKEND, MSRKIT_CACHE_DIR)
        with Recommender(settings=settings) as rec:
            ranking = rec.rank(HERE / "history.json")
    except MsrkitError as exc:  # one tree for every failure msrkit raises on purpose
        raise SystemExit(f"could not rank: {exc}") from None
    for r in ranking.ranking[:5]:
        print(f"{r.rank:>2}. {r.title or r.item_id:<40} {r.score:.3f}  {r.reason}")
    print("summary:", ranking.preference_summary)
    print("cost:", ranking.usage.model_dump())
    for warning in ranking.warnings:
        print("warning:", warning)


if __name__ == "__main__":
    main()
