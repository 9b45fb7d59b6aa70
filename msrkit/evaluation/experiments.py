"""Experiments: the same cases through several variants (ablations, prompt variants), side by side, with reports.

``msrkit eval`` is :func:`run_experiment` with its flags; a Python user gets
the same numbers and the same files::

    from msrkit.config import Settings
    from msrkit.evaluation.experiments import Experiment, run_experiment

    result = run_experiment(Experiment(cases="ml/cases.jsonl", settings=Settings(backend="llamacpp/default",
                            catalog="ml/items.jsonl", interactions="ml/interactions.jsonl"), ablations=True, limit=12))
    print(result.markdown)

For each variant, ``<out>/<variant>.results.jsonl`` holds one line per case
(resumable, see :func:`~msrkit.evaluation.runner.evaluate`), and ``<out>``
gets ``report.json``, ``report.md``, ``report.html`` and ``report.png``
(:func:`~msrkit.evaluation.reports.write_reports`). The collaborative index is
built once per experiment from the interactions that lie before each case's
target (:func:`msrkit.retrieval.interactions_before`), so no variant sees a
case's future.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Settings, settings_from
from ..data import History, Item
from ..errors import ConfigError
from .agent import AgentStats
from .cases import load_cases, load_index
from .reports import Comparison, compare, cost_table, to_markdown, write_reports
from .scoring import EvalReport

if TYPE_CHECKING:
    from ..retrieval import CollaborativeIndex

__all__ = ["ABLATIONS", "Experiment", "ExperimentResult", "Variant", "run_experiment", "variants_for"]

#: The ablation ladder: each variant adds a stage to the one before.
ABLATIONS = ("retrieval", "+llm", "+summaries", "+collaborative")

#: ``on_progress(variant, done, total)``: cases of ``variant`` scored so far (resumed ones included).
VariantProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its name and the settings it changes."""

    name: str
    overrides: dict[str, Any]
    agent: bool = False  # ranked by the agent (msrkit.agent) instead of the fixed pipeline


@dataclass
class Experiment:
    """What to run: cases, base settings, which variants, where to write.

    ``prompt_dirs``: one folder runs every variant with those templates; two or
    more are compared with each other (and cannot be combined with ``ablations``).
    ``rankings``: a JSONL of another system's rankings, scored on the same cases.
    """

    cases: str | Path | Sequence[History]
    settings: Settings = field(default_factory=Settings)
    ablations: bool = False
    prompt_dirs: list[Path] = field(default_factory=list)
    rankings: Path | None = None
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    limit: int | None = None
    out: Path = Path("msrkit-eval")
    resume: bool = True
    on_progress: VariantProgress | None = None
    agent: bool = False


@dataclass
class ExperimentResult:
    """Reports by variant, the comparison, the Markdown report and the files written."""

    reports: dict[str, EvalReport]
    comparison: Comparison
    markdown: str
    files: list[Path]
    warnings: list[str] = field(default_factory=list)


def variants_for(
    settings: Settings, *, ablations: bool, prompt_dirs: Sequence[Path], has_index: bool, agent: bool = False
) -> list[Variant]:
    """The variants ``msrkit eval`` runs for these options (``agent``: the agent beside them, same candidates)."""
    base = _variants(settings, ablations=ablations, prompt_dirs=prompt_dirs, has_index=has_index)
    return [*base, Variant("agent", {"collaborative": has_index}, agent=True)] if agent else base


def _variants(settings: Settings, *, ablations: bool, prompt_dirs: Sequence[Path], has_index: bool) -> list[Variant]:
    if len(prompt_dirs) > 1:
        if ablations:
            raise ConfigError("compare prompt folders or run the ablations, not both at once (one --prompts works)")
        if settings.backend == "none":
            raise ConfigError("comparing prompt folders needs an LLM backend, not 'none'")
        return [Variant(str(d), {"prompts": d, "collaborative": has_index}) for d in prompt_dirs]
    if settings.backend == "none":
        return [Variant("retrieval", {})]
    if not ablations:
        return [Variant(str(prompt_dirs[0]) if prompt_dirs else "msrkit", {"collaborative": has_index})]
    out = [
        Variant("retrieval", {"backend": "none", "vision_backend": None}),
        Variant("+llm", {"item_summaries": False, "preference_summary": False, "collaborative": False}),
        Variant("+summaries", {"item_summaries": True, "preference_summary": True, "collaborative": False}),
    ]
    if has_index:
        out.append(Variant("+collaborative", {"collaborative": True}))
    return out


