"""Windowed, gap-weighted item transitions: what came up to ``window`` positions after each item.

::

    T[a, b] = sum over users u, positions p with seq_u[p] = a, gaps g = 1..window with
              seq_u[p + g] = b  of  g ** -gap_power

``window=1, gap_power=0`` counts consecutive pairs (the plain transition counter);
``gap_power=1`` is the sequential-rules weight ``1 / g``. ``rowsum[a] = sum_b T[a, b]`` is
taken before each row is cut to its ``max_row`` largest entries (ties: the lower item).

The pairs are built per chunk of source items, each chunk holding about ``chunk_pairs``
pairs, so the transient memory is bounded by the chunk, not by ``window`` times the number
of interactions (a popular item is one chunk on its own, whatever its size).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = ["CHUNK_PAIRS", "Transitions", "build_transitions", "chunks", "expand", "pruned_csr", "top_per_row"]

CHUNK_PAIRS = 4_000_000


@dataclass(frozen=True)
class Transitions:
    """``T`` as CSR by source item: row ``a`` is ``nxt[ptr[a]:ptr[a+1]]`` (sorted) with weights ``w``."""

    ptr: np.ndarray  # int64[I + 1]
    nxt: np.ndarray  # int32[M]
    w: np.ndarray  # float32[M]
    rowsum: np.ndarray  # float64[I], before pruning

    def rows(self, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The entries of the rows ``sources`` (repeats allowed): (index into ``sources``, entry positions)."""
        return expand(self.ptr, sources)


def expand(ptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry r of ``rows``, the positions ``ptr[r]..ptr[r+1]``; returns (owner index, positions)."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = ptr[rows + 1] - ptr[rows]
    owner = np.repeat(np.arange(len(rows)), counts)
    starts = np.repeat(ptr[rows], counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, starts + offsets


def build_transitions(
    seq_ptr: np.ndarray,
    seq_items: np.ndarray,
    n_items: int,
    *,
    window: int,
    gap_power: float,
    max_row: int | None,
    chunk_pairs: int = CHUNK_PAIRS,
) -> Transitions:
    """``T`` of the sequences (see the module docstring), built a chunk of source items at a time."""
    if not 1 <= window <= 63:
        raise ValueError(f"window must be 1..63, not {window}")
    gap_weight = np.zeros(64)
    gap_weight[1 : window + 1] = np.arange(1, window + 1, dtype=np.float64) ** -gap_power
    counts = np.bincount(seq_items, minlength=n_items)[:n_items]
    rowsum = np.zeros(n_items)

    def pairs() -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        for lo, hi in chunks(counts, max(1, chunk_pairs // window)):
            src, dst, weight = _chunk_pairs(seq_ptr, seq_items, lo, hi, n_items, window, gap_weight)
            rowsum[lo:hi] = np.bincount(src - lo, weights=weight, minlength=hi - lo)  # before pruning
            yield lo, hi, src, dst, weight

    return pruned_csr(pairs(), n_items, max_row, rowsum)


def pruned_csr(
    chunked: Iterable[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]], n_items: int, max_row: int | None,
    rowsum: np.ndarray,
) -> Transitions:  # fmt: skip
    """CSR rows from chunks ``(lo, hi, src, dst, weight)`` of sorted pairs of the sources ``lo..hi``,
    each row cut to its ``max_row`` largest entries (``None``: all)."""
    nxt: list[np.ndarray] = []
    w: list[np.ndarray] = []
    row_len = np.zeros(n_items, dtype=np.int64)
    for lo, hi, src, dst, weight in chunked:
        if max_row is not None:
            keep = top_per_row(src, dst, weight, max_row)
            src, dst, weight = src[keep], dst[keep], weight[keep]
        row_len[lo:hi] = np.bincount(src - lo, minlength=hi - lo)
        nxt.append(dst.astype(np.int32))
        w.append(weight.astype(np.float32))
    ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(row_len, out=ptr[1:])
    return Transitions(ptr, _concat(nxt, np.int32), _concat(w, np.float32), rowsum)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def chunks(counts: np.ndarray, per_chunk: int) -> list[tuple[int, int]]:
    """Item ranges ``[lo, hi)`` holding about ``per_chunk`` occurrences each (at least one item)."""
    out: list[tuple[int, int]] = []
    cum = np.cumsum(counts)
    lo = 0
    while lo < len(counts):
        base = cum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(cum, base + per_chunk, side="right")), lo + 1)
        out.append((lo, min(hi, len(counts))))
        lo = hi
    return out


def _chunk_pairs(
    seq_ptr: np.ndarray, seq_items: np.ndarray, lo: int, hi: int, n_items: int, window: int, gap_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct pairs ``(a, b)`` with ``lo <= a < hi``, sorted, and their summed gap weights."""
    pos = np.flatnonzero((seq_items >= lo) & (seq_items < hi))
    end = seq_ptr[np.searchsorted(seq_ptr, pos, side="right")]  # the end of each position's sequence
    src = seq_items[pos].astype(np.int64) - lo
    codes = []
    for g in range(1, window + 1):
        ok = pos + g < end
        codes.append(((src[ok] * n_items + seq_items[pos[ok] + g]) << 6) | g)  # the gap in the low 6 bits
    code = np.concatenate(codes)
    del codes, pos, end, src
    code.sort()
    pair = code >> 6
    first = np.ones(len(code), dtype=bool)
    first[1:] = pair[1:] != pair[:-1]
    starts = np.flatnonzero(first)
    weight = np.add.reduceat(gap_weight[code & 63], starts) if len(code) else np.zeros(0)
    pair = pair[starts]
    return pair // n_items + lo, pair % n_items, weight


def top_per_row(src: np.ndarray, dst: np.ndarray, weight: np.ndarray, max_row: int) -> np.ndarray:
    """Positions of each row's ``max_row`` largest entries (ties: lower item), in the given (sorted) order."""
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]]) if len(src) else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.r_[starts, len(src)])
    if not len(lengths) or lengths.max() <= max_row:
        return np.arange(len(src))
    order = np.lexsort((dst, -weight, src))
    rank = np.arange(len(src)) - np.repeat(starts, lengths)  # position within the row, in `order`
    return np.sort(order[rank < max_row])
