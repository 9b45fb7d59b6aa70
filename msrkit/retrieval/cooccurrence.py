"""Item co-occurrence for long histories: the ``L`` component's item-item matrix, in closed form.

::

    C[a, b] = sum over users u, positions p with seq_u[p] = a, offsets 0 < |o| <= window with
              seq_u[p + o] = b (b != a)  of  1,      then  L[a, b] = C[a, b] / sqrt(pop(a) * pop(b))

a cosine item-kNN over a window of ``window`` positions on both sides (an item-item model in the
spirit of EASE/SLIST without the matrix inverse: no training loop, one pass of counting), each
row cut to its ``max_row`` largest entries (ties: the lower item). ``L`` reads it from the last
``l_recent`` history items with a slow decay (:mod:`.components`), so the older part of a long
history votes too, and in both directions (what people took *before* an item counts as well).

Built like the transitions, a chunk of source items at a time (each chunk about ``chunk_pairs``
pairs), so the transient memory is bounded by the chunk. Cost: ``2 * window`` pairs per
interaction at most (for 1M users x 10 items, 90M pairs: see ``bench/bench_retrieval.py
--long-cost``); an index builds it only when its weights use ``L`` (``long > 0``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .transitions import CHUNK_PAIRS, Transitions, chunks, pruned_csr

__all__ = ["build_cooccurrence"]


def build_cooccurrence(
    seq_ptr: np.ndarray, seq_items: np.ndarray, n_items: int, *, window: int, max_row: int,
    chunk_pairs: int = CHUNK_PAIRS,
) -> Transitions:  # fmt: skip
    """``L`` of the sequences (see the module docstring) as CSR by source item; ``rowsum`` is ``pop``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, not {window}")
    pop = np.bincount(seq_items, minlength=n_items)[:n_items].astype(np.float64)
    norm = 1.0 / np.sqrt(np.maximum(pop, 1.0))

    def pairs() -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        for lo, hi in chunks(pop.astype(np.int64), max(1, chunk_pairs // (2 * window))):
            src, dst, count = _chunk_pairs(seq_ptr, seq_items, lo, hi, n_items, window)
            yield lo, hi, src, dst, count * norm[src] * norm[dst]

    return pruned_csr(pairs(), n_items, max_row, pop)


def _chunk_pairs(
    seq_ptr: np.ndarray, seq_items: np.ndarray, lo: int, hi: int, n_items: int, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct pairs ``(a, b)``, ``lo <= a < hi``, ``b != a``, sorted, and how often each co-occurs."""
    pos = np.flatnonzero((seq_items >= lo) & (seq_items < hi))
    owner = np.searchsorted(seq_ptr, pos, side="right")
    start, end = seq_ptr[owner - 1], seq_ptr[owner]
    src = seq_items[pos].astype(np.int64)
    codes = []
    for o in (*range(1, window + 1), *range(-window, 0)):
        ok = (pos + o >= start) & (pos + o < end)
        dst = seq_items[pos[ok] + o].astype(np.int64)
        same = dst != src[ok]
        codes.append(src[ok][same] * n_items + dst[same])
    code = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    pair, count = np.unique(code, return_counts=True)
    return pair // n_items, pair % n_items, count.astype(np.float64)
