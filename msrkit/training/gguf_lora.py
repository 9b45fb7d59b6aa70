"""A PEFT LoRA adapter written as a GGUF LoRA adapter, the file llama.cpp (and Ollama's ``ADAPTER``) loads.

What llama.cpp expects of an adapter file (its loader checks each):

- metadata ``general.type = "adapter"``, ``adapter.type = "lora"``,
  ``adapter.lora.alpha`` and ``general.architecture`` equal to the base's;
- per adapted weight ``W`` of the base, ``<W>.lora_a`` (rank x in) and
  ``<W>.lora_b`` (out x rank), in numpy (PEFT) order, named as the base
  names ``W``: ``blk.N.attn_q.weight.lora_a`` ... (``gguf``'s tensor map);
- the update applied is ``(alpha / rank) * B @ A``: PEFT's own scale, so
  ``alpha`` is written as trained (with ``use_rslora``, ``alpha * sqrt(rank)``
  makes llama.cpp's ``alpha / rank`` equal PEFT's ``alpha / sqrt(rank)``).

The Q/K detail: llama.cpp's GGUF keeps the rows of ``attn_q`` and ``attn_k``
in an interleaved order for its rotary embedding, and transformers undoes that
order when it reads a GGUF. A LoRA trained on such a transformers model is in
the Hugging Face order, so ``lora_b`` of q and k (the output rows) gets
llama.cpp's permutation here; ``lora_a`` (the input columns) stays as it is.

Only llama-architecture bases (SmolLM2, Llama, ...) and the projections
llama.cpp maps (:data:`TARGET_MODULES`) are converted; anything else is a
one-line :class:`~msrkit.errors.ConfigError`. The PEFT weights are read with
``safetensors.numpy``: no torch needed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, InputError, MissingDependencyError
from .gguf_header import read_gguf_header

__all__ = ["TARGET_MODULES", "write_gguf_lora", "llamacpp_rows"]

log = logging.getLogger("msrkit")

#: the projections whose LoRA llama.cpp applies, as PEFT names them
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_GROUP = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
          "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}  # fmt: skip
_TENSOR = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+?)\.lora_([AB])\.weight$")
#: adapter_config.json keys whose non-default values llama.cpp's adapter format cannot express
_UNSUPPORTED = {"use_dora": "DoRA", "fan_in_fan_out": "fan_in_fan_out weights", "modules_to_save": "modules_to_save",
                "rank_pattern": "per-module ranks (rank_pattern)", "alpha_pattern": "per-module alphas (alpha_pattern)",
                "use_qalora": "QA-LoRA", "alora_invocation_tokens": "activated LoRA"}  # fmt: skip
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"


@dataclass(frozen=True)
class _Base:
    """What the conversion needs of the base GGUF."""

    architecture: str
    n_blocks: int
    n_head: int
    n_head_kv: int
    #: tensor name -> (out, in), numpy order
    shapes: dict[str, tuple[int, int]]


def _gguf() -> Any:
    try:
        import gguf
    except ImportError as exc:
        raise MissingDependencyError("gguf", "train", "writing a GGUF LoRA adapter") from exc
    return gguf


def _read_base(path: Path) -> _Base:
    header = read_gguf_header(path)
    arch = header.metadata.get("general.architecture")
    if arch != "llama":
        raise ConfigError(f"base model {path} is a '{arch}' model: only llama-architecture adapters are converted")
    keys = ("block_count", "attention.head_count", "attention.head_count_kv")
    blocks, heads, kv_heads = (_number(header.metadata, f"llama.{key}", path) for key in keys)
    shapes = {name: (ne[1], ne[0]) for name, ne in header.tensors.items() if len(ne) == 2}
    return _Base(arch, blocks, heads, kv_heads, shapes)


def _number(metadata: dict[str, int | float | bool | str], key: str, path: Path) -> int:
    value = metadata.get(key)
    if not isinstance(value, int):
        raise ConfigError(f"base model {path} lacks the GGUF key '{key}'")
    return value


def _read_config(peft_dir: Path) -> dict[str, Any]:
    path = peft_dir / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("missing: not a PEFT adapter folder", source=str(path)) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable JSON file: {exc}", source=str(path)) from None
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise ConfigError(f"{path}: not a LoRA adapter (peft_type {config.get('peft_type')!r})")
    for key, what in _UNSUPPORTED.items():
        if config.get(key):
            raise ConfigError(f"{path}: {what} cannot be written as a llama.cpp LoRA adapter ({key} is set)")
    if config.get("bias", "none") != "none":
        raise ConfigError(f"{path}: LoRA biases (bias={config['bias']!r}) cannot be written as a llama.cpp adapter")
    targets = config.get("target_modules")
    if isinstance(targets, list) and not set(targets) <= set(TARGET_MODULES):
        bad = sorted(set(targets) - set(TARGET_MODULES))
        raise ConfigError(f"{path}: llama.cpp cannot map target module(s) {bad}: use {', '.join(TARGET_MODULES)}")
    return config


def _read_weights(peft_dir: Path) -> dict[str, np.ndarray]:
    path = peft_dir / WEIGHTS_FILE
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        raise MissingDependencyError("safetensors", "train", "reading a PEFT adapter") from exc
    if not path.is_file():
        raise InputError("missing: save the adapter with safe_serialization (the default)", source=str(path))
    try:
        return dict(load_file(str(path)))
    except (OSError, ValueError, TypeError) as exc:  # bfloat16 has no numpy type: save the adapter in float32
        raise ConfigError(f"{path}: cannot be read as float tensors ({exc}): save the adapter in float32") from None


def _pairs(weights: dict[str, np.ndarray], where: Path) -> dict[tuple[int, str], dict[str, np.ndarray]]:
    """``(layer, module) -> {"A": ..., "B": ...}``; a tensor llama.cpp cannot place is refused."""
    pairs: dict[tuple[int, str], dict[str, np.ndarray]] = {}
    for name, tensor in weights.items():
        found = _TENSOR.match(name)
        if found is None or found[3] not in TARGET_MODULES or _GROUP[found[3]] != found[2]:
            raise ConfigError(f"{where}: tensor '{name}' is not a LoRA of {', '.join(TARGET_MODULES)}: "
                              f"llama.cpp cannot map it")  # fmt: skip
        pairs.setdefault((int(found[1]), found[3]), {})[found[4]] = tensor
    for (layer, module), pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise ConfigError(f"{where}: layer {layer} {module} has lora_{''.join(pair)} only")
    if not pairs:
        raise ConfigError(f"{where}: holds no LoRA tensors")
    return pairs


def llamacpp_rows(b: np.ndarray, n_head: int) -> np.ndarray:
    """``lora_b`` of q or k from the Hugging Face row order (each head: its first halves, then its second
    halves) to llama.cpp's (each head: the pairs interleaved): row ``h*d + 2k + s`` is HF row ``h*d + s*d/2 + k``."""
    out, rank = b.shape
    rows: np.ndarray = b.reshape(n_head, 2, out // n_head // 2, rank).swapaxes(1, 2).reshape(out, rank)
    return rows


def _tensors(pairs: dict[tuple[int, str], dict[str, np.ndarray]], base: _Base, rank: int,
             where: Path) -> list[tuple[str, np.ndarray]]:  # fmt: skip
    """The adapter's tensors, named and laid out as llama.cpp reads them, checked against the base's shapes."""
    names = _gguf().get_tensor_name_map(_gguf().MODEL_ARCH.LLAMA, base.n_blocks)
    out: list[tuple[str, np.ndarray]] = []
    for (layer, module), pair in sorted(pairs.items()):
        target = f"{names.get_name(f'model.layers.{layer}.{_GROUP[module]}.{module}')}.weight"
        a, b = pair["A"].astype(np.float32), pair["B"].astype(np.float32)
        expected = base.shapes.get(target)
        if expected is None or a.shape != (rank, expected[1]) or b.shape != (expected[0], rank):
            raise ConfigError(f"{where}: layer {layer} {module} is A {a.shape} B {b.shape}, but the base's {target} "
                              f"is {expected} (out, in) at rank {rank}: trained on another base model?")  # fmt: skip
        if module in ("q_proj", "k_proj"):
            b = llamacpp_rows(b, base.n_head if module == "q_proj" else base.n_head_kv)
        out += [(f"{target}.lora_a", np.ascontiguousarray(a)), (f"{target}.lora_b", np.ascontiguousarray(b))]
    return out


def _alpha(config: dict[str, Any], where: Path) -> tuple[int, float]:
    try:
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where / CONFIG_FILE}: needs an integer 'r' and a number 'lora_alpha'") from None
    return rank, alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def write_gguf_lora(peft_dir: str | Path, out_path: str | Path, *, base_gguf: str | Path) -> Path:
    """Convert the PEFT LoRA in ``peft_dir`` (trained on ``base_gguf``'s model) to a GGUF LoRA adapter at ``out_path``.

    The file is written in one step (a temporary file, then renamed). Returns ``out_path``.
    """
    where, out = Path(peft_dir), Path(out_path)
    config = _read_config(where)
    base = _read_base(Path(base_gguf))
    rank, alpha = _alpha(config, where)
    tensors = _tensors(_pairs(_read_weights(where), where), base, rank, where)
    _write(out, arch=base.architecture, alpha=alpha, name=f"msrkit LoRA r{rank} of {Path(base_gguf).name}",
           tensors=tensors)  # fmt: skip
    log.info("GGUF LoRA: %d tensors (rank %d, alpha %g) -> %s", len(tensors), rank, alpha, out)
    return out


def _write(out: Path, *, arch: str, alpha: float, name: str, tensors: list[tuple[str, np.ndarray]]) -> None:
    """The adapter file: llama.cpp's adapter metadata, then the tensors; replaces ``out`` only once complete."""
    gguf = _gguf()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    writer = gguf.GGUFWriter(tmp, arch=arch)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(name)
        for tensor_name, tensor in tensors:
            writer.add_tensor(tensor_name, tensor)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
