"""One request flowing one way: retrieval queried once, one result type, readable reasons, summaries that persist.

The scripted FakeBackend stands in for the model: these tests prove msrkit's
own logic, not that any model works (tests/test_backends_real.py does that).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import msrkit.retrieval.neighbourhood as neighbourhood
from msrkit.backends.base import ChatRequest
from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.inputs.io import Interaction
from msrkit.recommender import Recommender, Stages
from msrkit.retrieval import CollaborativeIndex, build

GENRES = {"a": "Comedy", "b": "Comedy|Drama", "c": "Drama", "d": "Sci-Fi", "e": "Sci-Fi|Action", "f": "Comedy"}
CATALOG = {i: Item(item_id=i, title=f"Movie {i.upper()}", attributes={"genres": g}) for i, g in GENRES.items()}
# users who watched a then b then c, or d then e: what comes next is learnable
ROWS = [Interaction(f"u{n}", item, float(t)) for n in range(6) for t, item in enumerate("abc" if n < 4 else "def")]
ROWS += [Interaction("u9", "a", 0.0), Interaction("u9", "f", 1.0)]


def index() -> CollaborativeIndex:
    return build(ROWS, catalog=CATALOG)


def history(candidates: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"user_id": "new", "history": ["a", "b"]}
    if candidates:
        out["candidates"] = ["c", "d", "f"]
    return out


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the similar-user searches (BM25 top-k over user documents)."""
    calls: list[int] = []
    real = neighbourhood.top_docs

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(neighbourhood, "top_docs", counted)
    return calls


@pytest.mark.parametrize("given", [True, False], ids=["given candidates", "generated candidates"])
def test_a_request_queries_the_index_once(searches: list[int], given: bool) -> None:
    with Recommender("none", catalog=CATALOG, index=index(), cache=False) as rec:
        ranking = rec.rank(history(candidates=given))
    assert len(searches) == 1
    assert ranking.ranking and ranking.diagnostics["similar_users"]  # the one search served everything


def test_an_llm_request_also_queries_the_index_once(searches: list[int]) -> None:
    with Recommender(FakeBackend(), catalog=CATALOG, index=index(), cache=False, retries=0) as rec:
        ranking = rec.rank(history())
    assert len(searches) == 1 and ranking.collaborative_context


def _is_sentence(text: str) -> bool:
    return text[:1].isupper() and text.rstrip().endswith(".") and not re.search(r"(LLM|retrieval) #\d", text)


def test_reasons_are_sentences_grounded_in_the_history_and_similar_users() -> None:
    with Recommender("none", catalog=CATALOG, index=index(), cache=False) as rec:
        ranking = rec.rank(history())
    by_id = {r.item_id: r.reason for r in ranking.ranking}
    assert all(_is_sentence(r) for r in by_id.values()), by_id
    assert ranking.ranking[0].item_id == "c"  # everyone who took a then b took c
    assert by_id["c"].startswith("Other users often took it soon after “Movie B” (4 users)")  # u0..u3: a, b, c
    assert "4 of the 5 users most like this one took it after an item they share." in by_id["c"]
    assert "Shares comedy with “Movie B” and “Movie A”." in by_id["f"]  # genres the history shares
    assert "1 other user took it soon after “Movie A”." in by_id["f"]  # u9 alone: a, f (not "often")
    assert by_id["d"].startswith("Its title shares “Movie”")  # its title words are all X has on d
    ranks = ranking.diagnostics["ranks"]  # ranks are diagnostics, not reasons
    assert ranks["c"]["retrieval"] == 1 and set(ranks) == {"c", "d", "f"}


