"""The ``Recommender``: holds the pipeline's parts and ranks users with them.

::

    items ──> ItemSummarizer ──> keywords, image descriptions        [catalog store: once per item]
    history ──> PreferenceSummarizer ──> preference summary          [cached per prefix]
    interactions ──> CollaborativeIndex ──> one Neighbourhood per request
    candidates ──> ListwiseReranker (or PointwiseScorer) ──> fused with retrieval ──> Ranking

The request itself flows through :func:`msrkit.runtime.pipeline.run`; this class owns
what lives longer than a request (the backend stack and its circuit breaker,
the cache, the catalog and its store, the index, the worker threads of
:meth:`Recommender.arank`). Each request gets its own
:class:`~msrkit.runtime.deadline.Deadline` (``Settings.deadline``), and cancelling
:meth:`Recommender.arank` cancels it. The ranking is always a permutation of the candidates.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends.base import Backend
from .backends.cache import ResponseCache
from .backends.wrapper import Wrapper
from .config import Settings, settings_from
from .data import History, Item, Ranking
from .errors import ConfigError, InputError
from .holdings import make_cache, make_catalog, make_index, make_store, tuned_fusion
from .inputs.io import Interaction, load_histories, parse_history, resolve
from .runtime.deadline import Deadline, active, current
from .runtime.meter import Meter
from .runtime.pipeline import Parts, run
from .runtime.prompts import PromptSet
from .summaries.store import CatalogStore

if TYPE_CHECKING:
    from .agent import Agent, AgentResult, Tool, TurnState
    from .summaries import ItemSummarizer

__all__ = ["Recommender", "Stages"]


@dataclass(frozen=True)
class Stages:
    """Which stages run (the ablations of ``msrkit eval``); ``llm=False`` is the backend ``none``."""

    llm: bool = True
    item_summaries: bool = True
    preference_summary: bool = True
    collaborative: bool = True

    def options(self) -> dict[str, bool]:
        """These stages as :class:`~msrkit.config.Settings` values."""
        return {"item_summaries": self.item_summaries, "preference_summary": self.preference_summary,
                "collaborative": self.collaborative}  # fmt: skip


class Recommender:
    """Rank a user's candidates with an LLM, retrieval and caching.

    >>> rec = Recommender("ollama/llava:7b", catalog="items.jsonl", window=30)   # doctest: +SKIP
    >>> ranking = rec.rank("history.json")                                      # doctest: +SKIP
    >>> ranking.ranking[0].item_id                                              # doctest: +SKIP
    'C7'

    ``backend``: a name (``auto``, ``none``, ``ollama/NAME``, ``openai/MODEL``,
    ``llamacpp/PATH``) or a backend object. Every other option is a field of
    :class:`~msrkit.config.Settings` (its defaults are the defaults here), given
    as ``settings=`` and/or keyword arguments; an unknown or invalid one is a
    :class:`~msrkit.errors.ConfigError`. Objects may stand in for the paths of
    the settings: ``catalog`` (a mapping of items), ``interactions`` (rows),
    ``index`` (a :class:`~msrkit.retrieval.CollaborativeIndex`), ``prompts``
    (a :class:`~msrkit.runtime.prompts.PromptSet`), ``cache`` (``True``, ``False``, a
    folder or a :class:`~msrkit.backends.cache.ResponseCache`) and ``store``
    (a :class:`~msrkit.summaries.store.CatalogStore`; by default the one next
    to the cache).
    """

    def __init__(
        self,
        backend: str | Backend | None = None,
        *,
        settings: Settings | None = None,
        catalog: str | Path | Mapping[str, Item] | None = None,
        interactions: str | Path | Sequence[Interaction] | None = None,
        index: Any = None,
        prompts: str | Path | PromptSet | None = None,
        cache: bool | str | Path | ResponseCache | None = None,
        store: CatalogStore | None = None,
        vision_backend: str | Backend | None = None,
        stages: Stages | None = None,
        api_key: str | None = None,
        **options: Any,
    ) -> None:
        overrides = {**options, **(stages.options() if stages is not None else {})}
        if isinstance(backend, str):
            overrides["backend"] = backend
        if stages is not None and not stages.llm:
            overrides["backend"], backend = "none", None
        if isinstance(vision_backend, str):
            overrides["vision_backend"] = vision_backend
        for name, value in (("catalog", catalog), ("interactions", interactions), ("prompts", prompts)):
            if isinstance(value, (str, Path)):
                overrides[name] = Path(value)
        self.settings = s = tuned_fusion(settings_from(settings, **overrides))
        self.prompts = prompts if isinstance(prompts, PromptSet) else PromptSet.load(s.prompts)
        self.cache = make_cache(cache, s)
        self.store = store if store is not None else make_store(self.cache)
        from .backends.stack import backend_stack

        self.backend = backend_stack(backend if not isinstance(backend, str) else None, s, self.cache, api_key=api_key)
        vision = vision_backend if vision_backend is not None and not isinstance(vision_backend, str) else None
        self.vision_backend = backend_stack(vision, s, self.cache, vision=True) if self.backend else None
        self.catalog: dict[str, Item] = make_catalog(catalog, s)
        self.index = index if index is not None else make_index(interactions, s, self.catalog, self.store)
        self._executor: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._local = threading.local()

    @property
    def stages(self) -> Stages:
        s = self.settings
        return Stages(self.backend is not None, s.item_summaries, s.preference_summary, s.collaborative)

    def item_summarizer(self) -> ItemSummarizer:
        """The item summarizer of this recommender's requests: its backend(s), prompts, settings and store."""
        from .summaries import ItemSummarizer

        if self.backend is None:
            raise ConfigError("summarizing items needs an LLM backend, not 'none'")
        return ItemSummarizer.from_settings(self.settings, self.backend, prompts=self.prompts,
                                            vision_backend=self.vision_backend, store=self.store)  # fmt: skip

    def _parts(self) -> Parts:
        return Parts(self.settings, self.backend, self.vision_backend, self.prompts, self.catalog, self.index,
                     self.store)  # fmt: skip

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
        _check_images(resolved, self.image_policy)
        return resolved

    @property
    def image_policy(self) -> Any:
        """Where item images may come from (:class:`~msrkit.inputs.images.ImagePolicy`, from the settings)."""
        from .inputs.images import ImagePolicy

        return ImagePolicy.from_settings(self.settings)

    # -- ranking ---------------------------------------------------------------

    def rank(self, history: History | Mapping[str, Any] | str | Path) -> Ranking:
        """Rank one user's candidates within ``settings.deadline`` seconds. Returns a :class:`~msrkit.data.Ranking`.

        Within a caller's own deadline (:func:`msrkit.runtime.deadline.active`: an MCP tool call's), the
        earlier one holds.
        """
        return self._rank(history, current().child(self.settings.deadline))

    def _rank(self, history: History | Mapping[str, Any] | str | Path, deadline: Deadline) -> Ranking:
        with active(deadline):
            resolved = self.load(history)
            meter = Meter()
            try:
                return run(self._parts(), resolved, meter, self._active())
            finally:
                meter.finish()

    def chat(self, history: History | Mapping[str, Any] | str | Path, message: str | None = None,
             state: TurnState | None = None) -> AgentResult:  # fmt: skip
        """One conversational turn by the agent (:mod:`msrkit.agent`): a ranking, its trace, the state after it.

        >>> result = rec.chat("history.json", "something lighter")                    # doctest: +SKIP
        >>> result = rec.chat("history.json", "not that one", result.state)           # doctest: +SKIP
        """
        return self.agent().run(self.load(history), message, state)

    def agent(self, *, tools: Mapping[str, Tool] | None = None, **options: Any) -> Agent:
        """An :class:`~msrkit.agent.Agent` over this recommender's backend, settings, prompts, catalog and index.

        ``tools``: the tools it may call (default: all of :data:`msrkit.agent.TOOLS`); ``options``: ``agent_*``
        settings for this agent only (``agent_plan_first=True``, ``agent_max_turns=3``, ...); any other
        setting is the recommender's, so naming one is a :class:`~msrkit.errors.ConfigError`.

        >>> agent = rec.agent(agent_max_turns=3)                                      # doctest: +SKIP
        >>> result = agent.run(rec.load("history.json"), "something lighter")         # doctest: +SKIP
        """
        from .agent import Agent

        other = sorted(name for name in options if not name.startswith("agent_"))
        if other:
            raise ConfigError(f"Recommender.agent() takes agent_* settings only, not {', '.join(other)}")
        parts = self._parts()
        if options:
            parts = replace(parts, settings=settings_from(self.settings, **options))
        return Agent(parts, self._active(), tools=tools)

    def agent_rank(self, history: History | Mapping[str, Any] | str | Path) -> Ranking:
        """Rank one user's candidates with the agent instead of the fixed pipeline (what ``eval --agent`` runs)."""
        return self.chat(history).ranking

    def rank_many(self, histories: Iterable[History | Mapping[str, Any]]) -> Iterator[Ranking]:
        """Rank several users, one after another (errors propagate per user)."""
        for history in histories:
            yield self.rank(history)

    def _active(self) -> Backend | None:
        """The backend the LLM stages call: this thread's bridge during :meth:`arank`, else ``self.backend``."""
        return getattr(self._local, "backend", None) or self.backend

    def _rank_on_worker(self, history: History | Mapping[str, Any] | str | Path, deadline: Deadline,
                        loop: asyncio.AbstractEventLoop | None) -> Ranking:  # fmt: skip
        if loop is None:
            return self._rank(history, deadline)
        assert self.backend is not None
        self._local.backend = _LoopBridge(self.backend, loop)
        try:
            return self._rank(history, deadline)
        finally:
            self._local.backend = None

    async def arank(self, history: History | Mapping[str, Any] | str | Path) -> Ranking:
        """``rank`` for async code (web apps): runs on this recommender's own worker threads.

        At most ``concurrency`` requests run at once (the others wait their
        turn), so a burst of requests never grows threads or connections
        without bound. Cancelling it (a client that went away) cancels the
        request: its model calls and image downloads stop at once and its
        worker thread is free for the next request within moments.

        >>> rankings = await asyncio.gather(*(rec.arank(h) for h in histories))   # doctest: +SKIP
        """
        loop = asyncio.get_running_loop()
        deadline = Deadline(self.settings.deadline)
        # with an async backend the pipeline runs on a worker thread and its model calls on this loop
        bridge = loop if self.backend is not None and getattr(self.backend, "achat", None) is not None else None
        job = loop.run_in_executor(self._pool(), self._rank_on_worker, history, deadline, bridge)
        try:
            return await job
        except asyncio.CancelledError:
            deadline.cancel()
            raise

    def _pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="msrkit-rank")
            return self._executor

    def close(self) -> None:
        """Release the worker threads, the backend (and its model), the cache and the store."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for backend in (self.backend, self.vision_backend):
            if backend is not None:
                backend.close()
        if self.cache is not None:
            self.cache.close()
        if self.store is not None:
            self.store.close()

    async def aclose(self) -> None:
        """:meth:`close` for async code: the running event loop's clients are closed on it, at once.

        (:meth:`close` called inside a running loop leaves that loop's clients to be closed when it shuts down.)
        """
        for backend in (self.backend, self.vision_backend):
            layer: Any = backend
            while layer is not None and not hasattr(layer, "aclose"):
                layer = getattr(layer, "inner", None)
            if layer is not None:
                await layer.aclose()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Recommender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _LoopBridge(Wrapper):
    """A backend for :meth:`Recommender.arank`'s worker threads whose calls run on the event loop.

    The pipeline's own work stays on the worker thread; each model call is the
    wrapped backend's ``achat`` (its async client, sharing one connection pool)
    scheduled on ``loop``, and the thread waits for its answer (cancelled with the request).
    """

    def __init__(self, inner: Backend, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(inner)
        self.loop = loop

    def chat(self, request: Any) -> Any:
        from .backends.aio import run_on
        from .backends.base import achat

        return run_on(self.loop, achat(self.inner, request), backend=self.name, model=self.model)

    def close(self) -> None:
        pass  # the recommender closes the backend it wraps


def _check_images(history: History, policy: Any) -> None:
    """A local or ``data:`` image that is missing, not allowed or not an image fails now, naming the item."""
    from .inputs.images import check_image

    candidates: list[Item] = history.candidate_items() if history.candidates else []
    entries: list[tuple[str, Sequence[Item]]] = [("history", history.items()), ("candidates", candidates)]
    for field, items in entries:
        for i, item in enumerate(items):
            if not item.image:
                continue
            try:
                check_image(item.image, base_dir=history.base_dir, policy=policy)
            except InputError as exc:
                raise InputError(
                    f"{exc} (item '{item.item_id}'; fix or remove its 'image')",
                    source=history.source,
                    path=f"{field}[{i}].image",
                ) from None
