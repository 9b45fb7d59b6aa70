"""Offline evaluation: metrics, scoring, runs, comparisons, reports, experiments and fine-tuning data.

- :mod:`.metrics`: HR@K, NDCG@K, MRR, AUC and bootstrap intervals (pure functions);
- :mod:`.scoring`: one :class:`CaseResult` per case, an :class:`EvalReport` per run;
  :func:`score_rankings` scores rankings made by any other system;
- :mod:`.runner`: :func:`evaluate` runs a ranker over cases into a resumable results file;
- :mod:`.reports`: :func:`compare` variants, render Markdown / JSON / a plot, write report files;
- :mod:`.experiments`: :func:`run_experiment`, everything ``msrkit eval`` does (ablations,
  prompt variants, another system's rankings, report files), from Python;
- :mod:`.sft`: :func:`export_sft`, chat-format fine-tuning data built by the inference prompt builder;
- :mod:`.keywords`: the quality of item keywords (MMSRARec's reward) and prompt comparisons.
"""

from __future__ import annotations

from .keywords import KeywordQuality, ReconstructionResult, keyword_quality, reconstruction_accuracy
from .reports import Comparison, VariantRow, compare, plot, to_json, to_markdown
from .runner import evaluate, load_results
from .scoring import CaseResult, Estimate, EvalReport, build_report, load_rankings, score_rankings
from .sft import export_sft

__all__ = [
    "Estimate",
    "CaseResult",
    "EvalReport",
    "VariantRow",
    "Comparison",
    "evaluate",
    "score_rankings",
    "load_rankings",
    "load_results",
    "build_report",
    "compare",
    "to_markdown",
    "to_json",
    "plot",
    "export_sft",
    "KeywordQuality",
    "ReconstructionResult",
    "keyword_quality",
    "reconstruction_accuracy",
]
