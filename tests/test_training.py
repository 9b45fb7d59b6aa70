"""Fine-tuning: examples are inference's own requests, no target leaks, batches mask the prompt, errors are one line.

The fast tests need neither torch nor a model: examples are built by the real
pipeline (retrieval, prompts) with the recording model, and the token code is
checked with a stand-in tokenizer. The slow test trains a few steps of the
embedded model on CPU, resumes, writes the three artifacts and serves the
adapter in llama.cpp (it runs in CI, where the ``train`` extra is installed).
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from msrkit import Recommender
from msrkit.backends.fake import FakeBackend
from msrkit.cli import app
from msrkit.config import Settings
from msrkit.data import History, Item
from msrkit.errors import ConfigError, InputError, MissingDependencyError
from msrkit.evaluation.fusion_tuning import tune_fusion, weight_table
from msrkit.inputs.io import Interaction, resolve
from msrkit.retrieval import build, interactions_before
from msrkit.training.base import require_train_extra, resolve_base
from msrkit.training.examples import Recorder, build_examples, evidence_levels, split_users
from msrkit.training.tokens import IGNORE, Encoded, batches, encode

SETTINGS = Settings(item_summaries=False, preference_summary=False, explain=False, n_candidates=6, cache=False)


def _world() -> tuple[dict[str, Item], list[Interaction], list[History]]:
    """Twelve items; users walk a chain 0 -> 1 -> ... with offsets, so transitions are learnable."""
    catalog = {str(i): Item(item_id=str(i), title=f"Film {i}", attributes={"genres": [f"g{i % 3}"]}) for i in range(12)}
    rows: list[Interaction] = []
    cases: list[History] = []
    for u in range(10):
        seq = [str((u + k) % 12) for k in range(6)]
        rows += [Interaction(user_id=f"u{u}", item_id=i, timestamp=float(t)) for t, i in enumerate(seq)]
        cases.append(History(user_id=f"u{u}", history=seq[:-1], target=seq[-1], target_timestamp=5.0))
    return catalog, rows, cases


def test_rank_examples_are_the_request_the_pipeline_sends() -> None:
    catalog, rows, cases = _world()
    built = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, seed=3)
    assert built.examples, built.skipped
    example = built.examples[0]
    case = next(c for c in cases if c.user_id == example.user_id)
    # the same case, with the same shown candidates, through the Recommender: the same bytes
    fake = FakeBackend()
    index = build(interactions_before(rows, cases), catalog=catalog)
    shown = resolve(case.model_copy(update={"candidates": list(example.shown), "target": None}), catalog)
    settings = SETTINGS.model_copy(update={"shown_order": "given"})
    with Recommender(fake, settings=settings, catalog=catalog, index=index, cache=False) as rec:
        rec.rank(shown)
    sent = tuple({"role": m.role, "content": m.text_content} for m in fake.requests[-1].messages)
    assert sent == example.messages


def test_rank_answer_is_the_targets_label() -> None:
    catalog, rows, cases = _world()
    built = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, seed=3)
    for e in built.examples:
        assert e.answer.startswith("[") and e.answer.endswith("]")
        assert e.shown[int(e.answer.strip("[]")) - 1] == e.target


def test_a_list_answer_is_the_target_then_the_rest_by_the_evidence_shown() -> None:
    catalog, rows, cases = _world()
    s = SETTINGS.model_copy(update={"candidate_evidence": True})
    built = build_examples(cases, task="rank", settings=s, catalog=catalog, interactions=rows, seed=3,
                           rank_answer="list")  # fmt: skip
    assert built.examples, built.skipped
    words = ("top", "strong", "some", "weak")
    for e in built.examples:
        labels = [int(x.strip("[]")) for x in e.answer.split(" > ")]
        assert len(set(labels)) == len(labels)
        assert e.shown[labels[0] - 1] == e.target
        prompt = e.messages[-1]["content"]
        level = {}
        for n in range(1, len(e.shown) + 1):
            line = next(x for x in prompt.splitlines() if x.startswith(f"[{n}] "))
            level[n] = words.index(line.rsplit("evidence: ", 1)[1])
        # after the pick: every label above weak, best evidence first, ties in the order shown
        expected = sorted((n for n in level if n != labels[0] and level[n] < 3), key=lambda n: (level[n], n))
        assert labels[1:] == expected


def test_evidence_levels_read_each_labels_line_and_tie_without_notes() -> None:
    prompt = "[1] A | evidence: weak\n[2] B | genres: x | evidence: top\n[3] C\n[30] D | evidence: top"
    assert evidence_levels(prompt, 3) == [3, 0, 4]
    assert evidence_levels("no candidates here", 2) == [4, 4]


def test_shown_order_is_a_seeded_shuffle_not_retrievals() -> None:
    catalog, rows, cases = _world()
    a = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, seed=3)
    b = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, seed=3)
    c = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, seed=4)
    assert [e.shown for e in a.examples] == [e.shown for e in b.examples]
    assert [e.shown for e in a.examples] != [e.shown for e in c.examples]
    assert any(list(e.retrieval_order) != list(range(len(e.shown))) for e in a.examples)


def test_the_index_never_sees_a_cases_target() -> None:
    """Only the user's own last step leads B -> T: with the leakage rule T is not retrievable, so no example."""
    catalog = {i: Item(item_id=i, title=f"Item {i}") for i in "ABCDEFGHIJKT"}
    rows = [Interaction(user_id="u", item_id=i, timestamp=float(t)) for t, i in enumerate("ABT")]
    rows += [Interaction(user_id="v", item_id=i, timestamp=float(t)) for t, i in enumerate("AC")]
    rows += [Interaction(user_id="w", item_id=i, timestamp=float(t)) for t, i in enumerate("BD")]
    # popular items that fill the candidate list wherever nothing points to T
    rows += [Interaction(user_id=f"f{n}", item_id=i, timestamp=0.0) for n in range(3) for i in "EFGHIJK"]
    case = History(user_id="u", history=["A", "B"], target="T", target_timestamp=2.0)
    built = build_examples([case], task="rank", settings=SETTINGS, catalog=catalog, interactions=rows)
    assert built.examples == [] and built.skipped == {"target not among retrieval's candidates": 1}
    # the control: an index that did see the target would have offered it
    leaky = build(rows, catalog=catalog)
    seen = build_examples([case], task="rank", settings=SETTINGS, catalog=catalog, interactions=rows, index=leaky)
    assert [e.target for e in seen.examples] == ["T"]


