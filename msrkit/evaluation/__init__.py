"""Offline evaluation: metrics, scoring, runs, comparisons, reports and fine-tuning data."""

from __future__ import annotations

from .evaluate import *  # noqa: F403
from .evaluate import __all__ as __all__  # noqa: F401
