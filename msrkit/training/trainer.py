"""LoRA fine-tuning on CPU or CUDA: the loop, its checkpoints and its stopping rule.

LoRA (peft) on the attention and MLP projections; AdamW with a short warm-up
and linear decay; loss on the answer tokens only; the validation metric
(:mod:`.validate`) every ``eval_every`` steps, the best adapter kept (on a tie, the one with the
lower validation loss), training
stopped after ``patience`` evaluations without improvement. ``checkpoints/last``
(adapter, optimizer, step, validation table) is written at every evaluation
and when the run is interrupted (Ctrl-C), and ``resume=True`` continues from
it with the same data order. Seeds fix everything that is drawn.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, InputError
from .base import BaseSpec, load_base
from .examples import ExampleSet, RankAnswer
from .gguf_lora import TARGET_MODULES
from .tokens import Encoded, answer_loss, batches, collate, encode
from .validate import METRIC, validate

__all__ = ["Progress", "TrainConfig", "TrainResult", "better", "train"]

log = logging.getLogger("msrkit")

#: what a resumed run may change: how long it goes on, and how often it validates
_MAY_CHANGE = {"resume", "max_steps", "epochs", "eval_every", "patience", "max_validation"}


class TrainConfig(BaseModel):
    """The knobs of one fine-tuning run (``msrkit finetune`` flags)."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["rank", "pointwise", "keywords", "mix"] = "rank"
    #: rank: answer with the target's label alone, or the target then the rest by evidence (examples.py)
    rank_answer: RankAnswer = "pick"
    max_steps: int | None = Field(default=None, ge=1)
    epochs: float = Field(default=1.0, gt=0)
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: float = Field(default=32.0, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    batch_size: int = Field(default=4, ge=1)
    warmup_steps: int = Field(default=10, ge=0)
    eval_every: int = Field(default=50, ge=1)
    patience: int = Field(default=3, ge=1)
    #: validation examples used at each evaluation (a seeded sample: generation costs time)
    max_validation: int = Field(default=40, ge=1)
    max_length: int = Field(default=2048, ge=64)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    resume: bool = False


@dataclass
class Progress:
    """What the progress callback is told after each step."""

    step: int
    total: int
    loss: float
    tokens: int
    tokens_per_second: float
    validation: dict[str, float] | None = None


@dataclass
class TrainResult:
    """What a run did: steps, tokens, time, the validation table, the best step; where the adapter lies."""

    peft_dir: Path
    steps: int
    epochs: float
    tokens: int
    seconds: float
    device: str
    peak_rss_mb: float
    validation: list[dict[str, Any]] = field(default_factory=list)
    best_step: int | None = None
    stopped: str = "done"

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def _device(choice: str) -> str:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available to torch here (use --device cpu or auto)")
    return "cuda" if choice == "auto" and torch.cuda.is_available() else ("cpu" if choice == "auto" else choice)


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1 << 20) if sys.platform == "darwin" else kb / 1024


def _lora(model: Any, config: TrainConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # a float scales too lora_dropout=config.lora_dropout,
                      target_modules=list(TARGET_MODULES), task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, lora)


def better(metric: float, loss: float, best: dict[str, Any] | None) -> bool:
    """Whether a validation point beats the best so far: a higher metric, or the same metric with a
    lower validation loss (a metric read from greedy answers can stay flat for many steps while the
    model learns; the loss then decides)."""
    if best is None or metric > best["value"]:
        return True
    return bool(metric == best["value"] and loss < best["loss"])


