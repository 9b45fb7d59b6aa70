"""Keyword quality: brevity and information kept (hand-computed), reconstruction logic (scripted fake backend)."""

from __future__ import annotations

import math
import re

import pytest

from msrkit.backends.base import ChatRequest
from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.errors import BackendTransientError
from msrkit.evaluation import keyword_quality, reconstruction_accuracy
from msrkit.evaluation.keywords import RECONSTRUCTION_TAG, build_idf, parse_choice, tokens

SHOES = Item(item_id="s1", title="Red Running Shoes", description="Light shoes for running on trails.")


def test_tokens_drop_stopwords_and_plural_s() -> None:
    assert tokens("Light shoes for running on trails.") == ["light", "shoe", "running", "trail"]
    assert tokens("glass") == ["glass"]  # -ss is not a plural


def test_keyword_quality_by_hand() -> None:
    q = keyword_quality(SHOES, ["running shoes", "red"])
    # text tokens: red, running, shoe | light, shoe, running, trail -> counts red 1, running 2, shoe 2, light 1, trail 1
    # keyword tokens: running, shoe, red (1 each)
    # cosine = (1*2 + 1*2 + 1*1) / (sqrt(3) * sqrt(1 + 4 + 4 + 1 + 1)) = 5 / sqrt(33)
    assert q.similarity == pytest.approx(5 / math.sqrt(33))
    assert q.coverage == pytest.approx(3 / 5)  # 3 of the 5 distinct text words kept
    assert q.grounded == 1.0  # both keywords share a word with the text
    assert q.count == 2 and q.brevity == 1.0  # within the budget of 5
    # reward: mean of brevity and similarity, then with a reconstruction accuracy of 0.5
    assert q.reward() == pytest.approx((1 + 5 / math.sqrt(33)) / 2)
    assert q.reward(reconstruction=0.5) == pytest.approx((1 + 5 / math.sqrt(33) + 0.5) / 3)


def test_brevity_and_grounding_penalties() -> None:
    many = keyword_quality(SHOES, ["red", "running", "shoe", "light", "trail", "sport", "fast", "comfy", "nylon", "x"])
    assert many.count == 10 and many.brevity == 0.5  # budget 5 / 10 keywords
    made_up = keyword_quality(SHOES, ["red", "zebra"])
    assert made_up.grounded == 0.5  # zebra appears nowhere in the text
    assert keyword_quality(SHOES, []).brevity == 0.0 and keyword_quality(SHOES, []).similarity == 0.0
    assert keyword_quality(SHOES.model_copy(update={"keywords": ["red"]})).count == 1  # item.keywords by default


def test_idf_weights_rare_words() -> None:
    idf = build_idf(["red shoe", "blue shoe"])
    # N = 2: red df 1 -> ln(3/2) + 1; shoe df 2 -> ln(3/3) + 1 = 1
    assert idf["red"] == pytest.approx(math.log(1.5) + 1) and idf["shoe"] == 1.0
    item = Item(item_id="x", title="red shoe")
    w = math.log(1.5) + 1
    # cosine of [red] with [red, shoe]: w*w / (w * sqrt(w*w + 1)) = w / sqrt(w*w + 1)
    assert keyword_quality(item, ["red"], idf=idf).similarity == pytest.approx(w / math.sqrt(w * w + 1))
    assert keyword_quality(item, ["red"]).similarity == pytest.approx(1 / math.sqrt(2))  # plain TF cosine


def test_parse_choice() -> None:
    assert parse_choice("[3]", 5) == 3
    assert parse_choice("<think>maybe 9</think> Item 2.", 5) == 2
    assert parse_choice("none", 5) is None
    assert parse_choice("7", 5) is None


