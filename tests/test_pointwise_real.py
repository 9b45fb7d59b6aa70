"""MLLM-MSR's pointwise scorer on real engines: p(yes) from the first token's log-probabilities.

In-process llama.cpp (the embedded model) and the real ``llama_cpp.server``
(OpenAI-compatible, logprobs on the wire). The tiny model's judgements are not
the point; that the probabilities are read from real log-probabilities is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from msrkit.recommender import Recommender, Stages

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "history.json"
SCORE_ONLY = Stages(item_summaries=False, preference_summary=False, collaborative=False)


def _check(ranking: Any) -> None:
    given = [c["item_id"] for c in json.loads(EXAMPLE.read_text())["candidates"]]
    assert sorted(ranking.item_ids()) == sorted(given)
    assert ranking.diagnostics["scorer"] == "pointwise" and not ranking.degraded
    assert ranking.usage.llm_calls == len(given)  # one yes/no question per candidate
    assert not any("scored from the text" in w for w in ranking.warnings), ranking.warnings
    # the score is the model's p(yes) itself (no retrieval to fuse with), on [0, 1], never rising down the list
    assert ranking.score_kind == "p_yes"
    raw = ranking.diagnostics["scores"]
    assert all(0.0 <= r.score <= 1.0 and r.score == raw[r.item_id]["llm"] for r in ranking.ranking)


def test_pointwise_on_llamacpp_in_process(embedded_model: Path) -> None:
    with Recommender("llamacpp/default", cache=False, stages=SCORE_ONLY, pointwise=True, fusion_weight=1.0) as rec:
        ranking = rec.rank(EXAMPLE)
    _check(ranking)
    scores = [r.score for r in ranking.ranking]
    assert scores == sorted(scores, reverse=True)


def test_pointwise_through_the_openai_compatible_server(openai_server: str) -> None:
    pytest.importorskip("msrkit.backends.openai")
    rec = Recommender("openai/smollm2", base_url=openai_server, cache=False, stages=SCORE_ONLY, pointwise=True)
    with rec:
        _check(rec.rank(EXAMPLE))


def test_pointwise_p_yes_values_are_probabilities(embedded_model: Path) -> None:
    from msrkit.backends import get_backend
    from msrkit.data import Item
    from msrkit.ranking import PointwiseScorer

    backend = get_backend("llamacpp/default")
    assert backend is not None
    items = [Item(item_id="a", title="Star Wars"), Item(item_id="b", title="Cooking for beginners")]
    scored = PointwiseScorer(backend).score(items, preference="loves space opera films")
    scores = scored.scores
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) == 2  # real, distinct probabilities
    assert scored.order == sorted(range(2), key=lambda i: -scores[i])
