"""The base model a LoRA adapter is trained on: named, found, hashed, checked, loaded.

A base is the embedded model (``llamacpp/default``), a GGUF file (``model.gguf``
or ``llamacpp/model.gguf``) or a Hugging Face model folder (``config.json`` and
weights). transformers reads a GGUF with ``gguf_file=`` and dequantizes it, so
the model that ``msrkit rank`` runs in llama.cpp is the model that is trained.
Only llama-architecture models are accepted: that is what llama.cpp's LoRA
tensor names and msrkit's GGUF adapter writer cover.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError
from .adapter import base_sha256

__all__ = ["BaseSpec", "load_base", "require_train_extra", "resolve_base"]

ARCHITECTURES = ("llama",)


@dataclass(frozen=True)
class BaseSpec:
    """A resolved base: what the user named, where it lies, its hash and architecture."""

    name: str
    path: Path
    gguf: Path | None
    sha256: str
    architecture: str

    @property
    def folder(self) -> Path:
        return self.gguf.parent if self.gguf is not None else self.path


def require_train_extra() -> None:
    """Raise :class:`MissingDependencyError` (exit 5) unless torch, transformers, peft and gguf import."""
    import importlib.util

    for module in ("torch", "transformers", "peft", "gguf", "safetensors"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, "train", "fine-tuning")


def resolve_base(name: str) -> BaseSpec:
    """The base named ``name`` (see the module docstring); a wrong one is a one-line :class:`ConfigError`."""
    spec = name.strip()
    if spec in ("default", "embedded", "llamacpp/default", "auto"):
        from ..backends.auto import embedded_model_path

        path = embedded_model_path()
    else:
        path = Path(spec.removeprefix("llamacpp/")).expanduser()
    if not path.exists():
        raise ConfigError(f"base model {name!r}: {path} does not exist (give a GGUF file or a model folder)")
    if path.is_file():
        return BaseSpec(name, path, path, base_sha256(path), _gguf_architecture(path))
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"base model {name!r}: {path} is a folder without config.json (not a Hugging Face model)")
    return BaseSpec(name, path, None, base_sha256(path), _folder_architecture(config))


def _check_architecture(arch: str, where: Path) -> str:
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"base model {where}: architecture {arch!r} is not supported (llama-architecture models only, "
            "e.g. SmolLM2, Llama, TinyLlama)"
        )
    return arch


def _gguf_architecture(path: Path) -> str:
    from .gguf_header import read_gguf_header

    arch = str(read_gguf_header(path).metadata.get("general.architecture", ""))
    return _check_architecture(arch, path)


def _folder_architecture(config: Path) -> str:
    try:
        model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config}: not readable JSON ({exc})") from None
    return _check_architecture(model_type, config.parent)


def load_base(base: BaseSpec, *, device: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from transformers, float32, on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": base.gguf.name} if base.gguf is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device)  # type: ignore[arg-type]  # transformers' stubs type .to() for models narrowly
    return model, tokenizer
