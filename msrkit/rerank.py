"""Ranking candidates with an LLM: listwise (with repair, windows, passes), pointwise p(yes), fusion.

Listwise
    The candidates are numbered ``[1]..[n]`` in the prompt; the answer is read
    by :func:`parse_order`, which accepts JSON (``{"ranking": [3, 1, 2]}`` or
    ``[3, 1, 2]``), bracketed lists (``[3] > [1] > [2]``), plain numbers
    (``3, 1, 2``) and, failing those, candidate ids written out; ``<think>``
    blocks are dropped first. :func:`repair` turns whatever was parsed into a
    permutation: duplicates dropped, unknown numbers ignored, missing
    candidates appended in the order they came in (the retrieval order when
    there is one).

    Longer lists are ranked with a sliding window from the back of the list to
    the front (window ``w``, stride ``s``): the best items bubble up into the
    next window, so ``ceil((n - w) / s) + 1`` calls rank ``n`` candidates.
    ``passes > 1`` re-ranks shuffled orders (fixed seed) and merges the passes
    by Borda count, which evens out the model's position bias.

    A window whose answer holds no usable number keeps its incoming order and
    is reported; if every window fails, or the backend fails after its
    retries, the result is ``degraded`` (the caller falls back to retrieval
    order) with a warning saying why. ``strict=True`` raises instead.

Pointwise
    MLLM-MSR's scorer: p(yes) of the first answer token for "will the user
    take this item next?", from the backend's top log-probabilities. A
    backend that exposes none gets a :class:`~msrkit.errors.ConfigError`.

Fusion
    :func:`fuse` combines the LLM order with retrieval scores by weighted
    reciprocal rank fusion (``k = 60``): ``w / (k + llm_rank) + (1 - w) / (k + retrieval_rank)``.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .backends.base import Backend
from .data import Item
from .errors import BackendError, ConfigError, OutputParseError
from .meter import Meter
from .prompts import PromptSet, quote, render_item

__all__ = [
    "ListwiseReranker",
    "PointwiseScorer",
    "RerankResult",
    "Parsed",
    "strip_think",
    "parse_order",
    "repair",
    "window_starts",
    "borda",
    "fuse",
    "p_yes",
    "format_candidates",
    "RANKING_SCHEMA",
    "ranking_schema",
    "RRF_K",
]

RRF_K = 60
RANKING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ranking": {"type": "array", "items": {"type": "integer"}}},
    "required": ["ranking"],
}

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_BRACKETED = re.compile(r"\[\s*(\d{1,6})\s*\]")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,6})(?![\w])")


def ranking_schema(count: int) -> dict[str, Any]:
    """:data:`RANKING_SCHEMA` for ``count`` candidates: exactly ``count`` numbers from 1 to ``count``.

    Backends that constrain decoding with the schema (llama.cpp grammars,
    Ollama ``format``) then cannot run on past the list; duplicates are still
    possible and repaired.
    """
    item = {"type": "integer", "minimum": 1, "maximum": count}
    ranking = {"type": "array", "items": item, "minItems": count, "maxItems": count}
    return {**RANKING_SCHEMA, "properties": {"ranking": ranking}}


def strip_think(text: str) -> str:
    """Drop reasoning blocks: ``<think>...</think>``, and an unclosed ``<think>`` to the end."""
    text = _THINK.sub(" ", text or "")
    if "</think>" in text.lower():  # a block whose opening tag was cut off (some servers drop it)
        text = re.split(r"</think>", text, flags=re.I)[-1]
    lowered = text.lower()
    if "<think>" in lowered:
        text = text[: lowered.index("<think>")]
    return text


@dataclass
class Parsed:
    """What an answer said: 1-based numbers in the order given, and how it was read."""

    numbers: list[int]
    form: str  # json | brackets | numbers | ids | none


def _json_numbers(text: str) -> list[int] | None:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if isinstance(value, list) and re.search(r"\d", text[start + end :]):
        return None  # "[3] > [1]": brackets, not a JSON list
    if isinstance(value, dict):
        value = value.get("ranking", value.get("order", value.get("items")))
    if not isinstance(value, list) or not value:
        return None
    out: list[int] = []
    for v in value:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, str) and v.strip().strip("[]").isdigit():
            out.append(int(v.strip().strip("[]")))
        else:
            return None
    return out


def parse_order(text: str, *, ids: Sequence[str] = ()) -> Parsed:
    """Read a ranking from a model's answer (see the module docs for the forms accepted).

    >>> parse_order("<think>...</think> [3] > [1] > [2]").numbers
    [3, 1, 2]
    >>> parse_order('{"ranking": [2, 1]}').numbers
    [2, 1]
    """
    text = strip_think(text)
    json_first = "{" in text or "```" in text  # an object or a fenced block: JSON is meant
    numbers = _json_numbers(text) if json_first else None
    if numbers is not None:
        return Parsed(numbers, "json")
    bracketed = [int(m) for m in _BRACKETED.findall(text)]
    if bracketed:  # "[3] > [1]"; a JSON list "[3, 1]" has no "[n]" in it (and "[3]" reads the same either way)
        return Parsed(bracketed, "brackets")
    numbers = None if json_first else _json_numbers(text)
    if numbers is not None:
        return Parsed(numbers, "json")
    plain = [int(m) for m in _NUMBER.findall(text)]
    if plain:
        return Parsed(plain, "numbers")
    if ids:
        position = {item_id: i + 1 for i, item_id in enumerate(ids)}
        pattern = re.compile("|".join(re.escape(i) for i in sorted(position, key=len, reverse=True)))
        found = [position[m.group(0)] for m in pattern.finditer(text)]
        if found:
            return Parsed(found, "ids")
    return Parsed([], "none")


@dataclass
class Repaired:
    order: list[int]  # 0-based, a permutation of range(n)
    used: int  # how many came from the answer
    duplicates: int
    invalid: int
    missing: int


def repair(numbers: Sequence[int], n: int) -> Repaired:
    """A permutation of ``range(n)`` from 1-based ``numbers``: duplicates and unknowns dropped, missing appended."""
    seen: set[int] = set()
    order: list[int] = []
    duplicates = invalid = 0
    for number in numbers:
        index = number - 1
        if not 0 <= index < n:
            invalid += 1
        elif index in seen:
            duplicates += 1
        else:
            seen.add(index)
            order.append(index)
    used = len(order)
    order += [i for i in range(n) if i not in seen]
    return Repaired(order, used, duplicates, invalid, n - used)


def window_starts(n: int, window: int, stride: int) -> list[int]:
    """Start positions of the sliding windows, back to front; the last one starts at 0."""
    if n <= window:
        return [0]
    starts = list(range(n - window, 0, -stride))
    return [*starts, 0]


def borda(orders: Sequence[Sequence[int]], n: int) -> list[float]:
    """Borda points per item over several orders (``n - position`` per order), averaged."""
    points = [0.0] * n
    for order in orders:
        for position, index in enumerate(order):
            points[index] += n - position
    return [p / max(len(orders), 1) for p in points]


def fuse(llm_order: Sequence[int], retrieval_scores: Sequence[float] | None, *, weight: float) -> list[float]:
    """Weighted reciprocal rank fusion of the LLM order and the retrieval scores (higher is better).

    ``weight`` 1.0 keeps the LLM order, 0.0 the retrieval order; without
    retrieval scores the LLM order is kept whatever the weight.
    """
    n = len(llm_order)
    llm_rank = [0] * n
    for position, index in enumerate(llm_order):
        llm_rank[index] = position + 1
    if retrieval_scores is None:
        return [1.0 / (RRF_K + r) for r in llm_rank]
    if len(retrieval_scores) != n:
        raise ValueError(f"{len(retrieval_scores)} retrieval scores for {n} candidates")
    by_retrieval = sorted(range(n), key=lambda i: (-_finite(retrieval_scores[i]), i))
    retrieval_rank = [0] * n
    for position, index in enumerate(by_retrieval):
        retrieval_rank[index] = position + 1
    # the tiny last term breaks exact ties in favour of the LLM order, deterministically
    return [
        weight / (RRF_K + llm_rank[i]) + (1.0 - weight) / (RRF_K + retrieval_rank[i]) + 1e-9 / llm_rank[i]
        for i in range(n)
    ]


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -math.inf if x != x or x < 0 else math.inf


def format_candidates(items: Sequence[Item]) -> str:
    """The numbered candidate lines of the listwise prompt: ``[1] title | keywords: ...``."""
    return "\n".join(f"[{i}] {render_item(item)}" for i, item in enumerate(items, 1))


def _format_context(lines: Sequence[str]) -> str:
    return "\n".join(f"- {quote(line)}" for line in lines if quote(line)) or "(none)"


@dataclass
class RerankResult:
    """The reranker's answer: ``order`` holds candidate indices, best first."""

    order: list[int]
    scores: list[float]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    degraded: bool = False


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

    def rank(
        self,
        candidates: Sequence[Item],
        *,
        preference: str,
        collaborative: Sequence[str] = (),
        retrieval_scores: Sequence[float] | None = None,
        meter: Meter | None = None,
    ) -> RerankResult:
        meter = meter or Meter()
        n = len(candidates)
        if retrieval_scores is not None:
            start = sorted(range(n), key=lambda i: (-_finite(retrieval_scores[i]), i))
        else:
            start = list(range(n))
        stats: dict[str, Any] = {
            "windows": 0, "failed_windows": 0, "passes": self.passes, "window": self.window, "stride": self.stride,
            "parsed": 0, "duplicates": 0, "invalid": 0, "missing": 0, "forms": {},
        }  # fmt: skip
        if n <= 1:
            return RerankResult(start, borda([start], n), stats)
        context = _format_context(collaborative)
        lines = [render_item(c) for c in candidates]  # once per call: windows overlap
        rng = random.Random(self.seed)
        orders = []
        try:
            for p in range(self.passes):
                order = list(start)
                if p > 0:
                    rng.shuffle(order)
                orders.append(self._one_pass(order, candidates, lines, preference, context, meter, stats))
        except BackendError as exc:
            if self.strict:
                raise
            meter.warn(f"LLM ranking failed, falling back to retrieval order: {exc}")
            stats["error"] = type(exc).__name__
            return RerankResult(start, borda([start], n), stats, degraded=True)
        if stats["failed_windows"] == stats["windows"]:
            why = "the model's answer held no usable candidate numbers (unparseable)"
            if self.strict:
                raise OutputParseError(why, backend=self.backend.name, model=self.backend.model)
            meter.warn(f"LLM ranking unusable, falling back to retrieval order: {why}")
            return RerankResult(start, borda([start], n), stats, degraded=True)
        if stats["failed_windows"]:
            meter.warn(
                f"{stats['failed_windows']} of {stats['windows']} ranking windows had no usable answer "
                "and kept their incoming order"
            )
        scores = borda(orders, n)
        tie = {index: position for position, index in enumerate(start)}
        final = sorted(range(n), key=lambda i: (-scores[i], tie[i]))
        return RerankResult(final, scores, stats)

    def _one_pass(
        self,
        order: list[int],
        candidates: Sequence[Item],
        lines: Sequence[str],
        preference: str,
        context: str,
        meter: Meter,
        stats: dict[str, Any],
    ) -> list[int]:
        for start in window_starts(len(order), self.window, self.stride):
            span = order[start : start + self.window]
            order[start : start + self.window] = self._window(
                span, candidates, lines, preference, context, meter, stats
            )
        return order

    def _window(
        self,
        span: list[int],
        candidates: Sequence[Item],
        lines: Sequence[str],
        preference: str,
        context: str,
        meter: Meter,
        stats: dict[str, Any],
    ) -> list[int]:
        items = [candidates[i] for i in span]
        request = self.prompts["listwise_rank"].request(
            preference=quote(preference) or "(unknown)",
            collaborative=context,
            candidates="\n".join(f"[{number}] {lines[i]}" for number, i in enumerate(span, 1)),
            count=len(items),
        )
        if self.backend.capabilities.json_schema:
            from dataclasses import replace

            request = replace(request, json_schema=ranking_schema(len(items)))
        stats["windows"] += 1
        response = meter.call(self.backend, request)
        parsed = parse_order(response.text, ids=[c.item_id for c in items])
        fixed = repair(parsed.numbers, len(items))
        stats["forms"][parsed.form] = stats["forms"].get(parsed.form, 0) + 1
        if fixed.used == 0:
            stats["failed_windows"] += 1
            if self.strict:
                raise OutputParseError(
                    f"no usable candidate numbers in the answer {quote(response.text)[:80]!r}"
                    + (" (empty answer)" if not response.text.strip() else ""),
                    backend=self.backend.name,
                    model=self.backend.model,
                )
            return span
        stats["parsed"] += fixed.used
        stats["duplicates"] += fixed.duplicates
        stats["invalid"] += fixed.invalid
        stats["missing"] += fixed.missing
        return [span[i] for i in fixed.order]


