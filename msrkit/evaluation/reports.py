"""Reports: variants side by side (:func:`compare`), rendered as Markdown, JSON, a PNG plot and report files.

:func:`compare` gives each variant's metrics with bootstrap intervals and the
paired difference to the first variant; :func:`to_markdown`, :func:`to_json`
and :func:`plot` render a report or a comparison; :func:`write_reports` writes
the files ``msrkit eval`` leaves in its ``--out`` folder.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from ..errors import MissingDependencyError, MsrkitError
from ..jobs.runs import write_text_atomic
from .metrics import per_case
from .scoring import Estimate, EvalReport, estimate, per_case_values

__all__ = ["Comparison", "VariantRow", "compare", "cost_table", "plot", "to_json", "to_markdown", "write_reports"]


class VariantRow(BaseModel):
    name: str
    n: int
    metrics: dict[str, Estimate]
    delta: dict[str, Estimate] = Field(default_factory=dict)


class Comparison(BaseModel):
    """Variants side by side; ``delta`` is each variant minus the baseline, paired over cases."""

    ks: list[int]
    baseline: str
    rows: list[VariantRow]


def compare(
    variants: Mapping[str, Sequence[float] | EvalReport],
    *,
    ks: Sequence[int] = (1, 5, 10),
    n_boot: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Variants side by side: per-case ranks (``math.inf`` = miss) or reports, same cases in the same order.

    Each metric gets a bootstrap interval; ``delta`` is the paired bootstrap of
    the per-case difference to the first variant (the baseline), given only
    when both cover the same number of cases.
    """
    if not variants:
        raise ValueError("compare() needs at least one variant")
    values = {name: _variant_values(v, ks) for name, v in variants.items()}
    baseline = next(iter(values))
    rows = []
    for name, vals in values.items():
        n = len(vals["MRR"])
        metrics = {m: estimate(v, n_boot=n_boot, seed=seed) for m, v in vals.items()}
        delta = {}
        if name != baseline and n == len(values[baseline]["MRR"]):
            for m, v in vals.items():
                if m in values[baseline] and len(values[baseline][m]) == len(v):
                    diff = [a - b for a, b in zip(v, values[baseline][m], strict=True)]
                    delta[m] = estimate(diff, n_boot=n_boot, seed=seed)
        rows.append(VariantRow(name=name, n=n, metrics=metrics, delta=delta))
    return Comparison(ks=list(ks), baseline=baseline, rows=rows)


def _variant_values(variant: Sequence[float] | EvalReport, ks: Sequence[int]) -> dict[str, list[float]]:
    if isinstance(variant, EvalReport):
        return per_case_values(variant.results, ks)
    return per_case(variant, ks)


def _metric_order(names: Iterable[str], ks: Sequence[int]) -> list[str]:
    order = [f"{m}@{k}" for m in ("HR", "NDCG") for k in ks] + ["MRR", "AUC"]
    present = set(names)
    return [m for m in order if m in present]


def to_markdown(report: EvalReport | Comparison) -> str:
    """A Markdown table (and, for a report, counts, cost and what went wrong)."""
    if isinstance(report, Comparison):
        return _comparison_markdown(report)
    lines = [f"### {report.name}", "", "| metric | mean | 95% CI |", "|---|---:|---:|"]
    for m in _metric_order(report.metrics, report.ks):
        e = report.metrics[m]
        lines.append(f"| {m} | {e.mean:.4f} | [{e.low:.4f}, {e.high:.4f}] |")
    c, u = report.counts, report.usage
    lines += [
        "",
        f"cases: {c['cases']} (ranked: {c['ok']}, target not ranked: {c['miss']}, no ranking: {c['missing']}, "
        f"errors: {c['error']}, degraded: {c['degraded']})",
        f"cost: {u.llm_calls} LLM calls, {u.prompt_tokens}+{u.completion_tokens} tokens, "
        f"{u.cache_hits} cache hits, {u.seconds:.1f} s",
    ]
    lines += _problem_lines(report)
    return "\n".join(lines) + "\n"


