"""The same user through different backends: only the backend string changes.

python examples/swap_backends.py                                   # embedded llama.cpp model
python examples/swap_backends.py openai/my-model http://127.0.0.1:8000/v1
python examples/swap_backends.py ollama/llava:7b http://127.0.0.1:11434
python examples/swap_backends.py llamacpp/path/to/model.gguf
"""

from __future__ import annotations

import sys
from pathlib import Path

from msrkit import Recommender

HERE = Path(__file__).resolve().parent


def rank_with(backend: str, base_url: str | None) -> list[str]:
    with Recommender(backend=backend, base_url=base_url, cache=False) as rec:
        ranking = rec.rank(HERE / "history.json")
    usage = ranking.usage
    print(f"{ranking.backend}: {usage.llm_calls} calls, {usage.seconds:.1f} s, degraded={ranking.degraded}")
    return ranking.item_ids()


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "llamacpp/default"
    base_url = sys.argv[2] if len(sys.argv) > 2 else None
    print(rank_with(backend, base_url))
    print(rank_with("none", None), "(no LLM: the given order)")


if __name__ == "__main__":
    main()
