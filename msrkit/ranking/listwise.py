"""The listwise reranker: numbered candidates in, the model's order out, always a permutation.

A window whose answer holds no usable number keeps its incoming order and is
reported; if every window fails, or the backend fails after its retries, the
result is ``degraded`` (the caller falls back to retrieval order) with a
warning saying why. ``strict=True`` raises instead. The last window of the
last pass holds the best items: with ``reasons`` > 0 it also asks the model for
a short reason for its first items (no extra call).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend
from ..backends.cache import forget
from ..data import Item, failure_of
from ..errors import BackendError, ConfigError, OutputParseError
from ..runtime.meter import Meter
from ..runtime.prompts import PromptSet, quote
from .parse import parse_order, repair
from .prompting import candidate_line, format_candidates, listwise_request
from .result import Scored
from .windows import borda, window_starts

__all__ = ["ListwiseReranker"]


@dataclass
class _Request:
    """What every window of one ranking shares."""

    candidates: Sequence[Item]
    lines: list[str]
    preference: str
    context: Sequence[str]
    meter: Meter
    stats: dict[str, Any]
    reasons: dict[int, str] = field(default_factory=dict)


class ListwiseReranker:
    """Rank candidates with listwise prompts (sliding windows, optional passes merged by Borda).

    >>> reranker = ListwiseReranker(backend, window=20, stride=10)                     # doctest: +SKIP
    >>> result = reranker.rank(items, preference="likes space operas", meter=Meter())  # doctest: +SKIP
    >>> [items[i].item_id for i in result.order]                                       # doctest: +SKIP
    """

    def __init__(
        self,
        backend: Backend,
        *,
        prompts: PromptSet | None = None,
        window: int = 20,
        stride: int | None = None,
        passes: int = 1,
        seed: int = 0,
        strict: bool = False,
        reasons: int = 0,
    ) -> None:
        stride = stride if stride is not None else max(1, window // 2)
        if window < 2 or not 1 <= stride < window or passes < 1:
            raise ConfigError(f"need window >= 2, 1 <= stride < window, passes >= 1 (got {window}, {stride}, {passes})")
        self.backend = backend
        self.prompts = prompts or PromptSet.load()
        self.window = window
        self.stride = stride
        self.passes = passes
        self.seed = seed
        self.strict = strict
        self.reasons = reasons

    def rank(
        self,
        candidates: Sequence[Item],
        *,
        preference: str,
        collaborative: Sequence[str] = (),
        retrieval_scores: Sequence[float] | None = None,
        meter: Meter | None = None,
        notes: Sequence[str] | None = None,
    ) -> Scored:
        """The model's order of ``candidates``; the windows start from the retrieval order when given.
        ``notes``: per candidate, a note after its line (:func:`.prompting.evidence_notes`)."""
        n = len(candidates)
        start = (
            Scored.from_scores(retrieval_scores, "retrieval").order if retrieval_scores is not None else list(range(n))
        )
        stats: dict[str, Any] = {
            "scorer": "listwise", "windows": 0, "failed_windows": 0, "passes": self.passes, "window": self.window,
            "stride": self.stride, "parsed": 0, "duplicates": 0, "invalid": 0, "missing": 0, "forms": {},
        }  # fmt: skip
        if n <= 1:
            return Scored.from_order(start, "listwise", diagnostics=stats)
        lines = [candidate_line(c, notes[i] if notes else "") for i, c in enumerate(candidates)]
        job = _Request(candidates, lines, preference, collaborative, meter or Meter(), stats)
        try:
            orders = self._passes(start, job)
        except BackendError as exc:
            if self.strict:
                raise
            job.meter.warn(f"LLM ranking failed, falling back to retrieval order: {exc}")
            stats["error"] = type(exc).__name__
            return Scored.from_order(start, "listwise", degraded=True, diagnostics=stats, failure=failure_of(exc))
        if stats["failed_windows"] == stats["windows"]:
            why = "the model's answer held no usable candidate numbers (unparseable)"
            if self.strict:
                raise OutputParseError(why, backend=self.backend.name, model=self.backend.model)
            job.meter.warn(f"LLM ranking unusable, falling back to retrieval order: {why}")
            return Scored.from_order(start, "listwise", degraded=True, diagnostics=stats, failure="unparseable")
        if stats["failed_windows"]:
            job.meter.warn(
                f"{stats['failed_windows']} of {stats['windows']} ranking windows had no usable answer "
                "and kept their incoming order"
            )
        points = borda(orders, n)
        tie = {index: position for position, index in enumerate(start)}
        final = sorted(range(n), key=lambda i: (-points[i], tie[i]))
        return Scored(final, points, "listwise", reasons=job.reasons, diagnostics=stats)

    def _passes(self, start: list[int], job: _Request) -> list[list[int]]:
        rng = random.Random(self.seed)
        orders = []
        for p in range(self.passes):
            order = list(start)
            if p > 0:
                rng.shuffle(order)
            last_pass = p == self.passes - 1
            for s in window_starts(len(order), self.window, self.stride):
                span = order[s : s + self.window]
                order[s : s + self.window] = self._window(span, job, explain=last_pass and s == 0)
            orders.append(order)
        return orders

    def _window(self, span: list[int], job: _Request, *, explain: bool) -> list[int]:
        items = [job.candidates[i] for i in span]
        request = listwise_request(
            self.prompts,
            preference=job.preference,
            context=job.context,
            candidates=format_candidates(items, [job.lines[i] for i in span]),
            count=len(items),
            json_schema=self.backend.capabilities.json_schema,
            reasons=self.reasons if explain else 0,
        )
        job.stats["windows"] += 1
        response = job.meter.call(self.backend, request)
        parsed = parse_order(response.text, ids=[c.item_id for c in items])
        fixed = repair(parsed.numbers, len(items))
        forms = job.stats["forms"]
        forms[parsed.form] = forms.get(parsed.form, 0) + 1
        if fixed.used == 0:
            forget(self.backend, request)  # never served again as if it were an answer
            job.stats["failed_windows"] += 1
            if self.strict:
                raise OutputParseError(
                    f"no usable candidate numbers in the answer {quote(response.text)[:80]!r}"
                    + (" (empty answer)" if not response.text.strip() else ""),
                    backend=self.backend.name,
                    model=self.backend.model,
                )
            return span
        for key in ("duplicates", "invalid", "missing"):
            job.stats[key] += getattr(fixed, key)
        job.stats["parsed"] += fixed.used
        if explain:
            job.reasons.update({span[k - 1]: r for k, r in parsed.reasons.items() if 1 <= k <= len(span)})
        return [span[i] for i in fixed.order]
