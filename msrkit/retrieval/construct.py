"""Making a :class:`~.index.CollaborativeIndex`: encoding rows, sequences, derived arrays.

:func:`build` indexes rows with fixed weights, :func:`extend` makes the index of more rows and
:func:`with_weights` the same index with other weights; each returns a new index and leaves the
one it was given as it was. Everything is vectorised over columns
(:class:`~.interactions.Interactions`); no Python object per interaction is made. The private
helpers below fill the fields of the index being made, and only that one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np

from ..data import Item
from ..inputs.io import Interaction
from ..inputs.text import item_words
from .bm25 import column_max, okapi_bm25
from .index import CollaborativeIndex
from .interactions import Interactions, as_columns
from .transitions import Transitions, build_transitions, expand
from .weights import DEFAULT_BLEND, BlendWeights

__all__ = ["ITEM_PREFIX", "KEYWORD_PREFIX", "build", "csr", "derive_from_sequences", "extend", "label", "with_weights"]

ITEM_PREFIX = "i:"
KEYWORD_PREFIX = "kw:"


def csr(groups: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """``(ptr, flat)`` of a list of integer lists."""
    ptr = np.zeros(len(groups) + 1, dtype=np.int64)
    np.cumsum([len(g) for g in groups], out=ptr[1:])
    flat = np.fromiter((x for g in groups for x in g), dtype=np.int64, count=int(ptr[-1]))
    return ptr, flat


def label(item: Item | None, item_id: str) -> str:
    """How an item is shown in the collaborative context: its keywords, else its title, else its id."""
    if item is not None and item.keywords:
        return ", ".join(k for k in item.keywords if k)
    if item is not None and item.title:
        return item.title
    return item_id


def build(
    interactions: Interactions | Sequence[Interaction],
    catalog: Mapping[str, Item] | None = None,
    *,
    keyword_tokens: bool = True,
    weights: BlendWeights = DEFAULT_BLEND,
) -> CollaborativeIndex:
    """Index ``interactions`` (columns, or rows) and the text and keywords of ``catalog`` items, with ``weights``.

    The blend chosen on the data: :func:`.stage.choose_blend` or, from the settings, :func:`.stage.build_index`.
    """
    idx = CollaborativeIndex(keyword_tokens=keyword_tokens, weights=weights)
    _set_sequences(idx, *_encode(idx, as_columns(interactions), catalog or {}))
    idx.popularity = np.bincount(idx.seq_items, minlength=len(idx.item_ids)).astype(np.int64)
    idx.transitions = _transitions(idx, weights)
    _extend_catalog(idx, catalog or {})
    _user_bm25(idx)
    idx.refresh()
    return idx


def extend(
    idx: CollaborativeIndex,
    interactions: Interactions | Sequence[Interaction],
    catalog: Mapping[str, Item] | None = None,
) -> CollaborativeIndex:
    """The index of ``idx``'s rows and ``interactions`` (new users or more rows for known ones): equal to
    :func:`build` on all of them with ``idx``'s weights (and its tuning record); ``idx`` is left as it was.

    The merged sequences equal a build on all rows. Popularity is counted on; the
    transitions are rebuilt from the stored sequences (pruning each row to its largest
    entries makes an incremental update inexact: a pair cut from a row cannot be put back),
    which costs one transitions build; the user BM25 matrix is recomputed vectorised
    (its scores depend on the number of users, the average length and every document
    frequency). Known items keep their text; new ones get theirs from ``catalog``.
    """
    cols, catalog = as_columns(interactions), catalog or {}
    if not len(cols):
        return idx
    out = replace(idx, user_index=dict(idx.user_index), item_index=dict(idx.item_index), labels=list(idx.labels))
    old_n_items = len(out.popularity)
    u_new, it_new, ts_new = _encode(out, cols, catalog)
    old_owner = np.repeat(np.arange(len(out.seq_ptr) - 1), np.diff(out.seq_ptr))
    _set_sequences(
        out,
        np.concatenate([old_owner, u_new]),
        np.concatenate([out.seq_items.astype(np.int64), it_new]),
        np.concatenate([out.seq_ts, ts_new]),
    )
    n_items = len(out.item_ids)
    out.popularity = np.concatenate([out.popularity, np.zeros(n_items - old_n_items, dtype=np.int64)])
    np.add.at(out.popularity, it_new, 1)
    out.transitions = _transitions(out, out.weights)
    if catalog or len(out.labels) < n_items:
        _extend_catalog(out, catalog)
    _user_bm25(out)
    out.refresh()
    return out


def with_weights(idx: CollaborativeIndex, weights: BlendWeights) -> CollaborativeIndex:
    """``idx`` with ``weights`` (the transitions rebuilt when one of their build knobs changed); ``idx``
    is left as it was. What is built from the sequences on first use is shared by the two."""
    same = weights.build_knobs() == idx.weights.build_knobs()
    return replace(idx, weights=weights, transitions=idx.transitions if same else _transitions(idx, weights))


def _keywords(item: Item | None) -> list[str]:
    if item is None or not item.keywords:
        return []
    return sorted({k.strip().lower() for k in item.keywords if k and k.strip()})


def _encode(idx: CollaborativeIndex, cols: Interactions, catalog: Mapping[str, Item]) -> tuple[np.ndarray, ...]:
    """The rows' user and item codes in this index (new users and items get the next codes), and times."""
    users = np.fromiter((idx.user_index.setdefault(u, len(idx.user_index)) for u in cols.user_ids),
                        dtype=np.int64, count=len(cols.user_ids))  # fmt: skip
    items = np.fromiter((idx.item_index.setdefault(i, len(idx.item_index)) for i in cols.item_ids),
                        dtype=np.int64, count=len(cols.item_ids))  # fmt: skip
    for item_id in catalog:
        idx.item_index.setdefault(item_id, len(idx.item_index))
    idx.user_ids, idx.item_ids = list(idx.user_index), list(idx.item_index)
    return users[cols.users], items[cols.items], cols.ts


