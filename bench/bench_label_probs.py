"""Did a rank adapter learn anything its greedy first pick hides? Rank the shown labels by their probability.

    python bench/bench_label_probs.py --work W --adapter W/adapter-rank [--limit 40]

On the validation examples a ``rank`` run held out (same cases, settings and seed as
``bench_finetune.py train``), each candidate's label ``[k]`` is scored by its sequence
probability after the prompt: ``P("1") * P("7" | "1")`` for two digits, ``P("k") * P("]" | "k")`` for
labels 1 and 2 (which also begin 10-20), ``P("k")`` for 3-9 (no label continues them, so ``"]"``
is taken as certain: an upper bound): three forward passes per example and model. Printed: the
mean NDCG@10 of the label-probability order, the mean target probability, and the share of
examples whose most probable label is the candidate marked ``evidence: top``; with 95 %
bootstrap intervals over examples.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_finetune import _meta, _settings  # noqa: E402

from msrkit.evaluation.metrics import ndcg_at_k  # noqa: E402
from msrkit.inputs.io import load_catalog, load_histories  # noqa: E402
from msrkit.retrieval.interactions import read_interactions  # noqa: E402
from msrkit.training.job import training_sets  # noqa: E402


def _interval(v: np.ndarray) -> str:
    rng = np.random.default_rng(0)
    means = v[rng.integers(0, len(v), size=(1000, len(v)))].mean(axis=1)
    return f"{v.mean():.4f} [{np.quantile(means, 0.025):.4f}, {np.quantile(means, 0.975):.4f}]"


def label_probs(model, tokenizer, ids: list[int], n: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """P of each label 1..n written after the prompt's opening ``[`` (digits are single tokens here)."""
    import torch

    def next_logp(seq: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(model(input_ids=torch.tensor([seq])).logits[0, -1].float(), dim=-1)

    tok = {s: tokenizer(s, add_special_tokens=False).input_ids for s in [*map(str, range(10)), "]", "["]}
    assert all(len(v) == 1 for v in tok.values()), "needs single-token digits"
    digit = {d: tok[str(d)][0] for d in range(10)}
    close = tok["]"][0]
    first = next_logp(ids + tok["["])
    out = np.full(n, -np.inf)
    tens = {k // 10 for k in range(10, n + 1)}
    after = {t: next_logp(ids + tok["["] + [digit[t]]) for t in tens}
    for k in range(1, n + 1):
        if k < 10:
            out[k - 1] = float(first[digit[k]] + (after[k][close] if k in after else 0.0))
        else:
            out[k - 1] = float(first[digit[k // 10]] + after[k // 10][digit[k % 10]])
    return np.exp(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--limit", type=int, default=40)
    args = p.parse_args()
    from peft import PeftModel

    from msrkit.training.base import load_base, resolve_base
    from msrkit.training.tokens import prompt_ids

    work = Path(args.work)
    meta = _meta(work)
    s = _settings(meta)
    cases = load_histories(work / "train_cases.jsonl")
    catalog = load_catalog(meta["items"]) if meta["items"] else {}
    _, val = training_sets(cases, task="rank", settings=s, catalog=catalog, interactions=read_interactions(
        meta["interactions"]), validation_fraction=0.1, seed=0)  # fmt: skip
    examples = val.examples[: args.limit]
    model, tokenizer = load_base(resolve_base("llamacpp/default"), device="cpu")
    model.eval()
    tuned = PeftModel.from_pretrained(model, args.adapter)
    tuned.eval()
    rows: dict[str, dict[str, list[float]]] = {"base": {}, "adapter": {}}
    for j, e in enumerate(examples, 1):
        ids = prompt_ids(tokenizer, e.messages)
        user = e.messages[-1]["content"]
        lines = re.findall(r"^\[(\d+)\] .*evidence: (\w+)$", user, flags=re.M)
        top = {int(k) - 1 for k, level in lines if level == "top"}
        t = e.shown.index(e.target)
        for name in rows:
            if name == "base":
                with tuned.disable_adapter():
                    probs = label_probs(tuned, tokenizer, ids, len(e.shown))
            else:
                probs = label_probs(tuned, tokenizer, ids, len(e.shown))
            order = list(np.argsort(-probs, kind="stable"))
            r = rows[name]
            r.setdefault("ndcg", []).append(ndcg_at_k(1 + order.index(t), 10))
            r.setdefault("p_target", []).append(float(probs[t] / probs.sum()))
            r.setdefault("argmax_is_top", []).append(float(order[0] in top))
        print(f"{j}/{len(examples)}", flush=True)
    print(f"\n{len(examples)} validation examples of {len(val.examples)}; 20 labels (uniform p = 0.05)")
    print("| model | NDCG@10 of the label-probability order | p(target) | most probable label is 'top' |")
    print("|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | " + " | ".join(_interval(np.array(r[k])) for k in ("ndcg", "p_target", "argmax_is_top")) + " |"
        )
    d = np.array(rows["adapter"]["ndcg"]) - np.array(rows["base"]["ndcg"])
    print(f"paired NDCG difference adapter - base: {_interval(d)}")
    print(json.dumps({k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in rows.items()}))


if __name__ == "__main__":
    main()
