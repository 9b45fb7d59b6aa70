"""The ``Recommender``: composes the pipeline stages into one ``rank()`` call.

::

    items ──> ItemSummarizer ──> keywords, image descriptions        [cached per item]
    history ──> PreferenceSummarizer ──> preference summary          [cached per prefix]
    interactions ──> CollaborativeIndex ──> similar users' next items, retrieval scores
    candidates ──> ListwiseReranker (or PointwiseScorer) ──> fused with retrieval ──> Ranking

Each stage is usable on its own; this class only wires them and accounts for
cost. The ranking is always a permutation of the candidates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import get_backend
from .backends.base import Backend
from .cache import CachedBackend, ResponseCache
from .data import History, Item, RankedItem, Ranking
from .errors import BackendError, ConfigError, InputError
from .io import Interaction, load_catalog, load_histories, load_interactions, parse_history, resolve
from .meter import Meter
from .preferences import blocks
from .prompts import PromptSet
from .retry import RetryingBackend

__all__ = ["Recommender", "Stages"]

log = logging.getLogger("msrkit")


@dataclass(frozen=True)
class Stages:
    """Which stages run (the ablations of ``msrkit eval``)."""

    llm: bool = True
    item_summaries: bool = True
    preference_summary: bool = True
    collaborative: bool = True


class Recommender:
    """Rank a user's candidates with an LLM, retrieval and caching.

    >>> rec = Recommender(backend="ollama/llava:7b", catalog="items.jsonl")   # doctest: +SKIP
    >>> ranking = rec.rank("history.json")                                      # doctest: +SKIP
    >>> ranking.ranking[0].item_id                                              # doctest: +SKIP
    'C7'

    ``backend``: a name (``auto``, ``none``, ``ollama/NAME``, ``openai/MODEL``,
    ``llamacpp/PATH``) or a backend object. ``cache``: ``True`` (default
    folder), a folder, a :class:`ResponseCache`, or ``False``.
    ``fusion_weight``: 1.0 trusts the LLM order alone, 0.0 the retrieval order.
    ``retries``: how often a transient backend failure (429, 5xx, timeout,
    connection) is retried, within ``retry_max_seconds`` in all; 0 disables.
    ``concurrency``: how many :meth:`arank` requests run at once.
    """

    def __init__(
        self,
        backend: str | Backend | None = "auto",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        catalog: str | Path | Mapping[str, Item] | None = None,
        interactions: str | Path | Sequence[Interaction] | None = None,
        index: Any = None,
        prompts: str | Path | PromptSet | None = None,
        cache: bool | str | Path | ResponseCache = True,
        vision_backend: str | Backend | None = None,
        stages: Stages | None = None,
        block_size: int = 3,
        max_history: int = 60,
        window: int = 20,
        stride: int | None = None,
        passes: int = 1,
        fusion_weight: float = 0.5,
        pointwise: bool = False,
        collaborative_k: int = 3,
        n_candidates: int = 20,
        max_side: int = 768,
        strict: bool = False,
        seed: int = 0,
        backend_options: Mapping[str, Any] | None = None,
        retries: int = 4,
        retry_max_seconds: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        stride = stride if stride is not None else max(1, window // 2)
        _check_options(fusion_weight=fusion_weight, block_size=block_size, window=window, stride=stride, passes=passes)
        self.stages = stages or Stages()
        self.prompts = prompts if isinstance(prompts, PromptSet) else PromptSet.load(prompts)
        self.cache = _make_cache(cache)
        self.retries = retries
        self.retry_max_seconds = retry_max_seconds
        raw = None
        if self.stages.llm:
            raw = get_backend(backend, base_url=base_url, api_key=api_key, **dict(backend_options or {}))
        self.backend: Backend | None = self._wrap(raw)
        self.vision_backend = self._wrap(get_backend(vision_backend)) if vision_backend is not None else None
        self.catalog: dict[str, Item] = _make_catalog(catalog)
        self.index = index if index is not None else _make_index(interactions, self.catalog)
        self.block_size = block_size
        self.max_history = max_history
        self.window = window
        self.stride = stride
        self.passes = passes
        self.fusion_weight = fusion_weight
        self.pointwise = pointwise
        self.collaborative_k = collaborative_k
        self.n_candidates = n_candidates
        self.max_side = max_side
        self.strict = strict
        self.seed = seed
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()

    def _wrap(self, backend: Backend | None) -> Backend | None:
        """``CachedBackend(RetryingBackend(backend))``: the cache outside retry (see :mod:`msrkit.retry`)."""
        if backend is None or isinstance(backend, CachedBackend):
            return backend
        if self.retries > 0 and not isinstance(backend, RetryingBackend):
            backend = RetryingBackend(backend, attempts=self.retries + 1, max_seconds=self.retry_max_seconds)
        return backend if self.cache is None else CachedBackend(backend, self.cache)

    # -- input -----------------------------------------------------------------

    def load(self, history: History | Mapping[str, Any] | str | Path) -> History:
        """Validate and resolve one history (an object, a dict, or a ``history.json`` path)."""
        source = None
        if isinstance(history, (str, Path)):
            source = str(history)
            loaded = load_histories(history)
            if len(loaded) != 1:
                raise InputError(f"holds {len(loaded)} histories: use rank_many()", source=source)
            history = loaded[0]
        elif not isinstance(history, History):
            history = parse_history(dict(history), source="<history>")
        resolved = resolve(history, self.catalog, source=source)
        _check_images(resolved)
        return resolved

    # -- ranking ---------------------------------------------------------------

    def rank(self, history: History | Mapping[str, Any] | str | Path) -> Ranking:
        """Rank one user's candidates. Returns a :class:`~msrkit.data.Ranking`."""
        resolved = self.load(history)
        meter = Meter()
        try:
            return self._rank(resolved, meter)
        finally:
            meter.finish()

    def rank_many(self, histories: Iterable[History | Mapping[str, Any]]) -> Iterator[Ranking]:
        """Rank several users, one after another (errors propagate per user)."""
        for history in histories:
            yield self.rank(history)

    def _active(self) -> Backend:
        """The backend the LLM stages call: this thread's bridge during :meth:`arank`, else ``self.backend``."""
        backend = getattr(self._local, "backend", None) or self.backend
        assert backend is not None
        return backend

    def _rank_bridged(self, history: History | Mapping[str, Any] | str | Path, loop: Any) -> Ranking:
        assert self.backend is not None
        self._local.backend = _LoopBridge(self.backend, loop)
        try:
            return self.rank(history)
        finally:
            self._local.backend = None

    async def arank(self, history: History | Mapping[str, Any] | str | Path) -> Ranking:
        """``rank`` for async code (web apps): runs on this recommender's own worker threads.

        At most ``concurrency`` requests run at once (the others wait their
        turn), so a burst of requests never grows threads or connections
        without bound.

        >>> rankings = await asyncio.gather(*(rec.arank(h) for h in histories))   # doctest: +SKIP
        """
        loop = asyncio.get_running_loop()
        if self.backend is not None and getattr(self.backend, "achat", None) is not None:
            # the pipeline runs on a worker thread; its model calls run on this loop (the backend's async client)
            return await loop.run_in_executor(self._pool(), self._rank_bridged, history, loop)
        return await loop.run_in_executor(self._pool(), self.rank, history)

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="msrkit-rank")
            return self._executor

    def _rank(self, history: History, meter: Meter) -> Ranking:
        seen = [e.item_id for e in history.items()]
        candidates = self._candidates(history, seen)
        retrieval = self._retrieval_scores(seen, candidates, history.user_id)
        if self.backend is None:
            return self._result(history, candidates, retrieval, None, meter, summary=None, context=[])
        items, candidates = self._summaries(history, candidates, meter)
        summary = self._preference(items, meter)
        context = self._collaborative(seen, history.user_id)
        llm_scores, diagnostics, degraded = self._llm(candidates, summary, context, retrieval, meter)
        return self._result(
            history, candidates, retrieval, llm_scores, meter,
            summary=summary, context=context, diagnostics=diagnostics, degraded=degraded,
        )  # fmt: skip

    def _candidates(self, history: History, seen: list[str]) -> list[Item]:
        if history.candidates is not None:
            return history.candidate_items()
        if self.index is None or not self.catalog:
            raise InputError(
                "no 'candidates': give them, or pass a catalog and interactions to generate them",
                path="candidates",
            )
        found = self.index.generate_candidates(
            seen, n=self.n_candidates, exclude_seen=True, exclude_user=history.user_id
        )
        return [self.catalog[i] for i, _ in found if i in self.catalog]

    def _retrieval_scores(self, seen: list[str], candidates: list[Item], user: str | None) -> list[float] | None:
        if self.index is None:
            return None
        return list(self.index.score_candidates(seen, [c.item_id for c in candidates], exclude_user=user))

    def _summaries(self, history: History, candidates: list[Item], meter: Meter) -> tuple[list[Item], list[Item]]:
        items = history.items()
        if not self.stages.item_summaries:
            return list(items), candidates
        from .summarize import ItemSummarizer

        summarizer = ItemSummarizer(
            self._active(), prompts=self.prompts, vision_backend=self.vision_backend,
            max_side=self.max_side, strict=self.strict,
        )  # fmt: skip
        base = history.base_dir
        # only the items the preference summary will read: older ones would cost calls for nothing
        spans = blocks(len(items), block_size=self.block_size, max_items=self.max_history)
        start = spans[0][0] if spans else len(items)
        recent = summarizer.summarize(items[start:], meter=meter, base_dir=base)
        return [*items[:start], *recent], summarizer.summarize(candidates, meter=meter, base_dir=base)

    def _preference(self, items: Sequence[Item], meter: Meter) -> str:
        if not self.stages.preference_summary:
            from .prompts import render_item

            return "; ".join(render_item(i, max_chars=80) for i in items[-10:])
        from .preferences import PreferenceSummarizer

        summarizer = PreferenceSummarizer(
            self._active(), prompts=self.prompts, block_size=self.block_size, max_items=self.max_history
        )
        try:
            return summarizer.summarize(items, meter=meter)
        except BackendError as exc:
            if self.strict:
                raise
            meter.warn(f"preference summary failed, ranking without it: {exc}")
            return ""

    def _collaborative(self, seen: list[str], user: str | None) -> list[str]:
        if self.index is None or not self.stages.collaborative:
            return []
        return list(self.index.next_item_context(seen, k=self.collaborative_k, catalog=self.catalog, exclude_user=user))

    def _llm(
        self,
        candidates: list[Item],
        summary: str,
        context: list[str],
        retrieval: list[float] | None,
        meter: Meter,
    ) -> tuple[list[float], dict[str, Any], bool]:
        preference = summary or "(no summary available)"
        if self.pointwise:
            from .rerank import PointwiseScorer

            scorer = PointwiseScorer(self._active(), prompts=self.prompts)
            return list(scorer.score(candidates, preference=preference, meter=meter)), {"scorer": "pointwise"}, False
        from .rerank import ListwiseReranker

        reranker = ListwiseReranker(
            self._active(), prompts=self.prompts, window=self.window, stride=self.stride,
            passes=self.passes, seed=self.seed, strict=self.strict,
        )  # fmt: skip
        result = reranker.rank(
            candidates,
            preference=preference,
            collaborative=context,
            retrieval_scores=retrieval,
            meter=meter,
        )
        scores = [0.0] * len(candidates)
        for position, index in enumerate(result.order):
            scores[index] = float(len(candidates) - position)
        return scores, {"scorer": "listwise", **result.diagnostics}, result.degraded

    def _result(
        self,
        history: History,
        candidates: list[Item],
        retrieval: list[float] | None,
        llm_scores: list[float] | None,
        meter: Meter,
        *,
        summary: str | None,
        context: list[str],
        diagnostics: dict[str, Any] | None = None,
        degraded: bool = False,
    ) -> Ranking:
        final = _final_scores(llm_scores, retrieval, len(candidates), self.fusion_weight, degraded)
        order = sorted(range(len(candidates)), key=lambda i: (-final[i], i))
        llm_rank = _ranks(llm_scores) if llm_scores is not None else None
        retr_rank = _ranks(retrieval) if retrieval is not None else None
        history_terms = {t for e in history.items() for t in _terms(e)}
        ranked = [
            RankedItem(
                item_id=candidates[i].item_id,
                rank=pos + 1,
                score=round(final[i], 6),
                reason=_reason(candidates[i], history_terms, llm_rank, retr_rank, i),
                title=candidates[i].title,
            )
            for pos, i in enumerate(order)
        ]
        return Ranking(
            user_id=history.user_id,
            ranking=ranked,
            preference_summary=summary,
            degraded=degraded,
            warnings=list(meter.warnings),
            usage=meter.finish(),
            backend=_backend_name(self.backend),
            prompts=self.prompts.tags() if self.backend is not None else {},
            collaborative_context=context,
            diagnostics={**(diagnostics or {}), "fusion_weight": self.fusion_weight, "stages": self.stages.__dict__},
        )

    def close(self) -> None:
        """Release the worker threads, the backend (and its model) and the cache."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for backend in (self.backend, self.vision_backend):
            if backend is not None:
                backend.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_options(*, fusion_weight: float, block_size: int, window: int, stride: int, passes: int) -> None:
    if not 0.0 <= fusion_weight <= 1.0:
        raise ConfigError(f"fusion_weight must lie in [0, 1], got {fusion_weight}")
    if block_size < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    if window < 2 or not 1 <= stride < window:
        raise ConfigError(f"need window >= 2 and 1 <= stride < window, got window={window}, stride={stride}")
    if passes < 1:
        raise ConfigError(f"passes must be at least 1, got {passes}")


class _LoopBridge:
    """A backend for :meth:`Recommender.arank`'s worker threads whose calls run on the event loop.

    The pipeline's own work stays on the worker thread; each model call is the
    wrapped backend's ``achat`` (its async client, sharing one connection pool)
    scheduled on ``loop``, and the thread waits for its answer.
    """

    def __init__(self, inner: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop
        self.name = inner.name
        self.model = inner.model

    @property
    def capabilities(self) -> Any:
        return self.inner.capabilities

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def chat(self, request: Any) -> Any:
        from .backends.base import achat

        return asyncio.run_coroutine_threadsafe(achat(self.inner, request), self.loop).result()

    def close(self) -> None:
        pass


def _check_images(history: History) -> None:
    """A local or ``data:`` image that is missing or not an image fails now, naming the item."""
    from .images import check_image

    candidates: list[Item] = history.candidate_items() if history.candidates else []
    entries: list[tuple[str, Sequence[Item]]] = [("history", history.items()), ("candidates", candidates)]
    for field, items in entries:
        for i, item in enumerate(items):
            if not item.image:
                continue
            try:
                check_image(item.image, base_dir=history.base_dir)
            except InputError as exc:
                raise InputError(
                    f"{exc} (item '{item.item_id}'; fix or remove its 'image')",
                    source=history.source,
                    path=f"{field}[{i}].image",
                ) from None


def _backend_name(backend: Backend | None) -> str:
    return "none" if backend is None else f"{backend.name}/{backend.model}"


def _ranks(scores: Sequence[float]) -> list[int]:
    """1-based rank of each position by score (desc), ties by position."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    ranks = [0] * len(scores)
    for pos, i in enumerate(order):
        ranks[i] = pos + 1
    return ranks


