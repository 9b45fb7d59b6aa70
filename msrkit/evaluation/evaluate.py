"""Offline evaluation: score rankings against held-out targets, compare variants, export SFT data.

- :func:`evaluate` runs any ranker (a callable ``History -> Ranking``) over
  cases, writing one JSON line per case as it goes: a crash loses nothing
  already scored and a rerun skips what the file already holds.
- :func:`score_rankings` scores rankings made by any other system
  (``{"user_id", "ranking": [item_id, ...]}`` per line, see :func:`load_rankings`).
- :func:`compare` puts variants side by side with bootstrap intervals and
  paired differences to the first variant; :func:`to_markdown`,
  :func:`to_json` and :func:`plot` render a report or a comparison.
- :func:`export_sft` writes chat-format fine-tuning data from cases.

A case's target that is not ranked, a user without a ranking and a case whose
ranker raised all count as misses (rank = infinity) and are counted and named
in the report, never dropped.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..backends.base import ChatRequest
from ..data import History, Item, Ranking, Usage
from ..datasets import write_jsonl
from ..errors import InputError, MissingDependencyError
from ..io import read_records, resolve
from ..prompts import PromptSet
from .keywords import KeywordQuality, ReconstructionResult, keyword_quality, reconstruction_accuracy
from .metrics import MISS, auc, bootstrap_ci, per_case, rank_of

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

log = logging.getLogger("msrkit")

Status = Literal["ok", "miss", "missing", "error"]
RankFn = Callable[[History], Ranking]


class Estimate(BaseModel):
    """A metric's mean over cases and its bootstrap interval."""

    mean: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


class CaseResult(BaseModel):
    """One case's outcome: one line of the results file.

    ``status``: ``ok`` (target ranked), ``miss`` (target absent from the ranking),
    ``missing`` (no ranking for this user), ``error`` (the ranker raised).
    """

    case: str
    user_id: str | None = None
    target: str | None = None
    status: Status
    rank: int | None = None
    candidates: int = 0
    auc: float | None = None
    ranking: list[str] = Field(default_factory=list)
    degraded: bool = False
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)

    @property
    def metric_rank(self) -> float:
        """The rank metrics use: ``math.inf`` unless the target was ranked."""
        return float(self.rank) if self.rank is not None else MISS


class EvalReport(BaseModel):
    """Metrics (with 95% bootstrap intervals), counts, cost and every case's result."""

    name: str = "run"
    ks: list[int]
    metrics: dict[str, Estimate]
    counts: dict[str, int]
    usage: Usage
    results: list[CaseResult]
    unmatched: list[str] = Field(default_factory=list)

    def ranks(self) -> list[float]:
        return [r.metric_rank for r in self.results]


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


# --------------------------------------------------------------------------- case keys and scoring


def case_keys(cases: Sequence[History]) -> list[str]:
    """A stable key per case: the user id, or ``user#index`` where ids repeat or are absent."""
    counts = Counter(c.user_id for c in cases)
    return [
        c.user_id if c.user_id and counts[c.user_id] == 1 else f"{c.user_id or ''}#{i}" for i, c in enumerate(cases)
    ]


def _candidate_ids(case: History) -> list[str]:
    return [c if isinstance(c, str) else c.item_id for c in case.candidates or []]


def _check_cases(cases: Sequence[History]) -> None:
    for i, case in enumerate(cases):
        where = case.source or f"case [{i}]"
        if case.target is None:
            raise InputError("an evaluation case needs 'target': the item the user took next", source=where)
        ids = _candidate_ids(case)
        if ids and case.target not in ids:
            raise InputError(f"target '{case.target}' is not among the candidates", source=where, path="target")


def _score(
    key: str,
    case: History,
    ranked: Sequence[str],
    *,
    scores: Sequence[float] | None = None,
    usage: Usage | None = None,
    degraded: bool = False,
    warnings: Sequence[str] = (),
) -> CaseResult:
    """Score one ranking; ids that are not candidates are ignored (rank among candidates)."""
    notes = list(warnings)
    candidates = _candidate_ids(case)
    ids, kept_scores = list(ranked), list(scores) if scores is not None else None
    if candidates:
        allowed = set(candidates)
        keep = [i for i, item in enumerate(ids) if item in allowed]
        if len(keep) < len(ids):
            notes.append(f"{len(ids) - len(keep)} ranked id(s) are not candidates: ignored")
        ids = [ids[i] for i in keep]
        kept_scores = [kept_scores[i] for i in keep] if kept_scores is not None else None
        lost = len(allowed - set(ids))
        if lost:
            notes.append(f"{lost} candidate(s) missing from the ranking")
    target = case.target or ""
    rank = rank_of(ids, target)
    found = not math.isinf(rank)
    return CaseResult(
        case=key,
        user_id=case.user_id,
        target=case.target,
        status="ok" if found else "miss",
        rank=int(rank) if found else None,
        candidates=len(candidates) or len(ids),
        auc=_case_auc(ids, kept_scores, target) if found else 0.0,
        ranking=ids,
        degraded=degraded,
        warnings=notes,
        usage=usage or Usage(),
    )


