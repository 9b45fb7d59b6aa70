"""Reasons that tell the truth: every count a reason gives is the one in ``diagnostics``.

A synthetic world of random sequences (a few items followed by a shared next item, so
transitions and similar users both have something to say) is ranked with ``--backend none``;
each reason is parsed back and its numbers compared with ``diagnostics["support"]``, and the
"often" threshold, the naming of title-less items and the ``stages`` record are checked.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from msrkit.data import Item
from msrkit.inputs.io import Interaction
from msrkit.ranking.reasons import NO_SIGNAL, OFTEN
from msrkit.recommender import Recommender
from msrkit.retrieval import CollaborativeIndex, build

N_ITEMS = 40


def world(*, titles: bool, seed: int = 0) -> tuple[CollaborativeIndex, dict[str, Item]]:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(120):
        seq = rng.choice(N_ITEMS, size=int(rng.integers(3, 9)), replace=False)
        rows += [Interaction(f"u{u}", f"{i}", float(t)) for t, i in enumerate(seq.tolist())]
    names = ["Red", "Blue", "Green", "Dark", "Light"]
    catalog = {f"{i}": Item(item_id=f"{i}", title=f"{names[i % 5]} Quest {i}" if titles else None)
               for i in range(N_ITEMS)}  # fmt: skip
    return build(rows, catalog=catalog), catalog


FOLLOW = re.compile(r"(?:“([^”]+)”|item (\S+?)) \((\d+) users\)")
FEW = re.compile(r"(\d+) other users? took it soon after (?:“([^”]+)”|item (\S+?))\.")
SIMILAR = re.compile(r"(\d+) of the (\d+) users most like this one took it (after|before) an item they share\.")


def _claims(reason: str) -> tuple[dict[str, int], dict[str, int]]:
    """What a reason says: {history name: users} for each cited follow, {after/before: count, of: neighbours}."""
    follows: dict[str, int] = {}
    often = re.search(r"Other users often took it soon after (.*?)\.(?: |$)", reason)
    if often:
        follows.update({t or i: int(n) for t, i, n in FOLLOW.findall(often.group(1))})
    follows.update({t or i: int(n) for n, t, i in FEW.findall(reason)})
    similar: dict[str, int] = {}
    for count, of, where in SIMILAR.findall(reason):
        similar[where], similar["of"] = int(count), int(of)
    return follows, similar


@pytest.mark.parametrize("titles", [True, False], ids=["titled", "ids only"])
def test_every_count_in_a_reason_is_the_one_in_the_diagnostics(titles: bool) -> None:
    idx, catalog = world(titles=titles)
    checked = 0
    with Recommender("none", catalog=catalog, index=idx, cache=False, n_candidates=15) as rec:
        for u in range(0, 120, 7):
            seq = [idx.item_ids[i] for i in idx.seq_items[idx.seq_ptr[u] : idx.seq_ptr[u + 1]].tolist()]
            ranking = rec.rank({"user_id": f"new{u}", "history": seq})
            diag = ranking.diagnostics
            for r in ranking.ranking:
                follows, similar = _claims(r.reason)
                sup = diag["support"].get(r.item_id)
                if sup is None:
                    assert not follows and not similar, r.reason
                    continue
                named = {(catalog[i].title or i): n for i, n in zip(sup["follows"], sup["follow_users"], strict=True)}
                assert follows and all(named[k] == n for k, n in follows.items()) or not sup["follows"], r.reason
                assert similar.get("after", 0) == sup["similar_users"], r.reason
                assert similar.get("before", 0) == sup["similar_before"], r.reason
                if similar:
                    assert similar["of"] == sup["neighbours"] == diag["neighbours"]
                checked += bool(follows or similar)
    assert checked > 50  # the world gives most candidates evidence to check


def test_often_needs_three_distinct_users_and_counts_exclude_the_user_themself() -> None:
    rows = [Interaction(f"u{n}", i, float(t)) for n in range(OFTEN) for t, i in enumerate("ab")]
    rows += [Interaction("w", i, float(t)) for t, i in enumerate("ac")]
    rows += [Interaction("me", i, float(t)) for t, i in enumerate("ac")]
    catalog = {i: Item(item_id=i) for i in "abc"}  # no titles
    idx = build(rows, catalog=catalog)
    with Recommender("none", catalog=catalog, index=idx, cache=False) as rec:
        ranking = rec.rank({"user_id": "me", "history": ["a"], "candidates": ["b", "c"]})
    reason = {r.item_id: r.reason for r in ranking.ranking}
    assert f"Other users often took it soon after item a ({OFTEN} users)." in reason["b"]
    assert "1 other user took it soon after item a." in reason["c"]  # w only: "me" is not another user
    assert "often" not in reason["c"] and "“" not in reason["b"] + reason["c"]  # ids are never quoted as titles
    assert list(ranking.diagnostics["support"]["c"]["follow_users"]) == [1]


def test_under_backend_none_no_llm_stage_is_reported_as_run() -> None:
    idx, catalog = world(titles=True)
    with Recommender("none", catalog=catalog, index=idx, cache=False) as rec:
        stages = rec.rank({"user_id": "x", "history": ["1", "2"]}).diagnostics["stages"]
    assert stages == {"llm": False, "item_summaries": False, "preference_summary": False, "collaborative": False,
                      "retrieval": True}  # fmt: skip


def test_a_repeat_says_so_and_is_not_its_own_evidence() -> None:
    idx, catalog = world(titles=True)
    with Recommender("none", catalog=catalog, index=idx, cache=False, repeats="allow") as rec:
        ranking = rec.rank({"user_id": "x", "history": ["5", "7", "5"], "candidates": ["5", "8"]})
    reason = {r.item_id: r.reason for r in ranking.ranking}
    assert reason["5"].startswith("You took it before (2 times).")
    assert "with “Red Quest 5”" not in reason["5"]  # its own title is no evidence for itself


def test_a_title_word_the_candidate_shares_is_named() -> None:
    idx, catalog = world(titles=True)
    catalog["90"] = Item(item_id="90", title="Zelda: Tears of the Kingdom")
    catalog["91"] = Item(item_id="91", title="The Legend of Zelda")
    with Recommender("none", catalog=catalog, index=idx, cache=False) as rec:
        ranking = rec.rank({"user_id": "x", "history": ["91"], "candidates": ["90", "3"]})
    reason = {r.item_id: r.reason for r in ranking.ranking}
    assert reason["90"] == "Its title shares “Zelda” with “The Legend of Zelda”."
    assert reason["3"].startswith(NO_SIGNAL)


def test_when_the_model_gives_nothing_no_reason_says_the_model_placed_it() -> None:
    """Given candidates, no retrieval, every call failing: the list stays as given and its reasons say so."""
    from msrkit.backends.fake import FakeBackend

    names = (("a", "Alpha"), ("b", "Bravo"), ("c", "Charlie"), ("d", "Delta"))
    catalog = {i: Item(item_id=i, title=t) for i, t in names}
    with Recommender(FakeBackend(default=None), catalog=catalog, cache=False, item_summaries=False,
                     preference_summary=False, retries=0) as rec:  # fmt: skip
        ranking = rec.rank({"user_id": "x", "history": ["a"], "candidates": ["b", "c", "d"]})
    assert ranking.degraded and ranking.diagnostics["method"] == "given"
    assert [r.item_id for r in ranking.ranking] == ["b", "c", "d"]
    reasons = [r.reason for r in ranking.ranking]
    assert all("model" not in r for r in reasons) and reasons[0].endswith("placed by the given order.")
