"""Each retrieval component against a brute-force twin: plain Python loops over the sequences.

The twins follow the formulas of :mod:`msrkit.retrieval.components` and
:mod:`msrkit.retrieval.transitions` literally (dicts, no numpy tricks, no pruning shortcuts),
on small random fixtures with repeated items, so every vectorised path (chunked transition
builds, row pruning with ties, MaxScore user search, keyword tokens, catalog-wide top-n with
popularity tie-breaks) is checked against what the docstrings promise.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from msrkit.data import Item
from msrkit.inputs.io import Interaction
from msrkit.retrieval import DEFAULT_BLEND, BlendWeights, CollaborativeIndex, build, query, with_weights
from msrkit.retrieval import neighbourhood as nb
from msrkit.retrieval.components import query_items
from msrkit.retrieval.cooccurrence import build_cooccurrence
from msrkit.retrieval.transitions import build_transitions

K1, B = 1.5, 0.75


def fixture(seed: int, n_users: int = 60, n_items: int = 40) -> dict[str, list[str]]:
    """Random sequences with skewed popularity and repeats (an item may occur twice in a row)."""
    rng = random.Random(seed)
    return {
        f"u{u}": [f"i{min(int(rng.paretovariate(0.9)) - 1, n_items - 1)}" for _ in range(rng.randrange(1, 16))]
        for u in range(n_users)
    }


def rows_of(seqs: dict[str, list[str]]) -> list[Interaction]:
    return [Interaction(u, i, float(t)) for u, s in seqs.items() for t, i in enumerate(s)]


def catalog_for(seqs: dict[str, list[str]], seed: int) -> dict[str, Item]:
    rng = random.Random(seed)
    words = ["red", "blue", "soap", "shoe", "lamp", "kids", "wool", "gold", "mint", "oak"]
    items = sorted({i for s in seqs.values() for i in s})
    return {
        i: Item(
            item_id=i,
            title=" ".join(rng.choices(words, k=rng.randrange(1, 4))),
            keywords=rng.sample(words, rng.randrange(0, 3)),
        )  # fmt: skip
        for i in items
    }


# ----------------------------------------------------------------------------- the twins


def brute_transitions(seqs, window, gap_power, max_row, code):  # type: ignore[no-untyped-def]
    """T[a][b] = sum over positions p (seq[p] = a) and gaps g = 1..window (seq[p+g] = b) of g**-gap_power."""
    t: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for s in seqs.values():
        for p, a in enumerate(s):
            for g in range(1, window + 1):
                if p + g < len(s):
                    t[a][s[p + g]] += g**-gap_power
    rowsum = {a: sum(row.values()) for a, row in t.items()}
    if max_row is not None:
        for a, row in t.items():
            keep = sorted(row, key=lambda b: (-row[b], code[b]))[:max_row]
            t[a] = defaultdict(float, {b: row[b] for b in keep})
    return t, rowsum


def brute_cooccurrence(seqs, window, max_row, code):  # type: ignore[no-untyped-def]
    """L[a][b] = #(a at p, b != a at p + o, 0 < |o| <= window) / sqrt(pop a * pop b), each row's max_row best."""
    c: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    pop: dict[str, int] = defaultdict(int)
    for s in seqs.values():
        for p, a in enumerate(s):
            pop[a] += 1
            for o in range(-window, window + 1):
                if o and 0 <= p + o < len(s) and s[p + o] != a:
                    c[a][s[p + o]] += 1
    out = {}
    for a, row in c.items():
        scored = {b: v / math.sqrt(pop[a] * pop[b]) for b, v in row.items()}
        keep = sorted(scored, key=lambda b: (-scored[b], code[b]))[:max_row]
        out[a] = {b: scored[b] for b in keep}
    return out


