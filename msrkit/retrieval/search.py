"""Catalog search by keywords: BM25 of a free-text query against the item-text index.

The index's item text (:func:`msrkit.inputs.text.item_words`: title, keywords, image
description, genres) is already a BM25 matrix (``items_bm25``); a query's words
(lower-cased, stopwords dropped, as the index spells them) are looked up in its
vocabulary and the exact top ``k`` items found with MaxScore pruning
(:func:`.bm25.top_docs`). Words the catalog never uses are ignored.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from ..inputs.text import words
from .bm25 import score_docs, top_docs
from .index import CollaborativeIndex

__all__ = ["search_items"]


def search_items(
    idx: CollaborativeIndex,
    query: str,
    *,
    k: int = 10,
    exclude: Collection[str] = (),
    only: Collection[str] | None = None,
) -> list[tuple[str, float]]:
    """The ``k`` items whose text best matches ``query`` (BM25), best first, none of ``exclude``.

    ``only``: search among these items alone (a fixed candidate list); unknown ids are skipped.
    """
    if idx.items_bm25 is None or k <= 0:
        return []
    vocab: dict[str, int] = getattr(idx.items_bm25, "vocab_dict", None) or {w: n for n, w in enumerate(idx.words)}
    found = [vocab[w] for w in words(query) if w in vocab]
    if not found:
        return []
    terms, counts = np.unique(np.asarray(found, dtype=np.int64), return_counts=True)
    if only is not None:
        docs = np.array(sorted(idx.item_index[i] for i in only if i in idx.item_index), dtype=np.int64)
        scores = score_docs(idx.items_bm25, terms, counts.astype(np.float64), docs)
        order = np.lexsort((docs, -scores))
        docs, scores = docs[order], scores[order]
        keep = scores > 0
        docs, scores = docs[keep], scores[keep]
    else:
        docs, scores = top_docs(
            idx.items_bm25, idx.items_colmax, terms, counts.astype(np.float64), k + len(exclude), None
        )
    hits = [(idx.item_ids[d], float(s)) for d, s in zip(docs.tolist(), scores.tolist(), strict=True)]
    return [(i, s) for i, s in hits if i not in exclude][:k]