CATALOG = [
    Item(item_id="s1", title="Red Running Shoes", keywords=["running", "shoes"]),
    Item(item_id="m1", title="Blue Coffee Mug", keywords=["coffee", "mug"]),
    Item(item_id="b1", title="Garden Hose", keywords=["garden"]),
    Item(item_id="t1", title="Desk Lamp"),  # no keywords: only a distractor
]


def _reader(request: ChatRequest) -> str:
    """A scripted 'model' that picks the option whose title contains the first keyword."""
    text = request.messages[-1].text_content
    first = re.search(r"<<<(\w+)", text).group(1)  # type: ignore[union-attr]
    for number, line in re.findall(r"^\[(\d+)\] (.*)$", text, flags=re.M):
        if first.lower() in line.lower():
            return f"[{number}]"
    return "no idea"


def test_reconstruction_accuracy_counts_right_picks() -> None:
    fake = FakeBackend(default=_reader)
    result = reconstruction_accuracy(CATALOG, fake, distractors=2, seed=0)
    # "running" and "coffee" occur in their titles; "garden" too: all three picked right
    assert (result.trials, result.correct, result.accuracy) == (3, 3, 1.0)
    assert result.usage.llm_calls == 3
    sent = fake.requests[0]
    assert sent.tag == RECONSTRUCTION_TAG
    options = re.findall(r"^\[\d+\] (.*)$", sent.messages[-1].text_content, flags=re.M)
    assert len(options) == 3  # the item and 2 distractors
    assert not any("keywords:" in line for line in options)  # options never show their own keywords


def test_reconstruction_wrong_unparsed_and_failed_answers() -> None:
    fake = FakeBackend(default=None).enqueue("no idea", BackendTransientError("down", backend="fake"), "[1]")
    keywords = {"s1": ["zzz"], "m1": ["mug"], "b1": ["hose"]}
    result = reconstruction_accuracy(CATALOG, fake, keywords=keywords, distractors=1, seed=3)
    assert result.errors == 1 and result.trials == 2  # the failed call is not a trial
    assert result.per_item["s1"] is False  # unparseable answer counts as wrong
    assert result.correct == int(result.per_item["b1"])


def test_reconstruction_is_deterministic_for_a_seed() -> None:
    a, b = FakeBackend(), FakeBackend()
    reconstruction_accuracy(CATALOG, a, seed=5)
    reconstruction_accuracy(CATALOG, b, seed=5)
    assert [r.messages for r in a.requests] == [r.messages for r in b.requests]


def test_evaluate_keyword_prompts_compares_variants_and_reuses_nothing_wrongly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from msrkit.backends.fake import FakeBackend
    from msrkit.evaluation.keywords import evaluate_keyword_prompts
    from msrkit.runtime.prompts import PromptSet

    variant = tmp_path / "short"
    variant.mkdir()
    (variant / "item_keywords.toml").write_text(
        'id = "item_keywords"\nversion = 2\nuser = "Two keywords for: $item (at most $max_keywords)"\n'
    )

    def answer(request):  # type: ignore[no-untyped-def]
        text = request.messages[-1].text_content
        if text.startswith("Two keywords"):
            return "space, robots"
        if "Which item" in text:
            return "[1]"
        return "space, robots, comedy, drama, love, war, music"

    items = [Item(item_id=f"i{n}", title=f"Space robots {n}", attributes={"genres": ["Comedy"]}) for n in range(4)]
    fake = FakeBackend(default=answer)
    scores = evaluate_keyword_prompts(items, fake, {"shipped": PromptSet.load(), "short": PromptSet.load(variant)})
    assert scores["short"]["keywords"] == 2 and scores["shipped"]["keywords"] > 5
    assert scores["short"]["brevity"] == 1.0 > scores["shipped"]["brevity"]
    assert scores["short"]["grounded"] == 1.0  # both keywords appear in the titles
    assert 0.0 <= scores["shipped"]["reconstruction"] <= 1.0
    assert scores["short"]["llm_calls"] == 4 + 4  # 4 summaries + 4 reconstruction questions
