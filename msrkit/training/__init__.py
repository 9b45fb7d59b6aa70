"""Fine-tuning (extra ``msrkit[train]``): from the user's own cases to a LoRA adapter every backend can serve.

The loop, one module per step:

- :mod:`.examples` — training examples built by the one prompt builder inference
  uses (:mod:`msrkit.ranking.prompting`), with candidates from the same
  retrieval, the index of each case seeing only interactions before its target;
- :mod:`.trainer` — LoRA on the attention and MLP projections (torch, peft), loss
  on the answer tokens only, validation by user, early stopping, checkpoints;
- :mod:`.gguf_lora` — the trained PEFT adapter written as a GGUF LoRA adapter
  (llama.cpp's tensor naming), with the ``gguf`` package;
- :mod:`.adapter` — the adapter folder (``peft/``, ``adapter.gguf``,
  ``manifest.json``): read, checked against the base model and the prompts in use.

torch, transformers and peft are imported only inside the functions that train,
so ``import msrkit`` stays fast and a missing extra is a
:class:`~msrkit.errors.MissingDependencyError` naming ``msrkit[train]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FinetuneResult", "TrainConfig", "finetune", "finetune_keywords"]

if TYPE_CHECKING:
    from .job import FinetuneResult, finetune
    from .keyword_tuning import finetune_keywords
    from .trainer import TrainConfig

_LAZY = {
    "FinetuneResult": ".job",
    "finetune": ".job",
    "finetune_keywords": ".keyword_tuning",
    "TrainConfig": ".trainer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
