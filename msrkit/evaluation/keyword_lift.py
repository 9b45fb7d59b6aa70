"""Base vs tuned keyword summarizer, and best-of-1 vs best-of-N, on the same items: the mean reward and its interval.

Each variant summarizes the same items (given keywords dropped, no catalog
store: every variant makes its own keywords, through the response cache) and
every item's keywords are scored with the reward best-of-N chooses by
(:class:`msrkit.summaries.best_of.KeywordScorer`: brevity and information kept,
IDF over these items; reconstruction when asked). A row holds the per-item
rewards' mean and a 95 % percentile bootstrap interval over items
(:func:`msrkit.evaluation.metrics.bootstrap_ci`, the same draws for every row).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.cache import ResponseCache
from ..backends.stack import backend_stack
from ..data import Item
from ..errors import ConfigError
from ..runtime.meter import Meter
from ..runtime.prompts import PromptSet
from ..summaries.best_of import BestOfSummarizer, KeywordScorer
from ..summaries.items import ItemSummarizer
from ..training.adapter import load_adapter
from .metrics import bootstrap_ci

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["RewardRow", "compare_summarizers", "paired_differences"]


@dataclass
class RewardRow:
    """One variant: per-item rewards (item order), their mean and 95 % interval, keyword count, cost."""

    rewards: list[float]
    keywords: float
    llm_calls: int
    cache_hits: int
    ci: tuple[float, float] = field(default=(float("nan"), float("nan")))

    @property
    def mean(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"items": len(self.rewards), "reward": self.mean, "ci_low": self.ci[0], "ci_high": self.ci[1],
                "keywords": self.keywords, "llm_calls": self.llm_calls, "cache_hits": self.cache_hits}  # fmt: skip


def compare_summarizers(
    settings: Settings,
    items: Sequence[Item],
    *,
    adapter: Path | None = None,
    best_of: int = 1,
    reconstruction: bool = False,
    on_item: Callable[[Item], None] | None = None,
) -> dict[str, RewardRow]:
    """Rows ``base best-of-1`` (and ``base best-of-N``), then ``adapter best-of-1`` (and N) when ``adapter`` is set.

    ``settings.adapter`` is ignored: the base rows run without one, the adapter
    rows with ``adapter``.
    """
    if len(items) < 2:
        raise ConfigError("comparing keyword summarizers needs at least 2 items")
    if adapter is not None:
        load_adapter(adapter)  # a bad folder is an error before the base rows spend their calls
    bare = [i.model_copy(update={"keywords": None}) for i in items]
    models = {"base": settings.model_copy(update={"adapter": None})}
    if adapter is not None:
        models["adapter"] = settings.model_copy(update={"adapter": adapter})
    rows: dict[str, RewardRow] = {}
    for name, s in models.items():
        for n in sorted({1, best_of}):
            rows[f"{name} best-of-{n}"] = _row(s, bare, n=n, reconstruction=reconstruction, on_item=on_item)
    return rows


def _row(s: Settings, items: list[Item], *, n: int, reconstruction: bool,
         on_item: Callable[[Item], None] | None) -> RewardRow:  # fmt: skip
    cache = ResponseCache(s.cache_dir) if s.cache else None
    backend = backend_stack(None, s, cache)
    if backend is None:
        raise ConfigError("comparing keyword summarizers needs an LLM backend, not 'none'")
    try:
        scorer = KeywordScorer.for_items(items, budget=s.best_of_budget, backend=backend if reconstruction else None,
                                         seed=s.seed)  # fmt: skip
        options: dict[str, Any] = dict(prompts=PromptSet.load(s.prompts), describe_images=False)
        summarizer: ItemSummarizer = ItemSummarizer(backend, **options)
        if n > 1:
            summarizer = BestOfSummarizer(backend, n=n, temperature=s.best_of_temperature, scorer=scorer, **options)
        meter = Meter()
        made = summarizer.summarize(items, meter=meter, on_item=on_item)
        rewards = [scorer.reward(i, i.keywords or [], meter=meter) for i in made]
    finally:
        backend.close()
    usage = meter.finish()
    count = sum(len(i.keywords or []) for i in made) / max(len(made), 1)
    return RewardRow(rewards, count, usage.llm_calls, usage.cache_hits, bootstrap_ci(rewards, seed=s.seed))


def paired_differences(rows: dict[str, RewardRow], *, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """``{"A - B": (mean, low, high)}``: per-item reward differences of the comparisons that matter
    (best-of-N against best-of-1 of each model, the adapter against the base at each N), with a 95 %
    bootstrap interval over the items; the rows score the same items in the same order."""
    pairs = [(a, b) for a in rows for b in rows if a != b and _compared(a, b)]
    out = {}
    for a, b in pairs:
        diff = [x - y for x, y in zip(rows[a].rewards, rows[b].rewards, strict=True)]
        low, high = bootstrap_ci(diff, seed=seed)
        out[f"{a} - {b}"] = (sum(diff) / len(diff), low, high)
    return out


def _compared(a: str, b: str) -> bool:
    (model_a, n_a), (model_b, n_b) = a.split(" "), b.split(" ")
    same_model_more = model_a == model_b and n_a != "best-of-1" and n_b == "best-of-1"
    adapter_over_base = model_a == "adapter" and model_b == "base" and n_a == n_b
    return same_model_more or adapter_over_base