def brute_bm25(docs: list[list[str]]) -> dict[str, dict[int, float]]:
    """Okapi BM25 of every (token, document): atire tf part, Lucene idf."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    df: dict[str, int] = defaultdict(int)
    for d in docs:
        for tok in set(d):
            df[tok] += 1
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for j, d in enumerate(docs):
        for tok in set(d):
            tf = d.count(tok)
            idf = math.log(1 + (n - df[tok] + 0.5) / (df[tok] + 0.5))
            out[tok][j] = idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(d) / avgdl))
    return out


def brute_query(history: list[str], recent: int | None, decay: float) -> dict[str, float]:
    """Distinct items of the last ``recent`` positions, weighted decay**r of their most recent occurrence."""
    rev = history[::-1] if recent is None else history[::-1][:recent]
    q: dict[str, float] = {}
    for r, item in enumerate(rev):
        q.setdefault(item, decay**r)
    return q


class Twin:
    """Every component and the blend, computed from the sequences by loops."""

    def __init__(self, seqs, w: BlendWeights, code, catalog=None, exclude_user=None) -> None:  # type: ignore[no-untyped-def]
        self.seqs, self.w, self.code, self.catalog = seqs, w, code, catalog or {}
        self.users = list(seqs)
        self.exclude_user = exclude_user
        self.pop: dict[str, int] = defaultdict(int)
        for s in seqs.values():
            for i in s:
                self.pop[i] += 1
        self.t, self.rowsum = brute_transitions(seqs, w.t_window, w.t_gap_power, w.t_max_row, code)

    def transitions(
        self, history: list[str], recent: int | None = None, decay: float | None = None
    ) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        recent, decay = recent or self.w.t_recent, self.w.t_decay if decay is None else decay
        for r, a in enumerate(history[::-1][:recent]):
            z = self.rowsum.get(a, 0.0) ** self.w.t_alpha if self.rowsum.get(a, 0.0) > 0 else 1.0
            for b, v in self.t.get(a, {}).items():
                out[b] += decay**r * v / z
        return out

    def long(self, history: list[str]) -> dict[str, float]:
        """L: the cosine co-occurrence read from the last l_recent items with decay l_decay."""
        c = brute_cooccurrence(self.seqs, self.w.l_window, self.w.l_max_row, self.code)
        out: dict[str, float] = defaultdict(float)
        for r, a in enumerate(history[::-1][: self.w.l_recent]):
            for b, v in c.get(a, {}).items():
                out[b] += self.w.l_decay**r * v
        return out

    def user_docs(self) -> list[list[str]]:
        docs = []
        for s in self.seqs.values():
            doc = ["i:" + i for i in s]
            for i in s:
                kws = sorted({k.strip().lower() for k in (self.catalog[i].keywords or [])}) if i in self.catalog else []
                doc += ["kw:" + k for k in kws]
            docs.append(doc)
        return docs

    def neighbours(self, history: list[str], k: int) -> list[tuple[int, float]]:
        bm = brute_bm25(self.user_docs())
        q = brute_query(history, self.w.u_recent, self.w.u_decay)
        terms: dict[str, float] = {"i:" + i: v for i, v in q.items()}
        for i, v in q.items():
            kws = sorted({k.strip().lower() for k in (self.catalog[i].keywords or [])}) if i in self.catalog else []
            for kw in kws:
                terms["kw:" + kw] = terms.get("kw:" + kw, 0.0) + v
        score: dict[int, float] = defaultdict(float)
        for tok, v in terms.items():
            for j, s in bm.get(tok, {}).items():
                score[j] += v * s
        ranked = sorted((j for j in score if score[j] > 0 and self.users[j] != self.exclude_user),
                        key=lambda j: (-score[j], j))  # fmt: skip
        return [(j, score[j]) for j in ranked[:k]]

    def users_component(self, history: list[str]) -> dict[str, float]:
        w = self.w
        q = brute_query(history, w.u_recent, w.u_decay)
        nbs = self.neighbours(history, w.u_k)
        out: dict[str, float] = defaultdict(float)
        for j, sim in nbs:
            s = self.seqs[self.users[j]]
            for p, a in enumerate(s):
                if a not in q:
                    continue
                for g in range(1, w.u_window + 1):
                    base = q[a] * g**-w.u_gap_power * sim / nbs[0][1]
                    if p + g < len(s):
                        out[s[p + g]] += base
                    if w.u_backward > 0 and p - g >= 0:
                        out[s[p - g]] += w.u_backward * base
        return out

    def text(self, history: list[str]) -> dict[str, float]:
        from msrkit.inputs.text import item_words

        items = list(self.code)
        docs = [item_words(self.catalog[i]) if i in self.catalog else [] for i in items]
        bm = brute_bm25(docs if any(docs) else [[]])
        q: dict[str, float] = defaultdict(float)
        for r, item in enumerate(history[::-1][: self.w.x_recent]):
            for word in item_words(self.catalog[item]) if item in self.catalog else []:
                q[word] += self.w.x_decay**r
        out: dict[str, float] = defaultdict(float)
        for word, v in q.items():
            for j, s in bm.get(word, {}).items():
                out[items[j]] += v * s
        return out

    def popularity(self) -> dict[str, float]:
        top = math.log1p(max(self.pop.values()))
        return {i: math.log1p(self.pop.get(i, 0)) / top for i in self.code}

    def blend(self, history: list[str]) -> dict[str, float]:
        parts = {"transitions": self.transitions(history), "users": self.users_component(history),
                 "text": self.text(history), "long": self.long(history), "popularity": self.popularity()}  # fmt: skip
        out = {i: 0.0 for i in self.code}
        for name, part in parts.items():
            weight, top = getattr(self.w, name), max(part.values(), default=0.0)
            if weight and top > 0:
                for i, v in part.items():
                    out[i] += weight * v / top
        return out

    def top(self, history: list[str], n: int) -> list[tuple[str, float]]:
        scores = self.blend(history)
        unseen = [i for i in self.code if i not in set(history)]
        best = sorted(unseen, key=lambda i: (-scores[i], -self.pop.get(i, 0), self.code[i]))[:n]
        return [(i, scores[i]) for i in best]


def dense(idx: CollaborativeIndex, vec: dict[str, float]) -> np.ndarray:
    out = np.zeros(len(idx.item_ids))
    for i, v in vec.items():
        out[idx.item_index[i]] = v
    return out


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    """Equal scores position by position; equal items wherever the score is not tied (float32 storage)."""
    assert len(got) == len(want)
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-5, atol=1e-9)
    scores = [s for _, s in want]
    for pos, ((g, _), (w, s)) in enumerate(zip(got, want, strict=True)):
        tied = sum(1 for t in scores if abs(t - s) <= 1e-6 * max(1.0, abs(s))) > 1
        if not tied:
            assert g == w, f"position {pos}: {g} != {w}"


WEIGHTS = [
    DEFAULT_BLEND,
    replace(
        DEFAULT_BLEND,
        t_window=3,
        t_gap_power=1.0,
        t_max_row=4,
        t_recent=3,
        t_alpha=0.0,
        u_k=5,
        u_recent=None,
        u_decay=1.0,
        u_window=2,
        u_gap_power=1.0,
        u_backward=0.0,
        popularity=0.1,
    ),  # fmt: skip
    replace(
        DEFAULT_BLEND,
        transitions=0.5,
        users=2.0,
        text=1.0,
        t_window=1,
        t_gap_power=0.0,
        t_max_row=None,
        t_decay=0.9,
        t_alpha=1.0,
        u_k=3,
        u_recent=2,
        u_backward=1.0,
        x_recent=1,
        x_decay=0.3,
    ),  # fmt: skip
    replace(DEFAULT_BLEND, long=0.5, l_window=3, l_max_row=4, l_recent=9, l_decay=0.8, t_recent=2, t_max_row=5),
]
IDS = ["default", "narrow", "wide", "long"]


# ----------------------------------------------------------------------------- the tests


def similar(
    idx: CollaborativeIndex, seen: list[str], *, k: int, exclude_user: str | None = None
) -> list[tuple[str, float]]:
    """The ``k`` users most similar to ``seen`` (the search S makes, with ``k`` users instead of ``u_k``)."""
    w = idx.weights
    q = query_items(idx.seen_indices(seen), recent=w.u_recent, decay=w.u_decay)
    docs, scores = nb.similar_users(idx, q, k, exclude_user)
    return [(idx.user_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]


def normalised_components(
    idx: CollaborativeIndex, seen: list[str], *, exclude_user: str | None
) -> dict[str, np.ndarray]:
    """The blend components over all indexed items as ``query`` computes them, each scaled to [0, 1]."""
    seen_idx = idx.seen_indices(seen)
    _, found = nb.search(idx, seen_idx, exclude_user, 0)
    parts = nb.components(idx, seen_idx, found)
    return {name: v / v.max() if len(v) and v.max() > 0 else v for name, v in parts.items()}


@pytest.mark.parametrize("window, gap_power, max_row, chunk", [(1, 0.0, None, 10**6), (4, 1.0, 3, 7),
                                                               (10, 0.5, 1000, 50), (2, 0.0, 2, 1)])  # fmt: skip
def test_transitions_equal_brute_force(window: int, gap_power: float, max_row: int | None, chunk: int) -> None:
    seqs = fixture(1)
    idx = build(rows_of(seqs))
    code = idx.item_index
    tr = build_transitions(idx.seq_ptr, idx.seq_items, len(idx.item_ids), window=window, gap_power=gap_power,
                           max_row=max_row, chunk_pairs=chunk)  # fmt: skip
    want, rowsum = brute_transitions(seqs, window, gap_power, max_row, code)
    for a, n in code.items():
        lo, hi = tr.ptr[n], tr.ptr[n + 1]
        got = {idx.item_ids[b]: float(v) for b, v in zip(tr.nxt[lo:hi], tr.w[lo:hi], strict=True)}
        assert got.keys() == want.get(a, {}).keys(), a  # the same entries survive pruning (ties: lower item)
        for b, v in got.items():
            assert v == pytest.approx(want[a][b], rel=1e-6)
        assert tr.rowsum[n] == pytest.approx(rowsum.get(a, 0.0), rel=1e-9)


@pytest.mark.parametrize("window, max_row, chunk", [(1, 1000, 10**6), (3, 4, 7), (20, 2, 1)])
def test_cooccurrence_equals_brute_force(window: int, max_row: int, chunk: int) -> None:
    seqs = fixture(6)
    idx = build(rows_of(seqs))
    code = idx.item_index
    got_m = build_cooccurrence(idx.seq_ptr, idx.seq_items, len(idx.item_ids), window=window, max_row=max_row,
                               chunk_pairs=chunk)  # fmt: skip
    want = brute_cooccurrence(seqs, window, max_row, code)
    for a, n in code.items():
        lo, hi = got_m.ptr[n], got_m.ptr[n + 1]
        got = {idx.item_ids[b]: float(v) for b, v in zip(got_m.nxt[lo:hi], got_m.w[lo:hi], strict=True)}
        assert got.keys() == want.get(a, {}).keys(), a
        for b, v in got.items():
            assert v == pytest.approx(want[a][b], rel=1e-6)


@pytest.mark.parametrize("w", WEIGHTS, ids=IDS)
def test_each_component_equals_brute_force(w: BlendWeights) -> None:
    seqs = fixture(2)
    catalog = catalog_for(seqs, 2)
    idx = build(rows_of(seqs), catalog=catalog, weights=w)
    rng = random.Random(3)
    for trial in range(12):
        user = rng.choice(list(seqs))
        history = seqs[user] if trial % 2 else [rng.choice(list(idx.item_index)) for _ in range(rng.randrange(1, 8))]
        exclude = user if trial % 2 else None
        twin = Twin(seqs, w, idx.item_index, catalog, exclude_user=exclude)
        got = normalised_components(idx, history, exclude_user=exclude)
        for name, want in (("transitions", twin.transitions(history)), ("users", twin.users_component(history)),
                           ("text", twin.text(history)), ("popularity", twin.popularity()),
                           *((("long", twin.long(history)),) if w.long else ())):  # fmt: skip
            want_vec = dense(idx, want)
            top = want_vec.max()
            np.testing.assert_allclose(got[name], want_vec / top if top > 0 else want_vec, rtol=1e-5, atol=1e-9,
                                       err_msg=f"{name}, trial {trial}")  # fmt: skip
        nbs = similar(idx, history, k=4, exclude_user=exclude)
        want_nbs = twin.neighbours(history, 4)
        np.testing.assert_allclose([s for _, s in nbs], [s for _, s in want_nbs], rtol=1e-5)


@pytest.mark.parametrize("w", WEIGHTS, ids=IDS)
@pytest.mark.parametrize("with_catalog", [False, True])
def test_generated_candidates_equal_brute_force_blend(w: BlendWeights, with_catalog: bool) -> None:
    seqs = fixture(4)
    catalog = catalog_for(seqs, 4) if with_catalog else None
    idx = build(rows_of(seqs), catalog=catalog, weights=w)
    for user in list(seqs)[:25]:
        twin = Twin(seqs, w, idx.item_index, catalog, exclude_user=user)
        for n in (1, 10, 45):  # 45 > the number of unseen items: every unseen item, zero scores by popularity
            assert_same_ranking(query(idx, seqs[user], n=n, exclude_user=user, context_k=0, support=False).candidates,
                                twin.top(seqs[user], n))  # fmt: skip
        given = sorted(idx.item_index)[::3]
        blend = twin.blend(seqs[user])
        hood = query(idx, seqs[user], candidate_ids=given, exclude_user=user, context_k=0, support=False)
        np.testing.assert_allclose(hood.scores(), [blend[i] for i in given], rtol=1e-5, atol=1e-9)


def test_changing_a_build_knob_equals_a_fresh_build() -> None:
    seqs = fixture(5)
    idx = build(rows_of(seqs))
    other = replace(DEFAULT_BLEND, t_window=2, t_gap_power=1.0, t_max_row=3)
    idx = with_weights(idx, other)
    fresh = build(rows_of(seqs), weights=other)
    for name in ("ptr", "nxt", "w", "rowsum"):
        np.testing.assert_array_equal(getattr(idx.transitions, name), getattr(fresh.transitions, name))
    history = seqs["u1"]
    assert (
        query(idx, history, n=10, context_k=0, support=False).candidates
        == query(fresh, history, n=10, context_k=0, support=False).candidates
    )


def test_blend_weights_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="t_window"):
        BlendWeights(t_window=0)
    with pytest.raises(ValueError, match="users"):
        BlendWeights(users=-1.0)
    with pytest.raises(ValueError, match="unknown blend knobs: nope"):
        BlendWeights.from_dict({"nope": 1})
