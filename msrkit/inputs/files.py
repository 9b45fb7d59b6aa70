"""Reading a local file msrkit was pointed at: regular files only, never more than a cap, never blocking.

A path from a data file (an item's ``image``) or from the command line (a
history) may name a character device (``/dev/zero`` never ends), a FIFO
(opening one waits for a writer, forever), a folder or a socket. The file is
opened without blocking (``O_NONBLOCK``) and checked on the open descriptor,
so what is read is what was checked; a file's stated size is not trusted
either: reading stops one byte past the cap.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["MAX_LINE_BYTES", "NotReadable", "lines", "open_regular", "read_regular"]

#: a line of a file read line by line (interactions) is at most this long: a file without line
#: breaks is an error, never one unbounded read
MAX_LINE_BYTES = 1 << 20

_CHUNK = 1 << 20
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_KINDS = (
    (stat.S_ISDIR, "is a folder, not a file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file: save the data to a file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


class NotReadable(Exception):
    """Why a path cannot be read as a regular file (``why`` completes "<path> ...")."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def read_regular(path: str | Path, *, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file at ``path``: :class:`NotReadable` for anything else, or past ``max_bytes``."""
    fd = _open_checked(path)
    try:
        return _read_bounded(fd, max_bytes)
    except OSError as exc:
        raise NotReadable(f"cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def open_regular(path: str | Path) -> BinaryIO:
    """The regular file at ``path`` open for reading bytes (to stream it): :class:`NotReadable` for anything else."""
    fd = _open_checked(path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def lines(fh: BinaryIO, *, max_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of ``fh`` (line breaks kept), each at most ``max_bytes``: :class:`NotReadable` naming a longer one."""
    n = 0
    while True:
        line = fh.readline(max_bytes + 1)
        if not line:
            return
        n += 1
        if len(line) > max_bytes:
            raise NotReadable(f"line {n} is over the {max_bytes}-byte cap (is it a text file with line breaks?)")
        yield line


def _open_checked(path: str | Path) -> int:
    """A descriptor of ``path`` once checked to be a regular file (closed again when it is not)."""
    try:
        fd = os.open(path, _FLAGS)
    except FileNotFoundError:
        raise NotReadable("does not exist") from None
    except IsADirectoryError:
        raise NotReadable("is a folder, not a file") from None
    except OSError as exc:
        raise NotReadable(f"cannot be read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the path
        raise NotReadable("is not a valid path") from None
    try:
        mode = os.fstat(fd).st_mode
        for test, why in _KINDS:
            if test(mode):
                raise NotReadable(why)
        if not stat.S_ISREG(mode):
            raise NotReadable("is not a regular file")
    except BaseException as exc:
        os.close(fd)
        if isinstance(exc, OSError):
            raise NotReadable(f"cannot be read: {exc.strerror or exc}") from None
        raise
    return fd


def _read_bounded(fd: int, max_bytes: int | None) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while max_bytes is None or total <= max_bytes:
        want = _CHUNK if max_bytes is None else min(_CHUNK, max_bytes + 1 - total)
        chunk = os.read(fd, want)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if max_bytes is not None and total > max_bytes:
        raise NotReadable(f"is over the {max_bytes}-byte cap")
    return b"".join(chunks)
