"""``msrkit rank|summarize --engine ray``: an input file in, a folder of shards out, resumable.

The driver reads the input, gives every record its key (users:
:func:`msrkit.jobs.batch.batch_keys`, the single-process rule; items: their id),
finds the shards still to do (:mod:`.shards`), sends those records through
:func:`~.engine.rank_dataset` (or :func:`~.engine.summarize_dataset`) and
writes each shard, atomically, as soon as all its records are back. Only the
driver writes the output folder; the actors read the settings' files.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ..config import Settings, settings_from
from ..data import Item, Usage
from ..escape import to_json
from .shards import Kind, Layout, Record, Rows, open_layout

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ShardOptions", "ShardRun", "rank_to_shards", "summarize_to_shards", "RANK", "SUMMARIZE"]

log = logging.getLogger("msrkit")

#: Users per shard by default: a killed run loses at most the shards in progress.
SHARD_SIZE = 1000

#: ``on_progress(finished, total)``: records finished so far in this run, of ``total`` to run.
Progress = Callable[[int, int], None]


class ShardOptions(TypedDict, total=False):
    """How :func:`rank_to_shards` and :func:`summarize_to_shards` write and report (each may be left out)."""

    fmt: str  #: the shards' format: ``jsonl`` (the default) or ``parquet``
    shard_size: int  #: records per shard (default :data:`SHARD_SIZE`)
    on_progress: Progress | None  #: called as records finish


@dataclass
class ShardRun:
    """What a sharded run did. ``done``/``failed`` count this run's records, ``skipped`` those complete before."""

    out: Path
    records: int
    shards: int
    shards_skipped: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    degraded: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    startup_seconds: float = 0.0
    seconds: float = 0.0


def _rank_failed(record: Mapping[str, Any]) -> bool:
    return "error" in record


def _rank_rows(record: Record) -> Rows:
    from ..inputs.columnar import rows_of_record

    return rows_of_record(record)


def _rank_record(rows: Rows) -> Record:
    from ..inputs.columnar import ranking_record

    return ranking_record(rows)


def _ranking_schema() -> Any:
    from ..inputs.columnar import ranking_schema

    return ranking_schema()


def _item_record(rows: Rows) -> Record:
    from ..inputs.columnar import item_of_row

    return item_of_row(rows[0]).model_dump(mode="json", exclude_none=True)


def _item_rows(record: Record) -> Rows:
    from ..inputs.columnar import item_row

    return [item_row(Item.model_validate(record))]


def _item_schema() -> Any:
    from ..inputs.columnar import item_schema

    return item_schema()


RANK = Kind(
    name="rank", key=lambda r: str(r["key"]), record=_rank_record, rows=_rank_rows, schema=_ranking_schema,
    failed=_rank_failed, expected=lambda row: max(int(row.get("n_items") or 0), 1),
)  # fmt: skip
SUMMARIZE = Kind(
    name="summarize", key=lambda r: str(r["item_id"]), record=_item_record, rows=_item_rows, schema=_item_schema,
    failed=lambda rec: rec.get("keywords") is None, expected=lambda row: 1,
)  # fmt: skip


# --------------------------------------------------------------------------- the two commands


def rank_to_shards(path: str | Path, out: str | Path, settings: Settings, **options: Unpack[ShardOptions]) -> ShardRun:
    """Rank every user of ``path`` (JSON, JSONL or Parquet histories) on Ray into shards under ``out``.

    Each record is the line ``msrkit rank --out`` writes for that user (in a
    Parquet shard: its rankings-table rows). Ray is joined at
    ``settings.ray_address`` or started locally; ``settings.actors`` actors
    with ``settings.concurrency`` requests each.
    """
    from ..data import History
    from ..jobs.batch import batch_keys

    p = Path(path)
    users = _user_records(p)
    keys = batch_keys([History.model_construct(user_id=uid) for uid, _, _ in users])
    layout = _layout(out, RANK, keys, options)
    inputs = [{"key": key, "text": text, "source": src} for key, (_, text, src) in zip(keys, users, strict=True)]

    def process(ds: Any, s: Settings) -> Any:
        from .engine import rank_dataset

        return rank_dataset(ds, s, base_dir=p.resolve().parent)

    return _run(layout, inputs, settings, process, on_progress=options.get("on_progress"), on_record=_count_ranking)


