"""The enriched catalog: item summaries that persist, so every later stage can read them.

An item's keywords and image description are made once (by ``rank()`` or by
``msrkit summarize``) and kept here with the prompt tag that made them, the
model that answered and a digest of the item's own text and image reference.
The collaborative index and the collaborative context read the store, so what
similar users took next appears as keywords once those items were summarized
anywhere. A summary whose item changed since (another digest) is not used.

SQLite (one file, safe to share between processes, values as JSON: nothing in
it can run code). It lives next to the response cache: ``<cache_dir>/catalog.sqlite3``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..backends.cache import default_cache_dir
from ..data import Item

__all__ = ["STORE_FILE", "CatalogStore", "Summary", "item_digest", "store_path", "summary_of_row"]

#: The store's file name inside the cache folder.
STORE_FILE = "catalog.sqlite3"


def store_path(cache_dir: Path | None = None) -> Path:
    """The catalog store's file: beside the response cache in ``cache_dir`` (none given: the cache's
    default folder). Every path that opens the store derives it here."""
    return (cache_dir or default_cache_dir()) / STORE_FILE


log = logging.getLogger("msrkit")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS summaries (
    item_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    keywords TEXT NOT NULL,
    image_description TEXT,
    model TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    PRIMARY KEY (item_id, tag)
)
"""


def item_digest(item: Item) -> str:
    """A digest of what a summary is made from: the item's title, description, image reference, attributes."""
    body = json.dumps(
        [item.title, item.description, item.image, item.attributes], sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:16]  # lone surrogates too


#: a stored summary holds at most this many keywords, each at most this long (the summarizer keeps far fewer)
MAX_KEYWORDS = 64
MAX_KEYWORD_CHARS = 200
#: an image description longer than this is not one the summarizer made (it keeps 600 characters)
MAX_DESCRIPTION_CHARS = 4000


def summary_of_row(row: tuple[object, ...]) -> Summary:
    """A row of the ``summaries`` table as a :class:`Summary`: :class:`ValueError` saying why for any other content.

    The file is data from outside this process (another version, another tool, a hand edit): a
    keywords value that is not JSON, nested too deeply, not a list of short strings, or columns of
    another type are refused here, so no caller ever sees them.
    """
    if len(row) != 6:
        raise ValueError(f"a row of {len(row)} columns, not 6")
    item_id, tag, digest, keywords, description, model = row
    for name, value in (("item_id", item_id), ("tag", tag), ("digest", digest), ("keywords", keywords)):
        if not isinstance(value, str):
            raise ValueError(f"column {name} holds {type(value).__name__}, not text")
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS):
        raise ValueError("image_description is not a short text")
    return Summary(str(item_id), str(tag), str(digest), _keywords(str(keywords)), description,
                   model if isinstance(model, str) else "")  # fmt: skip


def _keywords(text: str) -> list[str]:
    if len(text) > MAX_KEYWORDS * (MAX_KEYWORD_CHARS + 4):
        raise ValueError("keywords too long")
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise ValueError(f"keywords are not valid JSON ({exc})") from None
    except RecursionError:
        raise ValueError("keywords are JSON nested too deeply") from None
    if not isinstance(value, list) or len(value) > MAX_KEYWORDS:
        raise ValueError(f"keywords are not a list of at most {MAX_KEYWORDS} (got {type(value).__name__})")
    if not all(isinstance(k, str) and len(k) <= MAX_KEYWORD_CHARS for k in value):
        raise ValueError("keywords are not all short strings")
    return value


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Summary:
    """A stored summary of one item."""

    item_id: str
    tag: str
    digest: str
    keywords: list[str]
    image_description: str | None = None
    model: str = ""


