"""``msrkit finetune`` from Python: cases in, an adapter folder out.

::

    from msrkit.training import finetune, TrainConfig
    result = finetune("cases.jsonl", out="adapters/ml", catalog="items.jsonl",
                      interactions="interactions.jsonl", config=TrainConfig(task="rank", max_steps=200))

The folder holds ``peft/`` (the adapter as peft saves it), ``adapter.gguf``
(the same adapter for llama.cpp) and ``manifest.json`` (base and its hash,
prompts and their hashes, data hash, steps, validation table). Validation users
are cut from the cases by user (``validation_fraction``), never by example.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from ..config import Settings
from ..data import History, Item
from ..errors import InputError
from ..runtime.prompts import PromptSet
from .base import BaseSpec, require_train_extra, resolve_base
from .examples import ExampleSet, RankAnswer, build_examples, split_users
from .trainer import Progress, TrainConfig, TrainResult, train

__all__ = [
    "DEFAULT_BASE",
    "VALIDATION_FRACTION",
    "FinetuneOptions",
    "FinetuneResult",
    "finetune",
    "train_and_write",
    "training_sets",
]

log = logging.getLogger("msrkit")

#: the base model trained when none is named
DEFAULT_BASE = "llamacpp/default"
#: the share of users (or items) held back for validation
VALIDATION_FRACTION = 0.1

#: the templates each task's prompts come from (their hashes go into the manifest)
TASK_TEMPLATES = {
    "rank": ("listwise_rank",),
    "pointwise": ("yes_no",),
    "keywords": ("item_keywords",),
    "mix": ("listwise_rank", "yes_no", "item_keywords"),
}


@dataclass
class FinetuneResult:
    """The adapter folder, the run, and the example counts."""

    out: Path
    train: TrainResult
    examples: int
    validation_examples: int
    skipped: dict[str, int]
    manifest: dict[str, Any]


class FinetuneOptions(TypedDict, total=False):
    """The keyword options of :func:`finetune`, which :func:`~msrkit.training.finetune_keywords` takes too."""

    catalog: str | Path | dict[str, Item] | None
    interactions: str | Path | None
    base: str
    config: TrainConfig | None
    settings: Settings | None
    validation_fraction: float
    on_progress: Callable[[Progress], None] | None


def _load(
    cases: str | Path | Sequence[History], catalog: str | Path | dict[str, Item] | None
) -> tuple[list[History], dict[str, Item]]:
    from ..inputs.io import load_catalog, load_histories

    loaded = load_histories(cases) if isinstance(cases, (str, Path)) else list(cases)
    items = load_catalog(catalog) if isinstance(catalog, (str, Path)) else dict(catalog or {})
    if not loaded:
        raise InputError(f"{cases}: no cases to train on")
    return loaded, items


def training_sets(
    cases: Sequence[History],
    *,
    task: str,
    settings: Settings,
    catalog: dict[str, Item],
    interactions: Any,
    validation_fraction: float,
    seed: int,
    rank_answer: RankAnswer = "pick",
) -> tuple[ExampleSet, ExampleSet]:
    """Training and validation examples, validation users cut by user (seeded)."""
    from ..retrieval import build_index

    index = build_index(settings, rows=interactions, catalog=catalog, cases=cases)
    train_cases, val_cases = split_users(cases, fraction=validation_fraction, seed=seed)
    tasks = ["rank", "pointwise"] if task == "mix" else [task]
    train_set, val_set = ExampleSet(), ExampleSet()
    for t in tasks:
        for part, into in ((train_cases, train_set), (val_cases, val_set)):
            built = build_examples(part, task=t, settings=settings, catalog=catalog, interactions=interactions,  # type: ignore[arg-type]
                                   seed=seed, index=index, rank_answer=rank_answer)  # fmt: skip
            into.absorb(built)
    return train_set, val_set


def finetune(
    cases: str | Path | Sequence[History],
    *,
    out: str | Path,
    catalog: str | Path | dict[str, Item] | None = None,
    interactions: str | Path | None = None,
    base: str = DEFAULT_BASE,
    config: TrainConfig | None = None,
    settings: Settings | None = None,
    validation_fraction: float = VALIDATION_FRACTION,
    on_progress: Callable[[Progress], None] | None = None,
) -> FinetuneResult:
    """Build the examples, train, write the three artifacts (see the module docstring)."""
    require_train_extra()
    config = config or TrainConfig()
    if config.task == "keywords":
        raise InputError("task 'keywords' trains on item summaries: use msrkit.training.finetune_keywords")
    s = settings or Settings()
    spec = resolve_base(base)
    loaded, items = _load(cases, catalog if catalog is not None else s.catalog)
    source = interactions if interactions is not None else s.interactions
    if source is None:
        raise InputError("fine-tuning needs interactions (--interactions): candidates come from retrieval")
    from ..retrieval.interactions import read_interactions

    started = time.time()
    train_set, val_set = training_sets(
        loaded, task=config.task, settings=s, catalog=items, interactions=read_interactions(source),
        validation_fraction=validation_fraction, seed=config.seed, rank_answer=config.rank_answer,
    )  # fmt: skip
    return train_and_write(spec, (train_set, val_set), out=Path(out), config=config, settings=s,
                           on_progress=on_progress, started=started)  # fmt: skip


def train_and_write(
    spec: BaseSpec,
    sets: tuple[ExampleSet, ExampleSet],
    *,
    out: Path,
    config: TrainConfig,
    settings: Settings,
    on_progress: Callable[[Progress], None] | None,
    started: float,
) -> FinetuneResult:
    """Train on ``sets`` (training, validation), write the three artifacts; no training example is an error."""
    train_set, val_set = sets
    if not train_set.examples:
        raise InputError(f"no training examples: {train_set.skipped or 'no cases'}")
    log.info("%d training and %d validation examples (%s skipped)", len(train_set.examples),
             len(val_set.examples), train_set.skipped)  # fmt: skip
    result = train(spec, train_set, val_set, config=config, out=out, on_progress=on_progress)
    manifest = write_artifacts(out, spec=spec, result=result, config=config, settings=settings, sets=sets,
                               started=started)  # fmt: skip
    return FinetuneResult(out, result, len(train_set.examples), len(val_set.examples), train_set.skipped,
                          manifest)  # fmt: skip


def write_artifacts(
    out: Path,
    *,
    spec: BaseSpec,
    result: TrainResult,
    config: TrainConfig,
    settings: Settings,
    sets: tuple[ExampleSet, ExampleSet],
    started: float,
) -> dict[str, Any]:
    """``adapter.gguf`` (for a GGUF base) and ``manifest.json`` beside ``peft/``."""
    from .adapter import Manifest, prompt_infos, write_manifest
    from .gguf_lora import TARGET_MODULES, write_gguf_lora

    if spec.gguf is not None:
        write_gguf_lora(result.peft_dir, out / "adapter.gguf", base_gguf=spec.gguf)
    prompts = PromptSet.load(settings.prompts)
    names = TASK_TEMPLATES[config.task]
    train_set, val_set = sets
    manifest = {
        "format": "msrkit-adapter", "version": 1, "task": config.task, "rank_answer": config.rank_answer,
        "base": {"name": spec.name, "path": str(spec.path), "sha256": spec.sha256, "architecture": spec.architecture},
        "prompts": prompt_infos(prompts, names),
        "data": {"sha256": train_set.digest(), "examples": len(train_set.examples),
                 "train_users": len(train_set.users), "validation_users": len(val_set.users)},
        "lora": {"rank": config.lora_rank, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                 "target_modules": list(TARGET_MODULES)},
        "training": {"steps": result.steps, "epochs": round(result.epochs, 3), "tokens": result.tokens,
                     "seconds": round(result.seconds, 1), "device": result.device, "seed": config.seed,
                     "tokens_per_second": round(result.tokens_per_second, 1),
                     "peak_rss_mb": round(result.peak_rss_mb, 1)},
        "validation": result.validation, "best_step": result.best_step, "fusion_weight": None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }  # fmt: skip
    write_manifest(out, Manifest.model_validate(manifest))
    return manifest
