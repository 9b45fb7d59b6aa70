"""The base model a LoRA adapter is trained on: named, found, hashed, checked, loaded.

A base is the embedded model (``llamacpp/default``), a GGUF file (``model.gguf``
or ``llamacpp/model.gguf``) or a Hugging Face model folder (``config.json`` and
weights). transformers reads a GGUF with ``gguf_file=`` and dequantizes it, so
the model that ``msrkit rank`` runs in llama.cpp is the model that is trained.
Only llama-architecture models are accepted: that is what llama.cpp's LoRA
tensor names and msrkit's GGUF adapter writer cover.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MissingDependencyError

__all__ = ["BaseSpec", "load_base", "require_train_extra", "resolve_base", "sha256_file"]

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


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve_base(name: str) -> BaseSpec:
    """The base named ``name`` (see the module docstring); a wrong one is a one-line :class:`ConfigError`."""
    spec = name.strip()
    if spec in ("default", "embedded", "llamacpp/default", "auto"):
        from ..backends.registry import embedded_model_path

        path = embedded_model_path()
    else:
        path = Path(spec.removeprefix("llamacpp/")).expanduser()
    if not path.exists():
        raise ConfigError(f"base model {name!r}: {path} does not exist (give a GGUF file or a model folder)")
    if path.is_file():
        return BaseSpec(name, path, path, sha256_file(path), _gguf_architecture(path))
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError(f"base model {name!r}: {path} is a folder without config.json (not a Hugging Face model)")
    return BaseSpec(name, path, None, _folder_hash(path), _folder_architecture(config))


def _check_architecture(arch: str, where: Path) -> str:
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"base model {where}: architecture {arch!r} is not supported (llama-architecture models only, "
            "e.g. SmolLM2, Llama, TinyLlama)"
        )
    return arch


def _gguf_architecture(path: Path) -> str:
    try:
        from gguf import GGUFReader
    except ImportError:
        raise MissingDependencyError("gguf", "train", "reading a GGUF base model") from None
    try:
        field = GGUFReader(str(path)).fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode()
    except (KeyError, ValueError, OSError) as exc:
        raise ConfigError(f"base model {path}: not a readable GGUF file ({exc})") from None
    return _check_architecture(arch, path)


def _folder_architecture(config: Path) -> str:
    try:
        model_type = str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config}: not readable JSON ({exc})") from None
    return _check_architecture(model_type, config.parent)


def _folder_hash(folder: Path) -> str:
    """The hash of a model folder's weight files (names and bytes), in name order."""
    h = hashlib.sha256()
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".gguf"))
    if not weights:
        raise ConfigError(f"base model {folder}: no weight files (*.safetensors, *.bin)")
    for p in weights:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def load_base(base: BaseSpec, *, device: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from transformers, float32, on ``device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": base.gguf.name} if base.gguf is not None else {}
    tokenizer = AutoTokenizer.from_pretrained(str(base.folder), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(base.folder), dtype=torch.float32, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device), tokenizer