def p_yes(top_logprobs: Sequence[dict[str, float]] | None, text: str = "") -> float | None:
    """p(yes) / (p(yes) + p(no)) from the first generated token's alternatives.

    Tokens are compared stripped and lower-cased (``" Yes"``, ``"yes"``). When
    neither appears, or there are no log-probabilities, ``None``.
    """
    if not top_logprobs:
        return None
    first = top_logprobs[0]
    yes = sum(math.exp(lp) for tok, lp in first.items() if tok.strip().lower() == "yes")
    no = sum(math.exp(lp) for tok, lp in first.items() if tok.strip().lower() == "no")
    if yes + no == 0:
        return None
    return yes / (yes + no)


class PointwiseScorer:
    """MLLM-MSR's pointwise scorer: one yes/no call per candidate, scored by p(yes)."""

    def __init__(self, backend: Backend, *, prompts: PromptSet | None = None, top_logprobs: int = 10) -> None:
        if not backend.capabilities.logprobs:
            raise ConfigError(
                f"pointwise scoring needs token log-probabilities, which {backend.name}/{backend.model} does not "
                "expose: use the listwise reranker (the default) or a backend with logprobs (llamacpp, openai)"
            )
        self.backend = backend
        self.prompts = prompts or PromptSet.load()
        self.top_logprobs = top_logprobs

    def score(self, candidates: Sequence[Item], *, preference: str, meter: Meter | None = None) -> list[float]:
        from dataclasses import replace

        meter = meter or Meter()
        scores = []
        for item in candidates:
            request = self.prompts["yes_no"].request(
                preference=quote(preference) or "(unknown)", candidate=render_item(item)
            )
            request = replace(request, max_tokens=1, top_logprobs=self.top_logprobs)
            response = meter.call(self.backend, request)
            p = p_yes(response.top_logprobs, response.text)
            if p is None:
                word = strip_think(response.text).strip().lower()
                p = 1.0 if word.startswith("yes") else 0.0 if word.startswith("no") else 0.5
                meter.warn("some yes/no answers had no 'yes'/'no' among the top tokens: scored from the text")
            scores.append(p)
        return scores
