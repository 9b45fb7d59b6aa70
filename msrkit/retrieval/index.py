"""The collaborative index: every user's sequence and what is derived from it, as flat arrays.

From the interactions of all users (and the catalog's text and keywords) the
:class:`CollaborativeIndex` keeps:

- each user's **sequence** (oldest first: by timestamp where all of that user's rows have one,
  else in the given order) as CSR arrays ``seq_ptr`` / ``seq_items``;
- **item transitions** (counts of consecutive pairs ``a -> b`` within a user's sequence, CSR by
  ``a``) and **item popularity** (interaction counts);
- a **user BM25 index** (:mod:`.bm25`): each user is one document whose tokens are the ids of
  the items in their history (``"i:<item_id>"``) plus, where catalog items carry ``keywords``, one
  ``"kw:<keyword>"`` token per keyword of each item; the prefixes keep ids and keywords apart;
- an **item text BM25 index** over catalog titles, keywords, image descriptions and genres.

Build with :meth:`CollaborativeIndex.build`, grow with :meth:`CollaborativeIndex.extend`, persist
with :mod:`.store`; queries are in :mod:`.neighbourhood` (one :class:`~.neighbourhood.Neighbourhood`
per request) and the scoring components in :mod:`.components`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Item
from ..io import Interaction
from ..text import item_words
from .bm25 import column_max, okapi_bm25
from .components import DEFAULT_BLEND, BlendWeights
from .interactions import Interactions, as_columns

__all__ = ["CollaborativeIndex", "csr", "expand"]

ITEM_PREFIX = "i:"
KEYWORD_PREFIX = "kw:"


def csr(groups: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(ptr, flat)`` of a list of integer lists."""
    ptr = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=ptr[1:])
    flat = np.fromiter((x for g in groups for x in g), dtype=np.int64, count=int(ptr[-1]))
    return ptr, flat


