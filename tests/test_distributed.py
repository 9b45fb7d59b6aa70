"""``--engine ray``: the real Ray Data engine, local (``num_cpus=2``), against the single-process run.

Proved here, each on MovieLens-100k users (``msrkit.datasets``) with a saved index:

- rankings made by Ray actors equal, user for user, those of the single-process
  ``rank_batch`` (``msrkit rank --out``), with ``--backend none`` and through a
  loopback OpenAI-compatible server; the server never sees more than
  ``actors x concurrency`` requests at once;
- a user whose input is wrong is an error row, and the rest are ranked;
- catalog summaries made on Ray land in the driver's catalog store;
- the command line: 1,000+ users identical to ``msrkit rank --out``; a driver
  killed with SIGKILL mid-run and restarted ends with every user exactly once;
- Parquet in and out round-trips; ``import msrkit`` imports no Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import pytest
from faultserver import FaultServer, Reply, Seen

from msrkit.config import Settings, settings_from
from msrkit.errors import ConfigError

pytest.importorskip("pyarrow", reason="pip install 'msrkit[parquet]'")

ROOT = Path(__file__).resolve().parent.parent


def records(*paths: Path) -> dict[str, dict[str, Any]]:
    """JSONL records by key, with the only field that differs between two runs (wall seconds) removed."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            assert rec["key"] not in out, f"{rec['key']} twice"
            rec.get("usage", {}).pop("seconds", None)
            out[rec["key"]] = rec
    return out


def shard_records(folder: Path) -> dict[str, dict[str, Any]]:
    return records(*sorted(folder.glob("part-*.jsonl")))


# --------------------------------------------------------------------------- data