def summarize_to_shards(
    path: str | Path, out: str | Path, settings: Settings, **options: Unpack[ShardOptions]
) -> ShardRun:
    """Summarize every item of the catalog ``path`` on Ray: enriched items in shards under ``out``.

    The summaries are also put into the catalog store of ``settings`` (the
    driver's ``<cache_dir>/catalog.sqlite3``), the file ``msrkit rank`` and
    ``msrkit index build`` read, whichever node made them.
    """
    from ..inputs.io import load_catalog

    p = Path(path)
    items = list(load_catalog(p).values())
    keys = [item.item_id for item in items]
    layout = _layout(out, SUMMARIZE, keys, options)
    inputs = [{"key": i.item_id, "text": json.dumps(i.model_dump(mode="json", exclude_none=True)),
               "source": f"{p} item {i.item_id}"} for i in items]  # fmt: skip
    store = _driver_store(settings)

    def process(ds: Any, s: Settings) -> Any:
        from .engine import summarize_dataset

        return summarize_dataset(ds, s, base_dir=p.resolve().parent)

    def on_rows(run: ShardRun, rows: Rows) -> None:
        for row in rows:
            _count_summary(run, row)
        if store is not None:
            _keep_summaries(store, rows)

    try:
        return _run(layout, inputs, settings, process, on_progress=options.get("on_progress"), on_rows=on_rows)
    finally:
        if store is not None:
            store.close()


def _layout(out: str | Path, kind: Kind, keys: Sequence[str], options: ShardOptions) -> Layout:
    fmt, size = options.get("fmt", "jsonl"), options.get("shard_size", SHARD_SIZE)
    return open_layout(out, kind=kind, fmt=fmt, shard_size=size, keys=keys)


def _user_records(path: Path) -> list[tuple[str | None, str, str]]:
    """``(user_id, JSON text, source)`` of every history in ``path``; each is validated by its actor."""
    from ..errors import InputError
    from ..inputs.io import iter_records, record_source
    from .engine import _user_id

    out = []
    for where, obj in iter_records(path):
        out.append((_user_id(obj), to_json(obj), record_source(path, where)[0]))
    if not out:
        raise InputError("holds no history", source=str(path))
    return out


def _driver_store(settings: Settings) -> Any:
    if not settings.cache:
        return None
    from ..summaries.store import CatalogStore, store_path

    return CatalogStore(store_path(settings.cache_dir))


def _keep_summaries(store: Any, rows: Rows) -> None:
    """Put the summaries of ``rows`` into the driver's store, unless an actor sharing the file already did."""
    from ..inputs.columnar import item_of_row

    made = {row["item_id"]: (item_of_row(row), row) for row in rows if row.get("keywords") is not None}
    found = store.lookup([item for item, _ in made.values()])
    for item_id, (item, row) in made.items():
        if row.get("summary_tag") and getattr(found.get(item_id), "tag", None) != row["summary_tag"]:
            store.put(item, tag=row["summary_tag"], model=row.get("summary_model") or "")


def _count_ranking(run: ShardRun, record: Record) -> None:
    if "error" in record:
        run.failures[str(record.get("error_type"))] += 1
        return
    if record.get("degraded_by"):
        run.degraded[str(record["degraded_by"])] += 1
    run.usage.add(Usage.model_validate(record.get("usage") or {}))


def _count_summary(run: ShardRun, row: Mapping[str, Any]) -> None:
    if row.get("error_type"):
        run.failures[str(row["error_type"])] += 1
    usage = {k: row.get(k) or 0 for k in ("llm_calls", "prompt_tokens", "completion_tokens", "cache_hits")}
    run.usage.add(Usage.model_validate(usage))


# --------------------------------------------------------------------------- the driver loop


@dataclass
class _Pending:
    """A shard still to write: the keys to run, and the records kept from its earlier file."""

    todo: set[str]
    kept: dict[str, Record]


