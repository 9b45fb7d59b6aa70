"""The validation metric a training run is judged and stopped by, computed on held-out users.

- ``rank``: NDCG@10 of the order the model writes (greedy, as long as the answers
  taught: the first label, or the whole list; what it leaves out appended in the
  order shown, as inference's repair does) for candidates
  shown in the examples' seeded random order;
- ``pointwise``: AUC of ``logit(Yes) - logit(No)`` at the answer position
  (the papers' p(yes) scorer), pooled over the examples;
- ``keywords``: the mean loss on the answer tokens (lower is better; reported negated
  so that higher is better for every metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..evaluation.metrics import ndcg_at_k
from ..ranking.parse import parse_order, repair
from .examples import Example
from .tokens import Encoded, answer_loss, collate, prompt_ids

__all__ = ["METRIC", "auc_pooled", "validate"]

METRIC = {"rank": "ndcg@10", "pointwise": "auc", "keywords": "-loss", "mix": "ndcg@10"}


def auc_pooled(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The probability that a positive outscores a negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return 0.5
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins) / (len(pos) * len(neg))


def validate(model: Any, tokenizer: Any, examples: Sequence[Example], encoded: Sequence[Encoded], *, task: str,
             device: str) -> tuple[float, float]:  # fmt: skip
    """``(metric, loss)`` on the validation examples (see the module docstring)."""
    import torch

    model.eval()
    try:
        with torch.no_grad():
            loss = _loss(model, encoded, pad_id=tokenizer.pad_token_id, device=device)
            if task in ("rank", "mix"):
                ranked = [e for e in examples if e.task == "rank"]
                # room for the longest answer taught (a pick is ~4 tokens, a whole list ~90)
                room = 4 + max((e.answer_tokens for e in encoded), default=0)
                metric = _ndcg(model, tokenizer, ranked, device, room) if ranked else -loss
            elif task == "pointwise":
                metric = _auc(model, tokenizer, examples, device)
            else:
                metric = -loss
    finally:
        model.train()
    return metric, loss


def _loss(model: Any, encoded: Sequence[Encoded], *, pad_id: int, device: str) -> float:
    total, tokens = 0.0, 0
    for start in range(0, len(encoded), 4):
        batch = list(encoded[start : start + 4])
        n = sum(e.answer_tokens for e in batch)
        total += float(answer_loss(model, collate(batch, pad_id=pad_id, device=device))) * n
        tokens += n
    return total / max(1, tokens)


def _ndcg(model: Any, tokenizer: Any, examples: Sequence[Example], device: str, room: int) -> float:
    import torch

    values = []
    for e in examples:
        ids = torch.tensor([prompt_ids(tokenizer, e.messages)], device=device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max(8, room), pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        text = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        order = repair(parse_order(text).numbers, len(e.shown)).order
        rank = 1 + [e.shown[i] for i in order].index(str(e.target))
        values.append(ndcg_at_k(rank, 10))
    return sum(values) / len(values)


def _auc(model: Any, tokenizer: Any, examples: Sequence[Example], device: str) -> float:
    import torch

    yes = tokenizer("Yes", add_special_tokens=False).input_ids[0]
    no = tokenizer("No", add_special_tokens=False).input_ids[0]
    scores, labels = [], []
    for e in examples:
        ids = torch.tensor([prompt_ids(tokenizer, e.messages)], device=device)
        logits = model(input_ids=ids).logits[0, -1]
        scores.append(float(logits[yes] - logits[no]))
        labels.append(int(e.label or 0))
    return auc_pooled(scores, labels)
