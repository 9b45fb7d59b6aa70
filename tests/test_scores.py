"""``score`` means one thing for every scorer: in [0, 1], higher is better, never rising down the ranking,
with ``score_kind`` saying what it measures; the raw numbers stay in ``diagnostics["scores"]``; the
rank-derived stand-in is not shown; the terminal table and the HTML report show the same."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from msrkit.backends.base import ChatRequest, ChatResponse
from msrkit.backends.fake import FakeBackend
from msrkit.cli.rank import print_ranking
from msrkit.data import Ranking
from msrkit.errors import BackendUnavailableError
from msrkit.jobs.report import render_html
from msrkit.ranking import RRF_K, Scored, fuse
from msrkit.ranking.scale import format_score, score_caption, unit_rank, unit_scores
from msrkit.recommender import Recommender

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "examples" / "photos"
HISTORY = PHOTOS / "history.json"
INTERACTIONS = PHOTOS / "interactions.jsonl"
#: a p(yes) per candidate, by the candidate's title (the pointwise prompt shows it)
P_YES = {"Amber Circle": 0.35, "Chelsea": 0.1, "Blue Hour": 0.92, "Morning Ritual": 0.2, "Small Change": 0.05,
         "Rush Hour": 0.6}  # fmt: skip


def _reversed_order(request: ChatRequest) -> ChatResponse:
    """Listwise: the shown candidates backwards (so the LLM and retrieval disagree); other prompts: a word."""
    text = request.messages[-1].text_content
    numbers = [line[1 : line.index("]")] for line in text.splitlines() if line.startswith("[") and "]" in line]
    return ChatResponse(" > ".join(f"[{n}]" for n in reversed(numbers)) or "photo, print")


def _yes_no(request: ChatRequest) -> ChatResponse:
    text = request.messages[-1].text_content
    if request.top_logprobs:
        p = next(p for title, p in P_YES.items() if title in text)
        return ChatResponse("Yes", top_logprobs=[{"Yes": math.log(p), "No": math.log(1 - p)}])
    return ChatResponse("photo, print")


def _rank(backend: FakeBackend | str, **options: object) -> Ranking:
    with Recommender(backend, cache=False, explain=False, **options) as rec:  # type: ignore[arg-type]
        return rec.rank(HISTORY)


SCORERS = {
    "listwise": (lambda: _rank(FakeBackend(default=_reversed_order)), "rank"),
    "pointwise": (lambda: _rank(FakeBackend(default=_yes_no), pointwise=True), "p_yes"),
    "retrieval": (lambda: _rank("none", interactions=INTERACTIONS), "retrieval"),
    "fused listwise": (lambda: _rank(FakeBackend(default=_reversed_order), interactions=INTERACTIONS), "fused"),
    "fused pointwise": (lambda: _rank(FakeBackend(default=_yes_no), pointwise=True, interactions=INTERACTIONS),
                        "fused"),
    "given order": (lambda: _rank("none"), "rank"),
    "degraded, no retrieval": (lambda: _rank(FakeBackend(default=lambda r: BackendUnavailableError("down")), retries=0),
                               "rank"),
    "degraded, with retrieval": (
        lambda: _rank(FakeBackend(default=lambda r: BackendUnavailableError("down")), interactions=INTERACTIONS,
                      retries=0),
        "retrieval",
    ),
}  # fmt: skip


@pytest.mark.parametrize("scorer", list(SCORERS))
def test_score_is_in_0_1_and_never_rises_down_the_ranking_for_every_scorer(scorer: str) -> None:
    make, kind = SCORERS[scorer]
    ranking = make()
    scores = [r.score for r in ranking.ranking]
    assert ranking.score_kind == kind
    assert [r.rank for r in ranking.ranking] == list(range(1, 7))
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True), scores
    assert scores[0] > scores[-1]  # six distinct verdicts here: the scale is used, not one constant
    assert json.loads(ranking.model_dump_json())["score_kind"] == kind


def test_fused_score_is_the_weighted_mean_of_the_two_unit_ranks() -> None:
    ranking = _rank(FakeBackend(default=_reversed_order), interactions=INTERACTIONS, fusion_weight=0.7)
    ranks = ranking.diagnostics["ranks"]
    n = len(ranking.ranking)
    for r in ranking.ranking:
        llm, retrieval = ranks[r.item_id]["llm"], ranks[r.item_id]["retrieval"]
        expected = 0.7 * unit_rank(llm, n) + 0.3 * unit_rank(retrieval, n)
        assert r.score == pytest.approx(expected, abs=2e-6)  # rounded to 6 places, plus the tie-break's hair
    # the LLM reversed retrieval's order: the raw per-stage numbers are kept, unscaled
    raw = ranking.diagnostics["scores"]
    assert all(set(raw[r.item_id]) == {"llm", "retrieval"} for r in ranking.ranking)


def test_retrieval_score_is_the_blend_relative_to_the_best_candidate() -> None:
    ranking = _rank("none", interactions=INTERACTIONS)
    raw = {i: s["retrieval"] for i, s in ranking.diagnostics["scores"].items()}
    best = max(raw.values())
    assert best > 1.0  # the raw blend is not on [0, 1] here: the scaling is doing something
    assert ranking.ranking[0].score == 1.0
    for r in ranking.ranking:
        assert r.score == pytest.approx(raw[r.item_id] / best, abs=1e-6)


def test_pointwise_score_is_p_yes_itself() -> None:
    ranking = _rank(FakeBackend(default=_yes_no), pointwise=True)
    assert [(r.title, r.score) for r in ranking.ranking] == sorted(P_YES.items(), key=lambda kv: -kv[1])
    assert {i: s["llm"] for i, s in ranking.diagnostics["scores"].items()} == {
        r.item_id: r.score for r in ranking.ranking
    }


def test_unit_rank_arithmetic() -> None:
    assert unit_rank(1, 20) == 1.0 and unit_rank(20, 20) == 0.0 and unit_rank(1, 1) == 1.0
    # rank 10 of 20: (1/70 - 1/80) / (1/61 - 1/80)
    assert unit_rank(10, 20) == pytest.approx((1 / 70 - 1 / 80) / (1 / 61 - 1 / 80))
    assert RRF_K == 60


def _old_fused_order(llm: Scored, retrieval: Scored, weight: float) -> list[int]:
    """The fused order before scores were rescaled (the reciprocal-rank sums themselves)."""
    lr, rr = llm.ranks(), retrieval.ranks()
    sums = [weight / (60 + lr[i]) + (1 - weight) / (60 + rr[i]) + 1e-9 / lr[i] for i in range(len(lr))]
    return sorted(range(len(sums)), key=lambda i: (-sums[i], i))


@settings(max_examples=200, deadline=None)
@given(st.data(), st.integers(1, 40), st.floats(0.0, 1.0))
def test_fusion_keeps_the_order_of_the_sums_and_its_scores_say_it(data: st.DataObject, n: int, weight: float) -> None:
    llm = Scored.from_order(data.draw(st.permutations(range(n))), "listwise")
    retrieval = Scored.from_order(data.draw(st.permutations(range(n))), "retrieval")
    fused = fuse(llm, retrieval, weight=weight)
    assert fused.order == _old_fused_order(llm, retrieval, weight)
    in_order = [fused.scores[i] for i in fused.order]
    assert in_order == sorted(in_order, reverse=True) and all(0.0 <= s <= 1.0 for s in in_order)
    assert unit_scores(fused) == (fused.scores, "fused")


def _table(ranking: Ranking, capsys: pytest.CaptureFixture[str]) -> str:
    print_ranking(ranking, quiet=True)
    return " ".join(capsys.readouterr().out.split())


def test_table_and_report_show_the_same_scores_and_caption(capsys: pytest.CaptureFixture[str]) -> None:
    from msrkit.inputs.io import load_histories

    history = load_histories(HISTORY)[0]
    fused = _rank(FakeBackend(default=_reversed_order), interactions=INTERACTIONS)
    table, page = _table(fused, capsys), render_html([(history, fused)])
    caption = score_caption("fused")
    assert caption in table and caption in page
    for r in fused.ranking:
        assert format_score(r.score) in table and f'<td class="score">{format_score(r.score)}</td>' in page
    # the rank-derived stand-in: neither shows a score column, both say why
    alone = _rank(FakeBackend(default=_reversed_order))
    table, page = _table(alone, capsys), render_html([(history, alone)])
    caption = score_caption("rank")
    assert caption in table and caption in page and "not shown" in caption
    assert '<td class="score">' not in page and "<th>score</th>" not in page
    assert "score ┃" not in table and format_score(alone.ranking[0].score) not in table
