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

from ..backends.base import Backend
from ..config import Settings
from ..data import Item
from ..deadline import MIN_CALL_SECONDS, active, current
from ..errors import BackendError, InputError
from ..images import ImagePolicy
from ..meter import Meter
from ..prompts import PromptSet, render_item
from .store import CatalogStore

__all__ = ["ItemSummarizer", "parse_keywords", "unseen_images"]

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def parse_keywords(text: str, *, limit: int) -> list[str]:
    """Keywords from a model's answer: split on commas/lines, bullets and quotes stripped, deduplicated."""
    text = re.sub(r"<think>.*?</think>", " ", text, flags=re.S | re.I)
    text = re.sub(r"^\s*keywords?\s*:", "", text.strip(), flags=re.I)
    out: list[str] = []
    seen: set[str] = set()
    for raw in re.split(r"[,;\n]", text):
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


def unseen_images(
    backend: Backend, *, vision_backend: Backend | None = None, item_summaries: bool = True
) -> str | None:
    """The one warning that item images go unseen with these backends and stages (``None``: they are seen).

    Only item summaries look at images (a vision model describes each one), by
    ``vision_backend`` where one is given, else by ``backend``.
    """
    seer = vision_backend or backend
    if item_summaries and seer.capabilities.vision:
        return None
    if not item_summaries:
        return ("images were not seen: item summaries are off, and only they look at images; turn them on "
                "(--item-summaries) with a vision model as the backend or as vision_backend")  # fmt: skip
    return (f"images were not seen: {seer.name}/{seer.model} cannot see images (a text-only model), so item "
            "keywords come from text alone; to use the images, give a vision model as vision_backend "
            "(--vision-backend, MSRKIT_VISION_BACKEND or msrkit.toml), e.g. ollama/llava:7b")  # fmt: skip


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

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        backend: Backend,
        *,
        prompts: PromptSet | None = None,
        vision_backend: Backend | None = None,
        store: CatalogStore | None = None,
    ) -> ItemSummarizer:
        """The summarizer of every path (a request, ``msrkit summarize``, Ray, MCP): one place reads the settings.

        ``max_side``, ``strict`` and the image policy (``image_roots``, ``image_private_hosts``,
        ``image_timeout``) all come from ``settings``, so no path can drop one of them.
        """
        return cls(backend, prompts=prompts, vision_backend=vision_backend, max_side=settings.max_side,
                   strict=settings.strict, store=store, image_policy=ImagePolicy.from_settings(settings))  # fmt: skip

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
        unseen = unseen_images(backend)
        if unseen is not None:
            meter.warn(unseen)
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
        text = meter.call(backend, request).text.strip()
        return " ".join(text.split())[:600] or None

    def _keywords(self, item: Item, *, meter: Meter) -> list[str]:
        if not (item.title or item.description or item.image_description):
            return []
        rendered = render_item(item.model_copy(update={"keywords": None}), max_chars=600)
        request = self.prompts["item_keywords"].request(item=rendered, max_keywords=self.max_keywords)
        return parse_keywords(meter.call(self.backend, request).text, limit=self.max_keywords)
