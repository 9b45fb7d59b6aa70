"""One request through the stages, data flowing one way.

::

    history ──> retrieval.query ──> Neighbourhood (candidates + scores, similar users, next items)   [once]
            ──> ItemSummarizer ──> keywords, image descriptions   [catalog store: made once per item]
            ──> PreferenceSummarizer ──> preference summary        [cached per prefix]
            ──> ListwiseReranker | PointwiseScorer ──> Scored ──> fuse(with retrieval's Scored)
            ──> reasons ──> Ranking

Each stage returns one typed result that the next reads; nothing is computed
twice per request and an order stays an order (:class:`~msrkit.ranking.Scored`).
:class:`~msrkit.recommender.Recommender` holds the :class:`Parts` and calls :func:`run`.

Once the request's deadline (:mod:`msrkit.runtime.deadline`) has passed, the LLM
stages that remain are skipped with a warning naming it, and the ranking falls
back to retrieval (or the given) order, ``degraded_by="deadline"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend
from ..config import Settings
from ..data import History, Item, RankedItem, Ranking, failure_of
from ..errors import BackendError, InputError
from ..ranking.fusion import fuse
from ..ranking.prompting import evidence_notes
from ..ranking.reasons import explain
from ..ranking.result import Scored
from ..ranking.scale import unit_scores
from ..summaries.items import unseen_images
from .deadline import MIN_CALL_SECONDS, current
from .meter import Meter
from .prompts import PromptSet, render_item

if TYPE_CHECKING:
    from ..retrieval import CollaborativeIndex, Neighbourhood
    from ..summaries.store import CatalogStore

__all__ = ["Parts", "preference", "recent_items_text", "run"]


@dataclass(frozen=True)
class Parts:
    """What a request reads: the settings, the model(s), the prompts, the catalog, the index, the store."""

    settings: Settings
    backend: Backend | None
    vision_backend: Backend | None
    prompts: PromptSet
    catalog: dict[str, Item]
    index: CollaborativeIndex | None
    store: CatalogStore | None


def run(parts: Parts, history: History, meter: Meter, backend: Backend | None) -> Ranking:
    """Rank one resolved history; ``backend`` is the model to call (``None``: retrieval only)."""
    hood = _neighbourhood(parts, history)
    candidates = _candidates(parts, history, hood)
    retrieval = Scored(hood.order, hood.scores(), "retrieval") if hood is not None else None
    if backend is None or (retrieval is not None and parts.settings.effective_fusion_weight == 0):
        verdict = retrieval or Scored.from_order(range(len(candidates)), "given")
        return _result(parts, history, candidates, verdict, (None, retrieval), meter, hood=hood, summary=None,
                       context=[])  # fmt: skip
    _warn_unseen_images(parts, backend, [*history.items(), *candidates], meter)
    items, candidates = _summaries(parts, backend, history, candidates, meter)
    summary = preference(parts, backend, items, meter)
    context = _context(parts, hood)
    llm = _score(parts, backend, candidates, summary, context, retrieval, meter)
    verdict = fuse(llm, retrieval, weight=parts.settings.effective_fusion_weight)
    return _result(parts, history, candidates, verdict, (llm, retrieval), meter, hood=hood, summary=summary,
                   context=context)  # fmt: skip


def _neighbourhood(parts: Parts, history: History) -> Neighbourhood | None:
    s = parts.settings
    if parts.index is None:
        if history.candidates is None:
            raise InputError(
                "no 'candidates': give them, or pass a catalog and interactions (or an index) to generate them",
                path="candidates",
            )
        return None
    from ..retrieval import query

    given = [c.item_id for c in history.candidate_items()] if history.candidates is not None else None
    return query(
        parts.index, [e.item_id for e in history.items()], candidate_ids=given, n=s.n_candidates,
        exclude_seen=s.repeats == "exclude", exclude_user=history.user_id,
        context_k=s.collaborative_k if s.collaborative else 0,
    )  # fmt: skip


def _candidates(parts: Parts, history: History, hood: Neighbourhood | None) -> list[Item]:
    if history.candidates is not None:
        return history.candidate_items()
    assert hood is not None
    return [parts.catalog.get(i) or Item(item_id=i) for i, _ in hood.candidates]


def _warn_unseen_images(parts: Parts, backend: Backend, items: Sequence[Item], meter: Meter) -> None:
    """Say once, whatever the catalog store already holds, when the request's images go unseen."""
    if any(i.image for i in items):
        s = parts.settings
        unseen = unseen_images(backend, vision_backend=parts.vision_backend, item_summaries=s.item_summaries)
        if unseen is not None:
            meter.warn(unseen)