def _set_sequences(idx: CollaborativeIndex, users: np.ndarray, items: np.ndarray, ts: np.ndarray) -> None:
    """Group rows by user; within a user, by timestamp when all have one, else in the given order.

    ``np.lexsort`` is stable, so rows with equal keys keep their given order.
    """
    n_users = len(idx.user_ids)
    untimed = np.zeros(n_users, dtype=bool)
    untimed[users[np.isnan(ts)]] = True
    if untimed.all():
        order = np.argsort(users, kind="stable")
    else:
        key = np.where(untimed[users], np.arange(len(users), dtype=np.float64), ts)
        order = np.lexsort((key, users))
        del key
    idx.seq_items = items[order].astype(np.int32)
    idx.seq_ts = ts[order]
    idx.seq_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=idx.seq_ptr[1:])


def derive_from_sequences(
    idx: CollaborativeIndex, seq_ptr: np.ndarray, seq_items: np.ndarray, seq_ts: np.ndarray,
    *, user_ids: list[str] | None = None,
) -> CollaborativeIndex:  # fmt: skip
    """A new index over the same users (or ``user_ids``, one per sequence), items and catalog data with
    other sequences (tuning's validation index, the self-selection's sample of users)."""
    out = CollaborativeIndex(weights=idx.weights)
    for name in ("user_ids", "item_ids", "user_index", "item_index", "keywords", "kw_ptr", "kw_ids", "labels",
                 "text_ptr", "text_ids", "words", "keyword_tokens", "items_bm25", "items_colmax"):  # fmt: skip
        setattr(out, name, getattr(idx, name))
    if user_ids is not None:
        out.user_ids, out.user_index = user_ids, {u: n for n, u in enumerate(user_ids)}
    out.seq_ptr, out.seq_items, out.seq_ts = seq_ptr, seq_items, seq_ts
    out.popularity = np.bincount(seq_items, minlength=len(idx.item_ids)).astype(np.int64)
    out.transitions = _transitions(out, idx.weights)
    _user_bm25(out)
    out.refresh()
    return out


def _transitions(idx: CollaborativeIndex, w: BlendWeights) -> Transitions:
    """The transitions of the stored sequences with the build knobs of ``w``."""
    return build_transitions(idx.seq_ptr, idx.seq_items, len(idx.item_ids), window=w.t_window,
                             gap_power=w.t_gap_power, max_row=w.t_max_row)  # fmt: skip


def _extend_catalog(idx: CollaborativeIndex, catalog: Mapping[str, Item]) -> None:
    """Keywords, labels and text for the items the index has no text for yet (known items keep theirs)."""
    new_ids = idx.item_ids[len(idx.labels) :]
    items = [catalog.get(i) for i in new_ids]
    kw_vocab = {k: n for n, k in enumerate(idx.keywords)}
    ptr, flat = csr([[kw_vocab.setdefault(k, len(kw_vocab)) for k in _keywords(it)] for it in items])
    idx.keywords = list(kw_vocab)
    idx.kw_ptr = np.concatenate([idx.kw_ptr, idx.kw_ptr[-1] + ptr[1:]])
    idx.kw_ids = np.concatenate([idx.kw_ids, flat])
    idx.labels += [label(it, i) for it, i in zip(items, new_ids, strict=True)]
    vocab = {w: n for n, w in enumerate(idx.words)}
    ptr, flat = csr([[vocab.setdefault(w, len(vocab)) for w in item_words(it)] if it else [] for it in items])
    idx.words = list(vocab)
    idx.text_ptr = np.concatenate([idx.text_ptr, idx.text_ptr[-1] + ptr[1:]])
    idx.text_ids = np.concatenate([idx.text_ids, flat])
    doc = np.repeat(np.arange(len(idx.item_ids)), np.diff(idx.text_ptr))
    idx.items_bm25 = okapi_bm25(doc, idx.text_ids, len(idx.item_ids), len(idx.words), vocab=idx.words)
    idx.items_colmax = column_max(idx.items_bm25)


def _user_tokens(idx: CollaborativeIndex) -> tuple[np.ndarray, np.ndarray]:
    """(document, token) pairs of the user documents: item tokens, then keyword tokens."""
    docs = np.repeat(np.arange(len(idx.user_ids), dtype=np.int64), np.diff(idx.seq_ptr))
    toks = idx.seq_items.astype(np.int64)
    if idx.keyword_tokens and len(idx.kw_ids):
        owner, positions = expand(idx.kw_ptr, toks)
        docs = np.concatenate([docs, docs[owner]])
        toks = np.concatenate([toks, len(idx.item_ids) + idx.kw_ids[positions]])
    return docs, toks


def _user_bm25(idx: CollaborativeIndex) -> None:
    docs, toks = _user_tokens(idx)
    n_vocab = len(idx.item_ids) + len(idx.keywords)
    names = [ITEM_PREFIX + i for i in idx.item_ids] + [KEYWORD_PREFIX + k for k in idx.keywords]
    idx.users_bm25 = okapi_bm25(docs, toks, len(idx.user_ids), n_vocab, vocab=names)
    idx.users_colmax = column_max(idx.users_bm25)
