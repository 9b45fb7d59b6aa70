"""Real data sets in, evaluation cases out.

Loaders turn public formats into a catalog (``{item_id: Item}``) and a list of
:class:`~msrkit.inputs.io.Interaction`:

- :mod:`.recbole`: RecBole atomic files (``NAME.inter``, ``NAME.item``); the
  ``recbole`` wheel ships MovieLens-100k, found by :func:`movielens_100k_dir`
  without importing recbole (which needs torch);
- :mod:`.amazon`: Amazon-reviews-style JSONL (reviews, optional item metadata), gzip or not;
- :mod:`.csvfile`: interactions CSV with configurable column names.

:mod:`.splits` (:func:`leave_one_out`) splits by time into evaluation cases (``cases.jsonl``):
per user the last interaction is the ``target``, the earlier ones are the
history, and the candidates are the target plus N negatives sampled with a
fixed seed from items the user never took. :mod:`.writing` writes catalogs,
interactions and cases as JSONL, atomically.
"""

from __future__ import annotations

from .amazon import load_amazon
from .csvfile import load_csv
from .recbole import DatasetMissingError, load_movielens_100k, load_recbole, movielens_100k_dir
from .splits import leave_one_out
from .writing import write_catalog, write_dataset, write_jsonl

__all__ = [
    "DatasetMissingError",
    "movielens_100k_dir",
    "load_movielens_100k",
    "load_recbole",
    "load_amazon",
    "load_csv",
    "leave_one_out",
    "write_jsonl",
    "write_catalog",
    "write_dataset",
]
