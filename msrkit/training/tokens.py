"""Examples to token ids: the chat template inference uses, loss on the answer tokens only, length-grouped batches.

The prompt is the model's own chat template (read from the GGUF, as
llama-cpp-python renders it) with the generation prompt; the answer follows
with the end-of-turn token, so a trained model stops where inference expects.
Batches group examples of similar length (seeded), so padding stays small.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .examples import Example

__all__ = ["Encoded", "answer_loss", "batches", "collate", "encode", "prompt_ids"]

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    """One example as token ids; ``labels`` is ``-100`` on the prompt (no loss there)."""

    input_ids: list[int]
    labels: list[int]
    index: int

    @property
    def answer_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


def prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """The token ids of the chat prompt, generation prompt included (what the model reads before answering)."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    ids: list[int] = tokenizer(text, add_special_tokens=False).input_ids
    return ids


def _end_of_turn(tokenizer: Any) -> list[int]:
    for token in ("<|im_end|>", "<|eot_id|>", "</s>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid >= 0 and tid != tokenizer.unk_token_id:
            return [tid]
    return [tokenizer.eos_token_id]


def encode(tokenizer: Any, examples: Sequence[Example], *, max_length: int) -> tuple[list[Encoded], int]:
    """Encoded examples, and how many were left out for being longer than ``max_length`` tokens."""
    end = _end_of_turn(tokenizer)
    out: list[Encoded] = []
    too_long = 0
    for n, example in enumerate(examples):
        prompt = prompt_ids(tokenizer, example.messages)
        answer = tokenizer(example.answer, add_special_tokens=False).input_ids + end
        if len(prompt) + len(answer) > max_length:
            too_long += 1
            continue
        out.append(Encoded(prompt + answer, [IGNORE] * len(prompt) + answer, n))
    return out, too_long


def batches(encoded: Sequence[Encoded], *, batch_size: int, seed: int, epoch: int) -> list[list[Encoded]]:
    """One epoch's batches: shuffled, grouped by length within windows of 16 batches, batches shuffled."""
    rng = random.Random(f"{seed}:{epoch}")
    order = list(encoded)
    rng.shuffle(order)
    window = batch_size * 16
    out: list[list[Encoded]] = []
    for start in range(0, len(order), window):
        group = sorted(order[start : start + window], key=lambda e: len(e.input_ids))
        out.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(out)
    return out


def collate(batch: Sequence[Encoded], *, pad_id: int, device: str) -> dict[str, Any]:
    """Left-padded tensors (``input_ids``, ``attention_mask``, ``position_ids``) and the answer's ``labels``.

    Left padding puts every answer at the end, so the logits are computed for the
    last ``labels.shape[1]`` positions only (``logits_to_keep``): on a 700-token
    prompt with a short answer that skips most of the vocabulary projection.
    Position ids count from each sequence's first real token, as at inference.
    """
    import torch

    width = max(len(e.input_ids) for e in batch)
    keep = 1 + max(len(e.labels) - _first_label(e) for e in batch)
    ids = [[pad_id] * (width - len(e.input_ids)) + e.input_ids for e in batch]
    mask = [[0] * (width - len(e.input_ids)) + [1] * len(e.input_ids) for e in batch]
    labels = [([IGNORE] * (width - len(e.labels)) + e.labels)[width - keep + 1 :] for e in batch]
    attention = torch.tensor(mask, device=device)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": attention,
        "position_ids": (attention.cumsum(-1) - 1).clamp(min=0),
        "logits_to_keep": keep,
        "labels": torch.tensor(labels, device=device),
    }


def _first_label(e: Encoded) -> int:
    return next(i for i, t in enumerate(e.labels) if t != IGNORE)


def answer_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean cross-entropy over the answer tokens of a :func:`collate` batch."""
    import torch

    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits[:, :-1, :]
    labels = batch["labels"]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                                             ignore_index=IGNORE)  # fmt: skip
