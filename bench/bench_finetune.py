"""Does fine-tuning make the LLM stage help? Train on early users, test on later ones, print the lift table.

    python bench/bench_finetune.py prepare  --dataset ml-100k --data DIR --work W   # msrkit data movielens --out DIR
    python bench/bench_finetune.py prepare  --dataset beauty --data ../shared/data/amazon-seq/Beauty.txt --work W
    python bench/bench_finetune.py train    --work W --task rank --max-steps 150
    python bench/bench_finetune.py train    --work W --task rank --epochs 3 --device cuda   # where a GPU is
    python bench/bench_finetune.py evaluate --work W --task rank [--limit N]

Protocol (printed with the table):

- **Split by time** (MovieLens: each user's target time; a cut at the 70th
  percentile) or, where a data set has no timestamps (the Amazon sequences), by a
  seeded user split: training users' targets lie before the cut, test users after
  it, so no test user's target is seen in training. Training users give up to
  ``--per-user`` cases each (their last items, one case per item, latest first);
  test users one (their last item). 10 % of the training users (seeded) validate.
- **Candidates**: retrieval's top 20 (msrkit's default blend), from an index that
  sees, per case, only interactions before its target. A case whose target
  retrieval missed scores 0 for every method (no reranking can reach it), and costs
  no model call.
- **Prompts**: msrkit's own listwise prompt, with item and preference summaries off
  (the preference text is the last ten items) and no reasons asked, as ``msrkit
  rank`` sends it with those settings.
- **The model's answer is its first pick**: evaluation caps the listwise answer at
  8 tokens (a prompt folder with the shipped template, ``max_tokens`` 8; the text
  the model reads is unchanged), and the candidates it did not name follow in the
  order shown, as the repair always does. Training teaches exactly that (target
  first, the rest as shown), and decoding 160 tokens per call on a shared CPU
  would cost ten times as long.
- **Pointwise** (``--task pointwise``): MLLM-MSR's scorer, one yes/no call per
  candidate scored by p(yes) from the first token's log-probabilities (1 token
  generated), trained on the target (Yes) and one seeded negative (No) per case;
  the candidates are ordered by p(yes), so the model ranks all of them, not only
  its first pick. The order shown does not change a pointwise prompt.
- **Alone**: the model ranks the candidates shown in a seeded random order
  (``shown_order = "given"``, fusion weight 1: its order only). **Fused**: as the
  pipeline runs it, shown in retrieval's order, fused with retrieval by the weight
  chosen on the validation users (``--tune-fusion``'s grid).
- NDCG@10 per test case, mean with a 95 % bootstrap interval (1,000 resamples);
  differences are paired (the same resampled cases for both methods).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from msrkit.config import Settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_finetune_eval import BENCH_SETTINGS, run_evaluation  # noqa: E402  (beside this file)

# ----------------------------------------------------------------------------- prepare


def _movielens(data: Path) -> tuple[list[dict[str, Any]], Path | None, Path]:
    cases = [json.loads(line) for line in (data / "cases.jsonl").open(encoding="utf-8")]
    return cases, data / "items.jsonl", data / "interactions.jsonl"


def _sequences(path: Path, work: Path) -> tuple[list[dict[str, Any]], None, Path]:
    rows, cases = [], []
    for line in path.open(encoding="utf-8"):
        user, *items = line.split()
        rows.extend({"user_id": user, "item_id": i} for i in items)
        if len(items) >= 3:
            cases.append({"user_id": user, "history": items[:-1], "target": items[-1]})
    inter = work / "interactions.jsonl"
    with inter.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    return cases, None, inter


def _earlier_cases(case: dict[str, Any], per_user: int) -> list[dict[str, Any]]:
    """The case and up to ``per_user - 1`` earlier ones: each of the user's last items as a target."""
    out = [case]
    history = list(case["history"])
    for _ in range(per_user - 1):
        if len(history) < 4:
            break
        last = history.pop()
        target = last["item_id"] if isinstance(last, dict) else last
        extra = {"target_timestamp": last["timestamp"]} if isinstance(last, dict) and "timestamp" in last else {}
        out.append({"user_id": case["user_id"], "history": list(history), "target": target, **extra})
    return out


