"""Scoring rankings against held-out targets: one :class:`CaseResult` per case, an :class:`EvalReport` per run.

A case's target that is not ranked, a user without a ranking and a case whose
ranker raised all count as misses (rank = infinity) and are counted and named
in the report, never dropped. :func:`score_rankings` scores rankings made by
any other system (``{"user_id", "ranking": [item_id, ...]}`` per line, see
:func:`load_rankings`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..data import History, Usage
from ..errors import InputError
from ..inputs.io import read_records
from ..jobs.runs import record_keys
from .metrics import MISS, auc, bootstrap_ci, per_case, rank_of

__all__ = [
    "CaseResult",
    "Estimate",
    "EvalReport",
    "build_report",
    "case_keys",
    "load_rankings",
    "score_case",
    "score_rankings",
]

log = logging.getLogger("msrkit")

Status = Literal["ok", "miss", "missing", "error"]


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
        """Each case's rank for the metrics (``math.inf`` for a miss), in case order."""
        return [r.metric_rank for r in self.results]


def case_keys(cases: Sequence[History]) -> list[str]:
    """A stable, unique key per case (:func:`msrkit.jobs.runs.record_keys` of the user ids): the ``case``
    of its result."""
    return record_keys([c.user_id for c in cases])


def candidate_ids(case: History) -> list[str]:
    """The ids of a case's candidates, in their order."""
    return [c if isinstance(c, str) else c.item_id for c in case.candidates or []]


def check_cases(cases: Sequence[History]) -> None:
    """Every case names a ``target`` that is among its candidates (where it has candidates)."""
    for i, case in enumerate(cases):
        where = case.source or f"case [{i}]"
        if case.target is None:
            raise InputError("an evaluation case needs 'target': the item the user took next", source=where)
        ids = candidate_ids(case)
        if ids and case.target not in ids:
            raise InputError(f"target '{case.target}' is not among the candidates", source=where, path="target")


def score_case(
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
    candidates = candidate_ids(case)
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
    values = per_case_values(results, ks)
    usage = Usage()
    for r in results:
        usage.add(r.usage)
    counts = Counter(r.status for r in results)
    return EvalReport(
        name=name,
        ks=list(ks),
        metrics={m: estimate(v, n_boot=n_boot, seed=seed) for m, v in values.items()},
        counts={
            "cases": len(results),
            **{s: counts.get(s, 0) for s in ("ok", "miss", "missing", "error")},
            "degraded": sum(r.degraded for r in results),
        },
        usage=usage,
        results=list(results),
        unmatched=list(unmatched),
    )


def per_case_values(results: Sequence[CaseResult], ks: Sequence[int]) -> dict[str, list[float]]:
    """Each metric's value per case (AUC where the ranker gave scores; a miss counts 0)."""
    values = per_case([r.metric_rank for r in results], ks)
    aucs = [r.auc for r in results if r.auc is not None or r.status != "ok"]
    if aucs:
        values["AUC"] = [a if a is not None else 0.0 for a in aucs]
    return values


def estimate(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """The mean of ``values`` and its percentile-bootstrap 95% interval (seeded: the same numbers every run)."""
    mean = sum(values) / len(values) if values else math.nan
    low, high = bootstrap_ci(values, n=n_boot, seed=seed)
    return Estimate(mean=mean, low=low, high=high)


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
    check_cases(cases)
    results = []
    for key, case in zip(case_keys(cases), cases, strict=True):
        ranking = rankings.get(case.user_id or "")
        if ranking is None:
            results.append(_missing(key, case))
        else:
            results.append(score_case(key, case, ranking))
    users = {c.user_id for c in cases}
    unmatched = sorted(u for u in rankings if u not in users)
    _log_counts(results, unmatched)
    return build_report(results, ks=ks, name=name, unmatched=unmatched)


def _missing(key: str, case: History) -> CaseResult:
    return CaseResult(
        case=key, user_id=case.user_id, target=case.target, status="missing", candidates=len(candidate_ids(case))
    )


def _log_counts(results: Sequence[CaseResult], unmatched: Sequence[str]) -> None:
    counts = Counter(r.status for r in results)
    if counts["missing"]:
        log.warning("%d case(s) have no ranking: counted as misses", counts["missing"])
    if counts["miss"]:
        log.warning("%d ranking(s) do not contain the target: counted as misses", counts["miss"])
    if unmatched:
        log.warning("%d ranking(s) are for users without a case: ignored", len(unmatched))
