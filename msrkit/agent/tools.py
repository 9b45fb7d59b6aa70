"""The agent's tools: msrkit's own stages as typed functions, their JSON schemas made from them.

Each tool reads and writes the :class:`~.bus.CandidateBus` of one run (an
:class:`AgentContext`) and answers with a short observation for the model:
counts and a few titles, never the whole catalog. Retrieval is the
collaborative index (:mod:`msrkit.retrieval`), ranking the fixed pipeline
(:func:`msrkit.runtime.pipeline.run`) over the current candidates, item summaries the
catalog store. A tool that cannot do what was asked raises :class:`ToolInputError`
(the model is told, with an example); any other exception is a tool failure.

A tool is a function ``(ctx, *, arguments...) -> str``: its docstring's first line is
what the model is told it does, its keyword parameters (types, ``Field`` limits and
examples, defaults) its arguments (:func:`~.schema.arguments_model`); :meth:`Tool.of`
makes the spec and the model from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ..backends.base import Backend, ToolSpec
from ..data import History, Item, Ranking
from ..runtime.meter import Meter
from ..runtime.prompts import quote, render_item
from .bus import CandidateBus, describe
from .schema import arguments_model, parameters_schema
from .state import Constraint, TurnState

if TYPE_CHECKING:
    from ..runtime.pipeline import Parts

__all__ = ["TOOLS", "AgentContext", "Finish", "Tool", "ToolInputError", "tool_specs", "validated"]

ItemIds = Annotated[list[Annotated[str, Field(max_length=24)]], Field(max_length=10, examples=[["1", "2"]])]
Limit = Annotated[int, Field(ge=1, le=50)]


class ToolInputError(ValueError):
    """The call was well-formed but asks for what cannot be done (unknown ids, say): told to the model."""


@dataclass(frozen=True)
class Finish:
    """The model's final answer: item ids (all candidates) and why."""

    item_ids: list[str]
    explanation: str


@dataclass
class AgentContext:
    """What one agent run's tools share."""

    parts: Parts
    backend: Backend | None
    history: History
    meter: Meter
    bus: CandidateBus
    state: TurnState
    catalog: dict[str, Item]
    shown: int = 5
    reasons: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    ranked: Ranking | None = None
    finished: Finish | None = None

    @property
    def model(self) -> Backend:
        """The model the tools call (a run without one never runs a tool)."""
        if self.backend is None:
            raise ToolInputError("no model is configured")
        return self.backend

    @property
    def seen(self) -> list[str]:
        return [e.item_id for e in self.history.items()]

    def known(self, item_id: str) -> bool:
        """Whether an id names a candidate this run may return (never an invented one)."""
        return item_id in self.bus.allowed if self.bus.allowed is not None else item_id in self.catalog

    def finishable(self, item_id: str) -> bool:
        """Whether ``finish`` may name ``item_id``: a candidate on the bus that the conversation allows
        (a fixed list whose bus was emptied: any given candidate). Items of the history are on the bus only
        when the caller gave them as candidates, i.e. asked for repeats."""
        on_bus = item_id in self.bus or (not len(self.bus) and self.bus.allowed is not None
                                        and item_id in self.bus.allowed)  # fmt: skip
        return on_bus and self.state.allows(item_id, self.catalog)

    def put(self, ids: list[str], source: str) -> str:
        """Add ids (unseen, allowed by the conversation) to the bus; the observation line.

        With a fixed candidate list every candidate is on the bus already: those found move to the front.
        """
        seen = set(self.seen)
        ok = [i for i in ids if i not in seen and self.known(i) and self.state.allows(i, self.catalog)]
        if self.bus.allowed is not None:
            moved = self.bus.promote(ok, source)
            return f"{len(moved)} candidate(s) found by {source}, moved first. Bus: {self.view()}"
        added = self.bus.add(ok, source)
        return f"{len(added)} new candidate(s) from {source}. Bus: {self.view()}"

    def view(self) -> str:
        return self.bus.view(self.catalog, shown=self.shown)

    def only(self) -> list[str] | None:
        """The ids a search may return: the fixed candidates (``None``: any catalog item)."""
        return sorted(self.bus.allowed) if self.bus.allowed is not None else None


@dataclass(frozen=True)
class Tool:
    """A tool: its spec (what the model is shown), its function, and whether it is expensive (ranking).

    ``arguments`` is the pydantic model the spec's parameters were made from (:meth:`of`);
    ``run`` then takes the checked arguments through it.
    """

    spec: ToolSpec
    run: Callable[[AgentContext, dict[str, Any]], str]
    expensive: bool = False
    arguments: type[BaseModel] | None = None

    @classmethod
    def of(cls, fn: Callable[..., str], *, name: str | None = None, expensive: bool = False) -> Tool:
        """The tool of a typed function ``fn(ctx, *, arguments...)`` (see the module docstring)."""
        model = arguments_model(fn)
        description = " ".join((fn.__doc__ or "").strip().split("\n\n")[0].split())
        spec = ToolSpec(name or fn.__name__, description, parameters_schema(model))

        def run(ctx: AgentContext, args: dict[str, Any]) -> str:
            return fn(ctx, **validated(model, args))

        return cls(spec, run, expensive, model)