def test_pointwise_examples_are_balanced_yes_and_no(caplog: pytest.LogCaptureFixture) -> None:
    catalog, rows, cases = _world()
    with caplog.at_level(logging.WARNING):
        built = build_examples(cases, task="pointwise", settings=SETTINGS, catalog=catalog, interactions=rows)
    # the recorder's verdicts carry log-probabilities: no scorer fallback warning per case (it flooded the log)
    assert not [r for r in caplog.records if "yes/no" in r.getMessage()]
    by_user: dict[str, list[str]] = {}
    for e in built.examples:
        by_user.setdefault(e.user_id, []).append(e.answer)
        assert (e.answer == "Yes") == (e.shown[0] == e.target)
        assert e.messages[0]["content"].startswith("You are a recommender system. Answer with one word")
    assert by_user and all(sorted(v) == ["No", "Yes"] for v in by_user.values())


def test_split_is_by_user_and_seeded() -> None:
    cases = [History(user_id=f"u{n % 7}", history=["a"], target="b") for n in range(30)]
    train, val = split_users(cases, fraction=0.3, seed=1)
    assert {c.user_id for c in train}.isdisjoint({c.user_id for c in val}) and len(train) + len(val) == 30
    assert [c.user_id for c in val] == [c.user_id for c in split_users(cases, fraction=0.3, seed=1)[1]]


def test_a_summary_request_is_refused_with_what_to_do() -> None:
    catalog, rows, cases = _world()
    settings = SETTINGS.model_copy(update={"item_summaries": True})
    with pytest.raises(InputError, match="msrkit summarize"):
        build_examples(cases, task="rank", settings=settings, catalog=catalog, interactions=rows)
    assert Recorder().identity() == {"backend": "recorder"}


def test_cases_without_targets_name_the_case() -> None:
    catalog, rows, _ = _world()
    with pytest.raises(InputError, match="needs a 'target'"):
        build_examples([History(user_id="u1", history=["1"])], task="rank", settings=SETTINGS, catalog=catalog,
                       interactions=rows)  # fmt: skip


class _Tokens:
    """A stand-in tokenizer: one id per character; the chat template joins the turns."""

    pad_token_id = 0
    eos_token_id = 1
    unk_token_id = 2

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def __call__(self, text: str, add_special_tokens: bool = False) -> Any:
        return type("T", (), {"input_ids": [10 + ord(c) % 50 for c in text]})()

    def convert_tokens_to_ids(self, piece: str) -> int:
        return 7 if piece == "<|im_end|>" else self.unk_token_id


