"""The adapter folder ``msrkit finetune`` writes, and what serving it checks.

::

    DIR/
    ├── peft/            PeftModel.save_pretrained: adapter_config.json, adapter_model.safetensors
    ├── adapter.gguf     the same LoRA for llama.cpp (:func:`msrkit.training.gguf_lora.write_gguf_lora`)
    └── manifest.json    :class:`Manifest`: base model and its hash, prompts, data, LoRA, training, validation

:func:`load_adapter` reads a folder into an :class:`Adapter`; a missing or
invalid manifest, or a missing ``adapter.gguf``, is an
:class:`~msrkit.errors.InputError` naming the file and the field. Serving
checks two things:

- the base: :meth:`Adapter.check_base` compares the manifest's ``base.sha256``
  with the hash of the model file the backend loads (:func:`base_sha256`), a
  :class:`~msrkit.errors.ConfigError` naming both when they differ;
- the prompts: :meth:`Adapter.prompt_warnings` names every template in use whose
  hash differs from the one the adapter was trained with (the model learnt
  another prompt: its answers may be off), a warning, not an error.

No torch here: serving needs none of the training extra.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError, InputError
from ..jobs.runs import write_text_atomic

if TYPE_CHECKING:
    from ..runtime.prompts import PromptSet

__all__ = [
    "Adapter",
    "BaseModelInfo",
    "DataInfo",
    "GGUF_FILE",
    "LoraInfo",
    "MANIFEST_FILE",
    "Manifest",
    "PEFT_DIR",
    "PromptInfo",
    "TrainingInfo",
    "ValidationPoint",
    "base_sha256",
    "file_sha256",
    "load_adapter",
    "prompt_infos",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
GGUF_FILE = "adapter.gguf"
PEFT_DIR = "peft"
FORMAT = "msrkit-adapter"
MANIFEST_VERSION = 1
#: the names a user gives for the embedded model (``base.name``), served by ``llamacpp/default``
EMBEDDED_NAMES = frozenset({"llamacpp/default", "default", "embedded"})
#: the weight files whose hashes make a Hugging Face folder's hash
_WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "*.gguf")
_TAG = re.compile(r"^(?P<id>[^@#]+)@v(?P<version>\d+)#(?P<hash>[0-9a-f]+)$")
_CHUNK = 1 << 20


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BaseModelInfo(_Record):
    """The model the adapter was trained on."""

    #: as the user named it (``llamacpp/default``, a GGUF path, a Hugging Face folder)
    name: str
    #: the file or folder it was loaded from
    path: str
    #: :func:`base_sha256` of that file or folder
    sha256: str
    #: ``general.architecture`` of the GGUF (``llama``)
    architecture: str


class PromptInfo(_Record):
    """A template the training examples were rendered with."""

    version: int
    #: :attr:`msrkit.runtime.prompts.PromptTemplate.hash`, the hash cache keys hold
    hash: str


class DataInfo(_Record):
    sha256: str
    examples: int
    train_users: int
    validation_users: int


class LoraInfo(_Record):
    rank: int
    alpha: float
    dropout: float
    target_modules: list[str]


class TrainingInfo(_Record):
    steps: int
    epochs: float
    tokens: int
    seconds: float
    device: str
    seed: int
    tokens_per_second: float
    peak_rss_mb: float


class ValidationPoint(_Record):
    step: int
    metric: str
    value: float
    loss: float | None


class Manifest(_Record):
    """``manifest.json``: what an adapter is, what made it and how well it did on validation."""

    format: Literal["msrkit-adapter"]
    version: int = MANIFEST_VERSION
    task: Literal["rank", "pointwise", "keywords", "mix"]
    #: what a rank example's answer was: the pick alone, or the whole order (serve with room for it)
    rank_answer: Literal["pick", "list"] = "pick"
    base: BaseModelInfo
    prompts: dict[str, PromptInfo]
    data: DataInfo
    lora: LoraInfo
    training: TrainingInfo
    validation: list[ValidationPoint]
    best_step: int | None
    fusion_weight: float | None = None
    created: str


# --------------------------------------------------------------------------- hashes


_DIGESTS: dict[str, tuple[int, int, str]] = {}
_DIGESTS_LOCK = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, recomputed only when its size or modification time changed (this process)."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = str(resolved)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    digest = hashlib.sha256()
    with resolved.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    value = digest.hexdigest()
    with _DIGESTS_LOCK:
        _DIGESTS[key] = (stat.st_size, stat.st_mtime_ns, value)
    return value


def base_sha256(path: str | Path) -> str:
    """The hash of a base model: of the GGUF file, or of a Hugging Face folder's weight files (names and contents).

    The trainer writes it into ``base.sha256``; serving compares it with the file the backend loads.
    """
    where = Path(path)
    if where.is_file():
        return file_sha256(where)
    if not where.is_dir():
        raise ConfigError(f"base model {where} is neither a file nor a folder")
    files = sorted({p for pattern in _WEIGHT_GLOBS for p in where.glob(pattern) if p.is_file()})
    if not files:
        raise ConfigError(f"base model folder {where} holds no weight files ({', '.join(_WEIGHT_GLOBS)})")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}\x00{file_sha256(file)}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the manifest


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write ``DIR/manifest.json`` in one step (a reader sees the old manifest or the new one); its path."""
    text = manifest.model_dump_json(indent=2) + "\n"
    return write_text_atomic(Path(directory) / MANIFEST_FILE, text)