def _summaries(
    parts: Parts, backend: Backend, history: History, candidates: list[Item], meter: Meter
) -> tuple[list[Item], list[Item]]:
    items = history.items()
    s = parts.settings
    if not s.item_summaries or _out_of_time(meter, "item summaries"):
        return list(items), candidates
    from ..summaries import ItemSummarizer

    summarizer = ItemSummarizer.from_settings(s, backend, prompts=parts.prompts, vision_backend=parts.vision_backend,
                                              store=parts.store)  # fmt: skip
    # only the items the preference text will read: older ones would cost calls for nothing
    start = _first_read(s, len(items))
    recent = items[start:]
    # one summarize over both, so history and candidates share batches
    done = summarizer.summarize([*recent, *candidates], meter=meter, base_dir=history.base_dir)
    return [*items[:start], *done[: len(recent)]], done[len(recent) :]


def _first_read(s: Settings, n: int) -> int:
    """The first of ``n`` history items the preference text reads."""
    if s.preference_mode == "single" or not s.preference_summary:
        return max(0, n - min(RECENT_ITEMS, s.max_history))
    from ..summaries import blocks

    spans = blocks(n, block_size=s.block_size, max_items=s.max_history)
    return spans[0][0] if spans else n


def preference(parts: Parts, backend: Backend, items: Sequence[Item], meter: Meter) -> str:
    """The preference summary of ``items`` (oldest first), or the recent items themselves.

    The recent items (with their keywords where summarized) stand in for the summary
    when that stage is off, and in ``preference_mode="single"``, where the ranking
    prompt reads them in the same call (MMSRARec's one call per recommendation).
    """
    s = parts.settings
    if not s.preference_summary or s.preference_mode == "single":
        return recent_items_text(items[-min(RECENT_ITEMS, s.max_history) :])
    if _out_of_time(meter, "the preference summary"):
        return ""
    from ..summaries import PreferenceSummarizer

    summarizer = PreferenceSummarizer(backend, prompts=parts.prompts, block_size=s.block_size, max_items=s.max_history)
    try:
        return summarizer.summarize(items, meter=meter)
    except BackendError as exc:
        if s.strict:
            raise
        meter.warn(f"preference summary failed, ranking without it: {exc}")
        return ""


def _out_of_time(meter: Meter, stage: str) -> bool:
    """Whether the request's deadline leaves no time for ``stage`` (then say so, once per stage)."""
    deadline = current()
    if deadline.left() >= MIN_CALL_SECONDS:
        return False
    meter.warn(f"{deadline.reason()}: {stage} skipped")
    return True


#: History items the preference text shows when it is the items themselves (no recurrent summary).
RECENT_ITEMS = 10


def recent_items_text(items: Sequence[Item]) -> str:
    """The preference text when the summary stage is off: the last ten items, as the prompts render them.

    It opens with its own words, so an item's text never begins a line of the ranking prompt
    (a title such as ``[1] > [2]`` would read like a candidate's label there)."""
    recent = items[-RECENT_ITEMS:]
    return "Recent items, oldest first: " + "; ".join(render_item(i, max_chars=80) for i in recent) if recent else ""


def _context(parts: Parts, hood: Neighbourhood | None) -> list[str]:
    """What similar users took next, as keywords where those items were ever summarized (the store)."""
    if hood is None or not parts.settings.collaborative:
        return []
    catalog = {i: parts.catalog[i] for _, i in hood.next_items if i in parts.catalog}
    if parts.store is not None:
        catalog = parts.store.enrich(catalog)
    return hood.context(catalog, parts.index)


