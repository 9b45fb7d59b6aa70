"""The evaluation half of bench_finetune.py: the lift table (see that file's docstring for the protocol)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from msrkit import Recommender
from msrkit.config import Settings, settings_from
from msrkit.data import History, Ranking
from msrkit.evaluation.fusion_tuning import GRID, choose_weight, fused_ndcg, store_weight, weight_table
from msrkit.evaluation.metrics import ndcg_at_k
from msrkit.inputs.io import load_catalog, load_histories, resolve
from msrkit.retrieval import build_index, query
from msrkit.retrieval.interactions import read_interactions
from msrkit.training.examples import split_users

#: the settings the benchmark trains and tests with (see bench_finetune.py's protocol)
BENCH_SETTINGS = {
    "item_summaries": False,
    "preference_summary": False,
    "explain": False,
    "n_candidates": 20,
    "candidate_evidence": True,
}


def _shuffled(ids: list[str], seed: int, user: str) -> list[str]:
    out = list(ids)
    random.Random(f"eval:{seed}:{user}").shuffle(out)
    return out


class _Cases:
    """Test (or validation) cases with retrieval's candidates from a leakage-safe index (as training builds it)."""

    def __init__(self, cases: list[History], meta: dict[str, Any], seed: int) -> None:
        self.catalog = load_catalog(meta["items"]) if meta["items"] else {}
        rows = read_interactions(meta["interactions"])
        self.index = build_index(Settings(), rows=rows, catalog=self.catalog, cases=cases)
        self.cases, self.ranked, self.shown = cases, [], []
        for c in cases:
            seen = [e if isinstance(e, str) else e.item_id for e in c.history]
            hood = query(self.index, seen, n=20, exclude_user=c.user_id, context_k=0, support=False)
            ranked = [i for i, _ in hood.candidates]
            self.ranked.append(ranked)
            self.shown.append(_shuffled(ranked, seed, str(c.user_id)))

    def hits(self) -> list[int]:
        return [n for n, c in enumerate(self.cases) if c.target in self.ranked[n]]

    def history(self, n: int, order: str) -> History:
        ids = self.shown[n] if order == "shown" else self.ranked[n]
        case = self.cases[n].model_copy(update={"candidates": list(ids), "target": None})
        return resolve(case, self.catalog)


def _ndcg(ranking: Ranking, target: str) -> float:
    ids = [r.item_id for r in ranking.ranking]
    return ndcg_at_k(1 + ids.index(target), 10) if target in ids else 0.0


def _run(cases: _Cases, settings: Settings, order: str, label: str) -> dict[int, Ranking]:
    out: dict[int, Ranking] = {}
    started, hits = time.time(), cases.hits()
    with Recommender(settings=settings, catalog=cases.catalog, index=cases.index) as rec:
        for j, n in enumerate(hits, 1):
            out[n] = rec.rank(cases.history(n, order))
            if j % 20 == 0 or j == len(hits):
                print(f"  {label}: {j}/{len(hits)} ({time.time() - started:.0f} s)", flush=True)
    return out


def _values(cases: _Cases, score: Callable[[int], float]) -> np.ndarray:
    hits = set(cases.hits())
    return np.array([score(n) if n in hits else 0.0 for n in range(len(cases.cases))])


