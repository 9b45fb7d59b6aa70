"""Collaborative retrieval: similar users by BM25, what they did next, and candidate generation.

Training-free stand-in for MMSRARec's collaborative stage. From the interactions
of all users the :class:`CollaborativeIndex` keeps:

- a **user BM25 index** (bm25s): each user is one document whose tokens are the
  ids of the items in their history (``"i:<item_id>"``) plus, where catalog
  items carry ``keywords``, one ``"kw:<keyword>"`` token per keyword of each
  item; the prefixes keep ids and keywords from colliding;
- each user's **sequence** (oldest first: by timestamp where all of that user's
  rows have one, else in the given order), to read what a user did *next*;
- **item transitions** (counts of consecutive pairs ``a -> b`` within a user's
  sequence) and **item popularity** (interaction counts);
- an **item text BM25 index** over catalog titles, keywords and genres.

BM25 is Okapi BM25 (``k1=1.5``, ``b=0.75``):
``score(q, d) = sum_t idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))`` with the
Lucene idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``; in bm25s terms ``method="atire"`` (term
frequency part), ``idf_method="lucene"``. rank_bm25's ``BM25Okapi`` idf
``ln((N - df + 0.5) / (df + 0.5))`` is zero or negative for an item in half the users or more,
so a user sharing only popular items with the query would not be found at all (in a small
index, nobody); the Lucene idf keeps every shared item positive. ``okapi_bm25(...,
idf_method="robertson")`` gives rank_bm25's numbers exactly (tested). The score matrix is computed here with vectorised
numpy (the same numbers bm25s's own ``index`` gives, checked by the tests) and held, saved and
loaded as a ``bm25s.BM25`` object. Top-k similar users are found exactly with MaxScore pruning
over bm25s's column-compressed score matrix, so a query touches the postings of the rare items it
holds instead of scoring a million documents.

**The blend** (:meth:`CollaborativeIndex.score_candidates` and
:meth:`CollaborativeIndex.generate_candidates` use the same function)::

    score(i) = w_trans * T(i) / max T + w_users * S(i) / max S + w_text * X(i) / max X + w_pop * P(i)

- ``T(i) = sum_j decay**j * count(s_j -> i) / count(s_j -> *)`` over the last ``recent`` seen
  items ``s_0`` (most recent), ``s_1``, ...: recency-decayed next-item probabilities;
- ``S(i) = sum_u sim(u) / sim_max * #{p : seq_u[p] in seen, seq_u[p + o] = i, 1 <= o <= window}``
  over the ``users`` most similar users ``u`` (BM25 of the seen items against their documents):
  what similar users took right after the items they share with this user;
- ``X(i)``: BM25 of item ``i``'s text (title, keywords, genres) against the text of the last
  ``text_recent`` seen items;
- ``P(i) = ln(1 + pop(i)) / ln(1 + max pop)``.

A component that is zero everywhere contributes nothing, so every score is finite and an item
the index never saw still gets one (its text and zero elsewhere). Ties are broken by the item's
position in the index (order of first appearance: interactions, then catalog). Default weights
are in :data:`DEFAULT_BLEND`; ``bench/bench_retrieval.py`` reports how they were chosen.

**Leakage**: :func:`interactions_before` removes, for each evaluation case, the user's target
and everything at or after it, so a user's own future never enters their document, transitions
or context; other users' rows are kept whole (the standard leave-one-out protocol).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import Item
from .errors import InputError
from .io import Interaction
from .text import words

__all__ = ["BlendWeights", "CollaborativeIndex", "DEFAULT_BLEND", "interactions_before", "okapi_bm25"]

log = logging.getLogger("msrkit")

FORMAT = "msrkit-collaborative-index"
FORMAT_VERSION = 1
K1 = 1.5
B = 0.75
ITEM_PREFIX = "i:"
KEYWORD_PREFIX = "kw:"


@dataclass(frozen=True)
class BlendWeights:
    """Weights and knobs of the retrieval blend (see the module docstring for the formula)."""

    transitions: float = 1.0
    users: float = 0.5
    text: float = 0.2
    popularity: float = 0.1
    recent: int = 5
    decay: float = 0.7
    n_users: int = 30
    window: int = 3
    text_recent: int = 5


DEFAULT_BLEND = BlendWeights()


# --------------------------------------------------------------------------- BM25 matrix


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


def _column_max(model: Any) -> np.ndarray:
    data, indptr = model.scores["data"], model.scores["indptr"]
    out = np.zeros(len(indptr) - 1, dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(data, indptr[nonempty])
    return out


def _dense_scores(model: Any, terms: np.ndarray, weights: np.ndarray) -> np.ndarray:
    s = model.scores
    out = np.zeros(int(s["num_docs"]), dtype=np.float64)
    for t, w in zip(terms.tolist(), weights.tolist(), strict=False):
        lo, hi = s["indptr"][t], s["indptr"][t + 1]
        out[s["indices"][lo:hi]] += w * s["data"][lo:hi]  # a document holds a token once per column
    return out


def _score_docs(model: Any, terms: np.ndarray, weights: np.ndarray, docs: np.ndarray) -> np.ndarray:
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


def _top_docs(
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
        docs, scores = docs[maybe], scores[maybe] + _score_docs(model, terms[j + 1 :], weights[j + 1 :], docs[maybe])
    keep = scores > 0
    docs, scores = docs[keep], scores[keep]
    top = np.lexsort((docs, -scores))[:k]
    return docs[top], scores[top]


# --------------------------------------------------------------------------- text


def _words(text: str) -> list[str]:
    return words(text)


def _item_words(item: Item) -> list[str]:
    parts = [item.title or ""]
    parts += item.keywords or []
    genres = item.attributes.get("genres")
    if isinstance(genres, str):
        genres = re.split(r"[|,;]", genres)
    if isinstance(genres, list):
        parts += [str(g) for g in genres]
    return _words(" ".join(parts))


def _keywords(item: Item | None) -> list[str]:
    if item is None or not item.keywords:
        return []
    return sorted({k.strip().lower() for k in item.keywords if k and k.strip()})


def _label(item: Item | None, item_id: str) -> str:
    if item is not None and item.keywords:
        return ", ".join(k for k in item.keywords if k)
    if item is not None and item.title:
        return item.title
    return item_id


def _csr(groups: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=ptr[1:])
    flat = np.fromiter((x for g in groups for x in g), dtype=np.int64, count=int(ptr[-1]))
    return ptr, flat


def _expand(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry r of ``rows``, the positions ``ptr[r]..ptr[r+1]``; returns (owner index, positions)."""
    counts = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    starts = np.repeat(ptr[rows], counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts + offsets


def _normalized(x: np.ndarray) -> np.ndarray:
    m = float(x.max()) if len(x) else 0.0
    return x / m if m > 0 else np.zeros_like(x)


# --------------------------------------------------------------------------- the index


class CollaborativeIndex:
    """Similar users, their next items and a retrieval score over the catalog (see the module docstring).

    Build with :meth:`build`, persist with :meth:`save` / :meth:`load`, grow with :meth:`extend`.
    """

    def __init__(self) -> None:
        self.user_ids: list[str] = []
        self.item_ids: list[str] = []
        self.user_index: dict[str, int] = {}
        self.item_index: dict[str, int] = {}
        self.seq_ptr = np.zeros(1, dtype=np.int64)
        self.seq_items = np.zeros(0, dtype=np.int64)
        self.seq_ts = np.zeros(0, dtype=np.float64)
        self.popularity = np.zeros(0, dtype=np.int64)
        self.trans_ptr = np.zeros(1, dtype=np.int64)
        self.trans_next = np.zeros(0, dtype=np.int64)
        self.trans_count = np.zeros(0, dtype=np.float64)
        self.keywords: list[str] = []
        self.kw_ptr = np.zeros(1, dtype=np.int64)
        self.kw_ids = np.zeros(0, dtype=np.int64)
        self.labels: list[str] = []
        self.text_ptr = np.zeros(1, dtype=np.int64)
        self.text_ids = np.zeros(0, dtype=np.int64)
        self.words: list[str] = []
        self.keyword_tokens = True
        self.weights = DEFAULT_BLEND
        self._users_bm25: Any = None
        self._items_bm25: Any = None
        self._users_colmax = np.zeros(0, dtype=np.float32)
        self._items_colmax = np.zeros(0, dtype=np.float32)

    # ----------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        interactions: Sequence[Interaction],
        catalog: Mapping[str, Item] | None = None,
        *,
        keyword_tokens: bool = True,
        weights: BlendWeights = DEFAULT_BLEND,
    ) -> CollaborativeIndex:
        """Index ``interactions`` (and the text and keywords of ``catalog`` items)."""
        idx = cls()
        idx.keyword_tokens = keyword_tokens
        idx.weights = weights
        idx._add_items(catalog or {}, [r.item_id for r in interactions])
        idx._set_sequences(*idx._encode(interactions))
        idx._derive(catalog or {})
        return idx

    def _add_items(self, catalog: Mapping[str, Item], item_ids: Iterable[str]) -> None:
        index = self.item_index
        for i in item_ids:
            if i not in index:
                index[i] = len(index)
        for i in catalog:
            if i not in index:
                index[i] = len(index)
        self.item_ids = list(index)

    def _encode(self, rows: Sequence[Interaction]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        users = self.user_index
        u = np.fromiter((users.setdefault(r.user_id, len(users)) for r in rows), dtype=np.int64, count=len(rows))
        self.user_ids = list(users)
        items = self.item_index
        it = np.fromiter((items[r.item_id] for r in rows), dtype=np.int64, count=len(rows))
        ts = np.fromiter(
            (math.nan if r.timestamp is None else r.timestamp for r in rows), dtype=np.float64, count=len(rows)
        )
        return u, it, ts

    def _set_sequences(self, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> None:
        """Group rows by user; within a user, by timestamp when all have one, else in the given order."""
        n_users = len(self.user_ids)
        pos = np.arange(len(users), dtype=np.float64)
        untimed = np.zeros(n_users, dtype=bool)
        untimed[users[np.isnan(ts)]] = True
        key = np.where(untimed[users], pos, ts)
        order = np.lexsort((pos, key, users))
        self.seq_items = items[order]
        self.seq_ts = ts[order]
        self.seq_ptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=n_users), out=self.seq_ptr[1:])

    def _derive(self, catalog: Mapping[str, Item]) -> None:
        """Everything computed from the sequences and the catalog: popularity, transitions, BM25 indexes."""
        n_items = len(self.item_ids)
        self.popularity = np.bincount(self.seq_items, minlength=n_items).astype(np.int64)
        self._transitions()
        if catalog or not self.labels:
            self._catalog_data(catalog)
        self._user_bm25()

    def _transitions(self) -> None:
        n_items = len(self.item_ids)
        same_user = np.ones(len(self.seq_items), dtype=bool)
        same_user[self.seq_ptr[1:-1] - 1] = False  # the last item of a user has no next item in the same user
        if len(same_user):
            same_user[-1] = False
        src = self.seq_items[same_user]
        dst = self.seq_items[np.flatnonzero(same_user) + 1]
        keys, counts = np.unique(src * n_items + dst, return_counts=True)
        self.trans_ptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // max(n_items, 1), minlength=n_items), out=self.trans_ptr[1:])
        self.trans_next = keys % max(n_items, 1)
        self.trans_count = counts.astype(np.float64)

    def _catalog_data(self, catalog: Mapping[str, Item]) -> None:
        items = [catalog.get(i) for i in self.item_ids]
        kw_vocab: dict[str, int] = {k: n for n, k in enumerate(self.keywords)}
        kw_groups = [[kw_vocab.setdefault(k, len(kw_vocab)) for k in _keywords(it)] for it in items]
        self.keywords = list(kw_vocab)
        self.kw_ptr, self.kw_ids = _csr(kw_groups)
        self.labels = [_label(it, i) for it, i in zip(items, self.item_ids, strict=False)]
        words: dict[str, int] = {}
        text_groups = [[words.setdefault(w, len(words)) for w in _item_words(it)] if it else [] for it in items]
        self.words = list(words)
        self.text_ptr, self.text_ids = _csr(text_groups)
        doc = np.repeat(np.arange(len(items)), np.diff(self.text_ptr))
        self._items_bm25 = okapi_bm25(doc, self.text_ids, len(items), len(self.words), vocab=self.words)
        self._items_colmax = _column_max(self._items_bm25)

    def _user_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(document, token) pairs of the user documents: item tokens, then keyword tokens."""
        n_users = len(self.user_ids)
        docs = np.repeat(np.arange(n_users), np.diff(self.seq_ptr))
        toks = self.seq_items
        if self.keyword_tokens and len(self.kw_ids):
            owner, positions = _expand(self.kw_ptr, self.seq_items)
            docs = np.concatenate([docs, docs[owner]])
            toks = np.concatenate([toks, len(self.item_ids) + self.kw_ids[positions]])
        return docs, toks

    def _user_bm25(self) -> None:
        docs, toks = self._user_tokens()
        n_vocab = len(self.item_ids) + len(self.keywords)
        names = [ITEM_PREFIX + i for i in self.item_ids] + [KEYWORD_PREFIX + k for k in self.keywords]
        self._users_bm25 = okapi_bm25(docs, toks, len(self.user_ids), n_vocab, vocab=names)
        self._users_colmax = _column_max(self._users_bm25)

    def extend(self, interactions: Sequence[Interaction], catalog: Mapping[str, Item] | None = None) -> None:
        """Add interactions (new users or more rows for known ones) without re-reading the old ones.

        Popularity and transitions are updated incrementally: the pairs of the users that
        changed are taken out and their merged sequences' pairs put back. BM25 scores depend
        on the number of users, the average document length and every item's document
        frequency, so the user matrix is recomputed, vectorised, from the stored sequences
        (no re-tokenising); the result equals :meth:`build` on all interactions.
        """
        if not interactions:
            return
        if catalog:
            self._add_items(catalog, [])
        self._add_items({}, [r.item_id for r in interactions])
        old_n_items = len(self.popularity)
        touched_users = {self.user_index[r.user_id] for r in interactions if r.user_id in self.user_index}
        old_pairs = self._pairs(sorted(touched_users))
        u_new, it_new, ts_new = self._encode(interactions)
        n_users = len(self.user_ids)
        old_owner = np.repeat(np.arange(len(self.seq_ptr) - 1), np.diff(self.seq_ptr))
        self._set_sequences(
            np.concatenate([old_owner, u_new]),
            np.concatenate([self.seq_items, it_new]),
            np.concatenate([self.seq_ts, ts_new]),
        )
        assert len(self.seq_ptr) == n_users + 1
        n_items = len(self.item_ids)
        self.popularity = np.concatenate([self.popularity, np.zeros(n_items - old_n_items, dtype=np.int64)])
        np.add.at(self.popularity, it_new, 1)
        changed = sorted(touched_users | set(u_new.tolist()))
        self._update_transitions(old_pairs, self._pairs(changed), old_n_items)
        if catalog or len(self.labels) < n_items:
            self._extend_catalog(catalog or {})
        self._user_bm25()

    def _pairs(self, users: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(users, dtype=np.int64)
        if not len(rows):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        owner, positions = _expand(self.seq_ptr, rows)
        nxt = positions[1:][owner[1:] == owner[:-1]]
        return self.seq_items[nxt - 1], self.seq_items[nxt]

    def _update_transitions(
        self, old: tuple[np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray], old_n_items: int
    ) -> None:
        n_items = len(self.item_ids)
        src = np.repeat(np.arange(old_n_items), np.diff(self.trans_ptr))
        keys = np.concatenate([src * n_items + self.trans_next, old[0] * n_items + old[1], new[0] * n_items + new[1]])
        vals = np.concatenate([self.trans_count, -np.ones(len(old[0])), np.ones(len(new[0]))])
        uniq, inv = np.unique(keys, return_inverse=True)
        counts = np.bincount(inv, weights=vals, minlength=len(uniq))
        keep = counts > 0
        uniq, counts = uniq[keep], counts[keep]
        self.trans_ptr = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(uniq // n_items, minlength=n_items), out=self.trans_ptr[1:])
        self.trans_next = uniq % n_items
        self.trans_count = counts.astype(np.float64)

    def _extend_catalog(self, catalog: Mapping[str, Item]) -> None:
        """Keywords, labels and text for items new to the index (known items keep theirs)."""
        have = len(self.labels)
        new_ids = self.item_ids[have:]
        items = [catalog.get(i) for i in new_ids]
        kw_vocab = {k: n for n, k in enumerate(self.keywords)}
        kw_groups = [[kw_vocab.setdefault(k, len(kw_vocab)) for k in _keywords(it)] for it in items]
        self.keywords = list(kw_vocab)
        ptr, flat = _csr(kw_groups)
        self.kw_ptr = np.concatenate([self.kw_ptr, self.kw_ptr[-1] + ptr[1:]])
        self.kw_ids = np.concatenate([self.kw_ids, flat])
        self.labels += [_label(it, i) for it, i in zip(items, new_ids, strict=False)]
        words = {w: n for n, w in enumerate(self.words)}
        groups = [[words.setdefault(w, len(words)) for w in _item_words(it)] if it else [] for it in items]
        self.words = list(words)
        ptr, flat = _csr(groups)
        self.text_ptr = np.concatenate([self.text_ptr, self.text_ptr[-1] + ptr[1:]])
        self.text_ids = np.concatenate([self.text_ids, flat])
        doc = np.repeat(np.arange(len(self.item_ids)), np.diff(self.text_ptr))
        self._items_bm25 = okapi_bm25(doc, self.text_ids, len(self.item_ids), len(self.words), vocab=self.words)
        self._items_colmax = _column_max(self._items_bm25)

    # ----------------------------------------------------------------- queries

    def _seen(self, seen: Sequence[str]) -> np.ndarray:
        return np.array([self.item_index[i] for i in seen if i in self.item_index], dtype=np.int64)

    def _user_query(self, seen_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        toks = np.unique(seen_idx)
        if self.keyword_tokens and len(self.kw_ids) and len(toks):
            _, positions = _expand(self.kw_ptr, toks)
            toks = np.concatenate([toks, len(self.item_ids) + self.kw_ids[positions]])
        terms, counts = np.unique(toks, return_counts=True)
        return terms, counts.astype(np.float64)

    def _similar(self, seen_idx: np.ndarray, k: int, exclude_user: str | None) -> tuple[np.ndarray, np.ndarray]:
        terms, weights = self._user_query(seen_idx)
        exclude = self.user_index.get(exclude_user) if exclude_user is not None else None
        return _top_docs(self._users_bm25, self._users_colmax, terms, weights, k, exclude)

    def similar_users(
        self, seen: Sequence[str], k: int = 3, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` users whose documents best match the seen items (BM25), best first."""
        docs, scores = self._similar(self._seen(seen), k, exclude_user)
        return [(self.user_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=False)]

    def _next_items(self, user: int, seen_idx: np.ndarray, window: int) -> np.ndarray:
        """Items at 1..window positions after each item ``user`` shares with ``seen`` (not seen), latest first."""
        seq = self.seq_items[self.seq_ptr[user] : self.seq_ptr[user + 1]]
        shared = np.flatnonzero(np.isin(seq, seen_idx))[::-1]
        if not len(shared):
            return np.zeros(0, dtype=np.int64)
        after = (shared[:, None] + np.arange(1, window + 1)[None, :]).ravel()
        nxt: np.ndarray = seq[after[after < len(seq)]]
        return nxt[~np.isin(nxt, seen_idx)]

    def next_item_context(
        self,
        seen: Sequence[str],
        k: int = 3,
        catalog: Mapping[str, Item] | None = None,
        exclude_user: str | None = None,
        per_user: int = 3,
    ) -> list[str]:
        """What the ``k`` most similar users took right after the items they share with this user.

        For each similar user (best first), up to ``per_user`` items that directly follow a
        shared item (latest shared items first), never one this user has seen, rendered as
        their keywords, else title, else id (``catalog`` overrides the stored labels).
        Deduplicated; at most ``k * per_user`` strings.
        """
        seen_idx = self._seen(seen)
        users, _ = self._similar(seen_idx, k, exclude_user)
        out: list[str] = []
        taken: set[int] = set()
        for u in users.tolist():
            picked = 0
            for item in self._next_items(u, seen_idx, 1).tolist():
                if picked >= per_user:
                    break
                if item in taken:
                    continue
                taken.add(item)
                picked += 1
                item_id = self.item_ids[item]
                text = _label(catalog.get(item_id), item_id) if catalog and item_id in catalog else self.labels[item]
                if text not in out:
                    out.append(text)
        return out

    def components(self, seen: Sequence[str], *, exclude_user: str | None = None) -> dict[str, np.ndarray]:
        """The four blend components over all indexed items, each scaled to [0, 1] (see the module docstring)."""
        w = self.weights
        seen_idx = self._seen(seen)
        n_items = len(self.item_ids)
        return {
            "transitions": _normalized(self._transition_scores(seen_idx[::-1][: w.recent], n_items)),
            "users": _normalized(self._user_scores(seen_idx, n_items, exclude_user)),
            "text": _normalized(self._text_scores(seen_idx[::-1][: w.text_recent], n_items)),
            "popularity": _normalized(np.log1p(self.popularity.astype(np.float64))),
        }

    def _transition_scores(self, recent: np.ndarray, n_items: int) -> np.ndarray:
        out = np.zeros(n_items)
        if not len(recent):
            return out
        owner, positions = _expand(self.trans_ptr, recent)
        row_total = np.zeros(len(recent))
        nonempty = self.trans_ptr[recent + 1] > self.trans_ptr[recent]
        row_total[nonempty] = np.add.reduceat(self.trans_count, self.trans_ptr[recent][nonempty])
        weight = self.weights.decay ** np.arange(len(recent)) / np.where(row_total > 0, row_total, 1.0)
        np.add.at(out, self.trans_next[positions], weight[owner] * self.trans_count[positions])
        return out

    def _user_scores(self, seen_idx: np.ndarray, n_items: int, exclude_user: str | None) -> np.ndarray:
        out = np.zeros(n_items)
        users, sims = self._similar(seen_idx, self.weights.n_users, exclude_user)
        if not len(users):
            return out
        sims = sims / sims.max()
        for u, s in zip(users.tolist(), sims.tolist(), strict=False):
            np.add.at(out, self._next_items(u, seen_idx, self.weights.window), s)
        return out

    def _text_scores(self, recent: np.ndarray, n_items: int) -> np.ndarray:
        if self._items_bm25 is None or not len(recent):
            return np.zeros(n_items)
        _, positions = _expand(self.text_ptr, recent)
        terms, counts = np.unique(self.text_ids[positions], return_counts=True)
        return _dense_scores(self._items_bm25, terms, counts.astype(np.float64))

    def _blend(self, seen: Sequence[str], exclude_user: str | None) -> np.ndarray:
        w = self.weights
        c = self.components(seen, exclude_user=exclude_user)
        return (
            w.transitions * c["transitions"]
            + w.users * c["users"]
            + w.text * c["text"]
            + w.popularity * c["popularity"]
        )

    def score_candidates(
        self, seen: Sequence[str], candidate_ids: Sequence[str], *, exclude_user: str | None = None
    ) -> list[float]:
        """The blend score of each candidate (0.0 for an item the index does not know)."""
        scores = self._blend(seen, exclude_user)
        return [float(scores[self.item_index[c]]) if c in self.item_index else 0.0 for c in candidate_ids]

    def generate_candidates(
        self, seen: Sequence[str], n: int = 20, exclude_seen: bool = True, *, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` best indexed items by the blend, best first (ties: index order)."""
        scores = self._blend(seen, exclude_user)
        allowed = np.ones(len(scores), dtype=bool)
        if exclude_seen:
            allowed[self._seen(seen)] = False
        pool = np.flatnonzero(allowed)
        if n <= 0 or not len(pool):
            return []
        vals = scores[pool]
        if len(pool) > n:
            kth = np.partition(vals, len(vals) - n)[len(vals) - n]
            keep = vals >= kth
            pool, vals = pool[keep], vals[keep]
        top = np.lexsort((pool, -vals))[:n]
        return [(self.item_ids[i], float(v)) for i, v in zip(pool[top].tolist(), vals[top].tolist(), strict=False)]

    def stats(self) -> dict[str, int]:
        """Counts for display: users, items, interactions, transitions, keywords."""
        return {
            "users": len(self.user_ids),
            "items": len(self.item_ids),
            "interactions": int(len(self.seq_items)),
            "transitions": int(len(self.trans_next)),
            "keywords": len(self.keywords),
        }

    # ----------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (created): a manifest, one ``.npz`` and two bm25s indexes."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        np.savez(
            d / "arrays.npz",
            seq_ptr=self.seq_ptr, seq_items=self.seq_items, seq_ts=self.seq_ts, popularity=self.popularity,
            trans_ptr=self.trans_ptr, trans_next=self.trans_next, trans_count=self.trans_count,
            kw_ptr=self.kw_ptr, kw_ids=self.kw_ids, text_ptr=self.text_ptr, text_ids=self.text_ids,
        )  # fmt: skip
        strings = {"users": self.user_ids, "items": self.item_ids, "keywords": self.keywords,
                   "labels": self.labels, "words": self.words}  # fmt: skip
        (d / "strings.json").write_text(json.dumps(strings, ensure_ascii=False), encoding="utf-8")
        self._users_bm25.save(d / "users_bm25", show_progress=False)
        self._items_bm25.save(d / "items_bm25", show_progress=False)
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "keyword_tokens": self.keyword_tokens,
                    "weights": asdict(self.weights), "stats": self.stats()}  # fmt: skip
        (d / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> CollaborativeIndex:
        """Read an index written by :meth:`save`; a missing or damaged folder raises :class:`InputError`."""
        d = Path(directory)
        hint = "rebuild it with: msrkit index build --interactions F [--catalog F] --out DIR"
        manifest_path = d / "manifest.json"
        if not manifest_path.is_file():
            raise InputError(f"not a collaborative index (no manifest.json): {hint}", source=str(d))
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable manifest.json ({exc}): {hint}", source=str(d)) from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InputError(f"manifest.json is not a msrkit collaborative index: {hint}", source=str(d))
        if manifest.get("version") != FORMAT_VERSION:
            raise InputError(
                f"index format version {manifest.get('version')}, this msrkit reads {FORMAT_VERSION}: {hint}",
                source=str(d),
            )
        try:
            return cls._read(d, manifest)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            raise InputError(f"damaged index ({type(exc).__name__}: {exc}): {hint}", source=str(d)) from None

    @classmethod
    def _read(cls, d: Path, manifest: dict[str, Any]) -> CollaborativeIndex:
        import bm25s

        idx = cls()
        with np.load(d / "arrays.npz", allow_pickle=False) as arrays:
            for name in ("seq_ptr", "seq_items", "seq_ts", "popularity", "trans_ptr", "trans_next", "trans_count",
                         "kw_ptr", "kw_ids", "text_ptr", "text_ids"):  # fmt: skip
                setattr(idx, name, arrays[name])
        strings = json.loads((d / "strings.json").read_text(encoding="utf-8"))
        idx.user_ids, idx.item_ids = list(strings["users"]), list(strings["items"])
        idx.keywords, idx.labels, idx.words = list(strings["keywords"]), list(strings["labels"]), list(strings["words"])
        idx.user_index = {u: n for n, u in enumerate(idx.user_ids)}
        idx.item_index = {i: n for n, i in enumerate(idx.item_ids)}
        idx.keyword_tokens = bool(manifest.get("keyword_tokens", True))
        idx.weights = BlendWeights(**manifest.get("weights", {}))
        for sub in ("users_bm25", "items_bm25"):
            if not (d / sub / "params.index.json").is_file():
                raise ValueError(f"{sub}/ is missing")
        idx._users_bm25 = bm25s.BM25.load(d / "users_bm25", show_progress=False)
        idx._items_bm25 = bm25s.BM25.load(d / "items_bm25", show_progress=False)
        idx._users_colmax = _column_max(idx._users_bm25)
        idx._items_colmax = _column_max(idx._items_bm25)
        if len(idx.seq_ptr) != len(idx.user_ids) + 1 or len(idx.popularity) != len(idx.item_ids):
            raise ValueError("arrays do not match the user and item lists")
        if idx._users_bm25.scores["num_docs"] != len(idx.user_ids):
            raise ValueError("users_bm25 does not match the user list")
        return idx


# --------------------------------------------------------------------------- leakage discipline


def _at_or_after(timestamp: float | None, limit: float) -> bool:
    return timestamp is None or timestamp >= limit


def interactions_before(interactions: Sequence[Interaction], cases: Iterable[Any]) -> list[Interaction]:
    """The interactions an evaluation may index: each case's user loses the target and all after it.

    For a case (``user_id``, ``target`` and, from :func:`msrkit.datasets.leave_one_out`,
    ``target_timestamp``), that user's rows at or after ``target_timestamp`` go; without a
    timestamp, the user's last interaction with ``target`` (in time order, or the given order)
    and every row after it go. Other users' rows are all kept: the standard leave-one-out
    protocol, in which only the evaluated user's own future is hidden. Order is preserved.
    """
    cut_time: dict[str, float] = {}
    cut_item: dict[str, str] = {}
    for case in cases:
        user, target = getattr(case, "user_id", None), getattr(case, "target", None)
        if user is None or target is None:
            continue
        extra = getattr(case, "model_extra", None) or {}
        ts = extra.get("target_timestamp", getattr(case, "target_timestamp", None))
        if ts is not None:
            cut_time[user] = min(float(ts), cut_time.get(user, math.inf))
        else:
            cut_item[user] = target
    drop: set[int] = set()
    rows_by_user: dict[str, list[int]] = {}
    for n, row in enumerate(interactions):
        if row.user_id in cut_time or row.user_id in cut_item:
            rows_by_user.setdefault(row.user_id, []).append(n)
    for user, positions in rows_by_user.items():
        if user in cut_time:
            limit = cut_time[user]
            drop.update(n for n in positions if _at_or_after(interactions[n].timestamp, limit))
            continue
        timed = all(interactions[n].timestamp is not None for n in positions)
        ordered = sorted(positions, key=lambda n: interactions[n].timestamp or 0.0) if timed else positions
        hits = [k for k, n in enumerate(ordered) if interactions[n].item_id == cut_item[user]]
        if hits:
            drop.update(ordered[hits[-1] :])
    return [row for n, row in enumerate(interactions) if n not in drop]