class _Run:
    """One training run's state: the model, optimizer, schedule, validation table and checkpoints."""

    def __init__(self, base: BaseSpec, train_set: ExampleSet, val_set: ExampleSet, config: TrainConfig,
                 out: Path) -> None:  # fmt: skip
        import torch

        torch.manual_seed(config.seed)
        self.config, self.out, self.device = config, out, _device(config.device)
        model, self.tokenizer = load_base(base, device=self.device)
        self.model = _lora(model, config)
        self.train_encoded, long_train = encode(self.tokenizer, train_set.examples, max_length=config.max_length)
        self.val_examples = _sample(val_set.examples, config.max_validation, config.seed)
        self.val_encoded, _ = encode(self.tokenizer, self.val_examples, max_length=config.max_length)
        if not self.train_encoded:
            raise InputError(f"no training example fits in max_length={config.max_length} tokens "
                             f"({long_train} too long)")  # fmt: skip
        if long_train:
            log.warning("%d training examples longer than %d tokens were left out", long_train, config.max_length)
        per_epoch = math.ceil(len(self.train_encoded) / config.batch_size)
        self.total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
        self.per_epoch = per_epoch
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.step, self.tokens, self.seconds = 0, 0, 0.0
        self.validation: list[dict[str, Any]] = []
        self.best: tuple[float, int] | None = None
        self.since_best = 0

    def _lr_factor(self, step: int) -> float:
        warm = self.config.warmup_steps
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (self.total - step) / max(1, self.total - warm))

    # -- the loop
    def schedule(self) -> list[list[Encoded]]:
        """Every batch the run takes, in order (the same for a resumed run)."""
        out: list[list[Encoded]] = []
        epoch = 0
        while len(out) < self.total:
            out.extend(batches(self.train_encoded, batch_size=self.config.batch_size, seed=self.config.seed,
                               epoch=epoch))  # fmt: skip
            epoch += 1
        return out[: self.total]

    def train_step(self, batch: list[Encoded]) -> float:
        start = time.perf_counter()
        import torch

        loss = answer_loss(self.model, collate(batch, pad_id=self.tokenizer.pad_token_id, device=self.device))
        loss.backward()

        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens += sum(len(e.input_ids) for e in batch)
        self.seconds += time.perf_counter() - start
        return float(loss.detach())

    def evaluate(self) -> dict[str, Any] | None:
        if not self.val_examples:
            return None
        metric, loss = validate(self.model, self.tokenizer, self.val_examples, self.val_encoded,
                                task=self.config.task, device=self.device)  # fmt: skip
        point = {"step": self.step, "metric": METRIC[self.config.task], "value": metric, "loss": loss}
        self.validation.append(point)
        if self._better(metric, loss):
            self.best, self.since_best = (metric, self.step), 0
            self.model.save_pretrained(str(self.out / "peft"))
        else:
            self.since_best += 1
        return point

    def _better(self, metric: float, loss: float) -> bool:
        best = next(p for p in self.validation if p["step"] == self.best[1]) if self.best else None
        return better(metric, loss, best)

    # -- checkpoints
    @property
    def last(self) -> Path:
        return self.out / "checkpoints" / "last"

    def save_checkpoint(self) -> None:
        import torch

        tmp = self.last.with_name("last.tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(tmp / "adapter"))
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()},
                   tmp / "optimizer.pt")  # fmt: skip
        state = {"step": self.step, "tokens": self.tokens, "seconds": self.seconds, "validation": self.validation,
                 "best": list(self.best) if self.best else None, "since_best": self.since_best, "total": self.total,
                 "config": self.config.model_dump(exclude=_MAY_CHANGE)}  # fmt: skip
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        if self.last.exists():
            old = self.last.with_name("last.old")
            self.last.rename(old)
            tmp.rename(self.last)
            _rmtree(old)
        else:
            tmp.rename(self.last)

    def load_checkpoint(self) -> None:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = json.loads((self.last / "state.json").read_text(encoding="utf-8"))
        saved = {k: v for k, v in state["config"].items() if k not in _MAY_CHANGE}
        if saved != self.config.model_dump(exclude=_MAY_CHANGE):
            raise ConfigError(f"--resume: {self.last} was made with other settings; give the same flags, "
                              "or start again without --resume")  # fmt: skip
        weights = load_file(str(self.last / "adapter" / "adapter_model.safetensors"), device=self.device)
        set_peft_model_state_dict(self.model, weights)
        optim = torch.load(self.last / "optimizer.pt", map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(optim["optimizer"])
        self.scheduler.load_state_dict(optim["scheduler"])
        self.step, self.tokens, self.seconds = state["step"], state["tokens"], state["seconds"]
        self.validation, self.since_best = state["validation"], state["since_best"]
        self.best = (state["best"][0], state["best"][1]) if state["best"] else None


def _sample(examples: list[Any], n: int, seed: int) -> list[Any]:
    if len(examples) <= n:
        return list(examples)
    import random

    return random.Random(seed).sample(examples, n)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def train(
    base: BaseSpec,
    train_set: ExampleSet,
    val_set: ExampleSet,
    *,
    config: TrainConfig,
    out: Path,
    on_progress: Callable[[Progress], None] | None = None,
) -> TrainResult:
    """Train a LoRA adapter; the best one (by validation, else the last) lands in ``out/peft``."""
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(base, train_set, val_set, config, out)
    if config.resume:
        if not (run.last / "state.json").is_file():
            raise InputError(f"--resume: no checkpoint in {run.last}; start without --resume")
        run.load_checkpoint()
    stopped = "done"
    schedule = run.schedule()
    try:
        if run.step == 0 and run.val_examples:
            _tell(on_progress, run, float("nan"), run.evaluate())
        for batch in schedule[run.step :]:
            loss = run.train_step(batch)
            point = None
            if run.step % config.eval_every == 0 or run.step == run.total:
                point = run.evaluate()
                run.save_checkpoint()
            _tell(on_progress, run, loss, point)
            if run.since_best >= config.patience:
                stopped = f"early stop: no better {METRIC[config.task]} in {config.patience} evaluations"
                break
    except KeyboardInterrupt:
        run.save_checkpoint()
        stopped = "interrupted"
    if run.best is None:
        run.model.save_pretrained(str(out / "peft"))
    return TrainResult(
        peft_dir=out / "peft", steps=run.step, epochs=run.step / run.per_epoch, tokens=run.tokens,
        seconds=run.seconds, device=run.device, peak_rss_mb=_peak_rss_mb(), validation=run.validation,
        best_step=run.best[1] if run.best else None, stopped=stopped,
    )  # fmt: skip


def _tell(on_progress: Callable[[Progress], None] | None, run: _Run, loss: float, point: dict[str, Any] | None) -> None:
    if point is not None:
        log.info("step %d: validation %s %.4f (loss %.4f)", run.step, point["metric"], point["value"], point["loss"])
    if on_progress is not None:
        rate = run.tokens / run.seconds if run.seconds else 0.0
        shown = {"metric": point["value"], "loss": point["loss"]} if point else None
        on_progress(Progress(run.step, run.total, loss, run.tokens, rate, shown))
