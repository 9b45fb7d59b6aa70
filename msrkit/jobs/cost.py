"""What a batch costs in LLM calls and tokens: tallied as it runs, predicted before it runs.

- :class:`CostTally` adds up the :class:`~msrkit.data.Usage` of each ranking and
  reports calls and tokens per user, split into *cold* users (nothing reused:
  no cached answer, no stored item summary; every summary and the ranking made
  now) and *warm* ones (some reuse: the steady state of a catalog summarized
  before, a returning user).
- :func:`predict` runs the same pipeline over the histories with a stand-in for
  the model (:class:`DryBackend`): every request that the response cache
  would not answer is counted as one call, with its prompt tokens estimated
  and its completion tokens at the request's ``max_tokens``, and answered with
  a well-formed stand-in (keywords for every item of a batch, the candidates in
  the given order), so the pipeline goes on as it would. Nothing is sent and
  nothing is written: the cache and the catalog store are read, and what the
  dry run "made" is kept in memory only, so a later user of the same batch
  reuses it as the real run would.

The prediction is exact for the calls where the real model answers every item
of a batch and the answers do not change the flow (a partial batch answer costs
one more call per item left out; see docs/cost.md). Tokens are estimates:
prompt tokens at :data:`CHARS_PER_TOKEN` characters each, completions at their cap.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, ChatRequest, ChatResponse
from ..backends.cache import ResponseCache
from ..backends.registry import get_backend
from ..backends.wrapper import Wrapper
from ..config import Settings
from ..data import History, Item, Usage
from ..recommender import Recommender
from ..summaries.store import CatalogStore, Summary, item_digest, store_path

__all__ = ["CHARS_PER_TOKEN", "CostTally", "DryBackend", "predict"]

#: Characters per prompt token in a dry run's estimate (English text through a BPE tokenizer: about 4).
CHARS_PER_TOKEN = 4.0


@dataclass
class _Part:
    users: int = 0
    usage: Usage = field(default_factory=Usage)

    def per_user(self) -> str:
        n = max(self.users, 1)
        u = self.usage
        return (f"{u.llm_calls / n:.2f} calls/user, {u.prompt_tokens / n:.0f}+{u.completion_tokens / n:.0f} "
                f"tokens/user")  # fmt: skip


@dataclass
class CostTally:
    """Calls and tokens of a batch, per user, for cold and warm users apart."""

    cold: _Part = field(default_factory=_Part)
    warm: _Part = field(default_factory=_Part)

    def add(self, usage: Usage) -> None:
        """Count one user's ranking: cold when it reused nothing (``cache_hits`` 0), warm otherwise."""
        part = self.warm if usage.cache_hits else self.cold
        part.users += 1
        part.usage.add(usage)

    @property
    def users(self) -> int:
        return self.cold.users + self.warm.users

    @property
    def total(self) -> Usage:
        out = Usage()
        out.add(self.cold.usage)
        out.add(self.warm.usage)
        return out

    def line(self) -> str:
        """One line for a person: the whole batch, then the cold and warm users."""
        both = _Part(self.users, self.total)
        parts = [f"cost: {self.users} user(s), {both.usage.llm_calls} LLM calls: {both.per_user()}"]
        for name, part in (("cold", self.cold), ("warm", self.warm)):
            if part.users:
                parts.append(f"{name} {part.users}: {part.per_user()}")
        return "; ".join(parts)


class DryBackend(Wrapper):
    """Stands in for ``inner`` (its name, model, capabilities, cache identity) and never calls it.

    Each request is counted and answered with a well-formed stand-in; its
    prompt tokens are estimated (:data:`CHARS_PER_TOKEN`), its completion
    tokens are the request's ``max_tokens``.
    """

    def chat(self, request: ChatRequest) -> ChatResponse:
        text = "\n".join(m.text_content for m in request.messages)
        prompt = math.ceil(len(text) / CHARS_PER_TOKEN)
        return ChatResponse(_stand_in(request), prompt, request.max_tokens, model=self.model)

    def close(self) -> None:
        """Nothing to close: ``inner`` belongs to the caller."""


def _stand_in(request: ChatRequest) -> str:
    task = request.tag.split("@", 1)[0]
    numbers = re.findall(r"^\[(\d+)\]", request.messages[-1].text_content, flags=re.M)
    if task == "item_keywords_batch":
        return json.dumps({n: ["keyword"] for n in numbers})
    if task == "listwise_rank":
        return " > ".join(f"[{n}]" for n in numbers)
    if task in ("item_keywords", "yes_no"):
        return "keyword" if task == "item_keywords" else "yes"
    # a summary as distinct as its input, as a model's would be: two users' rankings never share one by accident
    digest = hashlib.sha256(request.messages[-1].text_content.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"a summary {digest}"


class _PeekCache(ResponseCache):
    """The response cache, read but never written: what a dry run makes stays in memory."""

    def __init__(self, directory: Any) -> None:
        super().__init__(directory)
        self._made: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self._made.get(key) or (super().get(key) if self.directory.exists() else None)

    def set(self, key: str, value: dict[str, Any]) -> None:
        self._made[key] = value


class _PeekStore(CatalogStore):
    """The catalog store, read but never written (a store file that does not exist is not created)."""

    def __init__(self, path: Any) -> None:
        super().__init__(path)
        self._made: dict[tuple[str, str], Summary] = {}

    def put(self, item: Item, *, tag: str, model: str = "") -> None:
        if item.keywords is not None:
            made = Summary(item.item_id, tag, item_digest(item), list(item.keywords), item.image_description, model)
            self._made[(item.item_id, tag)] = made

    def get(self, item: Item, *, tag: str | None = None) -> Summary | None:
        made = self._made.get((item.item_id, tag or ""))
        if made is not None and made.digest == item_digest(item):
            return made
        return super().get(item, tag=tag) if self.path.exists() else None


def predict(settings: Settings, histories: Iterable[History], *, backend: Backend | None = None) -> CostTally:
    """The calls and tokens ranking ``histories`` would cost now, without calling the model (see the module doc).

    ``backend`` stands for the settings' model (its identity keys the cache);
    by default the settings' backend is built, and never called.
    """
    real = backend or get_backend(settings.backend, base_url=settings.base_url, **settings.backend_options)
    vision = get_backend(settings.vision_backend) if settings.vision_backend else None
    cache = _PeekCache(settings.cache_dir) if settings.cache else None
    store = _PeekStore(store_path(cache.directory)) if cache is not None else None
    tally = CostTally()
    dry = DryBackend(real) if real is not None else None  # None: the settings say "none", no model at all
    seeing = DryBackend(vision) if vision is not None else None
    try:
        with Recommender(dry, settings=settings, cache=cache if cache is not None else False, store=store,
                         vision_backend=seeing) as rec:  # fmt: skip
            for history in histories:
                tally.add(rec.rank(history).usage)
    finally:
        for made in (real, vision):
            if made is not None and made is not backend:
                made.close()
    return tally
