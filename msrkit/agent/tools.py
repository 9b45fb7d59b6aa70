"""The agent's tools: msrkit's own stages as typed functions with JSON schemas.

Each tool reads and writes the :class:`~.bus.CandidateBus` of one run (an
:class:`AgentContext`) and answers with a short observation for the model:
counts and a few titles, never the whole catalog. Retrieval is the
collaborative index (:mod:`msrkit.retrieval`), ranking the fixed pipeline
(:func:`msrkit.pipeline.run`) over the current candidates, item summaries the
catalog store. A tool that cannot do what was asked raises :class:`ToolInputError`
(the model is told, with an example); any other exception is a tool failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, ToolSpec
from ..data import History, Item, Ranking
from ..meter import Meter
from ..prompts import quote, render_item
from .bus import CandidateBus, describe
from .state import Constraint, TurnState

if TYPE_CHECKING:
    from ..pipeline import Parts

__all__ = ["TOOLS", "AgentContext", "Finish", "Tool", "ToolInputError", "tool_specs"]

IDS = {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 10, "examples": [["1", "2"]]}


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
    """A tool: its spec (what the model is shown), its function, and whether it is expensive (ranking)."""

    spec: ToolSpec
    run: Callable[[AgentContext, dict[str, Any]], str]
    expensive: bool = False


def _schema(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


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


def user_profile(ctx: AgentContext, args: dict[str, Any]) -> str:
    from ..pipeline import preference

    items = ctx.history.items()
    if ctx.profile is None:
        enriched = ctx.parts.store.enrich({i.item_id: i for i in items}) if ctx.parts.store else {}
        ctx.profile = preference(ctx.parts, ctx.model, [enriched.get(i.item_id, i) for i in items], ctx.meter)
    recent = "; ".join(describe(i.item_id, ctx.catalog) for i in items[-5:][::-1])
    return (f"Preferences: {quote(ctx.profile)[:600] or '(none)'}\nMost recent first ({len(items)} items in all): "
            f"{recent or '(no history)'}\nConversation: {ctx.state.summary()}")  # fmt: skip


def similar_users(ctx: AgentContext, args: dict[str, Any]) -> str:
    from ..retrieval import query

    hood = query(_index(ctx), ctx.seen, n=0, exclude_user=ctx.history.user_id, context_k=args["k"])
    nexts = [i for _, i in hood.next_items]
    users = ", ".join(u for u, _ in hood.similar_users[: args["k"]]) or "none"
    return f"Similar users: {users}. They took next {len(nexts)} item(s). " + ctx.put(nexts, "similar_users")


def search_catalog(ctx: AgentContext, args: dict[str, Any]) -> str:
    from ..retrieval.search import search_items

    hits = search_items(_index(ctx), args["query"], k=args["limit"], exclude=ctx.seen, only=ctx.only())
    return f"{len(hits)} match(es) for {quote(args['query'])!r}. " + ctx.put([i for i, _ in hits], "search")


def similar_items(ctx: AgentContext, args: dict[str, Any]) -> str:
    from ..retrieval import query

    given = _known_ids(ctx, args["item_ids"], what="similar_items", candidates_only=False)
    only = ctx.only()
    hood = query(
        _index(ctx),
        given,
        n=args["limit"],
        candidate_ids=only,
        exclude_user=ctx.history.user_id,
        context_k=0,
        support=False,
    )
    found = sorted((h for h in hood.candidates if only is None or h[1] > 0), key=lambda h: -h[1])[: args["limit"]]
    return f"{len(found)} item(s) like {given[:5]}. " + ctx.put([i for i, _ in found], "similar")


def filter_candidates(ctx: AgentContext, args: dict[str, Any]) -> str:
    drop = [i for i in args.get("exclude_ids", []) if i in ctx.bus]
    if args.get("exclude_seen"):
        drop += [i for i in ctx.bus.ids() if i in set(ctx.seen)]
    rule = None
    if args.get("attribute") and args.get("equals"):
        rule = Constraint(attribute=args["attribute"], op="eq", value=args["equals"])
        drop += [i for i in ctx.bus.ids() if not rule.holds(ctx.catalog.get(i))]
    if len(ctx.bus) and set(drop) >= set(ctx.bus.ids()):
        why = f" (no candidate has {rule.text()})" if rule is not None else ""
        raise ToolInputError(f"this filter would remove every candidate{why}: nothing was removed")
    gone = ctx.bus.remove(drop, rule.text() if rule is not None else "excluded")
    return f"{len(gone)} removed. Bus: {ctx.view()}"


def rank_candidates(ctx: AgentContext, args: dict[str, Any]) -> str:
    from ..config import settings_from
    from ..pipeline import run

    if not len(ctx.bus):
        raise ToolInputError("the candidate list is empty: add candidates first (search_catalog, similar_users)")
    method = args["method"]
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


def inspect_items(ctx: AgentContext, args: dict[str, Any]) -> str:
    ids = _known_ids(ctx, args["item_ids"], what="inspect_items", candidates_only=False)
    items = {i: ctx.catalog[i] for i in ids if i in ctx.catalog}
    if ctx.parts.store is not None:
        items = ctx.parts.store.enrich(items)
    lines = [f"[{i}] {render_item(items[i], max_chars=160)}" for i in ids if i in items]
    return "\n".join(lines) or "no details for these items"


def finish(ctx: AgentContext, args: dict[str, Any]) -> str:
    """Only candidates on the bus may be named (never an item of the history, nor any other catalog item)."""
    named = list(dict.fromkeys(args["item_ids"]))
    ids = [i for i in named if ctx.finishable(i)]
    if not ids:
        sample = ", ".join(ctx.bus.ids()[:3]) or "none yet: add candidates first (search_catalog, similar_users)"
        raise ToolInputError(f"none of {named[:5]} is a candidate on the bus; candidates: {sample}")
    ctx.finished = Finish(ids, str(args.get("explanation") or ""))
    ignored = [i for i in named if i not in set(ids)]
    note = f" Ignored {len(ignored)} id(s) that are not candidates: {ignored[:5]}." if ignored else ""
    return f"Finished with {len(ids)} item(s).{note}"


_TOOLS = [
    Tool(ToolSpec("user_profile", "The user's preference summary and most recent items.", _schema({})), user_profile),
    Tool(ToolSpec("similar_users", "Find users like this one and add what they took next to the candidates.",
                  _schema({"k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3}})), similar_users),
    Tool(ToolSpec("search_catalog", "Search the catalog by keywords (title, genre, keywords); adds matches.",
                  _schema({"query": {"type": "string", "maxLength": 80, "examples": ["space adventure"]},
                           "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}}, ("query",))),
         search_catalog),
    Tool(ToolSpec("similar_items", "Add items similar to the given item ids (taken after them, similar text).",
                  _schema({"item_ids": IDS, "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}},
                          ("item_ids",))), similar_items),
    Tool(ToolSpec("filter", "Remove candidates: by id, those already seen, or keep only attribute == value.",
                  _schema({"exclude_ids": IDS, "exclude_seen": {"type": "boolean"},
                           "attribute": {"type": "string", "maxLength": 40, "examples": ["genres"]},
                           "equals": {"type": "string", "maxLength": 60, "examples": ["Comedy"]}})), filter_candidates),
    Tool(ToolSpec("rank_candidates", "Rank the current candidates for this user with the model (expensive).",
                  _schema({"method": {"type": "string", "enum": ["listwise", "pointwise", "fusion"],
                                      "default": "fusion"}})), rank_candidates, expensive=True),
    Tool(ToolSpec("inspect_items", "Show the details and summaries of some items.", _schema({"item_ids": IDS},
                                                                                           ("item_ids",))),
         inspect_items),
    Tool(ToolSpec("finish", "Give the final recommendation: item ids, best first, and a short explanation.",
                  _schema({"item_ids": IDS, "explanation": {"type": "string", "maxLength": 300,
                                                            "examples": ["close to the last films watched"]}},
                          ("item_ids",))), finish),
]  # fmt: skip
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
