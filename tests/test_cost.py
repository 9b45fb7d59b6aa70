"""Calls per request (issue 21): item keywords in batches, the single-call mode, the bars of MMSRARec's cost.

The scripted FakeBackend answers every prompt (keywords per numbered item, a summary, the
candidates in order) and counts the calls that reach it: these tests prove how many calls
msrkit's own logic makes, not that a model answers well (tests/test_cost_real.py runs one).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path
from typing import Any

import pytest
from clirun import msrkit

from msrkit.backends.base import Capabilities, ChatRequest
from msrkit.backends.fake import FakeBackend
from msrkit.config import Settings
from msrkit.data import History, Item
from msrkit.jobs.cost import predict
from msrkit.recommender import Recommender
from msrkit.runtime.meter import Meter
from msrkit.summaries import ItemSummarizer
from msrkit.summaries.batched import batch_schema, parse_batch
from msrkit.summaries.store import STORE_FILE, CatalogStore

CATALOG = {f"i{n}": Item(item_id=f"i{n}", title=f"Thing{n}", description=f"kind {n % 5}") for n in range(40)}
HISTORY = [f"i{n}" for n in range(10)]
CANDIDATES = [f"i{n}" for n in range(10, 30)]


def answer(request: ChatRequest) -> str:
    """What a well-behaved model answers, per prompt."""
    text = request.messages[-1].text_content
    if request.tag.startswith("item_keywords_batch"):
        found = re.findall(r"^\[(\d+)\] (Thing\d+)", text, flags=re.M)
        return json.dumps({n: {"title": title, "keywords": [title.lower(), "gear"]} for n, title in found})
    if request.tag.startswith("item_keywords"):
        title = re.search(r"Thing\d+", text)
        return f"{title.group(0).lower() if title else 'x'}, gear"
    if request.tag.startswith("preference"):
        return f"likes gear ({zlib.crc32(text.encode())})"  # another block, another summary
    numbers = re.findall(r"^\[(\d+)\]", text, flags=re.M)
    return " > ".join(f"[{n}]" for n in numbers)


def user(history: list[str] = HISTORY, uid: str = "cold") -> dict[str, Any]:
    return {"user_id": uid, "history": history, "candidates": CANDIDATES}


def recommender(fake: FakeBackend, cache: Path, **options: Any) -> Recommender:
    return Recommender(fake, catalog=CATALOG, cache=cache, retries=0, **options)


def precompute(rec: Recommender) -> None:
    rec.item_summarizer().summarize(list(CATALOG.values()))


# -- the bars ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "preference_calls"), [("recurrent", math.ceil(len(HISTORY) / 3)), ("single", 0)]
)  # fmt: skip
def test_a_cold_user_costs_item_batches_plus_preference_plus_one(
    tmp_path: Path, mode: str, preference_calls: int
) -> None:
    fake = FakeBackend(default=answer)
    with recommender(fake, tmp_path, preference_mode=mode) as rec:
        ranking = rec.rank(user())
    batches = math.ceil((len(HISTORY) + len(CANDIDATES)) / 8)  # 30 items, 8 per call: 4
    assert fake.calls == ranking.usage.llm_calls == batches + preference_calls + 1
    assert fake.calls <= (9 if mode == "recurrent" else 5)
    assert not ranking.degraded and len(ranking.ranking) == len(CANDIDATES)


@pytest.mark.parametrize(("mode", "bar"), [("recurrent", 1 + math.ceil(len(HISTORY) / 3)), ("single", 1)])
def test_with_the_catalog_precomputed_a_new_user_costs_the_bar(tmp_path: Path, mode: str, bar: int) -> None:
    fake = FakeBackend(default=answer)
    with recommender(fake, tmp_path, preference_mode=mode) as rec:
        precompute(rec)
        before = fake.calls
        assert before == math.ceil(len(CATALOG) / 8)  # 40 items in 5 calls
        rec.rank(user())
        assert fake.calls - before == bar
        again = fake.calls
        repeat = rec.rank(user())
        assert fake.calls == again and repeat.usage.llm_calls == 0  # a repeat request: no call at all
        rec.rank(user([*HISTORY, "i35"]))  # the same user, one new item
        assert fake.calls - again <= 2 and fake.calls - again == (2 if mode == "recurrent" else 1)


def test_single_mode_puts_the_history_keywords_in_the_ranking_prompt(tmp_path: Path) -> None:
    fake = FakeBackend(default=answer)
    with recommender(fake, tmp_path, preference_mode="single") as rec:
        rec.rank(user())
    ranking_prompt = fake.requests[-1].messages[-1].text_content
    assert not any(r.tag.startswith("preference") for r in fake.requests)
    assert "keywords: thing9, gear" in ranking_prompt and "keywords: thing0, gear" in ranking_prompt


# -- the batched item summarizer -----------------------------------------------------------------


def items(n: int) -> list[Item]:
    return [CATALOG[f"i{k}"] for k in range(n)]


def test_keywords_come_per_item_from_one_call_per_batch() -> None:
    fake = FakeBackend(default=answer)
    done = ItemSummarizer(fake, batch=8).summarize(items(20), meter=Meter())
    assert fake.calls == 3 and [len(r.messages[-1].text_content.split("\n[")) for r in fake.requests]
    assert [i.keywords for i in done] == [[f"thing{k}", "gear"] for k in range(20)]


def test_items_the_answer_left_out_are_summarized_alone() -> None:
    fake = FakeBackend(default=answer)
    fake.enqueue('{"1": ["alpha"], "3": [], "2": ["beta", "gamma"], "4": ["cut off')  # 3 empty, 4 torn, 5 missing
    done = ItemSummarizer(fake, batch=5).summarize(items(5), meter=Meter())
    assert [i.keywords for i in done] == [["alpha"], ["beta", "gamma"], ["thing2", "gear"], ["thing3", "gear"],
                                          ["thing4", "gear"]]  # fmt: skip
    singles = [r for r in fake.requests if r.tag.startswith("item_keywords@")]
    assert fake.calls == 4 and len(singles) == 3


def test_batched_and_single_summaries_share_the_store(tmp_path: Path) -> None:
    store = CatalogStore(tmp_path / "catalog.sqlite3")
    batched = FakeBackend(default=answer)
    ItemSummarizer(batched, batch=8, store=store).summarize(items(6), meter=Meter())
    single = FakeBackend(default=answer)
    again = ItemSummarizer(single, batch=1, store=store).summarize(items(8), meter=Meter())
    assert batched.calls == 1 and single.calls == 2  # only i6, i7 were never summarized
    assert [i.keywords for i in again[:6]] == [[f"thing{k}", "gear"] for k in range(6)]


def test_the_schema_goes_only_to_a_backend_that_takes_one() -> None:
    plain, typed = FakeBackend(default=answer), FakeBackend(default=answer, capabilities=Capabilities(json_schema=True))
    for fake in (plain, typed):
        ItemSummarizer(fake, batch=4).summarize(items(3), meter=Meter())
    assert plain.requests[0].json_schema is None
    schema = typed.requests[0].json_schema
    assert schema == batch_schema(["Thing0", "Thing1", "Thing2"], max_keywords=8)
    assert schema["required"] == ["1", "2", "3"] and schema["properties"]["2"]["properties"]["title"] == {
        "const": "Thing1"
    }
    assert typed.requests[0].max_tokens == 3 * 48


def test_images_are_described_one_per_call_then_keywords_batched(tmp_path: Path) -> None:
    from PIL import Image

    for k in range(3):
        Image.new("RGB", (8, 8), (k * 80, 0, 0)).save(tmp_path / f"{k}.png")
    pictured = [i.model_copy(update={"image": str(tmp_path / f"{k}.png")}) for k, i in enumerate(items(3))]
    fake = FakeBackend(default=lambda r: "a red square" if r.tag.startswith("image") else answer(r))
    done = ItemSummarizer(fake, batch=8).summarize([*pictured, *items(6)[3:]], meter=Meter())
    described = [r for r in fake.requests if r.tag.startswith("image_description")]
    assert len(described) == 3 and all(sum(len(m.images) for m in r.messages) == 1 for r in described)
    assert fake.calls == 4 and all(i.keywords for i in done) and done[0].image_description == "a red square"
    assert "image: a red square" in fake.requests[-1].messages[-1].text_content


def test_parse_batch_reads_objects_lines_and_ignores_numbers_out_of_range() -> None:
    assert parse_batch('<think>{"1": ["no"]}</think>{"2": "tent, camping", "9": ["x"]}', 3, limit=8) == {
        2: ["tent", "camping"]
    }
    assert parse_batch("[1] hiking, boots\n(2) water", 2, limit=1) == {1: ["hiking"], 2: ["water"]}
    assert parse_batch("no numbers here", 2, limit=8) == {}


# -- predicted before it is spent ----------------------------------------------------------------


def test_the_dry_run_predicts_the_calls_of_the_real_run_and_writes_nothing(tmp_path: Path) -> None:
    catalog = tmp_path / "items.jsonl"
    catalog.write_text("".join(i.model_dump_json() + "\n" for i in CATALOG.values()))
    s = Settings(catalog=catalog, cache_dir=tmp_path / "cache", retries=0)
    hs = [History.model_validate(u) for u in (user(uid="a"), user([*HISTORY[:5], "i31"], "b"), user(HISTORY[3:], "c"))]
    fake = FakeBackend(default=answer)
    predicted = predict(s, hs, backend=fake)
    assert fake.calls == 0 and not (tmp_path / "cache" / STORE_FILE).exists()
    with Recommender(fake, settings=s) as rec:
        real = [rec.rank(h).usage for h in hs]
    assert predicted.total.llm_calls == fake.calls == sum(u.llm_calls for u in real) > 0
    assert (predicted.cold.users, predicted.warm.users) == (1, 2)  # b and c reuse item summaries a made
    assert predicted.total.completion_tokens == sum(r.max_tokens for r in fake.requests)
    after = predict(s, hs, backend=fake)
    assert after.total.llm_calls == 0 and fake.calls == sum(u.llm_calls for u in real)  # all cached now


def test_cli_dry_run_of_a_batch_without_a_model_costs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    cands = [{"item_id": f"c{k}", "title": "t"} for k in range(3)]
    path.write_text("".join(json.dumps({"user_id": u, "history": [], "candidates": cands}) + "\n" for u in "ab"))
    done = msrkit("rank", str(path), "--backend", "none", "--no-cache", "--dry-run", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert "cost: 2 user(s), 0 LLM calls" in done.stdout and not (tmp_path / "r").exists()


def test_a_batch_out_of_time_leaves_its_items_as_they_are() -> None:
    from msrkit.runtime.deadline import Deadline, active

    fake = FakeBackend(default=answer)
    seen: list[str] = []
    with active(Deadline(0.0)):
        done = ItemSummarizer(fake, batch=8).summarize(items(3), on_item=lambda i: seen.append(i.item_id))
    assert fake.calls == 0 and [i.keywords for i in done] == [None] * 3 and seen == ["i0", "i1", "i2"]