def _case_auc(ids: Sequence[str], scores: Sequence[float] | None, target: str) -> float | None:
    """AUC from the scores where they agree with the order (ties count 1/2), else from positions."""
    if len(ids) < 2:
        return None
    consistent = scores is not None and all(a >= b for a, b in zip(scores, scores[1:], strict=False))
    values = list(scores) if consistent and scores is not None else [-float(i) for i in range(len(ids))]
    return auc(values, ids.index(target))


# --------------------------------------------------------------------------- reports


def build_report(
    results: Sequence[CaseResult],
    *,
    ks: Sequence[int] = (1, 5, 10),
    name: str = "run",
    unmatched: Sequence[str] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> EvalReport:
    """Metrics with bootstrap intervals, status counts and summed cost over ``results``."""
    values = _per_case_values(results, ks)
    usage = Usage()
    for r in results:
        usage.add(r.usage)
    counts = Counter(r.status for r in results)
    return EvalReport(
        name=name,
        ks=list(ks),
        metrics={m: _estimate(v, n_boot=n_boot, seed=seed) for m, v in values.items()},
        counts={
            "cases": len(results),
            **{s: counts.get(s, 0) for s in ("ok", "miss", "missing", "error")},
            "degraded": sum(r.degraded for r in results),
        },
        usage=usage,
        results=list(results),
        unmatched=list(unmatched),
    )


def _per_case_values(results: Sequence[CaseResult], ks: Sequence[int]) -> dict[str, list[float]]:
    values = per_case([r.metric_rank for r in results], ks)
    aucs = [r.auc for r in results if r.auc is not None or r.status != "ok"]
    if aucs:
        values["AUC"] = [a if a is not None else 0.0 for a in aucs]
    return values


def _estimate(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    mean = sum(values) / len(values) if values else math.nan
    low, high = bootstrap_ci(values, n=n_boot, seed=seed)
    return Estimate(mean=mean, low=low, high=high)


# --------------------------------------------------------------------------- rankings from other systems


def load_rankings(path: str | Path) -> dict[str, list[str]]:
    """``{user_id: [item_id, ...]}`` from JSONL lines ``{"user_id", "ranking": [...]}``.

    Ranking entries may be ids or objects with ``item_id`` (msrkit's own output).
    """
    p = Path(path)
    out: dict[str, list[str]] = {}
    for where, rec in read_records(p):
        source = f"{p}:{where.removeprefix('line ')}" if where.startswith("line") else f"{p} {where}"
        user, ranking = _ranking_record(rec, source=source)
        if user in out:
            raise InputError(f"user_id '{user}' has a second ranking", source=source, path="user_id")
        out[user] = ranking
    return out


def _ranking_record(rec: Any, *, source: str) -> tuple[str, list[str]]:
    if not isinstance(rec, dict) or rec.get("user_id") in (None, ""):
        raise InputError("expected an object with 'user_id' and 'ranking'", source=source, path="user_id")
    ranking = rec.get("ranking")
    if not isinstance(ranking, list):
        raise InputError("'ranking' must be a list of item ids", source=source, path="ranking")
    ids = []
    for i, entry in enumerate(ranking):
        value = entry.get("item_id") if isinstance(entry, dict) else entry
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
            raise InputError("expected an item id or an object with 'item_id'", source=source, path=f"ranking[{i}]")
        ids.append(str(value))
    return str(rec["user_id"]), ids


def score_rankings(
    cases: Sequence[History],
    rankings: Mapping[str, Sequence[str]],
    *,
    ks: Sequence[int] = (1, 5, 10),
    name: str = "rankings",
) -> EvalReport:
    """Score rankings made elsewhere; a user without one is ``missing``, a ranking without the target a ``miss``."""
    _check_cases(cases)
    results = []
    for key, case in zip(case_keys(cases), cases, strict=True):
        ranking = rankings.get(case.user_id or "")
        if ranking is None:
            results.append(_missing(key, case))
        else:
            results.append(_score(key, case, ranking))
    users = {c.user_id for c in cases}
    unmatched = sorted(u for u in rankings if u not in users)
    _log_counts(results, unmatched)
    return build_report(results, ks=ks, name=name, unmatched=unmatched)


def _missing(key: str, case: History) -> CaseResult:
    return CaseResult(
        case=key, user_id=case.user_id, target=case.target, status="missing", candidates=len(_candidate_ids(case))
    )


def _log_counts(results: Sequence[CaseResult], unmatched: Sequence[str]) -> None:
    counts = Counter(r.status for r in results)
    if counts["missing"]:
        log.warning("%d case(s) have no ranking: counted as misses", counts["missing"])
    if counts["miss"]:
        log.warning("%d ranking(s) do not contain the target: counted as misses", counts["miss"])
    if unmatched:
        log.warning("%d ranking(s) are for users without a case: ignored", len(unmatched))


# --------------------------------------------------------------------------- running a ranker


def evaluate(
    cases: Sequence[History],
    rank_fn: RankFn,
    *,
    ks: Sequence[int] = (1, 5, 10),
    out_path: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    name: str = "run",
    retry_errors: bool = True,
) -> EvalReport:
    """Rank every case with ``rank_fn`` and score the target's rank.

    With ``out_path``, each case's :class:`CaseResult` is appended and flushed
    as soon as it is scored; with ``resume`` a rerun keeps the rows already
    there and ranks only the rest (cases that failed are retried unless
    ``retry_errors=False``). A case whose ranker raises becomes an ``error``
    row and the others go on; Ctrl-C stops the run with every finished row kept.
    """
    _check_cases(cases)
    keys = case_keys(cases)
    done = _prepare_results_file(Path(out_path), resume=resume, retry_errors=retry_errors) if out_path else {}
    todo = [(k, c) for k, c in zip(keys, cases, strict=True) if k not in done]
    if done:
        log.info("resuming %s: %d case(s) already scored, %d to go", out_path, len(cases) - len(todo), len(todo))
    with _appender(Path(out_path) if out_path else None) as write:
        for key, case in _progress(todo, enabled=progress, description=name):
            result = _run_case(key, case, rank_fn)
            write(result)
            done[key] = result
    return build_report([done[k] for k in keys], ks=ks, name=name)


def _run_case(key: str, case: History, rank_fn: RankFn) -> CaseResult:
    started = time.perf_counter()
    try:
        ranking = rank_fn(case)
    except Exception as exc:  # one case's failure is recorded, the run goes on
        log.warning("case %s failed: %s: %s", key, type(exc).__name__, exc)
        return CaseResult(
            case=key,
            user_id=case.user_id,
            target=case.target,
            status="error",
            candidates=len(_candidate_ids(case)),
            error=f"{type(exc).__name__}: {exc}",
            usage=Usage(seconds=round(time.perf_counter() - started, 4)),
        )
    usage = ranking.usage.model_copy()
    if not usage.seconds:
        usage.seconds = round(time.perf_counter() - started, 4)
    return _score(
        key,
        case,
        ranking.item_ids(),
        scores=[r.score for r in ranking.ranking],
        usage=usage,
        degraded=ranking.degraded,
        warnings=ranking.warnings,
    )


def load_results(path: str | Path) -> dict[str, CaseResult]:
    """The rows of a results file by case key (a later row for a case wins; torn lines are skipped)."""
    rows, _ = _read_results(Path(path))
    return rows


def _read_results(path: Path) -> tuple[dict[str, CaseResult], int]:
    rows: dict[str, CaseResult] = {}
    bad = 0
    if not path.exists():
        return rows, bad
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = CaseResult.model_validate_json(line)
        except ValueError:
            bad += 1
            log.warning("%s:%d: unreadable result row (a torn write?): skipped, the case will be rerun", path, n)
            continue
        rows[row.case] = row
    return rows, bad


def _prepare_results_file(path: Path, *, resume: bool, retry_errors: bool) -> dict[str, CaseResult]:
    """Rows to keep; the file is rewritten atomically to hold exactly them (no torn last line)."""
    rows: dict[str, CaseResult] = {}
    if resume:
        rows, _ = _read_results(path)
        if retry_errors:
            rows = {k: r for k, r in rows.items() if r.status != "error"}
    write_jsonl(path, [r.model_dump(mode="json") for r in rows.values()])
    return rows


class _appender:
    """Context manager yielding ``write(result)``: one JSON line, flushed at once."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fh: Any = None

    def __enter__(self) -> Callable[[CaseResult], None]:
        if self._path is not None:
            self._fh = self._path.open("a", encoding="utf-8")
        return self._write

    def _write(self, result: CaseResult) -> None:
        if self._fh is not None:
            self._fh.write(result.model_dump_json() + "\n")
            self._fh.flush()

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            os.fsync(self._fh.fileno())
            self._fh.close()


def _progress(
    items: Sequence[tuple[str, History]], *, enabled: bool, description: str
) -> Iterator[tuple[str, History]]:
    if not enabled or not items:
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=False) as bar:
        yield from bar.track(items, total=len(items), description=description)


# --------------------------------------------------------------------------- comparing variants


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
        metrics = {m: _estimate(v, n_boot=n_boot, seed=seed) for m, v in vals.items()}
        delta = {}
        if name != baseline and n == len(values[baseline]["MRR"]):
            for m, v in vals.items():
                if m in values[baseline] and len(values[baseline][m]) == len(v):
                    diff = [a - b for a, b in zip(v, values[baseline][m], strict=True)]
                    delta[m] = _estimate(diff, n_boot=n_boot, seed=seed)
        rows.append(VariantRow(name=name, n=n, metrics=metrics, delta=delta))
    return Comparison(ks=list(ks), baseline=baseline, rows=rows)


def _variant_values(variant: Sequence[float] | EvalReport, ks: Sequence[int]) -> dict[str, list[float]]:
    if isinstance(variant, EvalReport):
        return _per_case_values(variant.results, ks)
    return per_case(variant, ks)


# --------------------------------------------------------------------------- rendering


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


# --------------------------------------------------------------------------- fine-tuning data


def _default_preference(case: History) -> str:
    # The same text the Recommender uses when preference summaries are off.
    from ..pipeline import recent_items_text

    return recent_items_text(case.items())


def export_sft(
    cases: Sequence[History],
    *,
    task: Literal["listwise", "yesno"] = "listwise",
    prompts: PromptSet | None = None,
    out: str | Path | None = None,
    catalog: Mapping[str, Item] | None = None,
    preference: Callable[[History], str] | None = None,
    collaborative: Callable[[History], Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Chat-format supervised fine-tuning examples, ``{"messages": [system, user, assistant]}``.

    ``listwise`` (template ``listwise_rank``): one example per case whose answer
    puts the target first, then the other candidates in their given order.
    ``yesno`` (template ``yes_no``): one example per candidate, ``Yes`` for the
    target and ``No`` otherwise. The preference text is, by default, the
    recent history as the Recommender renders it without summaries; pass
    ``preference``/``collaborative`` to use your own. With ``out`` the examples
    are also written as JSONL (atomically).
    """
    if task not in ("listwise", "yesno"):
        raise ValueError(f"task must be 'listwise' or 'yesno', not {task!r}")
    prompts = prompts or PromptSet.load()
    _check_cases(cases)
    examples: list[dict[str, Any]] = []
    for case in cases:
        resolved = resolve(case, catalog)
        candidates = resolved.candidate_items()
        if not candidates:
            raise InputError("an SFT case needs candidates", source=case.source or str(case.user_id))
        pref = (preference or _default_preference)(resolved) or "(no summary available)"
        context = list(collaborative(resolved)) if collaborative else []
        if task == "listwise":
            examples.append(_listwise_example(prompts, resolved, candidates, pref, context))
        else:
            examples.extend(_yesno_examples(prompts, resolved, candidates, pref))
    if out is not None:
        write_jsonl(out, examples)
    return examples


def _chat(request: ChatRequest, answer: str) -> dict[str, Any]:
    """The request's messages (text: SFT data for text models) and the answer, in chat format."""
    messages = [{"role": m.role, "content": m.text_content} for m in request.messages]
    return {"messages": [*messages, {"role": "assistant", "content": answer}]}


def _listwise_example(
    prompts: PromptSet, case: History, candidates: list[Item], pref: str, context: list[str]
) -> dict[str, Any]:
    """The request the listwise reranker sends for these candidates in one window (no schema, no reasons)."""
    from ..ranking.prompting import format_candidates, listwise_request

    request = listwise_request(
        prompts, preference=pref, context=context, candidates=format_candidates(candidates), count=len(candidates)
    )
    first = next(i for i, c in enumerate(candidates, 1) if c.item_id == case.target)
    order = [first] + [i for i in range(1, len(candidates) + 1) if i != first]
    return _chat(request, " > ".join(f"[{i}]" for i in order))


def _yesno_examples(prompts: PromptSet, case: History, candidates: list[Item], pref: str) -> list[dict[str, Any]]:
    from ..ranking.prompting import yes_no_request

    return [
        _chat(
            yes_no_request(prompts, preference=pref, candidate=c, top_logprobs=1),
            "Yes" if c.item_id == case.target else "No",
        )  # fmt: skip
        for c in candidates
    ]