def validated(model: type[BaseModel], args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` through a tool's arguments model, as keyword arguments of its function."""
    try:
        checked = model.model_validate(dict(args))
    except ValidationError as exc:
        said = "; ".join(f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in exc.errors())
        raise ToolInputError(f"invalid arguments: {said}") from None
    return {name: getattr(checked, name) for name in type(checked).model_fields}


def _known_ids(ctx: AgentContext, ids: list[str], *, what: str, candidates_only: bool = True) -> list[str]:
    """The ids that name candidates (or, unless ``candidates_only``, any catalog or history item)."""
    seen = set(ctx.seen)
    ok = ctx.known if candidates_only else (lambda i: ctx.known(i) or i in ctx.catalog or i in seen)
    known = [i for i in dict.fromkeys(ids) if ok(i)]
    if not known:
        sample = ", ".join(ctx.bus.ids()[:3] or list(ctx.catalog)[:3])
        raise ToolInputError(f"none of {ids[:5]} is a known item id ({what}); ids look like: {sample}")
    return known


def _index(ctx: AgentContext) -> Any:
    if ctx.parts.index is None:
        raise ToolInputError("no collaborative index is loaded (give interactions or an index): use search_catalog")
    return ctx.parts.index


# -- the tools ---------------------------------------------------------------------------------------------


def user_profile(ctx: AgentContext) -> str:
    """The user's preference summary and most recent items."""
    from ..runtime.pipeline import preference

    items = ctx.history.items()
    if ctx.profile is None:
        enriched = ctx.parts.store.enrich({i.item_id: i for i in items}) if ctx.parts.store else {}
        ctx.profile = preference(ctx.parts, ctx.model, [enriched.get(i.item_id, i) for i in items], ctx.meter)
    recent = "; ".join(describe(i.item_id, ctx.catalog) for i in items[-5:][::-1])
    return (f"Preferences: {quote(ctx.profile)[:600] or '(none)'}\nMost recent first ({len(items)} items in all): "
            f"{recent or '(no history)'}\nConversation: {ctx.state.summary()}")  # fmt: skip


def similar_users(ctx: AgentContext, *, k: Annotated[int, Field(ge=1, le=10)] = 3) -> str:
    """Find users like this one and add what they took next to the candidates."""
    from ..retrieval import query

    hood = query(_index(ctx), ctx.seen, n=0, exclude_user=ctx.history.user_id, context_k=k)
    nexts = [i for _, i in hood.next_items]
    users = ", ".join(u for u, _ in hood.similar_users[:k]) or "none"
    return f"Similar users: {users}. They took next {len(nexts)} item(s). " + ctx.put(nexts, "similar_users")


def search_catalog(
    ctx: AgentContext, *, query: Annotated[str, Field(max_length=80, examples=["space adventure"])], limit: Limit = 10
) -> str:
    """Search the catalog by keywords (title, genre, keywords); adds matches."""
    from ..retrieval.search import search_items

    hits = search_items(_index(ctx), query, k=limit, exclude=ctx.seen, only=ctx.only())
    return f"{len(hits)} match(es) for {quote(query)!r}. " + ctx.put([i for i, _ in hits], "search")


def similar_items(ctx: AgentContext, *, item_ids: ItemIds, limit: Limit = 10) -> str:
    """Add items similar to the given item ids (taken after them, similar text)."""
    from ..retrieval import query

    given = _known_ids(ctx, item_ids, what="similar_items", candidates_only=False)
    only = ctx.only()
    hood = query(
        _index(ctx),
        given,
        n=limit,
        candidate_ids=only,
        exclude_user=ctx.history.user_id,
        context_k=0,
        support=False,
    )
    found = sorted((h for h in hood.candidates if only is None or h[1] > 0), key=lambda h: -h[1])[:limit]
    return f"{len(found)} item(s) like {given[:5]}. " + ctx.put([i for i, _ in found], "similar")


def filter_candidates(
    ctx: AgentContext,
    *,
    exclude_ids: ItemIds | None = None,
    exclude_seen: bool | None = None,
    attribute: Annotated[str | None, Field(max_length=40, examples=["genres"])] = None,
    equals: Annotated[str | None, Field(max_length=60, examples=["Comedy"])] = None,
) -> str:
    """Remove candidates: by id, those already seen, or keep only attribute == value."""
    drop = [i for i in exclude_ids or [] if i in ctx.bus]
    if exclude_seen:
        drop += [i for i in ctx.bus.ids() if i in set(ctx.seen)]
    rule = None
    if attribute and equals:
        rule = Constraint(attribute=attribute, op="eq", value=equals)
        drop += [i for i in ctx.bus.ids() if not rule.holds(ctx.catalog.get(i))]
    if len(ctx.bus) and set(drop) >= set(ctx.bus.ids()):
        why = f" (no candidate has {rule.text()})" if rule is not None else ""
        raise ToolInputError(f"this filter would remove every candidate{why}: nothing was removed")
    gone = ctx.bus.remove(drop, rule.text() if rule is not None else "excluded")
    return f"{len(gone)} removed. Bus: {ctx.view()}"


def rank_candidates(ctx: AgentContext, *, method: Literal["listwise", "pointwise", "fusion"] = "fusion") -> str:
    """Rank the current candidates for this user with the model (expensive)."""
    from ..config import settings_from
    from ..runtime.pipeline import run

    if not len(ctx.bus):
        raise ToolInputError("the candidate list is empty: add candidates first (search_catalog, similar_users)")
    if method == "pointwise" and not ctx.model.capabilities.logprobs:
        raise ToolInputError("pointwise needs log-probabilities, which this model does not give: use listwise")
    overrides = {"pointwise": method == "pointwise", "fusion_weight": 1.0 if method != "fusion" else None}
    settings = settings_from(ctx.parts.settings, **{k: v for k, v in overrides.items() if v is not None})
    top = ctx.bus.ids()[: ctx.parts.settings.n_candidates]
    history = ctx.history.model_copy(update={"candidates": [ctx.catalog.get(i) or Item(item_id=i) for i in top]})
    ranking = run(replace(ctx.parts, settings=settings), history, ctx.meter, ctx.model)
    ctx.ranked = ranking
    ctx.bus.reorder(ranking.item_ids())
    ctx.reasons.update({r.item_id: r.reason for r in ranking.ranking if r.reason})
    how = "degraded to retrieval order" if ranking.degraded else f"by {method}"
    return f"Ranked {len(top)} candidate(s) {how}. Bus: {ctx.view()}"


def inspect_items(ctx: AgentContext, *, item_ids: ItemIds) -> str:
    """Show the details and summaries of some items."""
    ids = _known_ids(ctx, item_ids, what="inspect_items", candidates_only=False)
    items = {i: ctx.catalog[i] for i in ids if i in ctx.catalog}
    if ctx.parts.store is not None:
        items = ctx.parts.store.enrich(items)
    lines = [f"[{i}] {render_item(items[i], max_chars=160)}" for i in ids if i in items]
    return "\n".join(lines) or "no details for these items"


def finish(
    ctx: AgentContext,
    *,
    item_ids: ItemIds,
    explanation: Annotated[str | None, Field(max_length=300, examples=["close to the last films watched"])] = None,
) -> str:
    """Give the final recommendation: item ids, best first, and a short explanation."""
    # only candidates on the bus may be named (never an item of the history, nor any other catalog item)
    named = list(dict.fromkeys(item_ids))
    ids = [i for i in named if ctx.finishable(i)]
    if not ids:
        sample = ", ".join(ctx.bus.ids()[:3]) or "none yet: add candidates first (search_catalog, similar_users)"
        raise ToolInputError(f"none of {named[:5]} is a candidate on the bus; candidates: {sample}")
    ctx.finished = Finish(ids, explanation or "")
    ignored = [i for i in named if i not in set(ids)]
    note = f" Ignored {len(ignored)} id(s) that are not candidates: {ignored[:5]}." if ignored else ""
    return f"Finished with {len(ids)} item(s).{note}"


_TOOLS = [
    Tool.of(user_profile),
    Tool.of(similar_users),
    Tool.of(search_catalog),
    Tool.of(similar_items),
    Tool.of(filter_candidates, name="filter"),
    Tool.of(rank_candidates, expensive=True),
    Tool.of(inspect_items),
    Tool.of(finish),
]
TOOLS: dict[str, Tool] = {t.spec.name: t for t in _TOOLS}


#: At most this many candidate ids are listed in ``finish``'s schema (an enum a grammar can hold).
MAX_ENUM = 50


def tool_specs(tools: Mapping[str, Tool] | None = None, *, candidates: list[str] | None = None) -> tuple[ToolSpec, ...]:
    """The specs the model is offered; with ``candidates``, ``finish`` may name only those (at least one).

    A backend with constrained decoding (llama.cpp's grammars, structured outputs) then
    cannot produce an id that is not a candidate, and a weak model cannot finish with none.
    """
    specs = [t.spec for t in (tools or TOOLS).values()]
    if not candidates or len(candidates) > MAX_ENUM:
        return tuple(specs)
    return tuple(_only_candidates(s, candidates) if s.name == "finish" else s for s in specs)


def _only_candidates(spec: ToolSpec, candidates: list[str]) -> ToolSpec:
    properties = dict(spec.parameters.get("properties", {}))
    ids = dict(properties["item_ids"])
    ids["items"] = {"type": "string", "enum": list(candidates)}
    ids["minItems"] = 1
    ids.pop("examples", None)
    properties["item_ids"] = ids
    return replace(spec, parameters={**spec.parameters, "properties": properties})