def _pending(layout: Layout, run: ShardRun) -> dict[int, _Pending]:
    complete = set(layout.complete())
    pending: dict[int, _Pending] = {}
    for shard in range(layout.shards):
        keys = {layout.keys[i] for i in layout.span(shard)}
        if shard not in complete:
            pending[shard] = _Pending(keys, {})
            continue
        records = layout.read(shard)
        retry = {k for k in keys if k not in records or layout.kind.failed(records[k])}
        if retry:
            pending[shard] = _Pending(retry, {k: r for k, r in records.items() if k not in retry})
        else:
            run.shards_skipped += 1
        run.skipped += len(keys) - len(retry)
    return pending


def _run(
    layout: Layout,
    inputs: Sequence[dict[str, Any]],
    settings: Settings,
    process: Callable[[Any, Settings], Any],
    *,
    on_progress: Progress | None = None,
    on_record: Callable[[ShardRun, Record], None] | None = None,
    on_rows: Callable[[ShardRun, Rows], None] | None = None,
) -> ShardRun:
    started = time.perf_counter()
    run = ShardRun(layout.out, len(layout.keys), layout.shards)
    pending = _pending(layout, run)
    if not pending:
        return run
    from .engine import connect, num_blocks, ray_module

    ray = ray_module()
    owned = connect(settings)
    run.startup_seconds = time.perf_counter() - started
    try:
        todo = [inputs[i] for shard in sorted(pending) for i in layout.span(shard)
                if layout.keys[i] in pending[shard].todo]  # fmt: skip
        blocks = num_blocks(len(todo), settings)
        ds = ray.data.from_items(todo, override_num_blocks=blocks)
        settings = settings_from(settings, actors=min(settings.actors, blocks))  # no actor without a batch
        shard_of = {layout.keys[i]: shard for shard in pending for i in layout.span(shard)}
        collector = _Collector(layout, pending, shard_of, run, on_progress, on_record, on_rows)
        for batch in process(ds, settings).iter_batches(batch_format="pyarrow", batch_size=None):
            collector.add(batch.to_pylist())
        if pending:
            raise RuntimeError(f"the engine returned no result for the users of shard(s) {sorted(pending)[:5]}")
    finally:
        if owned:
            ray.shutdown()
    run.seconds = time.perf_counter() - started
    return run


class _Collector:
    """Groups output rows by key, and writes a shard once all its records are back."""

    def __init__(
        self,
        layout: Layout,
        pending: dict[int, _Pending],
        shard_of: dict[str, int],
        run: ShardRun,
        on_progress: Progress | None,
        on_record: Callable[[ShardRun, Record], None] | None,
        on_rows: Callable[[ShardRun, Rows], None] | None,
    ) -> None:
        self.layout, self.pending, self.shard_of, self.run = layout, pending, shard_of, run
        self.on_progress, self.on_record, self.on_rows = on_progress, on_record, on_rows
        self.partial: dict[str, Rows] = {}
        self.made: dict[int, dict[str, Record]] = {}
        self.total = sum(len(p.todo) for p in pending.values())

    def add(self, rows: Rows) -> None:
        kind = self.layout.kind
        if self.on_rows is not None:
            self.on_rows(self.run, rows)
        for row in rows:
            key = kind.key(row)
            got = self.partial.setdefault(key, [])
            got.append(row)
            if len(got) == kind.expected(row):
                self._record(key, kind.record(self.partial.pop(key)))

    def _record(self, key: str, record: Record) -> None:
        shard = self.shard_of[key]
        made = self.made.setdefault(shard, {})
        made[key] = record
        failed = self.layout.kind.failed(record)
        self.run.failed += failed
        self.run.done += not failed
        if self.on_record is not None:
            self.on_record(self.run, record)
        if self.on_progress is not None:
            self.on_progress(self.run.done + self.run.failed, self.total)
        todo = self.pending[shard]
        if len(made) == len(todo.todo):
            self.layout.write(shard, {**todo.kept, **self.made.pop(shard)})
            del self.pending[shard]
