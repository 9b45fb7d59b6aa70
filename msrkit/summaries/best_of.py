"""Best-of-N keywords (MMSRARec's reward, used to choose): sample N keyword sets per item, keep the best.

Sample 0 is the summarizer's own request, unchanged (temperature 0, its seed),
so best-of-N never scores below best-of-1 on the reward it chooses by; samples
1..N-1 are the same request at ``temperature`` > 0 with seeds 1..N-1 (the
temperature and the seed are part of every cache key, so samples never share
an entry). Each sample is scored with
:func:`msrkit.evaluation.keywords.keyword_quality` (brevity and information kept,
IDF from the catalog being summarized) and, when asked, reconstruction: one call
per sample asking the model to pick the item among the same seeded distractors
(accuracy 0 or 1). Ties keep the earlier sample. The winner lands in the catalog
store under a tag naming N, the temperature and the reward, so best-of-4
keywords never answer for best-of-1 ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, ChatRequest
from ..data import Item
from ..evaluation.keywords import build_idf, keyword_quality, reconstruction_accuracy
from ..inputs.text import source_text
from ..runtime.meter import Meter
from ..runtime.prompts import PromptSet, render_item
from .items import ItemSummarizer, parse_keywords

if TYPE_CHECKING:
    from ..config import Settings
    from ..recommender import Recommender

__all__ = ["BestOf", "BestOfSummarizer", "KeywordScorer", "Sample", "keyword_request", "make_summarizer",
           "sample_requests"]  # fmt: skip

log = logging.getLogger("msrkit")


def keyword_request(prompts: PromptSet, item: Item, *, max_keywords: int) -> ChatRequest | None:
    """The ``item_keywords`` request :class:`ItemSummarizer` sends for ``item`` (``None``: no text to summarize)."""
    if not (item.title or item.description or item.image_description):
        return None
    rendered = render_item(item.model_copy(update={"keywords": None}), max_chars=600)
    return prompts["item_keywords"].request(item=rendered, max_keywords=max_keywords)


def sample_requests(request: ChatRequest, *, n: int, temperature: float) -> list[ChatRequest]:
    """``request`` itself, then ``n - 1`` copies at ``temperature`` with seeds 1..n-1."""
    if n < 1:
        raise ValueError("n must be >= 1")
    return [request, *(replace(request, temperature=temperature, seed=i) for i in range(1, n))]


@dataclass(frozen=True)
class Sample:
    """One sampled keyword set and its reward."""

    keywords: tuple[str, ...]
    reward: float
    temperature: float
    seed: int | None


@dataclass(frozen=True)
class BestOf:
    """All samples of one item, and the one kept (the first with the highest reward)."""

    samples: tuple[Sample, ...]

    @property
    def winner(self) -> Sample:
        return max(self.samples, key=lambda s: s.reward)  # max keeps the first of equals


@dataclass
class KeywordScorer:
    """The reward a sample is chosen by: brevity + information kept (+ reconstruction when ``backend`` is set).

    ``pool``: the items reconstruction draws distractors from (the catalog).
    """

    idf: Mapping[str, float]
    budget: int = 5
    backend: Backend | None = None
    pool: Sequence[Item] = ()
    distractors: int = 4
    seed: int = 0

    @classmethod
    def for_items(cls, items: Iterable[Item], **options: Any) -> KeywordScorer:
        """A scorer whose IDF (and distractor pool) is ``items``."""
        pool = list(items)
        return cls(idf=build_idf(source_text(i) for i in pool), pool=pool, **options)

    @property
    def tag(self) -> str:
        recon = f"+recon{self.distractors}" if self.backend is not None else ""
        return f"reward(b{self.budget}{recon})"

    def reward(self, item: Item, keywords: Sequence[str], *, meter: Meter) -> float:
        quality = keyword_quality(item, keywords, budget=self.budget, idf=self.idf, reference=source_text(item))
        return quality.reward(reconstruction=self._reconstruction(item, keywords, meter=meter))

    def _reconstruction(self, item: Item, keywords: Sequence[str], *, meter: Meter) -> float | None:
        if self.backend is None:
            return None
        if not keywords:
            return 0.0
        pool = [item, *(o for o in self.pool if o.item_id != item.item_id)]
        result = reconstruction_accuracy(pool, self.backend, keywords={item.item_id: list(keywords)},
                                         distractors=self.distractors, seed=self.seed, meter=meter)  # fmt: skip
        return result.accuracy


def best_keywords(
    backend: Backend, request: ChatRequest, item: Item, *, n: int, temperature: float, scorer: KeywordScorer,
    max_keywords: int, meter: Meter,
) -> BestOf:  # fmt: skip
    """Sample ``n`` keyword sets for ``item`` with ``request`` and score each (see the module docstring)."""
    samples = []
    for r in sample_requests(request, n=n, temperature=temperature):
        words = parse_keywords(meter.call(backend, r).text, limit=max_keywords)
        samples.append(Sample(tuple(words), scorer.reward(item, words, meter=meter), r.temperature, r.seed))
    return BestOf(tuple(samples))


class BestOfSummarizer(ItemSummarizer):
    """An :class:`ItemSummarizer` whose keywords are the best of ``n`` samples by ``scorer``'s reward."""

    def __init__(self, backend: Backend, *, n: int, temperature: float, scorer: KeywordScorer,
                 **options: Any) -> None:  # fmt: skip
        super().__init__(backend, **options)
        self.n, self.temperature, self.scorer = n, temperature, scorer
        #: every item's samples (item_id -> BestOf), for reports and training
        self.samples: dict[str, BestOf] = {}

    def tag(self, item: Item) -> str:
        return f"{super().tag(item)}|best-of-{self.n}@t{self.temperature:g}:{self.scorer.tag}"

    def _keywords(self, item: Item, *, meter: Meter) -> list[str]:
        request = keyword_request(self.prompts, item, max_keywords=self.max_keywords)
        if request is None:
            return []
        best = best_keywords(self.backend, request, item, n=self.n, temperature=self.temperature,
                             scorer=self.scorer, max_keywords=self.max_keywords, meter=meter)  # fmt: skip
        self.samples[item.item_id] = best
        return list(best.winner.keywords)


def make_summarizer(settings: Settings, rec: Recommender, items: Iterable[Item]) -> ItemSummarizer:
    """The catalog summarizer of ``settings`` over ``rec``'s stack: best-of-N when ``settings.best_of`` > 1.

    ``items``: the catalog (IDF and reconstruction's distractors come from it).
    """
    assert rec.backend is not None
    options: dict[str, Any] = dict(prompts=rec.prompts, vision_backend=rec.vision_backend,
                                   max_side=settings.max_side, strict=settings.strict, store=rec.store,
                                   image_policy=rec.image_policy)  # fmt: skip
    if settings.best_of <= 1:
        return ItemSummarizer.from_settings(settings, rec.backend, prompts=rec.prompts,
                                            vision_backend=rec.vision_backend, store=rec.store)  # fmt: skip
    recon = rec.backend if settings.best_of_reconstruction else None
    scorer = KeywordScorer.for_items(items, budget=settings.best_of_budget, backend=recon, seed=settings.seed)
    return BestOfSummarizer(rec.backend, n=settings.best_of, temperature=settings.best_of_temperature,
                            scorer=scorer, **options)  # fmt: skip
