"""Metric definitions checked against values computed by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math

import pytest

from msrkit.evaluation.metrics import MISS, auc, bootstrap_ci, hit_at_k, mrr, ndcg_at_k, rank_of, summarize


def test_hit_at_k() -> None:
    assert hit_at_k(1, 1) == 1.0
    assert hit_at_k(5, 5) == 1.0  # rank 5 is inside the top 5
    assert hit_at_k(6, 5) == 0.0
    assert hit_at_k(MISS, 10) == 0.0


def test_ndcg_at_k() -> None:
    assert ndcg_at_k(1, 10) == 1.0  # 1 / log2(2) = 1
    assert ndcg_at_k(3, 10) == 0.5  # 1 / log2(4) = 1/2
    assert ndcg_at_k(7, 10) == pytest.approx(1 / 3)  # 1 / log2(8) = 1/3
    assert ndcg_at_k(2, 10) == pytest.approx(0.6309297535714575)  # 1 / log2(3) = 1 / 1.5849625...
    assert ndcg_at_k(3, 2) == 0.0  # outside the top 2
    assert ndcg_at_k(MISS, 10) == 0.0


def test_mrr() -> None:
    assert mrr(1) == 1.0
    assert mrr(4) == 0.25  # 1/4
    assert mrr(MISS) == 0.0


@pytest.mark.parametrize("bad", [0, -1, math.nan])
def test_ranks_start_at_one(bad: float) -> None:
    with pytest.raises(ValueError):
        hit_at_k(bad, 1)
    with pytest.raises(ValueError):
        mrr(bad)


def test_auc_counts_negatives_below_and_ties_as_half() -> None:
    # positive 0.6; negatives 0.9 (above), 0.6 (tie: 1/2), 0.1 and 0.3 (below): (2 + 0.5) / 4 = 0.625
    assert auc([0.9, 0.6, 0.6, 0.1, 0.3], target_index=1) == 0.625
    assert auc([1.0, 0.0, 0.0], target_index=0) == 1.0  # above both negatives
    assert auc([0.0, 1.0, 2.0], target_index=0) == 0.0  # below both
    assert auc([0.5, 0.5], target_index=1) == 0.5  # one tie: 1/2
    with pytest.raises(ValueError):
        auc([1.0], target_index=0)
    with pytest.raises(ValueError):
        auc([1.0, 2.0], target_index=2)


def test_rank_of() -> None:
    assert rank_of(["a", "b", "c"], "c") == 3
    assert rank_of(["a"], "z") == MISS


def test_summarize_means_over_users() -> None:
    # ranks 1, 3, miss:
    #   HR@1 = (1 + 0 + 0) / 3; HR@5 = (1 + 1 + 0) / 3
    #   NDCG@5 = (1 + 1/log2(4) + 0) / 3 = 1.5 / 3 = 0.5
    #   MRR = (1 + 1/3 + 0) / 3 = 4/9
    out = summarize([1, 3, MISS], ks=(1, 5))
    assert out["HR@1"] == pytest.approx(1 / 3)
    assert out["HR@5"] == pytest.approx(2 / 3)
    assert out["NDCG@1"] == pytest.approx(1 / 3)
    assert out["NDCG@5"] == pytest.approx(0.5)
    assert out["MRR"] == pytest.approx(4 / 9)
    assert out["n"] == 3
    assert math.isnan(summarize([], ks=(1,))["MRR"])


def test_bootstrap_ci_contains_the_mean_and_is_deterministic() -> None:
    values = [1.0] * 30 + [0.0] * 70  # mean 0.3
    low, high = bootstrap_ci(values, n=2000, seed=7)
    assert low < 0.3 < high
    # the normal-approximation 95% interval is 0.3 +- 1.96 * sqrt(0.3 * 0.7 / 100) = 0.3 +- 0.0898
    assert low == pytest.approx(0.21, abs=0.03) and high == pytest.approx(0.39, abs=0.03)
    assert bootstrap_ci(values, n=2000, seed=7) == (low, high)
    spread = [((i * 37) % 101) / 100 for i in range(50)]  # continuous values: another seed moves the ends
    assert bootstrap_ci(spread, seed=1) == bootstrap_ci(spread, seed=1)
    assert bootstrap_ci(spread, seed=1) != bootstrap_ci(spread, seed=2)


def test_bootstrap_ci_edges() -> None:
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)  # no spread, no width
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], alpha=1.5)


def test_bootstrap_ci_large_input_is_chunked_and_stable() -> None:
    values = [float(i % 2) for i in range(20_001)]
    low, high = bootstrap_ci(values, n=300, seed=0)
    assert low < sum(values) / len(values) < high
    assert high - low < 0.02  # 1.96 * 2 * sqrt(0.25 / 20001) = 0.0139
