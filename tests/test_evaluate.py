"""Evaluation runs, rankings files, comparisons, rendering and SFT export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from msrkit.data import History, Item, RankedItem, Ranking, Usage
from msrkit.errors import InputError
from msrkit.evaluation import (
    Comparison,
    EvalReport,
    compare,
    evaluate,
    export_sft,
    load_rankings,
    load_results,
    plot,
    score_rankings,
    to_json,
    to_markdown,
)
from msrkit.evaluation.metrics import MISS

CATALOG = {i: Item(item_id=i, title=f"Title {i}", attributes={"genres": ["Drama"]}) for i in "abcdefghij"}


def _cases(n: int = 6) -> list[History]:
    # user u<k>: candidates a..e, target is candidate number (k % 5)
    return [
        History(user_id=f"u{k}", history=["f", "g"], candidates=list("abcde"), target="abcde"[k % 5]) for k in range(n)
    ]


def _alphabetical(case: History) -> Ranking:
    ids = sorted(str(c) for c in case.candidates or [])
    return Ranking(
        user_id=case.user_id,
        ranking=[RankedItem(item_id=i, rank=n, score=float(len(ids) - n)) for n, i in enumerate(ids, 1)],
        usage=Usage(llm_calls=1, prompt_tokens=10, completion_tokens=2, cache_hits=0, seconds=0.5),
    )


def _counting(calls: list[str], fail: Callable[[History], bool] = lambda c: False) -> Callable[[History], Ranking]:
    def rank(case: History) -> Ranking:
        calls.append(case.user_id or "")
        if fail(case):
            raise RuntimeError(f"boom for {case.user_id}")
        return _alphabetical(case)

    return rank


# --------------------------------------------------------------------------- evaluate(): scoring, errors, resume


def test_evaluate_scores_each_target_and_sums_cost(tmp_path: Path) -> None:
    report = evaluate(_cases(5), _alphabetical, ks=(1, 5))
    # targets a, b, c, d, e ranked alphabetically: ranks 1..5
    assert [r.rank for r in report.results] == [1, 2, 3, 4, 5]
    assert report.metrics["HR@1"].mean == pytest.approx(1 / 5)
    assert report.metrics["MRR"].mean == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4 + 1 / 5) / 5)
    # AUC of rank r among 5: (5 - r) / 4 -> 1, .75, .5, .25, 0 -> mean 0.5
    assert report.metrics["AUC"].mean == pytest.approx(0.5)
    assert report.usage.llm_calls == 5 and report.usage.prompt_tokens == 50 and report.usage.seconds == 2.5
    assert report.counts == {"cases": 5, "ok": 5, "miss": 0, "missing": 0, "error": 0, "degraded": 0}


def test_one_failing_case_is_an_error_row_and_the_rest_go_on(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    calls: list[str] = []
    report = evaluate(_cases(), _counting(calls, lambda c: c.user_id == "u2"), out_path=out)
    assert calls == [f"u{k}" for k in range(6)]
    statuses = {r.case: r.status for r in report.results}
    assert statuses["u2"] == "error" and all(s == "ok" for k, s in statuses.items() if k != "u2")
    assert "boom for u2" in (report.results[2].error or "")
    assert report.results[2].metric_rank == MISS  # an error counts as a miss, not as a dropped case
    assert report.metrics["HR@5"].mean == pytest.approx(5 / 6)
    # a rerun told to keep errors ranks nothing...
    calls.clear()
    kept = evaluate(_cases(), _counting(calls), out_path=out, retry_errors=False)
    assert calls == [] and kept.counts["error"] == 1
    # ...by default it retries the failed case only
    fixed = evaluate(_cases(), _counting(calls), out_path=out)
    assert calls == ["u2"] and fixed.counts["ok"] == 6
    assert len(out.read_text().splitlines()) == 6


def test_resume_after_a_crash_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    calls: list[str] = []

    def crash_at_u3(case: History) -> Ranking:
        if case.user_id == "u3":
            raise KeyboardInterrupt  # a hard stop: not recorded as a case error
        calls.append(case.user_id or "")
        return _alphabetical(case)

    with pytest.raises(KeyboardInterrupt):
        evaluate(_cases(), crash_at_u3, out_path=out)
    assert calls == ["u0", "u1", "u2"]
    assert sorted(load_results(out)) == ["u0", "u1", "u2"]  # each finished case was on disk at once
    with out.open("a") as fh:
        fh.write('{"case": "u3", "status": "o')  # a torn last line, as a kill mid-write leaves
    calls.clear()
    report = evaluate(_cases(), _counting(calls), out_path=out)
    assert calls == ["u3", "u4", "u5"]  # nothing scored twice, nothing lost
    lines = out.read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["status"] == "ok" for line in lines)
    fresh = evaluate(_cases(), _alphabetical)
    assert report.metrics == fresh.metrics


def test_resume_false_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    evaluate(_cases(), _alphabetical, out_path=out)
    calls: list[str] = []
    evaluate(_cases(), _counting(calls), out_path=out, resume=False)
    assert len(calls) == 6 and len(out.read_text().splitlines()) == 6


def test_cases_must_have_a_target() -> None:
    with pytest.raises(InputError, match="target"):
        evaluate([History(user_id="u", candidates=["a"])], _alphabetical)


def test_progress_counts_resumed_cases_and_comes_after_each_row_is_written(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    evaluate(_cases(2), _alphabetical, out_path=out)
    seen: list[tuple[int, int, int]] = []

    def on_progress(done: int, total: int) -> None:
        seen.append((done, total, len(out.read_text().splitlines())))

    report = evaluate(_cases(4), _alphabetical, out_path=out, on_progress=on_progress)
    assert report.counts["ok"] == 4
    assert seen == [(2, 4, 2), (3, 4, 3), (4, 4, 4)]  # the two resumed cases count; each row is on disk first


def test_repeated_missing_and_hash_shaped_user_ids_are_separate_cases(tmp_path: Path) -> None:
    # issue 14's key collision: a user "#1" and the user without an id at position 1 must stay two cases
    cases = [History(user_id=u, history=["f"], candidates=list("abcde"), target="a") for u in ("#1", None, "u", "u")]
    out = tmp_path / "results.jsonl"
    report = evaluate(cases, _alphabetical, out_path=out)
    assert [r.case for r in report.results] == ["##1", "#1", "#2:u", "#3:u"]
    calls: list[str] = []
    again = evaluate(cases, _counting(calls), out_path=out)
    assert calls == [] and again.counts["ok"] == 4 and len(out.read_text().splitlines()) == 4


def test_a_row_that_is_not_a_result_is_rerun(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    evaluate(_cases(2), _alphabetical, out_path=out)
    rows = out.read_text().splitlines()
    out.write_text(rows[0] + '\n{"case": "u1", "status": "not a status"}\n')
    calls: list[str] = []
    evaluate(_cases(2), _counting(calls), out_path=out)
    assert calls == ["u1"] and sorted(load_results(out)) == ["u0", "u1"]


# --------------------------------------------------------------------------- rankings from another system


def test_score_rankings_reports_missing_users_and_targets(tmp_path: Path) -> None:
    path = tmp_path / "rankings.jsonl"
    rows = [
        {"user_id": "u0", "ranking": ["b", "a", "c", "d", "e"]},  # target a at rank 2
        {"user_id": "u1", "ranking": ["a", "c"]},  # target b not ranked: a miss
        {"user_id": "u2", "ranking": [{"item_id": "zz"}, {"item_id": "c"}]},  # zz is no candidate: c is rank 1
        {"user_id": "stranger", "ranking": ["a"]},  # no case for this user
    ]  # u3 has no ranking at all
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = score_rankings(_cases(4), load_rankings(path), ks=(1, 5))
    by_case = {r.case: r for r in report.results}
    assert by_case["u0"].status == "ok" and by_case["u0"].rank == 2
    assert by_case["u1"].status == "miss" and by_case["u1"].rank is None
    assert by_case["u2"].rank == 1 and "1 ranked id(s) are not candidates: ignored" in by_case["u2"].warnings
    assert by_case["u3"].status == "missing"
    assert report.unmatched == ["stranger"]
    assert report.counts["cases"] == 4  # nobody silently dropped
    # ranks 2, miss, 1, missing: HR@1 = 1/4, MRR = (1/2 + 0 + 1 + 0) / 4 = 0.375
    assert report.metrics["HR@1"].mean == pytest.approx(0.25)
    assert report.metrics["MRR"].mean == pytest.approx(0.375)
    text = to_markdown(report)
    assert "no ranking for: u3" in text and "target not ranked for: u1" in text and "stranger" in text


def test_load_rankings_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"user_id": "u", "ranking": ["a"]}\n{"user_id": "u", "ranking": ["b"]}\n')
    with pytest.raises(InputError, match=r"r\.jsonl:2.*second ranking"):
        load_rankings(path)
    path.write_text('{"user_id": "u", "ranking": "a b"}\n')
    with pytest.raises(InputError, match=r"r\.jsonl:1: ranking"):
        load_rankings(path)


# --------------------------------------------------------------------------- reports and comparisons


def test_report_ci_contains_the_mean_and_is_deterministic() -> None:
    cases = _cases(40)
    first = evaluate(cases, _alphabetical)
    second = evaluate(cases, _alphabetical)
    for name, est in first.metrics.items():
        assert est.low <= est.mean <= est.high, name
        assert second.metrics[name] == est


def test_compare_gives_paired_differences() -> None:
    base = [1.0, 2.0, 3.0, MISS]
    better = [1.0, 1.0, 1.0, 2.0]
    comp = compare({"retrieval": base, "llm": better}, ks=(1,))
    assert comp.baseline == "retrieval"
    llm = comp.rows[1]
    # HR@1: (1 + 1 + 1 + 0)/4 - (1 + 0 + 0 + 0)/4 = 0.5
    assert llm.delta["HR@1"].mean == pytest.approx(0.5)
    assert comp.rows[0].delta == {}
    same = compare({"a": base, "b": base})
    assert same.rows[1].delta["MRR"].model_dump() == {"mean": 0.0, "low": 0.0, "high": 0.0}
    table = to_markdown(comp)
    assert "| retrieval | 4 |" in table and "Paired difference to **retrieval**" in table


def test_to_json_round_trips_with_nulls_for_misses() -> None:
    report = score_rankings(_cases(2), {"u0": ["a"]})
    data = json.loads(to_json(report))
    assert data["results"][1]["status"] == "missing" and data["results"][1]["rank"] is None
    assert EvalReport.model_validate(data) == report
    comp = compare({"x": report, "y": report.ranks()})
    assert Comparison.model_validate_json(to_json(comp)) == comp


def test_plot_writes_a_valid_png(tmp_path: Path) -> None:
    comp = compare({"retrieval": [1.0, 4.0, MISS, 2.0], "llm": [1.0, 1.0, 3.0, 2.0]}, ks=(1, 5))
    path = plot(comp, tmp_path / "plots" / "compare.png")
    with Image.open(path) as img:
        img.verify()
        assert img.format == "PNG"
    with Image.open(path) as img:
        assert img.size[0] > 100 and img.size[1] > 100
    report = evaluate(_cases(), _alphabetical)
    with Image.open(plot(report, tmp_path / "one.png")) as img:
        assert img.format == "PNG"


# --------------------------------------------------------------------------- SFT export


def test_export_sft_listwise_puts_the_target_first(tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    cases = _cases(3)  # targets a, b, c among candidates a..e
    examples = export_sft(cases, task="listwise", catalog=CATALOG, out=out)
    assert [json.loads(line) for line in out.read_text().splitlines()] == examples
    assert len(examples) == 3
    roles = [m["role"] for m in examples[1]["messages"]]
    assert roles == ["system", "user", "assistant"]
    user = examples[1]["messages"][1]["content"]
    assert "[1] Title a | genres: Drama" in user and "[5] Title e" in user
    assert "Title f" in user  # the history is the preference text
    # target b is candidate [2]: first, then the others in their given order
    assert examples[1]["messages"][2]["content"] == "[2] > [1] > [3] > [4] > [5]"
    assert examples[0]["messages"][2]["content"] == "[1] > [2] > [3] > [4] > [5]"


def test_export_sft_yesno_has_one_example_per_candidate() -> None:
    examples = export_sft(_cases(2), task="yesno", catalog=CATALOG)
    assert len(examples) == 10  # 2 cases x 5 candidates
    answers = [e["messages"][-1]["content"] for e in examples[:5]]
    assert answers == ["Yes", "No", "No", "No", "No"]  # target a is the first candidate
    assert "Title a" in examples[0]["messages"][1]["content"]
    assert all(e["messages"][0]["role"] == "system" for e in examples)


def test_export_sft_needs_a_catalog_for_bare_ids() -> None:
    with pytest.raises(InputError, match="unknown item id"):
        export_sft(_cases(1))