def run_experiment(experiment: Experiment) -> ExperimentResult:
    """Run every variant over the cases, score them, compare them, and write the report files."""
    from ..inputs.io import load_catalog

    _check(experiment)
    base = experiment.settings
    if len(experiment.prompt_dirs) == 1:
        base = settings_from(base, prompts=experiment.prompt_dirs[0])
    cases = load_cases(experiment.cases, limit=experiment.limit)
    catalog = load_catalog(base.catalog) if base.catalog else {}
    index = load_index(base, cases, catalog)
    experiment.out.mkdir(parents=True, exist_ok=True)
    variants = variants_for(base, ablations=experiment.ablations, prompt_dirs=experiment.prompt_dirs,
                            has_index=index is not None, agent=experiment.agent)  # fmt: skip
    results = results_files(experiment.out, [v.name for v in variants])
    stats = AgentStats()
    reports = {v.name: _run_variant(experiment, v, settings_from(base, **v.overrides), cases, catalog, index,
                                    results[v.name], stats) for v in variants}  # fmt: skip
    if experiment.rankings is not None:
        reports[experiment.rankings.name] = _score_file(experiment, cases, catalog)
    comparison = compare(reports, ks=experiment.ks)
    markdown = to_markdown(comparison) + "\n\n" + cost_table(reports)
    if stats.runs:
        markdown += "\n\n" + stats.table()
    files, warnings = write_reports(experiment.out, comparison, markdown)
    return ExperimentResult(reports, comparison, markdown, files, warnings)


def _check(experiment: Experiment) -> None:
    if not experiment.ks or any(k < 1 for k in experiment.ks):
        raise ConfigError(f"ks must be cut-offs >= 1, got {experiment.ks}")
    if experiment.limit is not None and experiment.limit < 1:
        raise ConfigError(f"limit must be >= 1, got {experiment.limit}")


def results_files(out: Path, names: Sequence[str]) -> dict[str, Path]:
    """Where each variant's per-case results go: ``<out>/<name>.results.jsonl``, one file per variant.

    The name is made safe for a file name (``+llm`` -> ``llm``, ``../prompts`` ->
    ``prompts``); where two names would share a file, each gets a digest of
    its full name, so no variant ever resumes from another's results.
    """
    slugs = {name: _slug(name) for name in names}
    taken = Counter(slugs.values())
    for name, slug in slugs.items():
        if taken[slug] > 1:
            slugs[name] = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return {name: out / f"{slug}.results.jsonl" for name, slug in slugs.items()}


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._") or "run"


def _run_variant(
    experiment: Experiment,
    variant: Variant,
    settings: Settings,
    cases: Sequence[History],
    catalog: dict[str, Item],
    index: CollaborativeIndex | None,
    results: Path,
    stats: AgentStats,
) -> EvalReport:
    from ..recommender import Recommender
    from .runner import evaluate

    progress = experiment.on_progress
    with Recommender(settings=settings, catalog=catalog, index=index) as rec:
        return evaluate(
            cases, stats.wrap(rec.agent_rank) if variant.agent else rec.rank, ks=experiment.ks, out_path=results,
            resume=experiment.resume, name=variant.name,
            on_progress=(lambda done, total: progress(variant.name, done, total)) if progress else None,
        )  # fmt: skip


def _score_file(experiment: Experiment, cases: Sequence[History], catalog: dict[str, Item]) -> EvalReport:
    from ..inputs.io import resolve
    from .scoring import load_rankings, score_rankings

    assert experiment.rankings is not None
    resolved = [resolve(c, catalog) for c in cases]
    name = experiment.rankings.name
    return score_rankings(resolved, load_rankings(experiment.rankings), ks=experiment.ks, name=name)