def _score(
    parts: Parts,
    backend: Backend,
    candidates: list[Item],
    summary: str,
    context: list[str],
    retrieval: Scored | None,
    meter: Meter,
) -> Scored:
    s = parts.settings
    preference = summary or "(no summary available)"
    # the evidence notes: retrieval's score of each candidate, as a level within the list
    notes = evidence_notes(retrieval.scores) if s.candidate_evidence and retrieval is not None else None
    start = retrieval.order if retrieval is not None else list(range(len(candidates)))
    if _out_of_time(meter, "the LLM ranking"):
        return Scored.from_order(start, "listwise", degraded=True, failure="deadline")
    if s.pointwise:
        from ..ranking import PointwiseScorer

        scorer = PointwiseScorer(backend, prompts=parts.prompts)
        try:
            return scorer.score(candidates, preference=preference, meter=meter, notes=notes)
        except BackendError as exc:
            if s.strict:
                raise
            meter.warn(f"LLM scoring failed, falling back to retrieval order: {exc}")
            return Scored.from_order(start, "pointwise", degraded=True, failure=failure_of(exc))
    from ..ranking import ListwiseReranker

    reranker = ListwiseReranker(
        backend, prompts=parts.prompts, window=s.window, stride=s.effective_stride, passes=s.passes,
        seed=s.seed, strict=s.strict, reasons=s.explain_top_k if s.explain else 0,
    )  # fmt: skip
    retrieval_scores = retrieval.scores if retrieval is not None and s.shown_order == "retrieval" else None
    return reranker.rank(candidates, preference=preference, collaborative=context,
                         retrieval_scores=retrieval_scores, meter=meter, notes=notes)  # fmt: skip


def _result(
    parts: Parts,
    history: History,
    candidates: list[Item],
    verdict: Scored,
    scorers: tuple[Scored | None, Scored | None],
    meter: Meter,
    *,
    hood: Neighbourhood | None,
    summary: str | None,
    context: list[str],
) -> Ranking:
    s = parts.settings
    llm = scorers[0]
    ranked_by = {"given": "the given order", "retrieval": "retrieval"}.get(verdict.method, "the model")
    reasons = explain(
        candidates, history.items(), support=hood.support if hood else {},
        model=llm.reasons if llm is not None and not verdict.degraded else {}, ranked_by=ranked_by,
    )  # fmt: skip
    scores, score_kind = unit_scores(verdict)
    ranked = [
        RankedItem(
            item_id=candidates[i].item_id,
            rank=pos + 1,
            score=round(scores[i], 6),
            reason=reasons[i],
            title=candidates[i].title,
        )  # fmt: skip
        for pos, i in enumerate(verdict.order)
    ]
    return Ranking(
        user_id=history.user_id,
        ranking=ranked,
        preference_summary=summary,
        degraded=verdict.degraded,
        degraded_by=llm.failure if llm is not None else None,
        score_kind=score_kind,
        warnings=list(meter.warnings),
        usage=meter.finish(),
        backend="none" if parts.backend is None else f"{parts.backend.name}/{parts.backend.model}",
        prompts=parts.prompts.tags() if parts.backend is not None else {},
        collaborative_context=context,
        diagnostics=_diagnostics(s, candidates, verdict, scorers, hood),
    )


def _diagnostics(
    s: Settings,
    candidates: list[Item],
    verdict: Scored,
    scorers: tuple[Scored | None, Scored | None],
    hood: Neighbourhood | None,
) -> dict[str, Any]:
    llm, retrieval = scorers
    ran = llm is not None  # the summaries and the collaborative context only run for an LLM stage
    stages = {"llm": ran, "item_summaries": ran and s.item_summaries,
              "preference_summary": ran and s.preference_summary, "collaborative": ran and s.collaborative,
              "retrieval": retrieval is not None}  # fmt: skip
    out: dict[str, Any] = {**(llm.diagnostics if llm else {}), "fusion_weight": s.effective_fusion_weight,
                           "stages": stages}  # fmt: skip
    out["method"] = verdict.method
    ranks: dict[str, dict[str, int]] = {c.item_id: {} for c in candidates}
    raw: dict[str, dict[str, float]] = {c.item_id: {} for c in candidates}
    for name, scored in (("llm", llm), ("retrieval", retrieval)):
        if scored is not None:
            for i, r in enumerate(scored.ranks()):
                ranks[candidates[i].item_id][name] = r
                raw[candidates[i].item_id][name] = round(scored.scores[i], 6)
    out["ranks"] = ranks
    out["scores"] = raw  # each stage's own numbers (Borda points, p(yes), retrieval blend), unscaled
    if hood is not None:
        out["similar_users"] = [u for u, _ in hood.similar_users[: s.collaborative_k]]
        out["neighbours"] = len(hood.similar_users)  # the users searched, whose counts the reasons give
        out["support"] = {k: dict(vars(v)) for k, v in hood.support.items()}  # dataclasses.asdict: 10x slower
    return out