def _problem_lines(report: EvalReport, limit: int = 10) -> list[str]:
    out = []
    for status, label in (("missing", "no ranking for"), ("miss", "target not ranked for")):
        users = [r.case for r in report.results if r.status == status]
        if users:
            more = f" (+{len(users) - limit} more)" if len(users) > limit else ""
            out.append(f"{label}: {', '.join(users[:limit])}{more}")
    for r in [r for r in report.results if r.status == "error"][:limit]:
        out.append(f"error in {r.case}: {r.error}")
    if report.unmatched:
        out.append(f"rankings for users without a case (ignored): {', '.join(report.unmatched[:limit])}")
    return out


def _comparison_markdown(comp: Comparison) -> str:
    metrics = _metric_order({m for r in comp.rows for m in r.metrics}, comp.ks)
    lines = ["| variant | n | " + " | ".join(metrics) + " |", "|---|---:|" + "---:|" * len(metrics)]
    for row in comp.rows:
        cells = [str(row.metrics[m]) if m in row.metrics else "" for m in metrics]
        lines.append(f"| {row.name} | {row.n} | " + " | ".join(cells) + " |")
    deltas = [r for r in comp.rows if r.delta]
    if deltas:
        lines += ["", f"Paired difference to **{comp.baseline}** (mean [95% CI]):", ""]
        lines += ["| variant | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
        for row in deltas:
            cells = [_signed(row.delta[m]) if m in row.delta else "" for m in metrics]
            lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _signed(e: Estimate) -> str:
    return f"{e.mean:+.4f} [{e.low:+.4f}, {e.high:+.4f}]"


def to_json(report: EvalReport | Comparison, *, indent: int | None = 2) -> str:
    """The report or comparison as JSON (NaN and infinity become null)."""
    return report.model_dump_json(indent=indent)


def plot(report: EvalReport | Comparison, path: str | Path, *, metrics: Sequence[str] | None = None) -> Path:
    """A PNG bar chart: each metric per variant, 95% bootstrap intervals as error bars."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependencyError("matplotlib", "plot", "Plotting evaluation results") from None
    rows = (
        report.rows if isinstance(report, Comparison) else [VariantRow(name=report.name, n=0, metrics=report.metrics)]
    )
    names = list(metrics or _metric_order({m for r in rows for m in r.metrics}, report.ks))
    fig = Figure(figsize=(max(6.0, 1.1 * len(names) * max(1, len(rows)) / 2), 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    width = 0.8 / len(rows)
    for j, row in enumerate(rows):
        est = [row.metrics.get(m, Estimate(mean=math.nan, low=math.nan, high=math.nan)) for m in names]
        means = [e.mean for e in est]
        errors = [[max(0.0, e.mean - e.low) for e in est], [max(0.0, e.high - e.mean) for e in est]]
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(names))]
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=row.name)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean over users (95% CI)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out


def cost_table(reports: Mapping[str, EvalReport]) -> str:
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


def write_reports(out: str | Path, comparison: Comparison, markdown: str) -> tuple[list[Path], list[str]]:
    """``report.json``, ``report.md``, ``report.html`` and (with matplotlib) ``report.png`` in ``out``.

    Returns the files written and warnings (why there is no plot). Each file is replaced atomically.
    """
    from ..jobs.report import write_eval_html

    folder = Path(out)
    files = [
        write_text_atomic(folder / "report.json", to_json(comparison)),
        write_text_atomic(folder / "report.md", markdown),
        write_eval_html(folder / "report.html", comparison),
    ]
    warnings = []
    try:
        files.append(plot(comparison, folder / "report.png"))
    except MsrkitError as exc:  # a plot is optional (matplotlib is an extra)
        warnings.append(f"no plot: {exc}")
    return files, warnings