def test_labels_mask_the_prompt_and_end_with_the_turn_end() -> None:
    catalog, rows, cases = _world()
    built = build_examples(cases, task="rank", settings=SETTINGS, catalog=catalog, interactions=rows)
    encoded, too_long = encode(_Tokens(), built.examples, max_length=100_000)
    assert too_long == 0
    for enc, e in zip(encoded, built.examples, strict=True):
        answer = [t for t in enc.labels if t != IGNORE]
        assert answer[:-1] == _Tokens()(e.answer).input_ids and answer[-1] == 7
        assert enc.labels[: len(enc.input_ids) - len(answer)] == [IGNORE] * (len(enc.input_ids) - len(answer))
    _, dropped = encode(_Tokens(), built.examples, max_length=50)
    assert dropped == len(built.examples)


def test_batches_cover_every_example_once_per_epoch_and_are_seeded() -> None:
    encoded = [Encoded([1] * (5 + n % 9), [IGNORE] * (4 + n % 9) + [3], n) for n in range(37)]
    epoch = batches(encoded, batch_size=4, seed=0, epoch=0)
    assert sorted(e.index for b in epoch for e in b) == list(range(37))
    assert [[e.index for e in b] for b in epoch] == [[e.index for e in b] for b in batches(encoded, batch_size=4,
                                                                                         seed=0, epoch=0)]  # fmt: skip
    assert epoch != batches(encoded, batch_size=4, seed=0, epoch=1)


def test_collate_left_pads_and_keeps_only_the_answers_logits() -> None:
    pytest.importorskip("torch")
    from msrkit.training.tokens import collate

    batch = [Encoded([5, 6, 7, 8], [IGNORE, IGNORE, 7, 8], 0), Encoded([5, 9], [IGNORE, 9], 1)]
    out = collate(batch, pad_id=0, device="cpu")
    assert out["input_ids"].tolist() == [[5, 6, 7, 8], [0, 0, 5, 9]]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 3], [0, 0, 0, 1]]
    # logits for the last 3 positions predict the last 2 tokens of each row
    assert out["logits_to_keep"] == 3 and out["labels"].tolist() == [[7, 8], [IGNORE, 9]]


def test_missing_train_extra_is_exit_5_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"msrkit\[train\]"):
        require_train_extra()
    result = CliRunner().invoke(app, ["finetune", "cases.jsonl", "--out", "x"])
    assert result.exit_code == 5 and "msrkit[train]" in result.output and "Traceback" not in result.output


def test_a_base_that_is_not_llama_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigError, match="llama-architecture models only"):
        resolve_base(str(folder))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_base(str(tmp_path / "nothing.gguf"))
    with pytest.raises(ConfigError, match="without config.json"):
        resolve_base(str(tmp_path))


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    cases = tmp_path / "cases.jsonl"
    cases.write_text(json.dumps({"user_id": "u", "history": ["a"]}) + "\n")
    runner = CliRunner()
    bad_task = runner.invoke(app, ["finetune", str(cases), "--out", str(tmp_path / "o"), "--task", "poem"])
    assert bad_task.exit_code == 4 and "--task must be" in bad_task.output
    bad_answer = runner.invoke(app, ["finetune", str(cases), "--out", str(tmp_path / "o"), "--rank-answer", "all"])
    assert bad_answer.exit_code == 4 and "--rank-answer must be pick or list" in bad_answer.output
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (gpt / "model.safetensors").write_bytes(b"x")
    not_llama = runner.invoke(app, ["finetune", str(cases), "--out", str(tmp_path / "o"), "--base", str(gpt)])
    assert not_llama.exit_code == 4 and "llama-architecture" in not_llama.output
    inter = tmp_path / "inter.jsonl"
    inter.write_text(json.dumps({"user_id": "u", "item_id": "a"}) + "\n")
    no_target = runner.invoke(app, ["finetune", str(cases), "--out", str(tmp_path / "o"), "--interactions",
                                    str(inter)])  # fmt: skip
    assert no_target.exit_code == 3 and "needs a 'target'" in no_target.output
    assert all("Traceback" not in r.output for r in (bad_task, bad_answer, not_llama, no_target))


# --------------------------------------------------------------------------- fusion tuned on validation


def _ranking_world() -> tuple[dict[str, Item], list[Interaction], list[History]]:
    catalog, rows, cases = _world()
    return catalog, rows, [c.model_copy(update={"candidates": [str(i) for i in range(6)]}) for c in cases]


def _tuned(answer: Any) -> Any:
    catalog, rows, cases = _ranking_world()
    index = build(rows, catalog=catalog)
    recs: list[Recommender] = []

    def ranker(settings: Settings) -> Any:
        rec = Recommender(FakeBackend(default=answer), settings=settings, catalog=catalog, index=index, cache=False)
        recs.append(rec)
        return lambda h: rec.rank(resolve(h, catalog))

    try:
        return tune_fusion(cases, settings=SETTINGS, rank=ranker)
    finally:
        for rec in recs:
            rec.close()


