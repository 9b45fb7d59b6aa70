"""Candidate evidence notes (setting ``candidate_evidence``): retrieval's score of each candidate as a word.

The levels are the score's place in the list's range; the pipeline puts them in the
listwise and the yes/no prompts, in the order the candidates are shown, and nowhere
when the setting is off.
"""

from __future__ import annotations

import re

from msrkit import Recommender
from msrkit.backends.fake import FakeBackend
from msrkit.config import Settings
from msrkit.data import History, Item
from msrkit.inputs.io import Interaction, resolve
from msrkit.ranking.prompting import evidence_notes
from msrkit.retrieval import CollaborativeIndex, build, query

SETTINGS = Settings(item_summaries=False, preference_summary=False, explain=False, n_candidates=6, cache=False)


def test_levels_are_the_scores_place_in_the_lists_range() -> None:
    assert evidence_notes([0.0, 0.3, 0.5, 0.7, 0.9, 1.0]) == [
        "evidence: weak", "evidence: weak", "evidence: some", "evidence: strong", "evidence: strong", "evidence: top",
    ]  # fmt: skip
    # the same on any scale, and equal scores are all strong
    assert evidence_notes([10.0, 13.0, 15.0, 17.0, 20.0]) == evidence_notes([0.0, 0.3, 0.5, 0.7, 1.0])
    assert evidence_notes([2.0, 2.0, 1.0]) == ["evidence: top", "evidence: top", "evidence: weak"]
    assert evidence_notes([]) == []


def _world() -> tuple[dict[str, Item], CollaborativeIndex, History]:
    catalog = {str(i): Item(item_id=str(i), title=f"Film {i}") for i in range(12)}
    rows = [
        Interaction(user_id=f"u{u}", item_id=str((u + k) % 12), timestamp=float(k)) for u in range(10) for k in range(6)
    ]
    index = build(rows, catalog=catalog)
    return catalog, index, History(user_id="new", history=["0", "1", "2"])


def _candidate_lines(text: str) -> list[str]:
    return re.findall(r"^\[\d+\] (.*)$", text, flags=re.M)


def test_the_listwise_prompt_carries_each_candidates_level_in_the_order_shown() -> None:
    catalog, index, history = _world()
    hood = query(index, ["0", "1", "2"], n=6, exclude_user="new", context_k=0, support=False)
    shown = [i for i, _ in hood.candidates][::-1]  # shown worst first: the notes follow the items
    want = dict(zip([i for i, _ in hood.candidates][::-1], evidence_notes(hood.scores()[::-1]), strict=True))
    fake = FakeBackend()
    settings = SETTINGS.model_copy(update={"candidate_evidence": True, "shown_order": "given"})
    case = resolve(history.model_copy(update={"candidates": shown}), catalog)
    with Recommender(fake, settings=settings, catalog=catalog, index=index, cache=False) as rec:
        rec.rank(case)
    lines = _candidate_lines(fake.requests[-1].messages[-1].text_content)
    assert [line.split(" | ")[0] for line in lines] == [f"Film {i}" for i in shown]
    assert [line.split(" | ")[-1] for line in lines] == [want[i] for i in shown]
    assert lines[-1].endswith("evidence: top")  # retrieval's best, shown last


def test_no_notes_when_off_and_in_the_yes_no_prompt_when_on() -> None:
    catalog, index, history = _world()
    for evidence, pointwise in ((False, False), (True, True)):
        fake = FakeBackend()
        settings = SETTINGS.model_copy(update={"candidate_evidence": evidence, "pointwise": pointwise})
        with Recommender(fake, settings=settings, catalog=catalog, index=index, cache=False) as rec:
            rec.rank(resolve(history, catalog))
        texts = [r.messages[-1].text_content for r in fake.requests]
        assert texts and all(("evidence: " in t) == evidence for t in texts)