@pytest.fixture(scope="module")
def movielens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MovieLens-100k as msrkit files (items, interactions, 943 leave-one-out cases) and a saved index."""
    from msrkit.datasets import load_movielens_100k, write_dataset
    from msrkit.retrieval import build_index, save

    folder = tmp_path_factory.mktemp("ml")
    try:
        catalog, interactions = load_movielens_100k()
    except Exception as exc:  # noqa: BLE001 - the data set's package is optional
        pytest.skip(f"MovieLens-100k not available: {exc}")
    write_dataset(folder, catalog, interactions)
    s = Settings(interactions=folder / "interactions.jsonl", catalog=folder / "items.jsonl", cache=False)
    save(build_index(s), folder / "index")
    return folder


def none_settings(ml: Path, **kw: Any) -> Settings:
    return Settings(backend="none", catalog=ml / "items.jsonl", index=ml / "index", cache=False, **kw)


def first_users(ml: Path, n: int, out: Path, *extra: dict[str, Any]) -> Path:
    lines = (ml / "cases.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    out.write_text("".join(x + "\n" for x in [*lines, *(json.dumps(e) for e in extra)]), encoding="utf-8")
    return out


def single_process(path: Path, s: Settings, out: Path) -> dict[str, dict[str, Any]]:
    """What ``msrkit rank path --out out`` writes, by key."""
    from msrkit.inputs.io import load_histories
    from msrkit.jobs.batch import rank_batch
    from msrkit.recommender import Recommender

    with Recommender(settings=s) as rec:
        summary = rank_batch(rec.rank, load_histories(path), out=out)
    assert summary.failed == 0
    return records(out)


# --------------------------------------------------------------------------- without Ray


def test_import_msrkit_imports_no_ray_and_no_pyarrow() -> None:
    code = ("import sys, msrkit, msrkit.distributed, msrkit.inputs.columnar, msrkit.cli;"
            "print(','.join(m for m in ('ray', 'pyarrow', 'pandas') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_shards_are_fixed_by_the_input_and_the_manifest_guards_the_folder(tmp_path: Path) -> None:
    from msrkit.distributed.runner import RANK
    from msrkit.distributed.shards import open_layout

    keys = [f"u{i}" for i in range(23)]
    layout = open_layout(tmp_path, kind=RANK, fmt="jsonl", shard_size=10, keys=keys)
    assert layout.shards == 3
    assert [list(layout.span(n)) for n in range(3)] == [list(range(10)), list(range(10, 20)), [20, 21, 22]]
    # a rerun with another shard size keeps the folder's: the same records stay in the same files
    again = open_layout(tmp_path, kind=RANK, fmt="jsonl", shard_size=7, keys=keys)
    assert again.shard_size == 10
    for other in ({"keys": keys[:-1]}, {"keys": keys, "fmt": "parquet"}):
        with pytest.raises(ConfigError, match="another run"):
            open_layout(tmp_path, **{"kind": RANK, "fmt": "jsonl", "shard_size": 10, **other})  # type: ignore[arg-type]


def test_rankings_table_round_trips_a_ranking_and_an_error() -> None:
    from msrkit.data import RankedItem, Ranking, Usage
    from msrkit.errors import InputError
    from msrkit.inputs.columnar import error_rows, ranking_record, ranking_rows

    ranking = Ranking(
        user_id="u1", ranking=[RankedItem(item_id=i, rank=n + 1, score=1.0 / (n + 1), reason=f"r{i}", title=None)
                               for n, i in enumerate("bca")],
        preference_summary="likes", warnings=["w"], usage=Usage(llm_calls=2, prompt_tokens=9, seconds=0.5),
        backend="openai/x", prompts={"rank": "rank@1#ab"}, collaborative_context=["k"],
        diagnostics={"ranks": {"a": {"llm": 3}}, "fusion_weight": 0.5},
    )  # fmt: skip
    rows = ranking_rows("u1", ranking)
    assert [r["item_id"] for r in rows] == ["b", "c", "a"] and {r["n_items"] for r in rows} == {3}
    assert ranking_record(rows) == {"key": "u1", **ranking.model_dump(mode="json")}
    failed = error_rows("#3", None, InputError("bad", source="users.jsonl:4"))
    assert ranking_record(failed) == {"key": "#3", "user_id": None, "error": "users.jsonl:4: bad",
                                      "error_type": "InputError"}  # fmt: skip


def test_catalog_and_histories_read_from_parquet_rank_the_same(movielens: Path, tmp_path: Path) -> None:
    from msrkit.inputs.columnar import write_histories, write_items
    from msrkit.inputs.io import load_catalog, load_histories
    from msrkit.recommender import Recommender

    catalog = load_catalog(movielens / "items.jsonl")
    write_items(tmp_path / "items.parquet", catalog.values())
    assert load_catalog(tmp_path / "items.parquet") == catalog
    histories = load_histories(first_users(movielens, 20, tmp_path / "users.jsonl"))
    write_histories(tmp_path / "users.parquet", histories)
    again = load_histories(tmp_path / "users.parquet")
    s = none_settings(movielens)
    with Recommender(settings=s) as a, Recommender(settings=settings_from(s, catalog=tmp_path / "items.parquet")) as b:
        for h, h2 in zip(histories, again, strict=True):
            ra, rb = a.rank(h).model_dump(), b.rank(h2).model_dump()
            ra["usage"].pop("seconds"), rb["usage"].pop("seconds")
            assert ra == rb


# --------------------------------------------------------------------------- on a local Ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray for this module (2 CPUs, no dashboard, a small object store); yields its address."""
    ray = pytest.importorskip("ray", reason="pip install 'msrkit[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150 * 2**20, logging_level="WARNING")
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


class CountingServer(FaultServer):
    """The fault server answering every request after ``latency``, counting the requests it holds at once."""

    def __init__(self, latency: float) -> None:
        self.latency, self.now, self.peak = latency, 0, 0
        self._count = threading.Lock()
        super().__init__()

    def _next(self, seen: Seen) -> Reply:
        reply = super()._next(seen)
        reply.delay = reply.delay or self.latency
        return reply

    def _handler(self) -> Any:
        server = self

        class Counting(super()._handler()):  # type: ignore[misc]
            disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                with server._count:
                    server.now += 1
                    server.peak = max(server.peak, server.now)
                try:
                    super().do_POST()
                finally:
                    with server._count:
                        server.now -= 1

        return Counting


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ray_ranks_like_one_process_and_records_bad_users(movielens: Path, ray_cluster: str, tmp_path: Path) -> None:
    from msrkit.distributed import rank_to_shards

    good = first_users(movielens, 120, tmp_path / "good.jsonl")
    bad = [{"user_id": "bad-shape", "history": 5}, {"user_id": "bad-id", "history": ["no-such-item"]}]
    mixed = first_users(movielens, 120, tmp_path / "mixed.jsonl", *bad)
    s = none_settings(movielens, actors=2)
    expected = single_process(good, s, tmp_path / "single.jsonl")

    run = rank_to_shards(mixed, tmp_path / "out", s, fmt="parquet", shard_size=32)
    assert (run.done, run.failed, run.shards) == (120, 2, 4)
    assert run.failures == {"InputError": 2}
    got = _parquet_records(tmp_path / "out")
    assert {k: v for k, v in got.items() if k in expected} == expected
    assert {k: got[k]["error_type"] for k in ("bad-shape", "bad-id")} == {"bad-shape": "InputError",
                                                                          "bad-id": "InputError"}  # fmt: skip
    assert "no-such-item" in got["bad-id"]["error"] and "mixed.jsonl:122" in got["bad-id"]["error"]
    # the library call on a Dataset read by Ray itself: rows of a users.jsonl as text, keyed by their user ids
    ray = pytest.importorskip("ray")
    from msrkit.distributed import rank_dataset
    from msrkit.inputs.columnar import ranking_record

    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rank_dataset(ray.data.read_text(str(good)), s).take_all():
        grouped.setdefault(row["key"], []).append(row)
    direct = {k: ranking_record(sorted(rows, key=lambda r: r["rank"])) for k, rows in grouped.items()}
    assert {k: {**v, "usage": {**v["usage"], "seconds": 0}} for k, v in direct.items()} == {
        k: {**v, "usage": {**v["usage"], "seconds": 0}} for k, v in expected.items()
    }
    # a rerun keeps every complete record and tries only the failed users again
    again = rank_to_shards(mixed, tmp_path / "out", s, fmt="parquet", shard_size=32)
    assert (again.done, again.failed, again.skipped, again.shards_skipped) == (0, 2, 120, 3)
    assert _parquet_records(tmp_path / "out") == got


def _parquet_records(folder: Path) -> dict[str, dict[str, Any]]:
    from msrkit.inputs.columnar import ranking_record, read_table

    out: dict[str, dict[str, Any]] = {}
    for part in sorted(folder.glob("part-*.parquet")):
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in read_table(part):
            grouped.setdefault(row["key"], []).append(row)
        for key, rows in grouped.items():
            rec = ranking_record(rows)
            rec.get("usage", {}).pop("seconds", None)
            assert key not in out
            out[key] = rec
    return out


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_through_a_model_server_same_rankings_and_at_most_actors_x_concurrency_in_flight(
    movielens: Path, ray_cluster: str, tmp_path: Path
) -> None:
    from msrkit.distributed import rank_to_shards

    users = first_users(movielens, 150, tmp_path / "users.jsonl")
    with CountingServer(latency=0.005) as server:
        s = settings_from(
            none_settings(movielens), backend="openai/x", base_url=server.url, item_summaries=False, max_history=6,
            actors=2, concurrency=3, preference_mode="recurrent",  # 3 calls per user: concurrency to watch
        )  # fmt: skip
        expected = single_process(users, s, tmp_path / "single.jsonl")
        calls = len(server.requests)
        server.peak = 0
        run = rank_to_shards(users, tmp_path / "out", s, shard_size=50)
        assert 2 <= server.peak <= 2 * 3, server.peak
        assert len(server.requests) == 2 * calls  # the same requests again, no more
    assert (run.done, run.failed) == (150, 0) and not run.degraded
    got = shard_records(tmp_path / "out")
    assert got == expected
    assert all(r["usage"]["llm_calls"] >= 3 and r["backend"] == "openai/x" for r in got.values())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_summaries_made_on_ray_land_in_the_driver_store(movielens: Path, ray_cluster: str, tmp_path: Path) -> None:
    from msrkit.distributed import summarize_to_shards
    from msrkit.inputs.io import load_catalog
    from msrkit.summaries.catalog import summarize_catalog
    from msrkit.summaries.store import STORE_FILE, CatalogStore

    items = list(load_catalog(movielens / "items.jsonl").values())[:200]
    catalog = tmp_path / "items.jsonl"
    catalog.write_text("".join(i.model_dump_json(exclude_none=True) + "\n" for i in items), encoding="utf-8")
    with CountingServer(latency=0.01) as server:
        s = Settings(backend="openai/x", base_url=server.url, actors=2, concurrency=4)
        alone = summarize_catalog(settings_from(s, cache_dir=tmp_path / "single"), items, concurrency=4).items
        server.peak = 0
        run = summarize_to_shards(catalog, tmp_path / "out", settings_from(s, cache_dir=tmp_path / "driver"),
                                  shard_size=64)  # fmt: skip
        assert server.peak <= 2 * 4
    assert (run.done, run.failed, run.usage.llm_calls) == (200, 0, 200)
    assert load_catalog_shards(tmp_path / "out") == {i.item_id: i for i in alone}
    store = CatalogStore(tmp_path / "driver" / STORE_FILE)
    stored = store.lookup(items)
    store.close()
    assert {k: v.keywords for k, v in stored.items()} == {i.item_id: i.keywords for i in alone}


def load_catalog_shards(folder: Path) -> dict[str, Any]:
    from msrkit.inputs.io import load_catalog

    out: dict[str, Any] = {}
    for part in sorted(folder.glob("part-*.jsonl")):
        out.update(load_catalog(part))
    return out


# --------------------------------------------------------------------------- the command line


def msrkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return clirun.msrkit(*args, cwd=Path.cwd(), timeout=timeout)


@pytest.fixture(scope="module")
def thousand(movielens: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """1,020 users (943 cases, 40 repeated user ids, 37 without one) and what ``msrkit rank --out`` makes of them."""
    folder = tmp_path_factory.mktemp("thousand")
    cases = [json.loads(x) for x in (movielens / "cases.jsonl").read_text(encoding="utf-8").splitlines()]
    extra = [*cases[:40], *({k: v for k, v in c.items() if k != "user_id"} for c in cases[40:77])]
    users = folder / "users.jsonl"
    users.write_text("".join(json.dumps(c) + "\n" for c in [*cases, *extra]), encoding="utf-8")
    out = msrkit("rank", str(users), *_data(movielens), "--out", str(folder / "single.jsonl"), "-q")
    assert out.returncode == 0, out.stderr
    return users, records(folder / "single.jsonl")


def _data(ml: Path) -> tuple[str, ...]:
    return ("--backend", "none", "--catalog", str(ml / "items.jsonl"), "--index", str(ml / "index"), "--no-cache")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_engine_ray_on_1020_users_equals_the_single_process_run(
    movielens: Path, thousand: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    users, expected = thousand
    assert len(expected) == 1020 and sum(k.startswith("#") for k in expected) == 117  # 2 x 40 repeated + 37 missing
    out = tmp_path / "ray"
    # no --ray-address: the command starts its own local Ray, as on a laptop
    done = msrkit("rank", str(users), *_data(movielens), "--engine", "ray", "--actors", "2", "--shard-size", "200",
                  "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "1020 users in 6 shard(s)" in done.stderr and "1020 done, 0 failed" in done.stderr
    assert shard_records(out) == expected
    again = msrkit("rank", str(users), *_data(movielens), "--engine", "ray", "--out", str(out))
    assert again.returncode == 0 and "0 done, 0 failed, 1020 already complete (6 shard(s))" in again.stderr
    assert "Ray start 0.0 s" in again.stderr  # nothing to do: no Ray started


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cli_driver_killed_mid_run_then_rerun_loses_and_duplicates_nobody(
    movielens: Path, thousand: tuple[Path, dict[str, dict[str, Any]]], ray_cluster: str, tmp_path: Path
) -> None:
    _, single = thousand
    users = first_users(movielens, 400, tmp_path / "users.jsonl")  # unique ids: here the keys are the user ids
    ranked = list(single.values())[:400]  # the same users, in the same order (some had "#i" keys there)
    expected = {r["user_id"]: {**r, "key": r["user_id"]} for r in ranked}
    out = tmp_path / "ray"
    args = [sys.executable, "-m", "msrkit.cli", "rank", str(users), *_data(movielens), "--engine", "ray",
            "--ray-address", ray_cluster, "--actors", "2", "--shard-size", "20", "--out", str(out), "-q"]  # fmt: skip
    driver = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 200
        while len(list(out.glob("part-*.jsonl"))) < 3 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        driver.wait(timeout=30)
        _, stderr = driver.communicate()
        with contextlib.suppress(ProcessLookupError):  # anything else the driver started (nothing, with an address)
            os.killpg(driver.pid, signal.SIGKILL)
    written = len(list(out.glob("part-*.jsonl")))
    assert driver.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
    assert 3 <= written < 20, f"{written} of 20 shards when killed"  # killed mid-run, not after
    rerun = msrkit("rank", str(users), *_data(movielens), "--engine", "ray", "--ray-address", ray_cluster,
                   "--actors", "2", "--out", str(out))  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert f"{400 - 20 * written} done, 0 failed, {20 * written} already complete ({written} shard(s))" in " ".join(
        rerun.stderr.split()
    )
    assert shard_records(out) == expected  # records() fails on a key seen twice
    assert not list(out.glob(".*.tmp"))
