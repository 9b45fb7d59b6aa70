"""Running a ranker over evaluation cases into a resumable results file (a :class:`msrkit.jobs.runs.Journal`).

Each case's :class:`~msrkit.evaluation.scoring.CaseResult` is one line, appended
and flushed as soon as it is scored: a crash loses nothing already scored, and
a rerun skips what the file already holds (cases whose ranker raised are
``error`` lines, retried on the next run unless told otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..data import History, Ranking, Usage
from ..jobs.runs import Journal, read_journal
from .scoring import CaseResult, EvalReport, build_report, candidate_ids, case_keys, check_cases, score_case

__all__ = ["evaluate", "load_results"]

log = logging.getLogger("msrkit")

RankFn = Callable[[History], Ranking]
#: ``on_progress(done, total)``: cases scored so far (those resumed included) out of all.
Progress = Callable[[int, int], None]


def evaluate(
    cases: Sequence[History],
    rank_fn: RankFn,
    *,
    ks: Sequence[int] = (1, 5, 10),
    out_path: str | Path | None = None,
    resume: bool = True,
    name: str = "run",
    retry_errors: bool = True,
    on_progress: Progress | None = None,
) -> EvalReport:
    """Rank every case with ``rank_fn`` and score the target's rank.

    With ``out_path``, each case's :class:`CaseResult` is appended and flushed
    as soon as it is scored; with ``resume`` a rerun keeps the rows already
    there and ranks only the rest (cases that failed are retried unless
    ``retry_errors=False``). A case whose ranker raises becomes an ``error``
    row and the others go on; Ctrl-C stops the run with every finished row kept.
    ``on_progress(done, total)`` is called once before the first case and after each.
    """
    check_cases(cases)
    keys = case_keys(cases)
    with Journal(out_path, key_field="case", resume=resume, keep=_kept(retry_errors)) as journal:
        done = {k: CaseResult.model_validate(r) for k, r in journal.done.items()}
        todo = journal.todo(keys, cases)
        count = len(cases) - len(todo)
        if on_progress is not None:
            on_progress(count, len(cases))
        for key, case in todo:
            done[key] = result = _run_case(key, case, rank_fn)
            journal.write(result)
            count += 1
            if on_progress is not None:
                on_progress(count, len(cases))
    return build_report([done[k] for k in keys], ks=ks, name=name)


def _kept(retry_errors: bool) -> Callable[[dict[str, Any]], bool]:
    """Which rows of a results file count as done: readable ones, and ``error`` rows only if not retried."""

    def keep(record: dict[str, Any]) -> bool:
        try:
            row = CaseResult.model_validate(record)
        except ValidationError:
            log.warning("a results row for case %r is not a result: dropped, the case will be rerun", record["case"])
            return False
        return row.status != "error" or not retry_errors

    return keep


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
            candidates=len(candidate_ids(case)),
            error=f"{type(exc).__name__}: {exc}",
            usage=Usage(seconds=round(time.perf_counter() - started, 4)),
        )
    usage = ranking.usage.model_copy()
    if not usage.seconds:
        usage.seconds = round(time.perf_counter() - started, 4)
    return score_case(
        key,
        case,
        ranking.item_ids(),
        scores=[r.score for r in ranking.ranking],
        usage=usage,
        degraded=ranking.degraded,
        warnings=ranking.warnings,
    )


def load_results(path: str | Path) -> dict[str, CaseResult]:
    """The rows of a results file by case key (a later row for a case wins; torn or foreign lines are skipped)."""
    found, _ = read_journal(path, key_field="case")
    rows = {}
    for key, (_, record) in found.items():
        try:
            rows[key] = CaseResult.model_validate(record)
        except ValidationError:
            log.warning("%s: the row for case %r is not a result: skipped", path, key)
    return rows
