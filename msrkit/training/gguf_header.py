"""The header of a GGUF file (scalar metadata and tensor shapes), read in milliseconds.

``gguf.GGUFReader`` builds a numpy view of every array of the metadata, which
for a model's tokenizer (tens of thousands of tokens and merges) takes seconds
to tens of seconds on a busy machine. Converting an adapter needs a few
numbers and the tensor shapes only, so this reader walks the header once,
skipping arrays, and never touches the tensor data. Little-endian files
(what llama.cpp writes) only.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

__all__ = ["GGUFHeader", "read_gguf_header"]

_MAGIC = b"GGUF"
#: GGUF value type -> struct format of one value (8: string, 9: array)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class GGUFHeader:
    """What a GGUF file says about itself: scalar and string metadata (arrays left out), tensor shapes."""

    metadata: dict[str, int | float | bool | str]
    #: tensor name -> shape in ggml's order (``ne``: the row length first)
    tensors: dict[str, tuple[int, ...]]


class _Cursor:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.at = 0

    def take(self, fmt: str) -> int | float | bool:
        (value,) = struct.unpack_from("<" + fmt, self.buf, self.at)
        self.at += struct.calcsize("<" + fmt)
        return value  # type: ignore[no-any-return]

    def string(self) -> str:
        size = int(self.take("Q"))
        text = bytes(self.buf[self.at : self.at + size]).decode("utf-8", errors="replace")
        self.at += size
        return text

    def value(self, kind: int) -> int | float | bool | str | None:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind != _ARRAY:
            raise ValueError(f"unknown GGUF value type {kind}")
        item, count = int(self.take("I")), int(self.take("Q"))
        if item in _SCALARS:
            self.at += count * struct.calcsize("<" + _SCALARS[item])
        elif item == _STRING:  # a tokenizer's tens of thousands of strings: skipped in one tight loop
            at, length = self.at, _LENGTH.unpack_from
            for _ in range(count):
                at += 8 + length(self.buf, at)[0]
            self.at = at
        else:
            for _ in range(count):
                self.value(item)
        return None


def read_gguf_header(path: str | Path) -> GGUFHeader:
    """The header of the GGUF file at ``path``; a :class:`~msrkit.errors.ConfigError` when it is not one."""
    where = Path(path)
    try:
        with where.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(buf)
    except (OSError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where} is not a readable GGUF file: {exc}") from None


def _parse(buf: mmap.mmap) -> GGUFHeader:
    if buf[:4] != _MAGIC:
        raise ValueError("no GGUF magic at its start")
    cursor = _Cursor(buf)
    cursor.at = 4
    version = int(cursor.take("I"))
    if not 2 <= version <= 3:
        raise ValueError(f"GGUF version {version} (a big-endian file, or too new)")
    n_tensors, n_kv = int(cursor.take("Q")), int(cursor.take("Q"))
    metadata: dict[str, int | float | bool | str] = {}
    for _ in range(n_kv):
        key = cursor.string()
        value = cursor.value(int(cursor.take("I")))
        if value is not None:
            metadata[key] = value
    tensors: dict[str, tuple[int, ...]] = {}
    for _ in range(n_tensors):
        name = cursor.string()
        dims = int(cursor.take("I"))
        tensors[name] = tuple(int(cursor.take("Q")) for _ in range(dims))
        cursor.at += 4 + 8  # its type and data offset
    return GGUFHeader(metadata, tensors)
