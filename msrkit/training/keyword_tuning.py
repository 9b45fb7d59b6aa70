"""The keyword summarizer tuned by its reward (MMSRARec's summarization stage, the light way).

Reward-ranked fine-tuning: every item is summarized best-of-N
(:mod:`msrkit.summaries.best_of`: N sampled keyword sets, the one with the best
keyword reward kept), and the model is trained to give that winner at once for
the very ``item_keywords`` request inference sends::

    from msrkit.training import finetune_keywords, TrainConfig
    result = finetune_keywords("items.jsonl", out="adapters/kw", config=TrainConfig(task="keywords", max_steps=60))

The answer is the winner as the model is expected to answer (the keywords
joined by ``", "``, which :func:`msrkit.summaries.parse_keywords` reads back as
they were). Validation items are cut by item (seeded). Winners go through the
catalog store and the response cache, so items already summarized with
``msrkit summarize --best-of N`` (same N, prompts and model) cost nothing.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Settings
from ..data import Item
from ..errors import InputError
from ..inputs.io import load_catalog
from ..runtime.prompts import PromptSet
from ..summaries.best_of import keyword_request
from ..summaries.catalog import summarize_catalog
from .base import require_train_extra, resolve_base
from .examples import Example, ExampleSet
from .job import DEFAULT_BASE, VALIDATION_FRACTION, FinetuneResult, train_and_write
from .trainer import TrainConfig

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .job import FinetuneOptions

__all__ = ["DEFAULT_BEST_OF", "MAX_KEYWORDS", "finetune_keywords", "keyword_examples"]

#: samples per item when ``settings.best_of`` is 1 (training on greedy answers would teach nothing new)
DEFAULT_BEST_OF = 4
#: the keyword limit of the catalog summarizer (:class:`~msrkit.summaries.ItemSummarizer`'s default)
MAX_KEYWORDS = 8


def finetune_keywords(
    items_path: str | Path | Sequence[Item], *, out: str | Path, **options: Unpack[FinetuneOptions]
) -> FinetuneResult:
    """Best-of-N winners as answers, train, write ``peft/``, ``adapter.gguf``, ``manifest.json`` (task keywords).

    ``items_path``: the items to learn from (a catalog ``items.jsonl`` or items).
    N is ``settings.best_of``, or :data:`DEFAULT_BEST_OF` when that is 1; the
    winners come from the settings' backend (it should be ``base``'s model).
    ``options`` are :func:`~msrkit.training.finetune`'s, with its defaults, for the same call;
    ``catalog`` and ``interactions`` are not used (keywords need no retrieval).
    """
    require_train_extra()
    config = options.get("config") or TrainConfig(task="keywords")
    if config.task != "keywords":
        raise InputError(f"finetune_keywords trains task 'keywords', not {config.task!r}")
    s = options.get("settings") or Settings()
    spec = resolve_base(options.get("base", DEFAULT_BASE))
    items = list(load_catalog(items_path).values()) if isinstance(items_path, (str, Path)) else list(items_path)
    started = time.time()
    fraction = options.get("validation_fraction", VALIDATION_FRACTION)
    sets = keyword_examples(items, settings=s, validation_fraction=fraction, seed=config.seed)
    return train_and_write(spec, sets, out=Path(out), config=config, settings=s,
                           on_progress=options.get("on_progress"), started=started)  # fmt: skip


def keyword_examples(
    items: Sequence[Item], *, settings: Settings, validation_fraction: float, seed: int
) -> tuple[ExampleSet, ExampleSet]:
    """Training and validation examples (split by item, seeded): the keyword request and its best-of-N winner.

    Items without a title or description are skipped (counted under
    ``"no title or description"``), as are items whose samples gave no keywords.
    """
    usable = [i.model_copy(update={"keywords": None}) for i in items if i.title or i.description]
    train_set, val_set = ExampleSet(), ExampleSet()
    if len(usable) < len(items):
        train_set.skipped["no title or description"] = len(items) - len(usable)
    if not usable:
        return train_set, val_set
    n = settings.best_of if settings.best_of > 1 else DEFAULT_BEST_OF
    summary = summarize_catalog(settings.model_copy(update={"best_of": n}), usable)
    prompts = PromptSet.load(settings.prompts)
    held = _held_items([i.item_id for i in usable], fraction=validation_fraction, seed=seed)
    for item in summary.items:
        into = val_set if item.item_id in held else train_set
        into.cases += 1
        example = _example(prompts, item)
        if example is None:
            into.skip("no keywords sampled")
        else:
            into.examples.append(example)
    return train_set, val_set


def _held_items(ids: Sequence[str], *, fraction: float, seed: int) -> set[str]:
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    return set(order[: max(1, round(len(order) * fraction))]) if fraction > 0 and len(order) > 1 else set()


def _example(prompts: PromptSet, item: Item) -> Example | None:
    """The request inference sends for ``item`` (its keywords dropped) and its winner as the answer."""
    if not item.keywords:
        return None
    request = keyword_request(prompts, item, max_keywords=MAX_KEYWORDS)
    if request is None:
        return None
    messages = tuple({"role": m.role, "content": m.text_content} for m in request.messages)
    return Example(item.item_id, "keywords", messages, ", ".join(item.keywords), target=item.item_id)
