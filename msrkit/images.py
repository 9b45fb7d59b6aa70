"""Images from where items point to, ready for a backend: checked, downscaled, encoded.

An item's ``image`` is one of:

- a local path (relative paths are read from the history file's folder);
- an ``http(s)://`` URL: fetched with a timeout and a size cap, redirects
  followed only to http(s), the content type must be ``image/*``;
- a ``data:image/...;base64,...`` URI.

Whatever the source, the bytes must decode as an image (Pillow), or the caller
gets an :class:`~msrkit.errors.InputError` naming the reference. An image whose
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
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .backends.base import ImagePart
from .errors import InputError

__all__ = ["load_image", "read_image_bytes", "prepare_image", "check_image", "to_data_uri", "to_base64", "is_remote"]

MAX_BYTES = 20 * 1024 * 1024
#: formats sent as they are when small enough (every vision API here accepts them)
_PASSTHROUGH = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def is_remote(ref: str) -> bool:
    return ref.lower().startswith(("http://", "https://"))


def _short(ref: str) -> str:
    return ref if len(ref) <= 80 else ref[:60] + "..." + ref[-12:]


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (never file:, ftp:, data: ...)."""

    def http_error_302(self, req, fp, code, msg, headers):  # type: ignore[no-untyped-def]
        target = urllib.parse.urljoin(req.full_url, headers.get("Location") or headers.get("URI") or "")
        if urllib.parse.urlsplit(target).scheme.lower() not in ("http", "https"):
            raise urllib.error.URLError(f"redirect to a non-http URL refused ({_short(target)})")
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _fetch(url: str, *, timeout: float, max_bytes: int) -> bytes:
    opener = urllib.request.build_opener(_HttpOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "msrkit", "Accept": "image/*"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as resp:  # noqa: S310 - callers pass http(s) only
            ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not ctype.startswith("image/") and ctype != "application/octet-stream":
                raise InputError(f"image URL {_short(url)} answered with content type '{ctype}', not an image")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise InputError(f"image URL {_short(url)} is {int(length)} bytes, over the {max_bytes}-byte cap")
            data: bytes = resp.read(max_bytes + 1)
    except InputError:
        raise
    except urllib.error.HTTPError as exc:
        raise InputError(f"image URL {_short(url)} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"image URL {_short(url)} could not be fetched: {reason}") from None
    if len(data) > max_bytes:
        raise InputError(f"image URL {_short(url)} is over the {max_bytes}-byte cap")
    return data


def _decode_data_uri(ref: str) -> bytes:
    header, sep, payload = ref.partition(",")
    if not sep or not header.lower().startswith("data:image/") or ";base64" not in header.lower():
        raise InputError(f"data URI {_short(ref)} is not of the form data:image/<type>;base64,<data>")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"data URI {_short(ref)} holds invalid base64") from None


def read_image_bytes(
    ref: str, *, base_dir: str | Path | None = None, timeout: float = 10.0, max_bytes: int = MAX_BYTES
) -> bytes:
    """The raw bytes an image reference points to (not yet checked to be an image)."""
    if not isinstance(ref, str) or not ref.strip():
        raise InputError("image reference is empty")
    ref = ref.strip()
    if is_remote(ref):
        return _fetch(ref, timeout=timeout, max_bytes=max_bytes)
    if ref.lower().startswith("data:"):
        return _decode_data_uri(ref)
    other = re.match(r"^([a-z][a-z0-9+.-]*)://", ref, flags=re.I)
    if other:
        raise InputError(
            f"image {_short(ref)}: scheme '{other.group(1)}' is not supported (use a path, http(s) or data:)"
        )
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InputError(f"image file {path} is {size} bytes, over the {max_bytes}-byte cap")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"image file {path} does not exist (relative paths are read from the history's folder)"
        ) from None
    except IsADirectoryError:
        raise InputError(f"image {path} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"image file {path} cannot be read: {exc.strerror or exc}") from None


def prepare_image(data: bytes, *, source: str = "<image>", max_side: int = 768) -> ImagePart:
    """Check that ``data`` is an image; downscale it to ``max_side`` when larger."""
    from PIL import Image

    image = _decode(data, source, load=True)
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
    timeout: float = 10.0,
    max_bytes: int = MAX_BYTES,
) -> ImagePart:
    """Read, check and downscale one image reference.

    >>> part = load_image("poster.jpg", base_dir="data/", max_side=512)   # doctest: +SKIP
    >>> part.mime, len(part.data)                                         # doctest: +SKIP
    ('image/jpeg', 48211)
    """
    data = read_image_bytes(ref, base_dir=base_dir, timeout=timeout, max_bytes=max_bytes)
    return prepare_image(data, source=ref, max_side=max_side)


def check_image(ref: str, *, base_dir: str | Path | None = None) -> None:
    """Fail early (``InputError``) on a local or ``data:`` image that is missing or not an image.

    Remote URLs are not fetched here (they are fetched when a vision model needs them).
    """
    if is_remote(ref):
        return
    _decode(read_image_bytes(ref, base_dir=base_dir), ref, load=False)


def _decode(data: bytes, source: str, *, load: bool) -> Any:
    """Verify that ``data`` decodes as an image (``InputError`` if not); with ``load``, the decoded image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()  # verify() leaves the image unusable: a loaded one is opened again
        if not load:
            return None
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"image {_short(source)} is not a readable image ({type(exc).__name__})") from None


def to_base64(part: ImagePart) -> str:
    """The image's bytes as base64 text (Ollama's ``images`` list)."""
    return base64.b64encode(part.data).decode("ascii")


def to_data_uri(part: ImagePart) -> str:
    """``data:<mime>;base64,<bytes>`` (OpenAI ``image_url`` parts, llama-cpp-python)."""
    return f"data:{part.mime};base64,{to_base64(part)}"
