"""Amazon-reviews-style JSONL (reviews, optional item metadata), gzip or not."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..data import Item
from ..errors import InputError
from ..inputs.io import Interaction, validate
from ._files import add_bare_items, decoding, float_or_none, open_text, time_ordered

__all__ = ["load_amazon"]


def load_amazon(
    reviews_path: str | Path, meta_path: str | Path | None = None
) -> tuple[dict[str, Item], list[Interaction]]:
    """Amazon-reviews-style JSONL (plain or ``.gz``): reviews and, optionally, item metadata.

    Reviews: user from ``user_id``/``reviewerID``, item from ``parent_asin``/``asin``,
    time from ``timestamp``/``unixReviewTime``. Metadata: ``parent_asin``/``asin``,
    ``title``, ``description`` (text or list), images from ``images`` (URLs or dicts
    with ``hi_res``/``large``) or ``imageURLHighRes``/``imageURL``; other keys go
    to ``attributes``. Lines that are Python literals (older dumps) are accepted.
    """
    path = Path(reviews_path)
    interactions = [_amazon_review(rec, source=src) for src, rec in _json_lines(path)]
    catalog: dict[str, Item] = {}
    if meta_path is not None:
        for src, rec in _json_lines(Path(meta_path)):
            item = _amazon_item(rec, source=src)
            catalog.setdefault(item.item_id, item)
    add_bare_items(catalog, interactions, source=str(meta_path or path))
    return catalog, time_ordered(interactions)


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with decoding(path):
        yield from _json_lines_unchecked(path)


def _json_lines_unchecked(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_text(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            rec = _parse_line(line, source=f"{path}:{n}")
            if not isinstance(rec, dict):
                raise InputError("expected a JSON object", source=f"{path}:{n}")
            yield f"{path}:{n}", rec


def _parse_line(line: str, *, source: str) -> Any:
    try:
        return json.loads(line)
    except RecursionError:
        raise InputError("JSON nested too deeply to read", source=source) from None
    except json.JSONDecodeError as exc:
        try:
            return ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source) from None


def _first(rec: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if rec.get(key) not in (None, ""):
            return rec[key]
    return None


def _amazon_review(rec: dict[str, Any], *, source: str) -> Interaction:
    user = _first(rec, ("user_id", "reviewerID"))
    item = _first(rec, ("parent_asin", "asin"))
    if user is None:
        raise InputError("field 'reviewerID' (or 'user_id') required: add it", source=source, path="reviewerID")
    if item is None:
        raise InputError("field 'asin' (or 'parent_asin') required: add it", source=source, path="asin")
    return Interaction(str(user), str(item), float_or_none(_first(rec, ("timestamp", "unixReviewTime")), source))


def _amazon_item(rec: dict[str, Any], *, source: str) -> Item:
    item_id = _first(rec, ("parent_asin", "asin"))
    if item_id is None:
        raise InputError("field 'asin' (or 'parent_asin') required: add it", source=source, path="asin")
    images = _image_urls(rec)
    skip = {"parent_asin", "asin", "title", "description", "images", "imageURL", "imageURLHighRes"}
    attributes = {k: v for k, v in rec.items() if k not in skip and v not in (None, "", [], {})}
    if len(images) > 1:
        attributes["images"] = images
    description = rec.get("description")
    if isinstance(description, list):
        description = " ".join(str(d) for d in description if d)
    elif description is not None and not isinstance(description, str):
        description = str(description)
    data = {
        "item_id": str(item_id),
        "title": str(rec["title"]) if rec.get("title") else None,
        "description": description or None,
        "image": images[0] if images else None,
        "attributes": attributes,
    }
    return validate(Item, data, source=source)  # type: ignore[no-any-return]


def _image_urls(rec: Mapping[str, Any]) -> list[str]:
    urls: list[str] = []
    for key in ("images", "imageURLHighRes", "imageURL"):
        entries = rec.get(key)
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list):
            continue  # not a shape image URLs come in: ignored (the item keeps its text)
        for entry in entries:
            url = _first(entry, ("hi_res", "large", "thumb")) if isinstance(entry, dict) else entry
            if isinstance(url, str) and url and url not in urls:
                urls.append(url)
        if urls:
            break
    return urls