def read_manifest(directory: str | Path) -> Manifest:
    """``DIR/manifest.json``, validated; an :class:`~msrkit.errors.InputError` names the file and the field."""
    path = Path(directory) / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("missing: not an adapter folder made by `msrkit finetune`", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot be read: {exc}", source=str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}", source=str(path)
        ) from None
    if not isinstance(data, dict):
        raise InputError("must hold a JSON object", source=str(path))
    if isinstance(data.get("version"), int) and data["version"] > MANIFEST_VERSION:
        raise InputError(f"manifest version {data['version']} is newer than this msrkit reads "
                         f"({MANIFEST_VERSION}): upgrade msrkit", source=str(path), path="version")  # fmt: skip
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "manifest"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(f"{first['msg']}{more}", source=str(path), path=field) from None


def prompt_infos(prompts: PromptSet, ids: Iterable[str]) -> dict[str, PromptInfo]:
    """The manifest's ``prompts`` for the templates ``ids`` of ``prompts`` (what the training examples used)."""
    return {tid: PromptInfo(version=prompts[tid].version, hash=prompts[tid].hash) for tid in ids}


# --------------------------------------------------------------------------- the folder


@dataclass(frozen=True)
class Adapter:
    """An adapter folder, read: its manifest and files (see :func:`load_adapter`)."""

    directory: Path
    manifest: Manifest

    @property
    def gguf_path(self) -> Path:
        """The GGUF LoRA adapter llama.cpp loads."""
        return self.directory / GGUF_FILE

    @property
    def peft_dir(self) -> Path:
        """The PEFT adapter (what vLLM's ``--lora-modules`` and transformers load)."""
        return self.directory / PEFT_DIR

    @property
    def identity(self) -> str:
        """The sha256 of ``adapter.gguf`` (recomputed only when the file changes): part of every cache key."""
        return file_sha256(self.gguf_path)

    def base_backend(self) -> str:
        """The llamacpp backend that serves the adapter's own base (what ``auto`` picks with an adapter)."""
        base = self.manifest.base
        if base.name in EMBEDDED_NAMES:
            return "llamacpp/default"
        if base.path.endswith(".gguf") and Path(base.path).is_file():
            return f"llamacpp/{base.path}"
        raise ConfigError(
            f"adapter {self.directory} was trained on {base.name} ({base.path}), which is not a GGUF file here: "
            f"name the backend (--backend llamacpp/PATH.gguf, the same model as GGUF)"
        )

    def check_base(self, model_path: str | Path) -> None:
        """A :class:`~msrkit.errors.ConfigError` unless ``model_path`` is the model the adapter was trained on."""
        base = self.manifest.base
        loaded = base_sha256(model_path)
        if loaded != base.sha256:
            raise ConfigError(
                f"adapter {self.directory} was trained on {base.name} (sha256 {base.sha256[:12]}), but the backend "
                f"loads {model_path} (sha256 {loaded[:12]}): serve it on its own base model"
            )

    def prompt_warnings(self, tags: Iterable[str | None]) -> list[str]:
        """A warning per template in use (tags ``id@vN#hash``) whose hash differs from the one trained with."""
        out = []
        for tag in tags:
            found = _TAG.match(tag or "")
            trained = self.manifest.prompts.get(found["id"]) if found else None
            if found is None or trained is None or trained.hash == found["hash"]:
                continue
            out.append(
                f"adapter {self.directory.name} was trained with prompt '{found['id']}' "
                f"v{trained.version}#{trained.hash}, but v{found['version']}#{found['hash']} is in use: "
                f"its answers may be off (train again, or use the training prompts)"
            )
        return out


def load_adapter(directory: str | Path) -> Adapter:
    """Read an adapter folder: its manifest (validated) and its ``adapter.gguf`` (which must exist)."""
    where = Path(directory).expanduser()
    if not where.is_dir():
        raise InputError("not a folder: pass the folder `msrkit finetune --out` wrote", source=str(where))
    manifest = read_manifest(where)
    adapter = Adapter(where.resolve(), manifest)
    if not adapter.gguf_path.is_file():
        raise InputError(
            "missing: the GGUF LoRA adapter llama.cpp loads (write it with msrkit.training.gguf_lora.write_gguf_lora)",
            source=str(where / GGUF_FILE),
        )
    return adapter
