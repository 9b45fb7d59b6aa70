"""Collaborative retrieval: BM25 parity with rank_bm25, similar users, next items, leakage, persistence."""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np
import pytest

from msrkit.config import Settings
from msrkit.data import History, Item
from msrkit.errors import InputError
from msrkit.inputs.io import Interaction
from msrkit.retrieval import (
    DEFAULT_BLEND,
    CollaborativeIndex,
    build,
    build_index,
    extend,
    interactions_before,
    load,
    okapi_bm25,
    query,
    save,
    with_weights,
)
from msrkit.retrieval.components import query_items
from msrkit.retrieval.neighbourhood import similar_users

CORPUS = [
    ["the", "cat", "sat", "on", "the", "mat"],
    ["the", "dog", "sat", "on", "the", "log"],
    ["cats", "and", "dogs", "and", "birds"],
    ["a", "bird", "in", "the", "hand"],
    ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"],
    ["space", "opera", "with", "a", "cat"],
]
QUERIES = [["cat", "sat"], ["dog", "the"], ["bird", "hand", "fox"], ["space", "cat", "cat"], ["unknown"]]


def _vocab() -> dict[str, int]:
    return {w: n for n, w in enumerate(sorted({w for d in CORPUS for w in d}))}


def similar(
    idx: CollaborativeIndex, seen: list[str], *, k: int, exclude_user: str | None = None
) -> list[tuple[str, float]]:
    """The ``k`` users most similar to ``seen`` (the search S makes, with ``k`` users instead of ``u_k``)."""
    w = idx.weights
    q = query_items(idx.seen_indices(seen), recent=w.u_recent, decay=w.u_decay)
    docs, scores = similar_users(idx, q, k, exclude_user)
    return [(idx.user_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]


def test_bm25s_matches_rank_bm25_okapi() -> None:
    """bm25s with method='atire' (tf part) + idf_method='robertson' is rank_bm25's BM25Okapi.

    rank_bm25 replaces a negative idf (a term in more than half the documents, here "the")
    with epsilon * mean idf, bm25s floors it at 0: with epsilon=0 they agree exactly.
    """
    import bm25s
    from rank_bm25 import BM25Okapi

    ref = BM25Okapi(CORPUS, k1=1.5, b=0.75, epsilon=0.0)
    engine = bm25s.BM25(k1=1.5, b=0.75, method="atire", idf_method="robertson")
    engine.index(CORPUS, show_progress=False)
    for q in QUERIES:
        ids = engine.get_tokens_ids(q)
        ours = engine.get_scores_from_ids(ids) if ids else np.zeros(len(CORPUS))
        np.testing.assert_allclose(ours, ref.get_scores(q), rtol=1e-6, atol=1e-6)


def test_bm25s_matches_rank_bm25_default_epsilon_without_common_terms() -> None:
    from rank_bm25 import BM25Okapi

    corpus = [d for d in CORPUS]
    ref = BM25Okapi(corpus)  # default epsilon only matters for terms in more than half the documents
    vocab = _vocab()
    doc = np.array([n for n, d in enumerate(corpus) for _ in d])
    tok = np.array([vocab[w] for d in corpus for w in d])
    ours = okapi_bm25(doc, tok, len(corpus), len(vocab), idf_method="robertson")
    for q in (["cat", "sat"], ["bird", "hand", "fox"], ["space", "cat", "cat"]):
        np.testing.assert_allclose(ours.get_scores_from_ids([vocab[w] for w in q]), ref.get_scores(q), rtol=1e-6)


@pytest.mark.parametrize("idf_method", ["robertson", "lucene"])
def test_vectorised_matrix_equals_bm25s_index(idf_method: str) -> None:
    import bm25s

    vocab = _vocab()
    engine = bm25s.BM25(k1=1.5, b=0.75, method="atire", idf_method=idf_method)
    engine.index(CORPUS, show_progress=False)
    doc = np.array([n for n, d in enumerate(CORPUS) for _ in d])
    tok = np.array([vocab[w] for d in CORPUS for w in d])
    ours = okapi_bm25(doc, tok, len(CORPUS), len(vocab), idf_method=idf_method)
    for w, i in vocab.items():
        np.testing.assert_allclose(
            ours.get_scores_from_ids([i]), engine.get_scores_from_ids(engine.get_tokens_ids([w])), rtol=1e-6
        )


def _rows(seqs: dict[str, list[str]], timed: bool = True) -> list[Interaction]:
    return [Interaction(u, i, float(t) if timed else None) for u, items in seqs.items() for t, i in enumerate(items)]


TOY = {
    "alice": ["a", "b", "c", "d"],
    "bob": ["a", "b", "c", "x", "y"],  # shares a, b, c with "me"; then x
    "carol": ["a", "z"],
    "dave": ["p", "q", "r"],
    "me": ["a", "b", "c"],
}
CATALOG = {
    "a": Item(item_id="a", title="Alien", keywords=["space", "horror"]),
    "b": Item(item_id="b", title="Blade Runner", keywords=["space", "noir"]),
    "c": Item(item_id="c", title="Contact", attributes={"genres": ["Sci-Fi"]}),
    "d": Item(item_id="d", title="Dune", keywords=["desert", "space"]),
    "x": Item(item_id="x", title="Xanadu"),
    "y": Item(item_id="y", title="Yojimbo"),
}


def test_similar_users_rank_by_overlap_and_exclude_self() -> None:
    idx = build(_rows(TOY), keyword_tokens=False)
    found = similar(idx, ["a", "b", "c"], k=3, exclude_user="me")
    assert [u for u, _ in found][:2] == ["bob", "alice"] or [u for u, _ in found][:2] == ["alice", "bob"]
    assert "me" not in [u for u, _ in found] and "dave" not in [u for u, _ in found]
    assert found[0][1] >= found[1][1] >= found[-1][1] > 0
    assert similar(idx, ["a", "b", "c"], k=1)[0][0] in {"me", "alice", "bob"}
    assert "me" in [u for u, _ in similar(idx, ["a", "b", "c"], k=5)]


def test_next_item_context_gives_next_items_only() -> None:
    idx = build(_rows(TOY), catalog=CATALOG)
    ctx = query(idx, ["a", "b", "c"], exclude_user="me", context_k=2, per_user=3, n=0, support=False).context(None, idx)
    # alice did d after c, bob did x after c; neither seen item nor later item y
    assert set(ctx) == {"desert, space", "Xanadu"}
    plain = query(idx, ["a", "b", "c"], exclude_user="me", context_k=2, n=0, support=False).context({}, idx)
    assert "Xanadu" in plain


def test_next_item_context_never_shows_own_future_in_eval() -> None:
    rows = _rows({**TOY, "me": ["a", "b", "c", "SECRET"]})
    case = History(user_id="me", history=["a", "b", "c"], candidates=["SECRET", "x"], target="SECRET",
                   target_timestamp=3.0)  # fmt: skip
    idx = build(interactions_before(rows, [case]))
    assert "SECRET" not in idx.item_index
    for k in (1, 5):
        assert "SECRET" not in query(idx, ["a", "b", "c"], context_k=k, n=0, support=False).context(None, idx)


def test_interactions_before_drops_target_and_later() -> None:
    rows = [
        Interaction("u", "i1", 1.0), Interaction("v", "j1", 9.0), Interaction("u", "i2", 2.0),
        Interaction("u", "T", 3.0), Interaction("u", "late", 4.0), Interaction("u", "same", 3.0),
    ]  # fmt: skip
    case = History(user_id="u", history=["i1", "i2"], candidates=["T"], target="T", target_timestamp=3.0)
    kept = interactions_before(rows, [case])
    assert kept == [Interaction("u", "i1", 1.0), Interaction("v", "j1", 9.0), Interaction("u", "i2", 2.0)]
    untimed = [Interaction("u", "i1"), Interaction("u", "T"), Interaction("u", "after"), Interaction("v", "T")]
    case = History(user_id="u", history=["i1"], candidates=["T"], target="T")
    assert interactions_before(untimed, [case]) == [Interaction("u", "i1"), Interaction("v", "T")]


def test_interactions_before_with_leave_one_out_cases() -> None:
    from msrkit.datasets import leave_one_out

    rows = _rows(TOY)
    catalog = {i: Item(item_id=i) for r in rows for i in [r.item_id]}
    cases = leave_one_out(catalog, rows, negatives=1, min_history=1)
    kept = interactions_before(rows, cases)
    for case in cases:
        assert Interaction(case.user_id, case.target, len(TOY[case.user_id]) - 1.0) not in kept
    assert len(kept) == len(rows) - len(cases)


def test_save_load_roundtrip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    idx = build(_rows(TOY), catalog=CATALOG)
    save(idx, tmp_path / "idx")
    back = load(tmp_path / "idx")
    seen = ["a", "b"]
    assert similar(back, seen, k=4) == similar(idx, seen, k=4)
    assert (
        query(back, seen, candidate_ids=list(CATALOG) + ["nope"], context_k=0, support=False).scores()
        == query(idx, seen, candidate_ids=list(CATALOG) + ["nope"], context_k=0, support=False).scores()
    )
    assert (
        query(back, seen, n=5, context_k=0, support=False).candidates
        == query(idx, seen, n=5, context_k=0, support=False).candidates
    )
    assert query(back, seen, n=0, support=False).context(None, back) == query(idx, seen, n=0, support=False).context(
        None, idx
    )
    assert back.stats() == idx.stats()


def test_load_missing_or_corrupt_raises_input_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no manifest"):
        load(tmp_path / "absent")
    save(build(_rows(TOY)), tmp_path / "idx")
    (tmp_path / "idx" / "arrays.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match=str(tmp_path / "idx")):
        load(tmp_path / "idx")
    (tmp_path / "idx" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="msrkit index build"):
        load(tmp_path / "idx")


def _random_rows(n_users: int, seed: int) -> list[Interaction]:
    rng = random.Random(seed)
    return [
        Interaction(f"u{u}", f"i{min(int(rng.paretovariate(1.2)), 60)}", float(rng.randrange(1000)))
        for u in range(n_users)
        for _ in range(rng.randrange(1, 12))
    ]


def test_extend_equals_full_build() -> None:
    rows = _random_rows(80, seed=1)
    more = _random_rows(100, seed=2)  # overlaps the first users (new rows at any time) and adds new users
    catalog = {f"i{n}": Item(item_id=f"i{n}", title=f"Film {n % 7}", keywords=[f"k{n % 5}"]) for n in range(70)}
    full = build(rows + more, catalog=catalog)
    grown = build(rows, catalog=catalog)
    grown = extend(grown, more, catalog=catalog)
    assert sorted(grown.user_ids) == sorted(full.user_ids)
    for u in ("u3", "u90"):
        seen = [grown.item_ids[i] for i in grown.seq_items[grown.seq_ptr[grown.user_index[u]]:
                                                         grown.seq_ptr[grown.user_index[u] + 1]]]  # fmt: skip
        want = [full.item_ids[i] for i in full.seq_items[full.seq_ptr[full.user_index[u]]:
                                                      full.seq_ptr[full.user_index[u] + 1]]]  # fmt: skip
        assert seen == want
        a, b = similar(grown, seen[:4], k=5), similar(full, seen[:4], k=5)
        assert [x for x, _ in a] == [x for x, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-6)
        cands = sorted(catalog)
        np.testing.assert_allclose(
            query(grown, seen, candidate_ids=cands, context_k=0, support=False).scores(),
            query(full, seen, candidate_ids=cands, context_k=0, support=False).scores(),
            rtol=1e-6,
        )
        assert query(grown, seen[:3], context_k=5, n=0, support=False).context(None, grown) == query(
            full, seen[:3], context_k=5, n=0, support=False
        ).context(None, full)


def test_extend_and_with_weights_leave_the_index_as_it_was() -> None:
    """The index is data: the functions that make another one from it never change it."""
    rows = _random_rows(80, seed=1)
    idx = build(rows)
    seen = ["i1", "i2", "i3"]
    before, users = query(idx, seen, n=10).candidates, list(idx.user_ids)
    other = with_weights(idx, replace(DEFAULT_BLEND, t_window=3, users=0.0))
    grown = extend(idx, _random_rows(100, seed=2))
    assert other.weights != idx.weights == DEFAULT_BLEND and len(grown.user_ids) > len(users)
    assert query(idx, seen, n=10).candidates == before and idx.user_ids == users
    assert query(other, seen, n=10).candidates == query(build(rows, weights=other.weights), seen, n=10).candidates


def test_build_index_is_build_with_the_settings_blend_and_the_cases_cut() -> None:
    """The one constructor: the cases' futures cut as ``interactions_before`` cuts them, the blend as set."""
    rows = _random_rows(80, seed=3)
    case = History(user_id="u5", history=["i1"], target=rows[[r.user_id for r in rows].index("u5")].item_id)
    fixed = build_index(Settings(index_select=False, cache=False), rows=rows, cases=[case])
    plain = build(interactions_before(rows, [case]))
    assert fixed.tuning is None and fixed.stats() == plain.stats()
    assert np.array_equal(fixed.seq_items, plain.seq_items) and fixed.user_ids == plain.user_ids
    chosen = build_index(Settings(cache=False), rows=rows, cases=[case])
    assert chosen.tuning is not None and chosen.tuning.mode == "auto" and chosen.weights == chosen.tuning.weights


def test_pruned_top_k_equals_brute_force() -> None:
    rows = _random_rows(3000, seed=3)
    idx = build(rows)
    docs = idx.users_bm25.scores
    for seed in range(20):
        rng = random.Random(seed)
        seen = [f"i{min(int(rng.paretovariate(1.2)), 60)}" for _ in range(rng.randrange(1, 10))]
        w = idx.weights  # each distinct seen item once, weighted by recency (no keywords here)
        terms, weights = query_items(idx.seen_indices(seen), recent=w.u_recent, decay=w.u_decay)
        dense = np.zeros(docs["num_docs"])
        for t, qw in zip(terms, weights, strict=True):
            lo, hi = docs["indptr"][t], docs["indptr"][t + 1]
            dense[docs["indices"][lo:hi]] += qw * docs["data"][lo:hi]
        k = (1, 3, 5, 10)[seed % 4]
        exclude = int(np.argmax(dense)) if seed % 2 else None  # the best match left out, as a user's own document
        if exclude is not None:
            dense[exclude] = 0.0
        order = [d for d in np.lexsort((np.arange(len(dense)), -dense)).tolist() if dense[d] > 0][:k]
        name = idx.user_ids[exclude] if exclude is not None else None
        got = similar(idx, seen, k=k, exclude_user=name)
        assert [idx.user_index[u] for u, _ in got] == order
        assert [s for _, s in got] == pytest.approx(dense[order].tolist())


def test_generate_candidates_sorted_unseen_length_n() -> None:
    idx = build(_random_rows(200, seed=4))
    seen = ["i1", "i2", "i3"]
    found = query(idx, seen, n=10, context_k=0, support=False).candidates
    assert len(found) == 10 and not {i for i, _ in found} & set(seen)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True) and all(math.isfinite(s) for s in scores)
    assert found == query(idx, seen, n=10, context_k=0, support=False).candidates
    assert {i for i, _ in query(idx, seen, n=10, exclude_seen=False, context_k=0, support=False).candidates} & set(seen)
    by_id = dict(
        zip(
            [i for i, _ in found],
            query(idx, seen, candidate_ids=[i for i, _ in found], context_k=0, support=False).scores(),
            strict=False,
        )
    )
    assert all(by_id[i] == s for i, s in found)  # one blend for both


def test_unknown_candidates_and_empty_history_get_finite_scores() -> None:
    idx = build(_rows(TOY), catalog=CATALOG)
    assert all(
        math.isfinite(s)
        for s in query(idx, ["a"], candidate_ids=["never-seen", "x"], context_k=0, support=False).scores()
    )
    assert all(math.isfinite(s) for s in query(idx, [], candidate_ids=["a", "zz"], context_k=0, support=False).scores())
    assert all(
        math.isfinite(s) for s in query(idx, ["unknown"], candidate_ids=["a"], context_k=0, support=False).scores()
    )
    assert len(query(idx, [], n=3, context_k=0, support=False).candidates) == 3
    assert similar(idx, ["unknown"], k=3) == []


def test_blend_beats_popularity_on_movielens_sample() -> None:
    from msrkit.datasets import leave_one_out, load_movielens_100k

    catalog, interactions = load_movielens_100k()
    cases = leave_one_out(catalog, interactions, negatives=0)
    cases = random.Random(0).sample(cases, 200)
    idx = build(interactions_before(interactions, cases), catalog=catalog)
    hits = {"blend": 0, "popularity": 0}
    pop_order = [idx.item_ids[i] for i in np.lexsort((np.arange(len(idx.item_ids)), -idx.popularity))]
    for case in cases:
        seen = [e.item_id for e in case.history]
        top = [i for i, _ in query(idx, seen, n=10, exclude_user=case.user_id, context_k=0, support=False).candidates]
        hits["blend"] += case.target in top
        seen_set = set(seen)
        hits["popularity"] += case.target in [i for i in pop_order if i not in seen_set][:10]
    assert hits["blend"] > hits["popularity"], hits
