"""Ranking and summarizing on Ray Data: one :class:`~msrkit.recommender.Recommender` per actor.

``map_batches`` runs a callable class in ``settings.actors`` actors. Each
actor builds one ``Recommender(settings=...)`` when it starts, so it loads the
catalog, the saved collaborative index (``settings.index``) and opens the
catalog store (``<cache_dir>/catalog.sqlite3``) once, from paths every node
can read; then it ranks each batch through ``Recommender.arank`` (or
summarizes it on a pool of threads), ``settings.concurrency`` users (items) at
once. One user (or item) is one request at a time, so at most
``actors x concurrency`` requests are in flight to the model server.

Rows in (rank): a ``key`` (optional; else the user id), a ``source`` (optional,
for error messages) and either ``text``, a history as JSON text (what
``ray.data.read_text`` gives for a ``users.jsonl``), or the history's fields as
columns (``user_id``, ``history``, ``candidates``, ...). Rows out: the rankings
table of :mod:`msrkit.inputs.columnar`. A user whose input is invalid or whose backend
failed for good (``strict``) is an error row, never a failed job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..config import PATH_KEYS, Settings, settings_from
from ..data import History, Item
from ..errors import ConfigError, InputError, MissingDependencyError
from ..jobs.batch import PER_USER_ERRORS

__all__ = ["RankActor", "SummarizeActor", "connect", "portable", "rank_dataset", "summarize_dataset"]

log = logging.getLogger("msrkit")

#: Users (or items) per batch sent to an actor, per thread of its pool: large enough that the cost of a
#: batch (Ray's scheduling, the batch's slowest request) is shared by many requests (4 per thread: 100 req/s,
#: 16: 160 req/s for one actor x 8 at 50 ms, bench/bench_distributed.py), small enough to spread the work.
BATCH_PER_THREAD = 16

#: Extra columns of the summarize output (after the items table's): what made the summary and what it cost.
SUMMARY_COLUMNS = ("summary_tag", "summary_model", "warnings", "llm_calls", "prompt_tokens", "completion_tokens",
                   "cache_hits", "error", "error_type")  # fmt: skip


def ray_module() -> Any:
    """``ray`` with Ray Data, or a :class:`~msrkit.errors.MissingDependencyError` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401  (the submodule every function here uses)
    except ImportError:
        raise MissingDependencyError("ray", "ray", "running on Ray (--engine ray)") from None
    return ray