def test_the_model_reason_for_its_top_items_is_quoted_and_costs_no_extra_call() -> None:
    fake = FakeBackend(default=None).enqueue("[3] > [1] > [2]\n[3] because it is a comedy like Movie A\n[1] tense")
    rec = Recommender(fake, catalog=CATALOG, cache=False, retries=0, fusion_weight=1.0,
                      stages=Stages(item_summaries=False, preference_summary=False, collaborative=False))  # fmt: skip
    ranking = rec.rank(history())
    assert fake.calls == 1 and "your first 3 items" in fake.requests[0].messages[-1].text_content
    top = ranking.ranking[0]
    assert top.item_id == "f" and top.reason.endswith("The model: because it is a comedy like Movie A.")
    assert all(_is_sentence(r.reason) for r in ranking.ranking)
    assert not any("The model" in r.reason for r in ranking.ranking[1:])  # "[1] tense": one word is no reason
    rec.close()


def test_reasons_off_sends_the_plain_ranking_prompt() -> None:
    fake = FakeBackend()
    rank_only = Stages(item_summaries=False, preference_summary=False, collaborative=False)
    with Recommender(fake, catalog=CATALOG, cache=False, retries=0, explain=False, stages=rank_only) as rec:
        rec.rank(history())
    assert "reason" not in fake.requests[0].messages[-1].text_content


def _keywords_by_title(request: ChatRequest) -> str:
    text = request.messages[-1].text_content
    if request.tag.startswith("item_keywords_batch"):
        found = re.findall(r"^\[(\d+)\] Movie ([A-F])", text, flags=re.M)
        return "{" + ", ".join(f'"{n}": ["kw-{t.lower()}", "film"]' for n, t in found) + "}"
    if request.tag.startswith("item_keywords"):
        title = re.search(r"Movie ([A-F])", text)
        return f"kw-{title.group(1).lower()}, film" if title else "film"
    numbers = re.findall(r"^\[(\d+)\]", text, flags=re.M)
    return " > ".join(f"[{n}]" for n in numbers) or "a summary"


def test_item_summaries_persist_in_the_store_and_reach_another_users_context(tmp_path: Path) -> None:
    stages = Stages(preference_summary=False)
    first = FakeBackend(default=_keywords_by_title)
    with Recommender(first, catalog=CATALOG, index=index(), cache=tmp_path, retries=0, stages=stages) as rec:
        before = rec.rank({"user_id": "x", "history": ["d"], "candidates": ["a", "b"]})
    assert before.collaborative_context == ["Movie E"]  # e was never summarized: its title
    assert (tmp_path / "catalog.sqlite3").is_file()
    # a new Recommender (a new process, say) over the same cache folder: the summaries made above are there
    second = FakeBackend(default=_keywords_by_title)
    with Recommender(second, catalog=CATALOG, index=index(), cache=tmp_path, retries=0, stages=stages) as rec:
        ranking = rec.rank({"user_id": "y", "history": ["a"], "candidates": ["e", "f"]})
    assert "kw-b, film" in ranking.collaborative_context  # b was summarized for user x
    summarized = [r.messages[-1].text_content for r in second.requests if r.tag.startswith("item_keywords")]
    asked = sorted(t for s in summarized for t in re.findall(r"Movie ([A-F])", s))
    assert asked == ["E", "F"] and len(summarized) == 1  # e, f asked in one batch; a read from the store


def test_the_store_ignores_a_summary_of_an_item_that_changed(tmp_path: Path) -> None:
    fake = FakeBackend(default=_keywords_by_title)
    stages = Stages(preference_summary=False, collaborative=False)
    with Recommender(fake, cache=False, store=None, retries=0, stages=stages) as rec:
        assert rec.store is None  # nothing persists without a cache folder
    from msrkit.summaries.store import CatalogStore

    store = CatalogStore(tmp_path / "s.sqlite3")
    item = CATALOG["a"].model_copy(update={"keywords": ["old"]})
    store.put(item, tag="t")
    assert store.get(CATALOG["a"], tag="t") is not None
    assert store.get(CATALOG["a"].model_copy(update={"title": "Renamed"}), tag="t") is None
    assert store.get(CATALOG["a"], tag="other") is None and store.get(CATALOG["a"]) is not None
    enriched = store.enrich({"a": CATALOG["a"], "b": CATALOG["b"]})
    assert enriched["a"].keywords == ["old"] and enriched["b"].keywords is None
    store.close()