def _oracle(request: Any) -> str:
    """A model that knows: the target (the candidate named in the prompt's last history line + 1) first."""
    text = request.messages[-1].text_content
    lines = [ln for ln in text.splitlines() if ln.startswith("[")]
    last = int(text.split("User preferences:\n", 1)[1].split(";")[-1].split("|")[0].strip().split()[-1])
    want = f"Film {(last + 1) % 12}"
    first = [n for n, ln in enumerate(lines, 1) if want in ln]
    return " > ".join(f"[{n}]" for n in first + [n for n in range(1, len(lines) + 1) if n not in first])


def test_a_model_that_knows_gets_weight_and_one_that_misleads_gets_zero() -> None:
    good = _tuned(_oracle)
    assert good.weight > 0 and dict(good.table)[good.weight] >= dict(good.table)[0.0]

    def reverse(request: Any) -> str:
        lines = [ln for ln in request.messages[-1].text_content.splitlines() if ln.startswith("[")]
        ranked = _oracle(request).split(" > ")
        return " > ".join(reversed(ranked)) if lines else "ok"

    bad = _tuned(reverse)
    assert bad.weight == 0.0 and dict(bad.table)[0.0] > dict(bad.table)[1.0]


def test_weight_table_is_the_mean_ndcg_per_weight() -> None:
    with pytest.raises(InputError):
        weight_table([], [])


def test_weight_zero_skips_the_llm_and_an_unset_weight_takes_the_adapters(tmp_path: Path) -> None:
    catalog, rows, cases = _ranking_world()
    fake = FakeBackend()
    with Recommender(fake, settings=SETTINGS.model_copy(update={"fusion_weight": 0.0}), catalog=catalog,
                     interactions=rows, cache=False) as rec:  # fmt: skip
        ranking = rec.rank(resolve(cases[0].model_copy(update={"target": None}), catalog))
    assert fake.requests == [] and ranking.usage.llm_calls == 0
    assert sorted(r.item_id for r in ranking.ranking) == sorted(str(i) for i in range(6))
    assert Settings().fusion_weight is None and Settings().effective_fusion_weight == 0.5


# --------------------------------------------------------------------------- the real thing (slow)


def _train_extra() -> bool:
    return all(importlib.util.find_spec(m) for m in ("torch", "transformers", "peft", "gguf", "llama_cpp"))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not _train_extra(), reason="needs: pip install 'msrkit[train,local]'")
def test_finetune_trains_resumes_writes_and_serves(tmp_path: Path) -> None:
    from msrkit.training import TrainConfig, finetune
    from msrkit.training.adapter import load_adapter

    catalog, rows, cases = _world()
    out = tmp_path / "adapter"
    common: dict[str, Any] = dict(out=out, catalog=catalog, settings=SETTINGS, validation_fraction=0.2)
    inter = tmp_path / "inter.jsonl"
    inter.write_text("".join(json.dumps(vars(r)) + "\n" for r in rows))
    config = TrainConfig(max_steps=2, batch_size=2, eval_every=1, max_validation=2, learning_rate=1e-3)
    first = finetune(cases, interactions=inter, config=config, **common)
    assert first.train.steps == 2 and (out / "checkpoints" / "last" / "state.json").is_file()
    more = finetune(cases, interactions=inter, config=config.model_copy(update={"max_steps": 3, "resume": True}),
                    **common)  # fmt: skip
    assert more.train.steps == 3 and [p["step"] for p in more.train.validation][-2:] == [2, 3]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "rank" and manifest["training"]["steps"] == 3 and manifest["data"]["examples"] > 0
    assert (out / "peft" / "adapter_config.json").is_file() and load_adapter(out).gguf_path.is_file()
    with Recommender("llamacpp/default", settings=SETTINGS.model_copy(update={"adapter": out}), catalog=catalog,
                     interactions=rows, cache=False) as rec:  # fmt: skip
        ranking = rec.rank(resolve(cases[0].model_copy(update={"target": None}), catalog))
        # the adapter learned plain-text answers: it is not decoded under the JSON-schema grammar
        assert not rec.backend.capabilities.json_schema
    assert ranking.usage.llm_calls == 1 and len(ranking.ranking) == SETTINGS.n_candidates


def test_the_best_step_is_the_higher_metric_then_the_lower_loss() -> None:
    from msrkit.training.trainer import better

    best = {"step": 0, "value": 0.25, "loss": 4.0}
    assert better(0.25, 0.7, None)
    assert better(0.26, 9.0, best)  # a higher metric wins whatever the loss
    assert better(0.25, 0.7, best)  # a flat metric: the lower loss wins
    assert not better(0.25, 4.0, best) and not better(0.24, 0.1, best)