def connect(settings: Settings, *, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at ``settings.ray_address``, or start a local one; ``True`` if this call started Ray.

    An already initialized Ray (a notebook, a test) is used as it is. A local
    Ray gets at least one CPU per actor (the work waits on the model, not the CPU).
    """
    ray = ray_module()
    if ray.is_initialized():
        _quiet_data(ray)
        return False
    common: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "configure_logging": True}
    if settings.ray_address:
        _check_reachable(settings.ray_address)
        try:
            ray.init(address=settings.ray_address, **common)
        except (ConnectionError, RuntimeError) as exc:  # ray's own errors for an unreachable or refusing cluster
            raise ConfigError(
                f"cannot join the Ray cluster at {settings.ray_address}: {str(exc).splitlines()[0]} (is it up, "
                "and is this the address `ray start --head` printed? A cluster with token authentication also "
                "needs RAY_AUTH_MODE=token and its token here)"
            ) from None
    else:
        ray.init(num_cpus=num_cpus or max(os.cpu_count() or 1, settings.actors), **common)
    _quiet_data(ray)
    return True


def _check_reachable(address: str) -> None:
    """A ``host:port`` nobody listens at fails now, in one line (Ray itself would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return  # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot join the Ray cluster at {address}: {exc.strerror or exc}") from None


def _quiet_data(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "progress bars disabled": we draw ours
    for handler in logging.getLogger("ray.data").handlers:  # Ray Data's console says INFO; its log file keeps all
        if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
            handler.setLevel(logging.WARNING)


def portable(settings: Settings) -> Settings:
    """``settings`` with every path absolute, so an actor reads the same files whatever its working folder."""
    paths = {k: Path(v).expanduser().resolve() for k in PATH_KEYS if (v := getattr(settings, k)) is not None}
    return settings_from(settings, **paths)


def _map(ds: Any, actor: type, settings: Settings, base_dir: Path | None, batch_size: int | None) -> Any:
    ray = ray_module()
    s = portable(settings)
    if not ray.is_initialized():
        connect(s)
    if s.index is None and s.interactions is not None:
        log.warning("every actor builds the collaborative index from the interactions: build it once "
                    "(msrkit index build) and pass --index")  # fmt: skip
    size = batch_size or BATCH_PER_THREAD * s.concurrency
    return ds.map_batches(
        actor,
        fn_constructor_kwargs={"settings": s, "base_dir": str(base_dir) if base_dir is not None else None},
        batch_size=size,
        batch_format="pyarrow",
        # two batches at once per actor: the next one starts while the last requests of the other finish; the
        # actor's pool (the Recommender's arank threads, or the summarizer's) still bounds the requests in flight
        compute=ray.data.ActorPoolStrategy(
            size=s.actors, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True
        ),
        num_cpus=_cpus_per_actor(ray, s.actors),
    )


def _cpus_per_actor(ray: Any, actors: int) -> float:
    """One CPU per actor, less where the cluster is small, so one CPU stays free for the tasks that read input.

    (Actors holding every CPU would wait forever for a ``read_text`` or ``read_parquet`` task.)
    """
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    return max(0.05, min(1.0, round((cpus - 1) / actors, 2)))


def rank_dataset(ds: Any, settings: Settings, *, base_dir: Path | None = None, batch_size: int | None = None) -> Any:
    """Rank every user of ``ds`` (a ``ray.data.Dataset``; rows as in the module docstring), lazily.

    Returns a ``ray.data.Dataset`` of rankings-table rows (:data:`msrkit.inputs.columnar.RANKING_COLUMNS`),
    ready for ``write_parquet``. ``base_dir``: the folder relative image paths are read from.

    >>> ranked = rank_dataset(ray.data.read_text("users.jsonl"), settings)   # doctest: +SKIP
    >>> ranked.filter(lambda r: r["rank"] == 1).write_parquet("top1/")      # doctest: +SKIP
    """
    return _map(ds, RankActor, settings, base_dir, batch_size)


def summarize_dataset(
    ds: Any, settings: Settings, *, base_dir: Path | None = None, batch_size: int | None = None
) -> Any:
    """Summarize every item of ``ds`` (rows: item fields as columns, or ``text``: an item as JSON), lazily.

    Returns a ``ray.data.Dataset`` of items-table rows with keywords (and image
    descriptions) filled in, plus :data:`SUMMARY_COLUMNS`. Each actor also keeps
    the summaries in its catalog store (``<cache_dir>/catalog.sqlite3``).
    """
    return _map(ds, SummarizeActor, settings, base_dir, batch_size)


def num_blocks(rows: int, settings: Settings, batch_size: int | None = None) -> int:
    """Blocks to cut ``rows`` input rows into so each is one batch of :func:`rank_dataset`."""
    return max(1, math.ceil(rows / (batch_size or BATCH_PER_THREAD * settings.concurrency)))


# --------------------------------------------------------------------------- the actors


class _Actor:
    """What every actor holds: one Recommender, built once from the settings' files."""

    def __init__(self, settings: Settings, base_dir: str | None) -> None:
        from ..recommender import Recommender

        self.rec = Recommender(settings=settings)
        self.base_dir = Path(base_dir) if base_dir is not None else None

    def _table(self, rows: list[dict[str, Any]], schema: Any) -> Any:
        import pyarrow

        return pyarrow.Table.from_pylist(rows, schema=schema)


def _input(row: dict[str, Any]) -> Any:
    """The object a row stands for: its ``text`` read as JSON, else its other columns as a record."""
    from ..inputs.columnar import record_of_row

    text = row.get("text")
    if text is None:
        return record_of_row({k: v for k, v in row.items() if k not in ("key", "source", "text")})
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=row.get("source")) from None


class RankActor(_Actor):
    """``map_batches`` callable: a batch of users -> their rankings-table rows.

    Users go through :meth:`~msrkit.recommender.Recommender.arank` on the
    actor's own event loop: at most ``settings.concurrency`` at once (its
    worker threads), model calls on the backend's async client.
    """

    def __init__(self, settings: Settings, base_dir: str | None) -> None:
        super().__init__(settings, base_dir)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="msrkit-actor-loop", daemon=True).start()

    def __call__(self, batch: Any) -> Any:
        from ..inputs.columnar import ranking_schema

        done = asyncio.run_coroutine_threadsafe(self._rank_all(batch.to_pylist()), self.loop).result()
        return self._table([row for rows in done for row in rows], ranking_schema())

    async def _rank_all(self, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        return list(await asyncio.gather(*(self._rank(row) for row in rows)))

    async def _rank(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        from ..inputs.columnar import error_rows, ranking_rows
        from ..inputs.io import parse_history

        obj: Any = None
        try:
            obj = _input(row)
            source = row.get("source") or "<row>"
            history = parse_history(obj, source=source).with_base_dir(self.base_dir, source=source)
            key = row.get("key") or history.user_id or ""
            return ranking_rows(key, await self.rec.arank(history))
        except PER_USER_ERRORS as exc:
            user = _user_id(obj)
            return error_rows(row.get("key") or user or "", user, exc)


def _user_id(obj: Any) -> str | None:
    """The user id of a (possibly invalid) history object, by the rule :class:`~msrkit.data.History` applies."""
    from pydantic import ValidationError

    if not isinstance(obj, dict):
        return None
    try:
        return History.model_validate({"user_id": obj.get("user_id")}).user_id
    except ValidationError:
        return None


class SummarizeActor(_Actor):
    """``map_batches`` callable: a batch of items -> the items with keywords (and image descriptions)."""

    def __init__(self, settings: Settings, base_dir: str | None) -> None:
        # summaries read neither the catalog nor the index: an actor need not load them
        super().__init__(settings_from(settings, catalog=None, interactions=None, index=None), base_dir)
        self.pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="msrkit-summarize")
        self.summarizer = self.rec.item_summarizer()
        backend = self.summarizer.backend
        self.model = f"{backend.name}/{backend.model}"

    def __call__(self, batch: Any) -> Any:
        return self._table(list(self.pool.map(self._summarize, batch.to_pylist())), summary_schema())

    def _summarize(self, row: dict[str, Any]) -> dict[str, Any]:
        from ..inputs.columnar import item_row
        from ..inputs.io import validate
        from ..runtime.meter import Meter

        meter = Meter()
        obj: Any = None
        item: Item | None = None
        try:
            obj = _input(row)
            item = validate(Item, obj, source=row.get("source") or "<item>")
            done = self.summarizer.summarize_item(item, meter=meter, base_dir=self.base_dir)
        except PER_USER_ERRORS as exc:
            item_id = obj.get("item_id") if isinstance(obj, dict) else None
            failed = item_row(item) if item is not None else {"item_id": str(item_id or row.get("key") or "")}
            return {**failed, "warnings": [], "error": str(exc), "error_type": type(exc).__name__}
        usage = meter.finish().model_dump(include={"llm_calls", "prompt_tokens", "completion_tokens", "cache_hits"})
        return {**item_row(done), "summary_tag": self.summarizer.tag(item), "summary_model": self.model,
                "warnings": list(meter.warnings), **usage}  # fmt: skip


def summary_schema() -> Any:
    """The Arrow schema of :func:`summarize_dataset`'s rows."""
    import pyarrow as pa

    from ..inputs.columnar import item_schema

    extra = [("summary_tag", pa.string()), ("summary_model", pa.string()), ("warnings", pa.list_(pa.string())),
             *((name, pa.int64()) for name in SUMMARY_COLUMNS[3:7]), ("error", pa.string()),
             ("error_type", pa.string())]  # fmt: skip
    return pa.schema([*item_schema(), *extra])
