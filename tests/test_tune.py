"""Self-tuning of the retrieval blend: what it reads, what it chooses, where it is stored.

The planted-target test builds a world where each evaluation case's test target would,
if tuning could see it, pull the blend towards user-kNN (weight 2.0), while the honest
validation targets (each user's last *indexed* item) favour transitions alone (weight 0
for users). Tuning the index an evaluation builds (:func:`interactions_before`) must give
the same choice whether or not targets are planted; tuning an index that holds the test
targets (the leak) gives a different one, so the test can fail.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from msrkit.cli import app
from msrkit.data import History
from msrkit.inputs.io import Interaction
from msrkit.retrieval import (
    DEFAULT_BLEND,
    CollaborativeIndex,
    build,
    choose_blend,
    interactions_before,
    load,
    query,
    save,
    tune_index,
)
from msrkit.retrieval.tune import validation_index


def world(planted: bool, seed: int = 0, n: int = 400) -> tuple[list[Interaction], list[History]]:
    """Users with filler items, a pair ``a_j -> b_j`` inside and a pair ``a_k -> b_k`` at the end,
    then the test target: ``P`` (popular, unseen by that user) when ``planted``, else a random filler."""
    rng = random.Random(seed)
    rows: list[Interaction] = []
    cases: list[History] = []
    for u in range(n):
        uid = f"u{u}"
        seq = [f"f{min(int(rng.paretovariate(1.0)), 60)}" for _ in range(rng.randrange(3, 9))]
        if u % 5 < 2:
            seq.insert(rng.randrange(len(seq)), "P")
        at, j = rng.randrange(len(seq) + 1), rng.randrange(20)
        seq[at:at] = [f"a{j}", f"b{j}"]
        k = rng.randrange(20)
        seq += [f"a{k}", f"b{k}"]
        filler = f"f{rng.randrange(60)}"  # drawn either way: both worlds are the same but for the targets
        target = "P" if planted and "P" not in seq else filler
        seq.append(target)
        rows += [Interaction(uid, i, float(t)) for t, i in enumerate(seq)]
        cases.append(History(user_id=uid, history=seq[:-1], target=target))
    return rows, cases


def test_tuning_never_reads_a_test_target() -> None:
    rows, cases = world(planted=True)
    plain_rows, plain_cases = world(planted=False)
    honest = tune_index(build(interactions_before(rows, cases)))
    unplanted = tune_index(build(interactions_before(plain_rows, plain_cases)))
    leaky = tune_index(build(rows))  # the index holds the test targets
    assert honest.weights == unplanted.weights
    assert [(s.knob, s.value, s.ndcg) for s in honest.steps] == [(s.knob, s.value, s.ndcg) for s in unplanted.steps]
    assert honest.weights.users == 0.0  # the honest targets follow the transitions
    assert leaky.weights.users > honest.weights.users  # the planted targets, if read, pull towards user-kNN


def test_validation_targets_are_each_users_last_indexed_item() -> None:
    rows, cases = world(planted=True, n=50)
    idx = build(interactions_before(rows, cases))
    vidx, targets = validation_index(idx)
    for case in cases:
        u = idx.user_index[case.user_id]
        seq = [idx.item_ids[i] for i in idx.seq_items[idx.seq_ptr[u] : idx.seq_ptr[u + 1]]]
        assert seq == list(case.history)  # the evaluation's index never held the target
        assert idx.item_ids[targets[u]] == case.history[-1]
        vseq = [vidx.item_ids[i] for i in vidx.seq_items[vidx.seq_ptr[u] : vidx.seq_ptr[u + 1]]]
        assert vseq == list(case.history[:-1])
    assert vidx.popularity.sum() == idx.popularity.sum() - len(cases)


def test_too_little_data_keeps_the_defaults() -> None:
    rows, _ = world(planted=False, n=8)
    result = tune_index(build(rows))
    assert result.weights == DEFAULT_BLEND and result.changed == {}
    assert [s.knob for s in result.steps] == ["start"]
    assert "no move beat the noise" in result.table()


def test_tuned_weights_are_used_and_stored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows, cases = world(planted=False)
    idx = choose_blend(build(interactions_before(rows, cases)), True)
    assert idx.tuning is not None and idx.weights == idx.tuning.weights != DEFAULT_BLEND
    assert idx.tuning.changed == {k: getattr(idx.weights, k) for k in idx.tuning.changed}
    assert idx.tuning.steps[-1].ndcg > idx.tuning.steps[0].ndcg
    save(idx, tmp_path / "idx")
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["weights"]["users"] == idx.weights.users and manifest["tuning"]["changed"] == idx.tuning.changed
    loaded = load(tmp_path / "idx")
    assert loaded.weights == idx.weights and loaded.tuning == idx.tuning
    for case in cases[:20]:
        assert (
            query(loaded, case.history, n=10, context_k=0, support=False).candidates
            == query(idx, case.history, n=10, context_k=0, support=False).candidates
        )
    np.testing.assert_array_equal(loaded.transitions.w, idx.transitions.w)


def test_cli_index_build_tune_prints_the_table_and_stores_the_choice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows, cases = world(planted=False)
    rows = interactions_before(rows, cases)
    inter = tmp_path / "interactions.jsonl"
    inter.write_text("".join(json.dumps({"user_id": r.user_id, "item_id": r.item_id, "timestamp": r.timestamp}) + "\n"
                             for r in rows))  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["index", "build", "--interactions", str(inter), "--tune", "--out", str(tmp_path / "i")])
    assert res.exit_code == 0, res.output
    assert "| start |" in res.output and "| users = 0.0 |" in res.output and "blend: users=0.0" in res.output
    info = runner.invoke(app, ["index", "info", str(tmp_path / "i"), "--json"])
    assert info.exit_code == 0, info.output
    doc = json.loads(info.output)
    assert doc["weights"]["users"] == 0.0 and doc["tuning"]["users"] == 400 and doc["stats"]["users"] == 400
    auto = runner.invoke(app, ["index", "build", "--interactions", str(inter), "--out", str(tmp_path / "a")])
    assert auto.exit_code == 0 and "self-selected (quick search) on 400 validation users" in auto.output
    assert "data: 400 users" in auto.output  # and why: the statistics that chose the knobs searched
    off = ["index", "build", "--interactions", str(inter), "--no-select", "--out", str(tmp_path / "p")]
    plain = runner.invoke(app, off)
    assert plain.exit_code == 0 and "the default weights and knobs" in plain.output and "| start |" not in plain.output


@pytest.mark.parametrize("bad", [{"version": 1}, {"weights": {"nope": 1}}])
def test_an_older_or_unknown_manifest_says_how_to_rebuild(tmp_path, bad) -> None:  # type: ignore[no-untyped-def]
    from msrkit.errors import InputError

    rows, _ = world(planted=False, n=20)
    save(build(rows), tmp_path / "i")
    path = tmp_path / "i" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **bad}))
    with pytest.raises(InputError, match="msrkit index build"):
        load(tmp_path / "i")


def test_eval_tune_tunes_the_evaluations_index_from_python_and_the_cli(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``msrkit eval --tune`` (``Settings.tune_index``) tunes the index the evaluation builds: the
    one without any case's target (the spy sees every indexed sequence)."""
    from msrkit import retrieval
    from msrkit.config import Settings
    from msrkit.data import Item
    from msrkit.datasets import write_dataset
    from msrkit.evaluation.experiments import Experiment, run_experiment
    from msrkit.inputs.io import load_histories

    rows, _ = world(planted=True, n=120)
    catalog = {i: Item(item_id=i, title=f"item {i}") for i in sorted({r.item_id for r in rows})}
    write_dataset(tmp_path / "d", catalog, rows, negatives=4, seed=0)
    cases = load_histories(tmp_path / "d" / "cases.jsonl")
    tuned: list[CollaborativeIndex] = []
    real = retrieval.tune.tune_index

    def spy(idx, **kw):  # type: ignore[no-untyped-def]
        tuned.append(idx)
        return real(idx, **kw)

    monkeypatch.setattr(retrieval.stage, "tune_index", spy)  # where the build looks it up
    paths = {"catalog": tmp_path / "d" / "items.jsonl", "interactions": tmp_path / "d" / "interactions.jsonl"}
    run_experiment(Experiment(cases=tmp_path / "d" / "cases.jsonl", out=tmp_path / "py",
                              settings=Settings(backend="none", cache=False, tune_index=True, **paths)))  # fmt: skip
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "d" / "cases.jsonl"), "--backend", "none", "--tune",
                                   "--catalog", str(paths["catalog"]), "--interactions", str(paths["interactions"]),
                                   "--no-cache", "-q", "--out", str(tmp_path / "cli")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(tuned) == 2
    for idx in tuned:
        for case in cases:
            u = idx.user_index[case.user_id]
            seq = [idx.item_ids[i] for i in idx.seq_items[idx.seq_ptr[u] : idx.seq_ptr[u + 1]]]
            assert seq == [h.item_id for h in case.history]  # the target and what follows it are not indexed


@pytest.mark.parametrize("u_k", [3, 20, 150])
def test_one_wide_neighbour_search_gives_what_a_search_per_u_k_gives(u_k: int) -> None:
    """The evaluator searches each user's neighbours once at the grid's largest ``u_k`` and takes the
    first ``u_k`` for smaller ones: per-user validation NDCG equals that of a search at ``u_k`` itself."""
    from dataclasses import replace

    from msrkit.retrieval.tune import _Evaluator

    rows, _ = world(planted=True, n=300)
    vidx, targets = validation_index(build(rows))
    users = np.flatnonzero(targets >= 0)
    w = replace(vidx.weights, u_k=u_k)
    shared = _Evaluator(vidx, users, targets[users], top_m=None, k_max=200).ndcg(w)
    alone = _Evaluator(vidx, users, targets[users], top_m=None, k_max=0).ndcg(w)
    assert shared.mean() > 0  # the check can fail: the neighbours matter on this world
    np.testing.assert_array_equal(shared, alone)
