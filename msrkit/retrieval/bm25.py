"""The BM25 kernel: an Okapi BM25 score matrix held as a ``bm25s.BM25``, and exact top-k search over it.

BM25 is Okapi BM25 (``k1=1.5``, ``b=0.75``):
``score(q, d) = sum_t idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))`` with the
Lucene idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``; in bm25s terms ``method="atire"`` (term
frequency part), ``idf_method="lucene"``. rank_bm25's ``BM25Okapi`` idf
``ln((N - df + 0.5) / (df + 0.5))`` is zero or negative for an item in half the users or more,
so a user sharing only popular items with the query would not be found at all (in a small
index, nobody); the Lucene idf keeps every shared item positive. ``okapi_bm25(...,
idf_method="robertson")`` gives rank_bm25's numbers exactly (tested). The score matrix is computed
here with vectorised numpy (the same numbers bm25s's own ``index`` gives, checked by the tests)
and held, saved and loaded as a ``bm25s.BM25`` object. Top-k documents are found exactly with
MaxScore pruning over bm25s's column-compressed score matrix, so a query touches the postings of
the rare terms it holds instead of scoring a million documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["K1", "B", "okapi_bm25", "column_max", "dense_scores", "score_docs", "top_docs"]

K1 = 1.5
B = 0.75


def okapi_bm25(
    doc_ids: np.ndarray,
    token_ids: np.ndarray,
    n_docs: int,
    n_vocab: int,
    *,
    k1: float = K1,
    b: float = B,
    idf_method: str = "lucene",
    vocab: Sequence[str] | None = None,
) -> Any:
    """A ``bm25s.BM25`` holding the Okapi BM25 score matrix of a tokenised corpus.

    ``doc_ids[j]`` and ``token_ids[j]`` say that token ``token_ids[j]`` occurs once in document
    ``doc_ids[j]``. Computed in O(nnz) numpy (bm25s's own ``index`` loops over documents in
    Python); the matrix equals bm25s's with ``method="atire"`` and the same ``idf_method``:
    ``"robertson"`` is rank_bm25's BM25Okapi (idf floored at 0), ``"lucene"`` (the default here)
    is ``ln(1 + (N - df + 0.5) / (df + 0.5))``, always positive.
    """
    import bm25s

    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    token_ids = np.asarray(token_ids, dtype=np.int64)
    doc_len = np.bincount(doc_ids, minlength=n_docs).astype(np.float64)
    avgdl = float(doc_len.mean()) if n_docs else 0.0
    keys, tf = np.unique(token_ids * max(n_docs, 1) + doc_ids, return_counts=True)  # CSC order: token, doc
    tok = keys // max(n_docs, 1)
    doc = keys % max(n_docs, 1)
    df = np.bincount(tok, minlength=n_vocab).astype(np.float64)
    ratio = (n_docs - df + 0.5) / (df + 0.5)
    if idf_method == "robertson":
        idf = np.log(np.maximum(ratio, 1.0)).astype(np.float32)
    elif idf_method == "lucene":
        idf = np.log1p(ratio).astype(np.float32)
    else:
        raise ValueError(f"idf_method must be 'robertson' or 'lucene', not {idf_method!r}")
    norm = k1 * (1 - b + b * doc_len[doc] / avgdl) if avgdl > 0 else np.full(len(doc), k1)
    data = (idf[tok].astype(np.float64) * tf * (k1 + 1) / (tf + norm)).astype(np.float32)
    indptr = np.zeros(n_vocab + 1, dtype=np.int64)
    np.cumsum(np.bincount(tok, minlength=n_vocab), out=indptr[1:])
    model = bm25s.BM25(k1=k1, b=b, method="atire", idf_method=idf_method)
    model.scores = {"data": data, "indices": doc.astype(np.int32), "indptr": indptr, "num_docs": int(n_docs)}
    model.nonoccurrence_array = None
    names = vocab if vocab is not None else [str(t) for t in range(n_vocab)]
    model.vocab_dict = {name: n for n, name in enumerate(names)}
    model.unique_token_ids_set = set(range(n_vocab))
    return model


def column_max(model: Any) -> np.ndarray:
    data, indptr = model.scores["data"], model.scores["indptr"]
    out = np.zeros(len(indptr) - 1, dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(data, indptr[nonempty])
    return out


def dense_scores(model: Any, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    s = model.scores
    out = np.zeros(int(s["num_docs"]), dtype=np.float64)
    for t, w in zip(terms.tolist(), weights.tolist(), strict=False):
        lo, hi = s["indptr"][t], s["indptr"][t + 1]
        out[s["indices"][lo:hi]] += w * s["data"][lo:hi]  # a document holds a token once per column
    return out


def score_docs(model: Any, terms: np.ndarray, weights: np.ndarray, docs: np.ndarray) -> np.ndarray:
    """Exact BM25 scores of the sorted document ids ``docs`` (postings are sorted by document)."""
    s = model.scores
    out = np.zeros(len(docs), dtype=np.float64)
    for t, w in zip(terms.tolist(), weights.tolist(), strict=False):
        posting = s["indices"][s["indptr"][t] : s["indptr"][t + 1]]
        if not len(posting):
            continue
        pos = np.searchsorted(posting, docs)
        hit = pos < len(posting)
        hit[hit] = posting[pos[hit]] == docs[hit]
        out[hit] += w * s["data"][s["indptr"][t] + pos[hit]]
    return out


def top_docs(
    model: Any, colmax: np.ndarray, terms: np.ndarray, weights: np.ndarray, k: int, exclude: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` documents by BM25 (ties: lower document id first), with MaxScore pruning.

    Terms are taken by decreasing upper bound (rare items first) and their postings added into
    a score accumulator, term at a time. Once the bounds of the remaining terms add up to less
    than the k-th best partial score, no document not met yet can enter the top ``k``: only the
    documents met whose partial score plus that bound can still reach it are finished, by
    looking their remaining terms up in the (sorted) postings.
    """
    s = model.scores
    if k <= 0 or not len(terms):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    ub = weights * colmax[terms]
    order = np.argsort(-ub, kind="stable")
    terms, weights, ub = terms[order], weights[order], ub[order]
    rest = np.concatenate([np.cumsum(ub[::-1])[::-1][1:], [0.0]])  # bound of the terms after j
    n_docs = int(s["num_docs"])
    partial = np.zeros(n_docs, dtype=np.float64)  # score over the terms processed so far
    met = np.zeros(n_docs, dtype=bool)
    if exclude is not None and 0 <= exclude < n_docs:
        met[exclude] = True  # never a candidate
    found: list[np.ndarray] = []  # the documents met so far, each once
    floor = -np.inf  # the k-th best partial score: a lower bound of the k-th best full score
    last = len(terms) - 1
    for j, (t, w) in enumerate(zip(terms.tolist(), weights.tolist(), strict=True)):
        lo, hi = s["indptr"][t], s["indptr"][t + 1]
        posting = s["indices"][lo:hi]
        partial[posting] += w * s["data"][lo:hi]  # a document holds a token once per column
        fresh = posting[~met[posting]]
        met[fresh] = True
        if len(fresh):
            found.append(fresh.astype(np.int64))
        if j == last:
            break
        met_count = sum(len(f) for f in found)
        if met_count >= k:
            docs = np.concatenate(found) if len(found) > 1 else found[0]
            found = [docs]
            floor = float(np.partition(partial[docs], met_count - k)[met_count - k])
            if rest[j] < floor:
                break  # a document not met yet scores at most rest[j]: it cannot reach the top k
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    docs = np.sort(np.concatenate(found))
    scores = partial[docs]
    if j < last:  # finish the documents that could still reach the k-th score
        maybe = scores + rest[j] >= floor
        docs, scores = docs[maybe], scores[maybe] + score_docs(model, terms[j + 1 :], weights[j + 1 :], docs[maybe])
    keep = scores > 0
    docs, scores = docs[keep], scores[keep]
    top = np.lexsort((docs, -scores))[:k]
    return docs[top], scores[top]
