"""Item understanding: image descriptions (MLLM-MSR stage 1) and keyword summaries (MMSRARec).

For an item with an image, a vision model first describes the image; then the
item's text and that description are merged into a few keywords, so neither
modality is ignored. A text-only backend makes keywords from text alone and
says so once in the warnings. Every call goes through the cache, so an item is
summarized once, whichever user it appears for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..backends.base import Backend
from ..backends.cache import forget
from ..config import Settings
from ..data import Item
from ..errors import BackendError, InputError
from ..inputs.images import ImagePolicy
from ..runtime.deadline import MIN_CALL_SECONDS, active, current
from ..runtime.meter import Meter
from ..runtime.modeltext import one_line
from ..runtime.prompts import PromptSet, render_item
from .batched import batch_request, parse_batch
from .keywords import parse_keywords
from .store import CatalogStore

T = TypeVar("T")
U = TypeVar("U")

__all__ = ["ItemSummarizer", "parse_keywords", "unseen_images"]


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
        batch: int = 1,
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
        self.batch = batch

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
                   strict=settings.strict, store=store, image_policy=ImagePolicy.from_settings(settings),
                   batch=settings.summary_batch)  # fmt: skip

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

        With ``batch`` > 1, one call makes the keywords of up to ``batch`` items
        (images are still described one per call first); an item the answer
        left out is summarized alone. ``concurrency`` > 1 runs that many calls
        at once (for remote backends; an in-process model serializes its calls
        anyway). Order is kept. Each item gets at most ``deadline`` seconds (a
        batch call ``deadline`` times its items; none past the current
        request's deadline): an item out of time is left as it is.
        """
        meter = meter or Meter()
        todo = list(items)
        if self.batch <= 1:
            return _map(lambda item: self._one(item, meter, base_dir, on_item), todo, concurrency, deadline)
        staged = _map(lambda item: self._stage(item, meter, base_dir, on_item), todo, concurrency, deadline)
        pending = [n for n, (_, _, wanted) in enumerate(staged) if wanted]
        chunks = [pending[i : i + self.batch] for i in range(0, len(pending), self.batch)]
        done = [described for _, described, _ in staged]

        def run(chunk: list[int]) -> list[Item]:
            return self._keywords_of([staged[n][:2] for n in chunk], meter, on_item)

        for chunk, made in zip(chunks, _map(run, chunks, concurrency, deadline, per=self.batch), strict=True):
            for n, item in zip(chunk, made, strict=True):
                done[n] = item
        return done

    def _one(self, item: Item, meter: Meter, base_dir: Path | None, on_item: Callable[[Item], None] | None) -> Item:
        done = item if current().left() < MIN_CALL_SECONDS else self.summarize_item(item, meter=meter,
                                                                                    base_dir=base_dir)  # fmt: skip
        return _emitted(done, on_item)

    def _stage(
        self, item: Item, meter: Meter, base_dir: Path | None, on_item: Callable[[Item], None] | None
    ) -> tuple[Item, Item, bool]:
        """``(item, described, keywords wanted)``: stored or finished items are done here (``on_item`` called)."""
        out = self._described_or_done(item, meter, base_dir) if current().left() >= MIN_CALL_SECONDS else item
        if isinstance(out, _Described):
            return item, out.item, True
        return item, _emitted(out, on_item), False

    def tag(self, item: Item) -> str:
        """The prompts that summarize ``item`` (with an image description where one is made)."""
        keywords = self.prompts["item_keywords"].tag
        if item.image and self.describe_images and self.vision_backend.capabilities.vision:
            return f"{keywords}|{self.prompts['image_description'].tag}"
        return f"{keywords}|text"

    def summarize_item(self, item: Item, *, meter: Meter, base_dir: Path | None = None) -> Item:
        """``item`` with its keywords (and image description) from the store, or made now and stored."""
        out = self._described_or_done(item, meter, base_dir)
        if not isinstance(out, _Described):
            return out
        return self._keyword_alone(item, out.item, meter)

    def _known(self, item: Item, meter: Meter) -> Item | None:
        """``item`` as already summarized (by its own fields or in the store: a cache hit), or ``None``."""
        if item.keywords is not None and (item.image_description or not item.image or not self.describe_images):
            return item
        stored = self.store.get(item, tag=self.tag(item)) if self.store is not None else None
        if stored is None:
            return None
        meter.reused()
        update = {"keywords": item.keywords if item.keywords is not None else stored.keywords}
        description = item.image_description or stored.image_description
        return item.model_copy(update={**update, "image_description": description})

    def _described_or_done(self, item: Item, meter: Meter, base_dir: Path | None) -> Item | _Described:
        """The finished item (known, failed, no text to summarize), or the described one still wanting keywords."""
        known = self._known(item, meter)
        if known is not None:
            return known
        try:
            description = item.image_description or self._describe(item, meter=meter, base_dir=base_dir)
        except BackendError as exc:
            return self._failed(exc, item, meter)
        described = item.model_copy(update={"image_description": description}) if description else item
        if described.keywords is not None or not _has_text(described):
            update: dict[str, object] = {} if described.keywords is not None else {"keywords": []}
            return self._keep(item, described.model_copy(update=update))
        return _Described(described)

    def _keyword_alone(self, item: Item, described: Item, meter: Meter) -> Item:
        try:
            keywords = self._keywords(described, meter=meter)
        except BackendError as exc:
            return self._failed(exc, described, meter)
        return self._keep(item, described.model_copy(update={"keywords": keywords}))

    def _keywords_of(
        self, pairs: list[tuple[Item, Item]], meter: Meter, on_item: Callable[[Item], None] | None
    ) -> list[Item]:
        """Keywords for ``(item, described)`` pairs in one call; those the answer left out, one call each."""
        if current().left() < MIN_CALL_SECONDS:  # out of time: left as they are, like a single item
            return [_emitted(described, on_item) for _, described in pairs]
        schema = self.backend.capabilities.json_schema
        request = batch_request(self.prompts["item_keywords_batch"], [d for _, d in pairs],
                                max_keywords=self.max_keywords, json_schema=schema)  # fmt: skip
        try:
            found = parse_batch(meter.call(self.backend, request).text, len(pairs), limit=self.max_keywords)
        except BackendError as exc:
            return [_emitted(self._failed(exc, described, meter), on_item) for _, described in pairs]
        out = []
        for n, (item, described) in enumerate(pairs, 1):
            words = found.get(n)
            done = self._keep(item, described.model_copy(update={"keywords": words})) if words else None
            out.append(_emitted(done or self._keyword_alone(item, described, meter), on_item))
        return out

    def _keep(self, item: Item, done: Item) -> Item:
        """Store ``done`` (made from ``item``) when it has keywords and is new."""
        if self.store is not None and done.keywords is not None and done is not item:
            self.store.put(done, tag=self.tag(item), model=f"{self.backend.name}/{self.backend.model}")
        return done

    def _failed(self, exc: BackendError, item: Item, meter: Meter) -> Item:
        if self.strict:
            raise exc
        meter.warn(f"item summaries incomplete: {exc}")
        return item

    def _describe(self, item: Item, *, meter: Meter, base_dir: Path | None) -> str | None:
        if not (item.image and self.describe_images):
            return None
        backend = self.vision_backend
        unseen = unseen_images(backend)
        if unseen is not None:
            meter.warn(unseen)
            return None
        from ..inputs.images import load_image

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
        rendered = render_item(item.model_copy(update={"keywords": None}), max_chars=600)
        request = self.prompts["item_keywords"].request(item=rendered, max_keywords=self.max_keywords)
        keywords = parse_keywords(meter.call(self.backend, request).text, limit=self.max_keywords)
        if not keywords:
            forget(self.backend, request)  # an answer with no keyword in it is not cached as the item's keywords
        return keywords


class _Described:
    """An item described (where it has an image) that still wants its keywords."""

    __slots__ = ("item",)

    def __init__(self, item: Item) -> None:
        self.item = item


def _emitted(item: Item, on_item: Callable[[Item], None] | None) -> Item:
    if on_item is not None:
        on_item(item)
    return item


def _has_text(item: Item) -> bool:
    return bool(item.title or item.description or item.image_description)


def _map(fn: Callable[[T], U], xs: list[T], concurrency: int, deadline: float | None, *, per: int = 1) -> list[U]:
    """``[fn(x) for x in xs]`` on up to ``concurrency`` threads, each under the caller's deadline and its own.

    Worker threads do not inherit the caller's context, so the deadline is handed over;
    each call gets ``deadline * per`` seconds. On Ctrl-C (or an error) calls not started are dropped.
    """
    outer = current()
    own = deadline * per if deadline is not None else None

    def one(x: T) -> U:
        with active(outer.child(own)):
            return fn(x)

    if concurrency <= 1 or len(xs) <= 1:
        return [one(x) for x in xs]
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="msrkit-summarize")
    try:
        return list(pool.map(one, xs))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
