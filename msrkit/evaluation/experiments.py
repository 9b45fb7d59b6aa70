"""Experiments: the same cases through several variants (ablations, prompt variants), side by side, with reports.

``msrkit eval`` is :func:`run_experiment` with its flags; a Python user gets
the same numbers and the same files::

    from msrkit.config import Settings
    from msrkit.evaluation.experiments import Experiment, run_experiment

    result = run_experiment(Experiment(cases="ml/cases.jsonl", settings=Settings(backend="llamacpp/default",
                            catalog="ml/items.jsonl", interactions="ml/interactions.jsonl"), ablations=True, limit=12))
    print(result.markdown)

The collaborative index is built once per experiment from the interactions
that lie before each case's target (:func:`msrkit.retrieval.interactions_before`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Settings, settings_from
from ..data import History, Item
from ..errors import MsrkitError

__all__ = ["ABLATIONS", "Experiment", "ExperimentResult", "Variant", "run_experiment", "variants_for"]

#: The ablation ladder: each variant adds a stage to the one before.
ABLATIONS = ("retrieval", "+llm", "+summaries", "+collaborative")


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its name and the settings it changes."""

    name: str
    overrides: dict[str, Any]


@dataclass
class Experiment:
    """What to run: cases, base settings, which variants, where to write."""

    cases: str | Path | Sequence[History]
    settings: Settings = field(default_factory=Settings)
    ablations: bool = False
    prompt_dirs: list[Path] = field(default_factory=list)
    rankings: Path | None = None
    ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    limit: int | None = None
    out: Path = Path("msrkit-eval")
    resume: bool = True
    progress: bool = False


@dataclass
class ExperimentResult:
    """Reports by variant, the comparison, the Markdown report and the files written."""

    reports: dict[str, Any]
    comparison: Any
    markdown: str
    files: list[Path]
    warnings: list[str] = field(default_factory=list)


def variants_for(settings: Settings, *, ablations: bool, prompt_dirs: Sequence[Path], has_index: bool) -> list[Variant]:
    """The variants ``msrkit eval`` runs for these options."""
    if settings.backend == "none":
        return [Variant("retrieval", {})]
    if prompt_dirs:
        return [Variant(str(d), {"prompts": d, "collaborative": has_index}) for d in prompt_dirs]
    if not ablations:
        return [Variant("msrkit", {"collaborative": has_index})]
    out = [
        Variant("retrieval", {"backend": "none", "vision_backend": None}),
        Variant("+llm", {"item_summaries": False, "preference_summary": False, "collaborative": False}),
        Variant("+summaries", {"item_summaries": True, "preference_summary": True, "collaborative": False}),
    ]
    if has_index:
        out.append(Variant("+collaborative", {"collaborative": True}))
    return out


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_") or "run"


def _load_cases(experiment: Experiment) -> list[History]:
    from ..io import load_histories

    cases = experiment.cases
    loaded = load_histories(cases) if isinstance(cases, (str, Path)) else list(cases)
    return loaded[: experiment.limit]


def _index(settings: Settings, cases: Sequence[History], catalog: dict[str, Item]) -> Any:
    from ..retrieval import CollaborativeIndex, interactions_before
    from ..retrieval.interactions import read_interactions

    if settings.interactions is None:
        return None
    rows = interactions_before(read_interactions(settings.interactions), cases)
    return CollaborativeIndex.build(rows, catalog=catalog or None)


def run_experiment(experiment: Experiment) -> ExperimentResult:
    """Run every variant over the cases, score them, compare them, and write the report files."""
    from ..io import load_catalog
    from ..recommender import Recommender
    from .evaluate import compare, evaluate, load_rankings, score_rankings, to_json, to_markdown

    base = experiment.settings
    cases = _load_cases(experiment)
    catalog = load_catalog(base.catalog) if base.catalog else {}
    index = _index(base, cases, catalog)
    out = experiment.out
    out.mkdir(parents=True, exist_ok=True)
    reports: dict[str, Any] = {}
    for variant in variants_for(base, ablations=experiment.ablations, prompt_dirs=experiment.prompt_dirs,
                                has_index=index is not None):  # fmt: skip
        settings = settings_from(base, **variant.overrides)
        with Recommender(settings=settings, catalog=catalog, index=index) as rec:
            reports[variant.name] = evaluate(
                cases, rec.rank, ks=experiment.ks, out_path=out / f"{_slug(variant.name)}.results.jsonl",
                resume=experiment.resume, progress=experiment.progress, name=variant.name,
            )  # fmt: skip
    if experiment.rankings is not None:
        from ..io import resolve

        resolved = [resolve(c, catalog) for c in cases]
        name = experiment.rankings.name
        reports[name] = score_rankings(resolved, load_rankings(experiment.rankings), ks=experiment.ks, name=name)
    comparison = compare(reports, ks=experiment.ks)
    markdown = to_markdown(comparison) + "\n\n" + cost_table(reports)
    files, warnings = _write_reports(out, comparison, markdown, to_json(comparison))
    return ExperimentResult(reports, comparison, markdown, files, warnings)


def _write_reports(out: Path, comparison: Any, markdown: str, as_json: str) -> tuple[list[Path], list[str]]:
    from ..report import write_eval_html
    from .evaluate import plot

    (out / "report.json").write_text(as_json, encoding="utf-8")
    (out / "report.md").write_text(markdown, encoding="utf-8")
    write_eval_html(out / "report.html", comparison)
    files = [out / "report.json", out / "report.md", out / "report.html"]
    warnings = []
    try:
        files.append(plot(comparison, out / "report.png"))
    except MsrkitError as exc:  # a plot is optional (matplotlib is an extra)
        warnings.append(f"no plot: {exc}")
    return files, warnings


def cost_table(reports: dict[str, Any]) -> str:
    """A Markdown table of what each variant cost per case."""
    lines = ["| variant | cases | LLM calls/case | tokens/case | cache hits | s/case | degraded | errors |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in reports.items():
        n = max(len(r.results), 1)
        u = r.usage
        degraded = sum(1 for x in r.results if x.degraded)
        errors = r.counts.get("error", 0)
        lines.append(
            f"| {name} | {len(r.results)} | {u.llm_calls / n:.2f} | {(u.prompt_tokens + u.completion_tokens) / n:.0f} "
            f"| {u.cache_hits} | {u.seconds / n:.2f} | {degraded} | {errors} |"
        )
    return "\n".join(lines)