def _interval(values: np.ndarray, seed: int = 0, n_boot: int = 1000) -> tuple[float, float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(axis=1)
    return float(values.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _row(name: str, values: np.ndarray) -> str:
    m, lo, hi = _interval(values)
    return f"| {name} | {m:.4f} [{lo:.4f}, {hi:.4f}] |"


def _diff(name: str, a: np.ndarray, b: np.ndarray) -> str:
    m, lo, hi = _interval(a - b)
    verdict = "excludes 0" if lo > 0 or hi < 0 else "includes 0"
    return f"| {name} | {m:+.4f} [{lo:+.4f}, {hi:+.4f}] ({verdict}) |"


def _tuned_weight(val: _Cases, settings: Settings, label: str) -> tuple[float, list[tuple[float, float]]]:
    runs = _run(val, settings_from(settings, fusion_weight=1.0), "retrieval", f"{label} validation")
    hits = val.hits()
    table = weight_table([runs[n] for n in hits], [str(val.cases[n].target) for n in hits], GRID)
    return choose_weight(table), table


FIRST_PICK_TOKENS = 8


def first_pick_prompts(work: Path) -> Path:
    """A prompt folder whose listwise template is the shipped one with answers capped at the first label.

    The text the model reads is unchanged (the template's hash changes with ``max_tokens``); the
    repair appends the candidates it did not name in the order shown, as for any short answer.
    """
    from msrkit.runtime.prompts import PromptSet

    shipped = PromptSet.load()["listwise_rank"].source
    folder = work / "prompts-first-pick"
    folder.mkdir(exist_ok=True)
    text = Path(shipped).read_text(encoding="utf-8").replace("max_tokens = 160", f"max_tokens = {FIRST_PICK_TOKENS}")
    if f"max_tokens = {FIRST_PICK_TOKENS}" not in text:
        raise SystemExit(f"{shipped}: no 'max_tokens = 160' line to cap")
    (folder / "listwise_rank.toml").write_text(text, encoding="utf-8")
    return folder


def run_evaluation(work: Path, *, task: str, limit: int | None, seed: int, only_base: bool = False) -> None:
    """The lift table; ``only_base`` runs the zero-shot model alone (its answers land in the cache)."""
    meta = json.loads((work / "prepared.json").read_text(encoding="utf-8"))
    test = _Cases(load_histories(work / "test_cases.jsonl")[:limit], meta, seed)
    _, held = split_users(load_histories(work / "train_cases.jsonl"), fraction=0.1, seed=seed)
    # the validation users' latest case each (the training run validated on the same users)
    val_cases = list({str(c.user_id): c for c in reversed(held)}.values())
    val = _Cases(val_cases, meta, seed)
    adapter = work / f"adapter-{task}"
    # pointwise: MLLM-MSR's scorer, p(yes) per candidate (one call each, 1 token); rank and mix: the listwise first pick
    scorer = {"pointwise": True} if task == "pointwise" else {}
    manifest_path = adapter / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    # a list adapter (rank_answer "list") is served as `msrkit rank` sends it, with room for its list
    listed = manifest.get("rank_answer") == "list"
    base = Settings(
        backend="llamacpp/default", cache_dir=work / "cache", prompts=None if listed else first_pick_prompts(work),
        **BENCH_SETTINGS, **scorer,
    )  # fmt: skip
    if only_base:
        _run(test, settings_from(base, fusion_weight=1.0, shown_order="given"), "shown", "zero-shot alone")
        _tuned_weight(val, base, "zero-shot")
        _run(test, settings_from(base, fusion_weight=1.0), "retrieval", "zero-shot in retrieval order")
        return
    if not manifest:
        raise SystemExit(f"{manifest_path}: no adapter to evaluate (run bench_finetune.py train first)")
    tuned = settings_from(base, adapter=adapter)
    retrieval = _values(test, lambda n: ndcg_at_k(1 + test.ranked[n].index(str(test.cases[n].target)), 10))
    rows, diffs, weights = [_row("retrieval alone", retrieval)], [], {}
    results: dict[str, np.ndarray] = {"retrieval": retrieval}
    for label, s in (("zero-shot", base), ("fine-tuned", tuned)):
        alone = _run(test, settings_from(s, fusion_weight=1.0, shown_order="given"), "shown", f"{label} alone")
        results[f"{label} alone"] = _values(test, lambda n, a=alone: _ndcg(a[n], str(test.cases[n].target)))
        w, table = _tuned_weight(val, s, label)
        weights[label] = {"weight": w, "validation": table}
        solo = _run(test, settings_from(s, fusion_weight=1.0), "retrieval", f"{label} in retrieval order")
        results[f"{label} fused"] = _values(test, lambda n, r=solo, w=w: fused_ndcg(r[n], str(test.cases[n].target), w))
        rows += [_row(f"{label} alone (random order)", results[f"{label} alone"]),
                 _row(f"{label} fused (weight {w:.1f}, tuned on validation)", results[f"{label} fused"])]  # fmt: skip
    diffs.append(_diff("fine-tuned alone - zero-shot alone", results["fine-tuned alone"], results["zero-shot alone"]))
    diffs.append(_diff("fine-tuned fused - retrieval alone", results["fine-tuned fused"], retrieval))
    diffs.append(_diff("zero-shot fused - retrieval alone", results["zero-shot fused"], retrieval))
    store_weight(adapter, weights["fine-tuned"]["weight"])  # as `msrkit eval --tune-fusion --adapter` does
    _print(meta, test, val, manifest, rows, diffs, weights, task)


def _print(meta: dict[str, Any], test: _Cases, val: _Cases, manifest: dict[str, Any], rows: Sequence[str],
           diffs: Sequence[str], weights: dict[str, Any], task: str) -> None:  # fmt: skip
    t = manifest["training"]
    print(f"\n## {meta['dataset']}, task {task} (answer: {manifest.get('rank_answer', 'pick')}): {meta['split']}")
    print(f"train users {meta['train_users']} ({manifest['data']['examples']} examples), test users "
          f"{len(test.cases)} ({len(test.hits())} with the target among retrieval's 20), validation cases "
          f"{len(val.cases)} ({len(val.hits())} hits)")  # fmt: skip
    print(
        f"training: {t['steps']} steps, {t['tokens']} tokens, {t['seconds'] / 60:.1f} min, "
        f"{t['tokens_per_second']:.0f} tok/s, peak RSS {t['peak_rss_mb']:.0f} MB, {t['device']}; best step "
        f"{manifest['best_step']}; validation {[(p['step'], round(p['value'], 4)) for p in manifest['validation']]}"
    )
    print("\n| NDCG@10 over all test users (95 % bootstrap) | value |\n|---|---:|")
    print("\n".join(rows))
    print("\n| paired difference | value |\n|---|---:|")
    print("\n".join(diffs))
    for label, w in weights.items():
        print(f"{label}: fusion weights on validation {[(a, round(b, 4)) for a, b in w['validation']]}")
