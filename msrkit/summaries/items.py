"""Item understanding: image descriptions (MLLM-MSR stage 1) and keyword summaries (MMSRARec).

For an item with an image, a vision model first describes the image; then the
item's text and that description are merged into a few keywords, so neither
modality is ignored. A text-only backend makes keywords from text alone and
says so once in the warnings. Every call goes through the cache, so an item is
summarized once, whichever user it appears for.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends.base import Backend
from ..backends.cache import forget
from ..data import Item
from ..deadline import MIN_CALL_SECONDS, active, current
from ..errors import BackendError, InputError
from ..meter import Meter
from ..modeltext import one_line, strip_think
from ..prompts import PromptSet, render_item
from .store import CatalogStore

if TYPE_CHECKING:
    from ..images import ImagePolicy

__all__ = ["ItemSummarizer", "parse_keywords"]

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
_LABEL = re.compile(r"^\s*keywords?\s*:", re.I)
_SEPARATOR = re.compile(r"[,;\n]")


def parse_keywords(text: str, *, limit: int) -> list[str]:
    """Keywords from a model's answer: split on commas/lines, bullets and quotes stripped, deduplicated.

    Total: any text gives a list, ``[]`` when nothing in it is a keyword (see :mod:`msrkit.modeltext`).
    """
    text = _LABEL.sub("", strip_think(text).strip())
    out: list[str] = []
    seen: set[str] = set()
    for raw in _SEPARATOR.split(text):
        word = _BULLET.sub("", raw).strip(" .\"'`*#").strip()
        if not word or len(word) > 40 or len(word.split()) > 4:
            continue
        low = word.lower()
        if low not in seen:
            seen.add(low)
            out.append(low)
        if len(out) >= limit:
            break
    return out


class ItemSummarizer:
    """Summarize items into keywords and image descriptions.

    >>> summarizer = ItemSummarizer(get_backend("ollama/llava:7b"))   # doctest: +SKIP
    >>> summarizer.summarize(items)[0].keywords                        # doctest: +SKIP
    ['sci-fi', 'space', 'adventure']

    ``vision_backend`` describes images when the main backend cannot see;
    ``image_policy`` says where images may be read from (default: no private hosts).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        prompts: PromptSet | None = None,
        vision_backend: Backend | None = None,
        max_keywords: int = 8,
        max_side: int = 768,
        describe_images: bool = True,
        strict: bool = False,
        store: CatalogStore | None = None,
        image_policy: ImagePolicy | None = None,
    ) -> None:
        self.backend = backend
        self.image_policy = image_policy
        self.store = store
        self.prompts = prompts or PromptSet.load()
        self.vision_backend = vision_backend or backend
        self.max_keywords = max_keywords
        self.max_side = max_side
        self.describe_images = describe_images
        self.strict = strict

    def summarize(
        self,
        items: Iterable[Item],
        *,
        meter: Meter | None = None,
        base_dir: Path | None = None,
        on_item: Callable[[Item], None] | None = None,
        concurrency: int = 1,
        deadline: float | None = None,
    ) -> list[Item]:
        """Items with ``keywords`` (and ``image_description`` where they have an image) filled in.

        ``concurrency`` > 1 runs that many items at once (for remote backends; an
        in-process model serializes its calls anyway). Order is kept. Each item
        gets at most ``deadline`` seconds (and none past the current request's
        deadline): an item out of time is left as it is.
        """
        meter = meter or Meter()
        outer = current()  # worker threads do not inherit the caller's context: hand the deadline over

        def one(item: Item) -> Item:
            with active(outer.child(deadline)) as limit:
                done = item if limit.left() < MIN_CALL_SECONDS else self.summarize_item(item, meter=meter,
                                                                                         base_dir=base_dir)  # fmt: skip
            if on_item is not None:
                on_item(done)
            return done

        if concurrency <= 1:
            return [one(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="msrkit-summarize")
        try:
            return list(pool.map(one, items))
        finally:  # on Ctrl-C (or an error) the items not started are dropped, those running finish
            pool.shutdown(wait=True, cancel_futures=True)

    def tag(self, item: Item) -> str:
        """The prompts that summarize ``item`` (with an image description where one is made)."""
        keywords = self.prompts["item_keywords"].tag
        if item.image and self.describe_images and self.vision_backend.capabilities.vision:
            return f"{keywords}|{self.prompts['image_description'].tag}"
        return f"{keywords}|text"

    def summarize_item(self, item: Item, *, meter: Meter, base_dir: Path | None = None) -> Item:
        """``item`` with its keywords (and image description) from the store, or made now and stored."""
        if item.keywords is not None and (item.image_description or not item.image or not self.describe_images):
            return item
        tag = self.tag(item)
        stored = self.store.get(item, tag=tag) if self.store is not None else None
        if stored is not None:
            update = {"keywords": item.keywords if item.keywords is not None else stored.keywords}
            return item.model_copy(
                update={**update, "image_description": item.image_description or stored.image_description}
            )
        done = self._summarize(item, meter=meter, base_dir=base_dir)
        if self.store is not None and done.keywords is not None and done is not item:
            self.store.put(done, tag=tag, model=f"{self.backend.name}/{self.backend.model}")
        return done

    def _summarize(self, item: Item, *, meter: Meter, base_dir: Path | None) -> Item:
        update: dict[str, object] = {}
        try:
            description = item.image_description or self._describe(item, meter=meter, base_dir=base_dir)
            if description:
                update["image_description"] = description
            if item.keywords is None:
                update["keywords"] = self._keywords(item.model_copy(update=update), meter=meter)
        except BackendError as exc:
            if self.strict:
                raise
            meter.warn(f"item summaries incomplete: {exc}")
            return item.model_copy(update=update) if update else item
        return item.model_copy(update=update)

    def _describe(self, item: Item, *, meter: Meter, base_dir: Path | None) -> str | None:
        if not (item.image and self.describe_images):
            return None
        backend = self.vision_backend
        if not backend.capabilities.vision:
            meter.warn(
                f"{backend.name}/{backend.model} cannot see images: item keywords come from text only "
                "(use a vision model, or a vision_backend for item summaries)"
            )
            return None
        from ..images import load_image

        try:
            image = load_image(item.image, base_dir=base_dir, max_side=self.max_side, policy=self.image_policy)
        except InputError as exc:
            if self.strict:
                raise
            meter.warn(f"item {item.item_id}: image skipped: {exc}")
            return None
        request = self.prompts["image_description"].request(images=[image])
        described = one_line(meter.call(backend, request).text, max_chars=600)
        if not described:
            forget(backend, request)
        return described or None

    def _keywords(self, item: Item, *, meter: Meter) -> list[str]:
        if not (item.title or item.description or item.image_description):
            return []
        rendered = render_item(item.model_copy(update={"keywords": None}), max_chars=600)
        request = self.prompts["item_keywords"].request(item=rendered, max_keywords=self.max_keywords)
        keywords = parse_keywords(meter.call(self.backend, request).text, limit=self.max_keywords)
        if not keywords:
            forget(self.backend, request)  # an answer with no keyword in it is not cached as the item's keywords
        return keywords