class CatalogStore:
    """Item summaries by item id and prompt tag (see the module docstring).

    >>> store = CatalogStore("~/.cache/msrkit/catalog.sqlite3")      # doctest: +SKIP
    >>> enriched = store.enrich(catalog)                              # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken: str | None = None
        self._warned: set[tuple[str, str]] = set()

    def _conn(self) -> sqlite3.Connection | None:
        if self._db is None and self._broken is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
                db.text_factory = _text  # a cell of bytes that are not UTF-8 is that row's problem, not the store's
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
                self._db = db
            except (OSError, sqlite3.Error) as exc:
                self._disable(f"cannot open the catalog store {self.path}: {exc}")
        return self._db

    def _disable(self, why: str) -> None:
        self._broken = f"{why}; item summaries are not kept (remove the file to start afresh)"
        log.warning(self._broken)

    @property
    def problem(self) -> str | None:
        """Why the store is bypassed, or ``None`` when it works."""
        return self._broken

    def put(self, item: Item, *, tag: str, model: str = "") -> None:
        """Keep ``item``'s keywords and image description, made with the prompts ``tag``."""
        if item.keywords is None:
            return
        row = (item.item_id, tag, item_digest(item), json.dumps(item.keywords, ensure_ascii=False),
               item.image_description, model, time.time())  # fmt: skip
        with self._lock:
            db = self._conn()
            if db is None:
                return
            try:
                db.execute("INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            except UnicodeEncodeError:  # a lone surrogate in the item's id or text: that item is not kept
                log.debug("catalog store: item %r not kept (text that is not valid Unicode)", item.item_id[:80])
            except sqlite3.Error as exc:
                self._disable(f"catalog store write failed: {exc}")

    def get(self, item: Item, *, tag: str | None = None) -> Summary | None:
        """The summary of ``item`` as it is now: made with ``tag`` when given, else the latest one."""
        found = self.lookup([item], tag=tag)
        return found.get(item.item_id)

    def lookup(self, items: Iterable[Item], *, tag: str | None = None) -> dict[str, Summary]:
        """Summaries of those ``items`` whose text is unchanged (the latest per item unless ``tag``)."""
        # an id holding a lone surrogate cannot be stored, so it is never looked up either
        wanted = {item.item_id: item_digest(item) for item in items if _storable(item.item_id)}
        if not wanted:
            return {}
        out: dict[str, Summary] = {}
        ids = list(wanted)
        for start in range(0, len(ids), 500):
            for row in self._rows(ids[start : start + 500], tag):
                summary = self._summary(row)
                if summary is not None and summary.digest == wanted.get(summary.item_id) and summary.item_id not in out:
                    out[summary.item_id] = summary
        return out

    def _summary(self, row: tuple[object, ...]) -> Summary | None:
        """The summary a row holds, or ``None`` (and a warning, once per row) for a row that is not one."""
        try:
            return summary_of_row(row)
        except ValueError as exc:
            key = (str(row[0]), str(row[1]))
            if key not in self._warned:
                self._warned.add(key)
                log.warning("catalog store %s: item %r (%s): %s; the item is summarized again", self.path,
                            key[0][:80], key[1][:80], exc)  # fmt: skip
            return None

    def _rows(self, ids: list[str], tag: str | None) -> list[tuple[object, ...]]:
        marks = ",".join("?" * len(ids))
        sql = (
            f"SELECT item_id, tag, digest, keywords, image_description, model FROM summaries WHERE item_id IN ({marks})"  # noqa: S608
        )
        args: list[str] = list(ids)
        if tag is not None:
            sql += " AND tag = ?"
            args.append(tag)
        with self._lock:
            db = self._conn()
            if db is None:
                return []
            try:
                return list(db.execute(sql + " ORDER BY updated DESC", args))
            except (sqlite3.Error, ValueError) as exc:
                self._disable(f"catalog store read failed: {exc}")
                return []

    def enrich(self, catalog: Mapping[str, Item]) -> dict[str, Item]:
        """``catalog`` with stored keywords and image descriptions filled in where an item has none."""
        missing = [item for item in catalog.values() if item.keywords is None]
        found = self.lookup(missing)
        out = dict(catalog)
        for item_id, s in found.items():
            update: dict[str, object] = {"keywords": s.keywords}
            if s.image_description and not out[item_id].image_description:
                update["image_description"] = s.image_description
            out[item_id] = out[item_id].model_copy(update=update)
        return out

    def count(self) -> int:
        with self._lock:
            db = self._conn()
            try:
                return int(db.execute("SELECT COUNT(DISTINCT item_id) FROM summaries").fetchone()[0]) if db else 0
            except sqlite3.Error:
                return 0

    def clear(self) -> int:
        """Remove every stored summary; returns how many items had one."""
        n = self.count()
        with self._lock:
            db = self._conn()
            if db is not None:
                db.execute("DELETE FROM summaries")
        return n

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