def expand(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry r of ``rows``, the positions ``ptr[r]..ptr[r+1]``; returns (owner index, positions)."""
    counts = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    starts = np.repeat(ptr[rows], counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts + offsets


def _keywords(item: Item | None) -> list[str]:
    if item is None or not item.keywords:
        return []
    return sorted({k.strip().lower() for k in item.keywords if k and k.strip()})


def label(item: Item | None, item_id: str) -> str:
    """How an item is shown in the collaborative context: its keywords, else its title, else its id."""
    if item is not None and item.keywords:
        return ", ".join(k for k in item.keywords if k)
    if item is not None and item.title:
        return item.title
    return item_id


class CollaborativeIndex:
    """Users' sequences, transitions, popularity and two BM25 indexes (see the module docstring)."""

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
        self.users_bm25: Any = None
        self.items_bm25: Any = None
        self.users_colmax = np.zeros(0, dtype=np.float32)
        self.items_colmax = np.zeros(0, dtype=np.float32)

    # ----------------------------------------------------------------- building

    @classmethod
    def build(
        cls,
        interactions: Interactions | Sequence[Interaction],
        catalog: Mapping[str, Item] | None = None,
        *,
        keyword_tokens: bool = True,
        weights: BlendWeights = DEFAULT_BLEND,
    ) -> CollaborativeIndex:
        """Index ``interactions`` (columns, or rows) and the text and keywords of ``catalog`` items."""
        idx = cls()
        idx.keyword_tokens = keyword_tokens
        idx.weights = weights
        idx._set_sequences(*idx._encode(as_columns(interactions), catalog or {}))
        idx._derive(catalog or {})
        return idx

    @classmethod
    def load(cls, directory: str | Path) -> CollaborativeIndex:
        """Read an index written by :meth:`save` (see :func:`.store.load_index`)."""
        from .store import load_index

        return load_index(directory, cls)

    def save(self, directory: str | Path) -> None:
        """Write the index to ``directory`` (see :func:`.store.save_index`)."""
        from .store import save_index

        save_index(self, directory)

    def _encode(self, cols: Interactions, catalog: Mapping[str, Item]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows' user and item codes in this index (new users and items get the next codes), and times."""
        users = np.fromiter((self.user_index.setdefault(u, len(self.user_index)) for u in cols.user_ids),
                            dtype=np.int64, count=len(cols.user_ids))  # fmt: skip
        items = np.fromiter((self.item_index.setdefault(i, len(self.item_index)) for i in cols.item_ids),
                            dtype=np.int64, count=len(cols.item_ids))  # fmt: skip
        for item_id in catalog:
            self.item_index.setdefault(item_id, len(self.item_index))
        self.user_ids, self.item_ids = list(self.user_index), list(self.item_index)
        return users[cols.users], items[cols.items], cols.ts

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
        self._set_transitions(keys, counts.astype(np.float64))

    def _set_transitions(self, keys: np.ndarray, counts: np.ndarray) -> None:
        n_items = max(len(self.item_ids), 1)
        self.trans_ptr = np.zeros(len(self.item_ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_items, minlength=len(self.item_ids)), out=self.trans_ptr[1:])
        self.trans_next = keys % n_items
        self.trans_count = counts

    def _catalog_data(self, catalog: Mapping[str, Item]) -> None:
        self.keywords, self.kw_ptr, self.kw_ids = [], np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.labels, self.words = [], []
        self.text_ptr, self.text_ids = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self._extend_catalog(catalog)

    def _extend_catalog(self, catalog: Mapping[str, Item]) -> None:
        """Keywords, labels and text for the items the index has no text for yet (known items keep theirs)."""
        have = len(self.labels)
        new_ids = self.item_ids[have:]
        items = [catalog.get(i) for i in new_ids]
        kw_vocab = {k: n for n, k in enumerate(self.keywords)}
        ptr, flat = csr([[kw_vocab.setdefault(k, len(kw_vocab)) for k in _keywords(it)] for it in items])
        self.keywords = list(kw_vocab)
        self.kw_ptr = np.concatenate([self.kw_ptr, self.kw_ptr[-1] + ptr[1:]])
        self.kw_ids = np.concatenate([self.kw_ids, flat])
        self.labels += [label(it, i) for it, i in zip(items, new_ids, strict=True)]
        vocab = {w: n for n, w in enumerate(self.words)}
        ptr, flat = csr([[vocab.setdefault(w, len(vocab)) for w in item_words(it)] if it else [] for it in items])
        self.words = list(vocab)
        self.text_ptr = np.concatenate([self.text_ptr, self.text_ptr[-1] + ptr[1:]])
        self.text_ids = np.concatenate([self.text_ids, flat])
        doc = np.repeat(np.arange(len(self.item_ids)), np.diff(self.text_ptr))
        self.items_bm25 = okapi_bm25(doc, self.text_ids, len(self.item_ids), len(self.words), vocab=self.words)
        self.items_colmax = column_max(self.items_bm25)

    def _user_tokens(self) -> tuple[np.ndarray, np.ndarray]:
        """(document, token) pairs of the user documents: item tokens, then keyword tokens."""
        n_users = len(self.user_ids)
        docs = np.repeat(np.arange(n_users), np.diff(self.seq_ptr))
        toks = self.seq_items
        if self.keyword_tokens and len(self.kw_ids):
            owner, positions = expand(self.kw_ptr, self.seq_items)
            docs = np.concatenate([docs, docs[owner]])
            toks = np.concatenate([toks, len(self.item_ids) + self.kw_ids[positions]])
        return docs, toks

    def _user_bm25(self) -> None:
        docs, toks = self._user_tokens()
        n_vocab = len(self.item_ids) + len(self.keywords)
        names = [ITEM_PREFIX + i for i in self.item_ids] + [KEYWORD_PREFIX + k for k in self.keywords]
        self.users_bm25 = okapi_bm25(docs, toks, len(self.user_ids), n_vocab, vocab=names)
        self.users_colmax = column_max(self.users_bm25)

    def extend(
        self, interactions: Interactions | Sequence[Interaction], catalog: Mapping[str, Item] | None = None
    ) -> None:
        """Add interactions (new users or more rows for known ones) without re-reading the old ones.

        Popularity and transitions are updated incrementally: the pairs of the users that
        changed are taken out and their merged sequences' pairs put back. BM25 scores depend
        on the number of users, the average document length and every item's document
        frequency, so the user matrix is recomputed, vectorised, from the stored sequences
        (no re-tokenising); the result equals :meth:`build` on all interactions.
        """
        cols = as_columns(interactions)
        if not len(cols):
            return
        old_n_items = len(self.popularity)
        touched_users = {self.user_index[u] for u in cols.user_ids if u in self.user_index}
        old_pairs = self._pairs(sorted(touched_users))
        u_new, it_new, ts_new = self._encode(cols, catalog or {})
        old_owner = np.repeat(np.arange(len(self.seq_ptr) - 1), np.diff(self.seq_ptr))
        self._set_sequences(
            np.concatenate([old_owner, u_new]),
            np.concatenate([self.seq_items, it_new]),
            np.concatenate([self.seq_ts, ts_new]),
        )
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
        owner, positions = expand(self.seq_ptr, rows)
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
        self._set_transitions(uniq[keep], counts[keep].astype(np.float64))

    # ----------------------------------------------------------------- queries (see .neighbourhood)

    def seen_indices(self, seen: Sequence[str]) -> np.ndarray:
        """Index positions of the seen item ids the index knows, in the order given."""
        return np.array([self.item_index[i] for i in seen if i in self.item_index], dtype=np.int64)

    def similar_users(
        self, seen: Sequence[str], k: int = 3, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` users whose documents best match the seen items (BM25), best first."""
        from .neighbourhood import similar_users

        docs, scores = similar_users(self, self.seen_indices(seen), k, exclude_user)
        return [(self.user_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]

    def next_item_context(
        self,
        seen: Sequence[str],
        k: int = 3,
        catalog: Mapping[str, Item] | None = None,
        exclude_user: str | None = None,
        per_user: int = 3,
    ) -> list[str]:
        """What the ``k`` most similar users took next, as labels (see :meth:`.Neighbourhood.context`)."""
        from .neighbourhood import query

        hood = query(self, seen, exclude_user=exclude_user, context_k=k, per_user=per_user, n=0)
        return hood.context(catalog, self)

    def components(self, seen: Sequence[str], *, exclude_user: str | None = None) -> dict[str, np.ndarray]:
        """The blend components over all indexed items, each scaled to [0, 1] (see :mod:`.components`)."""
        from .components import components
        from .neighbourhood import similar_users

        seen_idx = self.seen_indices(seen)
        users = similar_users(self, seen_idx, self.weights.n_users, exclude_user)
        return components(self, seen_idx, users)

    def score_candidates(
        self, seen: Sequence[str], candidate_ids: Sequence[str], *, exclude_user: str | None = None
    ) -> list[float]:
        """The blend score of each candidate (0.0 for an item the index does not know)."""
        from .neighbourhood import query

        hood = query(self, seen, candidate_ids=candidate_ids, exclude_user=exclude_user, context_k=0)
        return [s for _, s in hood.candidates]

    def generate_candidates(
        self, seen: Sequence[str], n: int = 20, exclude_seen: bool = True, *, exclude_user: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` best indexed items by the blend, best first (ties: index order)."""
        from .neighbourhood import query

        return query(self, seen, n=n, exclude_seen=exclude_seen, exclude_user=exclude_user, context_k=0).candidates

    def stats(self) -> dict[str, int]:
        """Counts for display: users, items, interactions, transitions, keywords."""
        return {
            "users": len(self.user_ids),
            "items": len(self.item_ids),
            "interactions": int(len(self.seq_items)),
            "transitions": int(len(self.trans_next)),
            "keywords": len(self.keywords),
        }
