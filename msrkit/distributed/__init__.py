"""Beyond one machine: batch ranking and catalog summarization on Ray Data (``pip install 'msrkit[ray]'``).

- :func:`rank_dataset`, :func:`summarize_dataset`: a ``ray.data.Dataset`` in,
  a lazy ``Dataset`` out; ``settings.actors`` actors each hold one
  :class:`~msrkit.recommender.Recommender` and run ``settings.concurrency``
  requests at once, so at most ``actors x concurrency`` are in flight.
- :func:`rank_to_shards`, :func:`summarize_to_shards`: what ``msrkit rank|summarize
  --engine ray --out DIR`` runs: an input file in, deterministic, resumable
  shards out (JSONL or Parquet), each written atomically.

Ray is imported only when one of these runs: ``import msrkit`` (and this
package) import no Ray.
"""

from __future__ import annotations

from .engine import connect, rank_dataset, summarize_dataset
from .runner import ShardRun, rank_to_shards, summarize_to_shards

__all__ = ["ShardRun", "connect", "rank_dataset", "rank_to_shards", "summarize_dataset", "summarize_to_shards"]