def prepare(args: argparse.Namespace) -> None:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    cases, items, inter = _movielens(data) if args.dataset == "ml-100k" else _sequences(data, work)
    for c in cases:
        c.pop("candidates", None)
    rng = random.Random(args.seed)
    if all("target_timestamp" in c for c in cases):
        times = sorted(c["target_timestamp"] for c in cases)
        cut = times[int(0.7 * len(times))]
        train = [c for c in cases if c["target_timestamp"] < cut]
        test = [c for c in cases if c["target_timestamp"] >= cut]
        split = f"time cut at the 70th percentile of target times ({cut:.0f})"
    else:
        rng.shuffle(cases)
        n = int(0.7 * len(cases))
        train, test = cases[:n], cases[n:]
        split = "no timestamps: seeded user split 70/30"
    rng.shuffle(train)
    rng.shuffle(test)
    train, test = train[: args.train_users], test[: args.test_users]
    train_cases = [e for c in train for e in _earlier_cases(c, args.per_user)]
    for name, rows in (("train_cases.jsonl", train_cases), ("test_cases.jsonl", test)):
        with (work / name).open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    meta = {"dataset": args.dataset, "split": split, "train_users": len(train), "train_cases": len(train_cases),
            "test_users": len(test), "items": str(items) if items else None, "interactions": str(inter)}  # fmt: skip
    (work / "prepared.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(json.dumps(meta, indent=1))


# ----------------------------------------------------------------------------- train


def _meta(work: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((work / "prepared.json").read_text(encoding="utf-8"))
    return meta


def _settings(meta: dict[str, Any], **extra: Any) -> Settings:
    catalog = Path(meta["items"]) if meta["items"] else None
    return Settings(catalog=catalog, interactions=Path(meta["interactions"]), **BENCH_SETTINGS, **extra)


def train(args: argparse.Namespace) -> None:
    from msrkit.training import TrainConfig, finetune

    work = Path(args.work)
    meta = _meta(work)
    s = _settings(meta)
    config = TrainConfig(task=args.task, max_steps=args.max_steps, epochs=args.epochs, device=args.device,
                         batch_size=args.batch_size,
                         learning_rate=args.lr, eval_every=args.eval_every, lora_rank=args.lora_rank,
                         lora_alpha=2.0 * args.lora_rank, seed=args.seed, resume=args.resume,
                         patience=args.patience, max_validation=args.max_validation,
                         rank_answer=args.rank_answer)  # fmt: skip

    def show(p: Any) -> None:
        if p.validation is not None or p.step % 10 == 0:
            val = f" validation {p.validation['metric']:.4f} (loss {p.validation['loss']:.4f})" if p.validation else ""
            print(f"step {p.step}/{p.total} loss {p.loss:.4f} {p.tokens_per_second:.0f} tok/s{val}", flush=True)

    started = time.time()
    result = finetune(work / "train_cases.jsonl", out=work / f"adapter-{args.task}", catalog=s.catalog,
                      interactions=s.interactions, config=config, settings=s, on_progress=show)  # fmt: skip
    print(json.dumps(result.manifest["training"], indent=1))
    print(f"examples {result.examples} (validation {result.validation_examples}), skipped {result.skipped}, "
          f"wall {time.time() - started:.0f} s, stopped: {result.train.stopped}")  # fmt: skip


# ----------------------------------------------------------------------------- evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--dataset", choices=["ml-100k", "beauty", "sports"], required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--per-user", type=int, default=4)
    p.add_argument("--train-users", type=int, default=100_000)
    p.add_argument("--test-users", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train")
    t.add_argument("--work", required=True)
    t.add_argument("--task", choices=["rank", "pointwise", "mix"], default="rank")
    t.add_argument("--max-steps", type=int, default=None, help="Steps to train (default: --epochs' worth).")
    t.add_argument("--epochs", type=float, default=1.0, help="Passes over the training examples (without --max-steps).")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--batch-size", type=int, default=2)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--lora-rank", type=int, default=16)
    t.add_argument("--eval-every", type=int, default=50)
    t.add_argument("--patience", type=int, default=3)
    t.add_argument("--max-validation", type=int, default=20)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--resume", action="store_true")
    t.add_argument("--rank-answer", choices=["pick", "list"], default="pick")
    e = sub.add_parser("evaluate")
    e.add_argument("--work", required=True)
    e.add_argument("--task", choices=["rank", "pointwise", "mix"], default="rank")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--only-base", action="store_true", help="Run the zero-shot model only (fills the cache).")
    args = parser.parse_args()
    {"prepare": prepare, "train": train, "evaluate": evaluate}[args.phase](args)


def evaluate(args: argparse.Namespace) -> None:
    run_evaluation(Path(args.work), task=args.task, limit=args.limit, seed=args.seed, only_base=args.only_base)


if __name__ == "__main__":
    main()