def _final_scores(
    llm: list[float] | None, retrieval: list[float] | None, n: int, weight: float, degraded: bool
) -> list[float]:
    if llm is None and retrieval is None:
        return [float(n - i) / n for i in range(n)]
    if llm is None or (degraded and retrieval is not None):
        assert retrieval is not None
        return list(retrieval)
    from .rerank import fuse

    llm_order = sorted(range(n), key=lambda i: (-llm[i], i))
    return list(fuse(llm_order, retrieval, weight=weight))


def _reason(
    item: Item, history_terms: set[str], llm_rank: list[int] | None, retr_rank: list[int] | None, i: int
) -> str:
    parts = []
    shared = [t for t in dict.fromkeys(_terms(item)) if t in history_terms] if history_terms else []
    if shared:
        parts.append("shares " + ", ".join(shared[:3]) + " with the history")
    if llm_rank is not None:
        parts.append(f"LLM #{llm_rank[i]}")
    if retr_rank is not None:
        parts.append(f"retrieval #{retr_rank[i]}")
    return "; ".join(parts) or "given order"


def _terms(item: Item) -> list[str]:
    terms = list(item.keywords or [])
    genres = item.attributes.get("genres")
    if isinstance(genres, list):
        terms += [str(g).lower() for g in genres]
    return terms


def _make_cache(cache: bool | str | Path | ResponseCache) -> ResponseCache | None:
    if cache is False or cache is None:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    return ResponseCache(None if cache is True else cache)


def _make_catalog(catalog: str | Path | Mapping[str, Item] | None) -> dict[str, Item]:
    if catalog is None:
        return {}
    if isinstance(catalog, (str, Path)):
        return load_catalog(catalog)
    return dict(catalog)


def _make_index(interactions: str | Path | Sequence[Interaction] | None, catalog: dict[str, Item]) -> Any:
    if interactions is None:
        return None
    from .retrieval import CollaborativeIndex

    rows = load_interactions(interactions) if isinstance(interactions, (str, Path)) else list(interactions)
    return CollaborativeIndex.build(rows, catalog=catalog or None)
