"""Keywords tuned by their reward: best-of-N sampling, its training examples, and finetune_keywords on CPU.

The fake backend scripts answers to test msrkit's own logic (which sample wins, what is sent);
the slow test trains a real LoRA adapter on the embedded model.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import clirun
import pytest
from faultserver import FaultServer

from msrkit.backends.cache import request_key
from msrkit.backends.fake import FakeBackend
from msrkit.config import Settings
from msrkit.data import Item
from msrkit.recommender import Recommender
from msrkit.runtime.meter import Meter
from msrkit.runtime.prompts import PromptSet
from msrkit.summaries import ItemSummarizer, parse_keywords
from msrkit.summaries.best_of import BestOfSummarizer, KeywordScorer, keyword_request, make_summarizer
from msrkit.summaries.store import CatalogStore
from msrkit.training.keyword_tuning import MAX_KEYWORDS, _example

ITEMS = [
    Item(item_id="1", title="Toy Story", attributes={"genres": ["Animation", "Comedy"]}),
    Item(item_id="2", title="GoldenEye", attributes={"genres": ["Action", "Thriller"]}),
    Item(item_id="3", title="Heat", description="A crime thriller in Los Angeles."),
]
ANSWERS = [
    "film, movie, classic, cinema, fun, family, kids, watch",  # greedy: long, ungrounded
    "toy story, animation, comedy",  # short and grounded: the best
    "animation, cartoon, movie, film, kids, fun",
    "xyz",
]


def scorer() -> KeywordScorer:
    return KeywordScorer.for_items(ITEMS)


def test_best_of_keeps_the_sample_with_the_highest_reward() -> None:
    fake = FakeBackend().enqueue(*ANSWERS)
    summarizer = BestOfSummarizer(fake, n=4, temperature=0.8, scorer=scorer(), describe_images=False)
    done = summarizer.summarize([ITEMS[0]])[0]
    meter = Meter()
    rewards = [scorer().reward(ITEMS[0], parse_keywords(a, limit=8), meter=meter) for a in ANSWERS]
    assert rewards.index(max(rewards)) == 1 and len(set(rewards)) == 4
    assert done.keywords == ["toy story", "animation", "comedy"]
    assert [s.reward for s in summarizer.samples["1"].samples] == rewards
    # sample 0 is the greedy request; the others sampled with distinct seeds, each its own cache entry
    assert [(r.temperature, r.seed) for r in fake.requests] == [(0.0, 0), (0.8, 1), (0.8, 2), (0.8, 3)]
    assert len({request_key(fake.identity(), r) for r in fake.requests}) == 4
    assert {r.messages for r in fake.requests} == {fake.requests[0].messages}


def test_ties_keep_the_greedy_sample() -> None:
    fake = FakeBackend().enqueue("toy story, animation", "animation, toy story")
    summarizer = BestOfSummarizer(fake, n=2, temperature=0.8, scorer=scorer(), describe_images=False)
    assert summarizer.summarize([ITEMS[0]])[0].keywords == ["toy story", "animation"]


def test_reconstruction_adds_one_call_per_sample_against_the_same_distractors() -> None:
    fake = FakeBackend(default=lambda r: "[1]").enqueue("toy story, comedy", "animation")
    with_recon = KeywordScorer.for_items(ITEMS, backend=fake, distractors=2)
    BestOfSummarizer(fake, n=2, temperature=0.8, scorer=with_recon, describe_images=False).summarize([ITEMS[0]])
    recon = [r for r in fake.requests if r.tag.startswith("keyword_reconstruction")]
    assert len(recon) == 2 and len(fake.requests) == 4
    options = [r.messages[-1].text_content.split("Items:")[1] for r in recon]
    assert options[0] == options[1]


def _summarize_with(best_of: int, tmp_path: Path) -> tuple[list[Item], FakeBackend, ItemSummarizer]:
    fake = FakeBackend(default=lambda r: "drama, crime, thriller")
    s = Settings(best_of=best_of, concurrency=1, cache=False)
    with Recommender(fake, settings=s, cache=False, store=CatalogStore(tmp_path / f"store{best_of}")) as rec:
        summarizer = make_summarizer(s, rec, ITEMS)
        return summarizer.summarize(ITEMS), fake, summarizer


def test_best_of_1_is_the_plain_summarizer(tmp_path: Path) -> None:
    made, fake, summarizer = _summarize_with(1, tmp_path)
    assert type(summarizer) is ItemSummarizer
    plain = FakeBackend(default=lambda r: "drama, crime, thriller")
    # the summarizer the same settings make without best-of (batches of summary_batch items included)
    old = ItemSummarizer.from_settings(Settings(concurrency=1, cache=False), plain).summarize(ITEMS)
    assert [request_key({}, r) for r in fake.requests] == [request_key({}, r) for r in plain.requests]
    assert [i.model_dump() for i in made] == [i.model_dump() for i in old]
    assert summarizer.tag(ITEMS[0]) == ItemSummarizer(plain).tag(ITEMS[0])


def test_best_of_n_has_its_own_store_tag(tmp_path: Path) -> None:
    _, fake, summarizer = _summarize_with(3, tmp_path)
    assert len(fake.requests) == 9
    assert summarizer.tag(ITEMS[0]) != ItemSummarizer(fake).tag(ITEMS[0])
    assert "best-of-3" in summarizer.tag(ITEMS[0])


def _answers(prompt: str) -> str:
    return "drama, crime, thriller"


def test_cli_summarize_best_of_over_loopback(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(i.model_dump(exclude_none=True)) + "\n" for i in ITEMS))
    with FaultServer(default=_answers) as server:
        base = ["--backend", "openai/x", "--base-url", server.url, "--cache-dir", "cache", "--concurrency", "1"]
        done = clirun.msrkit("summarize", "items.jsonl", "--best-of", "3", "--json", *base, cwd=tmp_path, timeout=90)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["usage"]["llm_calls"] == 9
        sampled = [(r.body.get("temperature"), r.body.get("seed")) for r in server.requests]
        assert sampled == [(0.0, 0), (0.8, 1), (0.8, 2)] * 3
        # one item per call, as the samples are: the greedy sample is then the plain request
        again = clirun.msrkit("summarize", "items.jsonl", "--json", *base, cwd=tmp_path, timeout=90,
                              env={"MSRKIT_SUMMARY_BATCH": "1"})  # fmt: skip
        assert json.loads(again.stdout)["usage"]["llm_calls"] == 0  # the greedy answers are cached: sample 1


def test_the_example_request_is_what_the_summarizer_sends() -> None:
    fake = FakeBackend(default=lambda r: "crime, thriller, los angeles")
    done = ItemSummarizer(fake, describe_images=False).summarize([ITEMS[2]])[0]
    sent = fake.requests[0]
    example = _example(PromptSet.load(), done)
    assert example is not None
    assert example.messages == tuple({"role": m.role, "content": m.text_content} for m in sent.messages)
    assert keyword_request(PromptSet.load(), done, max_keywords=MAX_KEYWORDS) == sent
    assert parse_keywords(example.answer, limit=MAX_KEYWORDS) == done.keywords


def test_an_item_without_text_gives_no_request() -> None:
    assert keyword_request(PromptSet.load(), Item(item_id="x"), max_keywords=8) is None


@pytest.mark.slow
@pytest.mark.timeout(2400)  # a busy 2-core machine: the base model alone loads in 22 s to minutes
def test_finetune_keywords_on_six_items_writes_the_three_artifacts(embedded_model: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("peft") is None:
        pytest.skip("torch/peft not installed (pip install 'msrkit[train]')")
    from msrkit.training import TrainConfig, finetune_keywords

    items = [*ITEMS, Item(item_id="4", title="Fargo", description="A snowy crime comedy."),
             Item(item_id="5", title="Babe", description="A pig herds sheep."),
             Item(item_id="6", title="Alien", description="A crew meets a deadly creature in space."),
             Item(item_id="7")]  # fmt: skip
    s = Settings(backend="llamacpp/default", cache_dir=tmp_path / "cache", concurrency=1, best_of=2, deadline=1200)
    cfg = TrainConfig(task="keywords", max_steps=2, batch_size=2, eval_every=2, max_validation=2, device="cpu")
    result = finetune_keywords(items, out=tmp_path / "kw", config=cfg, settings=s, validation_fraction=0.2)
    assert (tmp_path / "kw" / "peft" / "adapter_config.json").is_file()
    assert (tmp_path / "kw" / "adapter.gguf").stat().st_size > 0
    manifest = json.loads((tmp_path / "kw" / "manifest.json").read_text())
    assert manifest["task"] == "keywords" and manifest["training"]["steps"] == 2
    assert result.skipped == {"no title or description": 1}
    assert result.examples + result.validation_examples == 6 and result.validation_examples == 1


def test_paired_differences_compare_best_of_n_and_the_adapter_on_the_same_items() -> None:
    from msrkit.evaluation.keyword_lift import RewardRow, paired_differences

    rows = {
        "base best-of-1": RewardRow([0.5, 0.6, 0.7], 4.0, 3, 0),
        "base best-of-4": RewardRow([0.6, 0.6, 0.9], 4.0, 9, 0),
        "adapter best-of-1": RewardRow([0.4, 0.7, 0.7], 4.0, 3, 0),
        "adapter best-of-4": RewardRow([0.6, 0.8, 0.9], 4.0, 9, 0),
    }
    diffs = paired_differences(rows)
    assert set(diffs) == {
        "base best-of-4 - base best-of-1", "adapter best-of-4 - adapter best-of-1",
        "adapter best-of-1 - base best-of-1", "adapter best-of-4 - base best-of-4",
    }  # fmt: skip
    mean, low, high = diffs["base best-of-4 - base best-of-1"]
    assert mean == pytest.approx(0.1) and low <= mean <= high
    assert diffs["adapter best-of-1 - base best-of-1"][0] == pytest.approx(0.0)
