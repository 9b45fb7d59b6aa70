"""Images from where items point to, ready for a backend: checked, downscaled, encoded.

An item's ``image`` is one of:

- a local path (relative paths are read from the history file's folder): a
  regular file only (never a device, FIFO or folder), read up to a size cap,
  and, where :attr:`ImagePolicy.roots` is set (server modes), only under those folders;
- an ``http(s)://`` URL: fetched by :mod:`msrkit.inputs.fetch` (public addresses only
  unless allowed, one total time limit, a size cap, one error for every failure,
  bytes that are no usable image included);
- a ``data:image/...;base64,...`` URI (up to the same size cap).

Whatever the source, the bytes must decode as an image (Pillow) of at most
:attr:`ImagePolicy.max_pixels` pixels, or the caller gets an
:class:`~msrkit.errors.InputError` naming the reference. An image whose
longer side exceeds ``max_side`` is downscaled and re-encoded (JPEG, or PNG
when it has transparency); a small JPEG/PNG/WebP/GIF is sent byte for byte.

Backends encode the result exactly as their APIs document: :func:`to_data_uri`
for OpenAI-style ``image_url`` parts and llama.cpp, :func:`to_base64` for
Ollama's ``images`` list.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.base import ImagePart
from ..errors import InputError
from ..escape import shown
from .files import NotReadable, read_regular

if TYPE_CHECKING:
    from ..config import Settings

__all__ = [
    "ImagePolicy",
    "load_image",
    "read_image_bytes",
    "prepare_image",
    "check_image",
    "to_data_uri",
    "to_base64",
    "is_remote",
]

MAX_BYTES = 20 * 1024 * 1024
#: 50 megapixels (8K is 33): decoding more takes memory a summary does not need
MAX_PIXELS = 50_000_000
#: formats sent as they are when small enough (every vision API here accepts them)
_PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
# Pillow warns (a process-wide warnings filter) about large images: opening under this lock turns it into an error
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ImagePolicy:
    """Where item images may be read from, and how much of them.

    ``roots``: local files must lie under one of these folders (symlinks
    resolved); ``None`` allows any path, ``()`` none. ``private_hosts`` allows
    URLs on loopback, private and other non-public addresses. ``timeout`` is
    the total time of one URL download, redirects included.
    """

    roots: tuple[Path, ...] | None = None
    private_hosts: bool = False
    timeout: float = 10.0
    max_bytes: int = MAX_BYTES
    max_pixels: int = MAX_PIXELS

    @classmethod
    def from_settings(cls, settings: Settings) -> ImagePolicy:
        roots = tuple(settings.image_roots) if settings.image_roots is not None else None
        return cls(roots=roots, private_hosts=settings.image_private_hosts, timeout=settings.image_timeout)


def is_remote(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def _decode_data_uri(ref: str, max_bytes: int) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep or not header.lower().startswith("data:image/") or ";base64" not in header.lower():
        raise InputError(f"data URI {shown(ref)} is not of the form data:image/<type>;base64,<data>")
    if len(payload) // 4 * 3 > max_bytes:
        raise InputError(f"data URI {shown(ref)} holds over the {max_bytes}-byte cap")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"data URI {shown(ref)} holds invalid base64") from None


def _local_path(ref: str, base_dir: str | Path | None, policy: ImagePolicy) -> Path:
    path = Path(os.path.expanduser(ref))  # an unknown ~user stays as written (Path.expanduser raises)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if policy.roots is not None:
        real = Path(os.path.realpath(path))  # symlinks resolved (a loop stays as it is: reading it fails below)
        if not any(real.is_relative_to(os.path.realpath(root)) for root in policy.roots):
            raise InputError(
                f"image file {shown(str(path))} is outside the folders images may be read from (image_roots)"
            )
    return path


def read_image_bytes(
    ref: str,
    *,
    base_dir: str | Path | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    policy: ImagePolicy | None = None,
) -> bytes:
    """The raw bytes an image reference points to (not yet checked to be an image).

    ``policy`` (default: :class:`ImagePolicy`) says where they may come from;
    ``timeout`` and ``max_bytes``, when given, replace the policy's.
    """
    policy = policy or ImagePolicy()
    max_bytes = policy.max_bytes if max_bytes is None else max_bytes
    if not isinstance(ref, str) or not ref.strip():
        raise InputError("image reference is empty")
    ref = ref.strip()
    if is_remote(ref):
        from .fetch import fetch_url

        seconds = policy.timeout if timeout is None else timeout
        return fetch_url(ref, timeout=seconds, max_bytes=max_bytes, private_hosts=policy.private_hosts)
    if ref.lower().startswith("data:"):
        return _decode_data_uri(ref, max_bytes)
    other = re.match(r"^([a-z][a-z0-9+.-]*)://", ref, flags=re.I)
    if other:
        raise InputError(
            f"image {shown(ref)}: scheme '{other.group(1)}' is not supported (use a path, http(s) or data:)"
        )
    path = _local_path(ref, base_dir, policy)
    try:
        return read_regular(path, max_bytes=max_bytes)
    except NotReadable as exc:
        hint = " (relative paths are read from the history's folder)" if exc.why == "does not exist" else ""
        raise InputError(f"image file {shown(str(path))} {exc.why}{hint}") from None


def prepare_image(
    data: bytes, *, source: str = "<image>", max_side: int = 768, max_pixels: int = MAX_PIXELS
) -> ImagePart:
    """Check that ``data`` is an image (of at most ``max_pixels``); downscale it to ``max_side`` when larger."""
    from PIL import Image

    image = _decode(data, source, load=True, max_pixels=max_pixels)
    assert image is not None
    fmt = (image.format or "").upper()
    if max(image.size) <= max_side and fmt in _PASSTHROUGH:
        return ImagePart(data=data, mime=_PASSTHROUGH[fmt])
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
    out = io.BytesIO()
    if has_alpha:
        image.convert("RGBA").save(out, format="PNG", optimize=True)
        return ImagePart(data=out.getvalue(), mime="image/png")
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return ImagePart(data=out.getvalue(), mime="image/jpeg")


def load_image(
    ref: str,
    *,
    base_dir: str | Path | None = None,
    max_side: int = 768,
    timeout: float | None = None,
    max_bytes: int | None = None,
    policy: ImagePolicy | None = None,
) -> ImagePart:
    """Read, check and downscale one image reference (``policy``: see :func:`read_image_bytes`).

    >>> part = load_image("poster.jpg", base_dir="data/", max_side=512)   # doctest: +SKIP
    >>> part.mime, len(part.data)                                         # doctest: +SKIP
    ('image/jpeg', 48211)
    """
    policy = policy or ImagePolicy()
    data = read_image_bytes(ref, base_dir=base_dir, timeout=timeout, max_bytes=max_bytes, policy=policy)
    try:
        return prepare_image(data, source=ref, max_side=max_side, max_pixels=policy.max_pixels)
    except InputError:
        if not is_remote(ref):
            raise
        from .fetch import unusable

        raise unusable(ref.strip()) from None  # what a URL served is not told apart from no answer at all


def check_image(ref: str, *, base_dir: str | Path | None = None, policy: ImagePolicy | None = None) -> None:
    """Fail early (``InputError``) on a local or ``data:`` image that is missing, not allowed or not an image.

    Remote URLs are not fetched here (they are fetched when a vision model needs them).
    """
    if is_remote(ref):
        return
    policy = policy or ImagePolicy()
    data = read_image_bytes(ref, base_dir=base_dir, policy=policy)
    _decode(data, ref, load=False, max_pixels=policy.max_pixels)


def _open(data: bytes, source: str, max_pixels: int) -> Any:
    """The image opened (header read, nothing decoded yet), of at most ``max_pixels`` pixels."""
    from PIL import Image

    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise InputError(f"image {shown(source)} is {width}x{height} pixels, over the {max_pixels}-pixel cap")
    return image


def _decode(data: bytes, source: str, *, load: bool, max_pixels: int = MAX_PIXELS) -> Any:
    """Verify that ``data`` decodes as an image (``InputError`` if not); with ``load``, the decoded image."""
    from PIL import Image, UnidentifiedImageError

    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with _open(data, source, max_pixels) as probe:
            probe.verify()  # verify() leaves the image unusable: a loaded one is opened again
        if not load:
            return None
        image = _open(data, source, max_pixels)
        image.load()
        return image
    except bomb:
        raise InputError(
            f"image {shown(source)} has too many pixels (over Pillow's decompression-bomb limit)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"image {shown(source)} is not a readable image ({type(exc).__name__})") from None


def to_base64(part: ImagePart) -> str:
    """The image's bytes as base64 text (Ollama's ``images`` list)."""
    return base64.b64encode(part.data).decode("ascii")


def to_data_uri(part: ImagePart) -> str:
    """``data:<mime>;base64,<bytes>`` (OpenAI ``image_url`` parts, llama-cpp-python)."""
    return f"data:{part.mime};base64,{to_base64(part)}"
