"""``msrkit summarize`` / ``summarize_catalog`` against the loopback fault server: retries, msrkit.toml, resume, store.

Real stack: settings -> Recommender's backend stack (cache ∘ retry ∘ OpenAIBackend) -> HTTP on
127.0.0.1 -> :class:`faultserver.FaultServer`, which answers keyword prompts and fails on cue.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import pytest
from faultserver import FaultServer, status

import msrkit.backends.stack as stack_module
from msrkit.backends.retry import RetryingBackend
from msrkit.config import Settings
from msrkit.data import Item
from msrkit.summaries.catalog import summarize_catalog

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
ITEMS = [Item(item_id=f"m{i}", title=f"Movie {i}", description=f"A war drama number {i}.") for i in range(4)]
TAKEN = [("a", 0), ("a", 1), ("b", 1), ("b", 2)]
INTERACTIONS = [{"user_id": u, "item_id": f"m{i}", "timestamp": t} for t, (u, i) in enumerate(TAKEN)]


def keywords(prompt: str) -> str:
    return "drama, war, number"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(default=keywords) as srv:
        yield srv


class FastRetry(RetryingBackend):
    """The settings' retry policy with test-sized waits (attempts unchanged)."""

    def __init__(self, inner: Any, **kw: Any) -> None:
        super().__init__(inner, **{**kw, "initial": 0.01, "max_wait": 0.05, "jitter": 0.0})


def settings(url: str, tmp: Path, **kw: Any) -> Settings:
    # one call per item (summary_batch=1): these tests retry, fail and resume single items
    return Settings(backend="openai/x", base_url=url, cache_dir=tmp / "cache", concurrency=1, summary_batch=1, **kw)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r if isinstance(r, dict) else r.model_dump()) + "\n" for r in rows))
    return path


def msrkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return clirun.msrkit(*args, cwd=cwd, timeout=90)


# -- in process --------------------------------------------------------------------------------


def test_transient_failures_are_retried(server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)
    server.enqueue(status(503), status(503))
    result = summarize_catalog(settings(server.url, tmp_path, retries=2), ITEMS)
    assert len(server.requests) == len(ITEMS) + 2
    assert [i.keywords for i in result.items] == [["drama", "war", "number"]] * len(ITEMS)
    assert (result.failed, result.usage.llm_calls) == (0, len(ITEMS))


def test_without_retries_the_item_fails_and_a_rerun_of_out_redoes_only_it(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)
    out = tmp_path / "enriched.jsonl"
    server.enqueue(status(503))
    first = summarize_catalog(settings(server.url, tmp_path, retries=0), ITEMS, out=out)
    assert first.failed == 1 and first.items[0].keywords is None
    assert any("503" in w or "failed" in w for w in first.warnings), first.warnings
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["item_id"] for r in lines) == ["m0", "m1", "m2", "m3"]  # the failed item is a line too
    assert "keywords" not in next(r for r in lines if r["item_id"] == "m0")
    server.requests.clear()
    seen: list[str] = []
    again = summarize_catalog(settings(server.url, tmp_path, retries=0, cache=False), ITEMS, out=out,
                              on_item=lambda i: seen.append(i.item_id))  # fmt: skip
    assert len(server.requests) == 1 and "Movie 0" in server.requests[0].prompt
    assert (again.skipped, again.failed) == (3, 0) and sorted(seen) == ["m0", "m1", "m2", "m3"]
    assert all(i.keywords == ["drama", "war", "number"] for i in again.items)
    assert len(out.read_text().splitlines()) == 4


def test_an_item_whose_text_changed_is_summarized_again(server: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "enriched.jsonl"
    summarize_catalog(settings(server.url, tmp_path, cache=False), ITEMS, out=out)
    server.requests.clear()
    changed = [ITEMS[0].model_copy(update={"title": "Another title"}), *ITEMS[1:]]
    result = summarize_catalog(settings(server.url, tmp_path, cache=False), changed, out=out)
    assert result.skipped == 3 and len(server.requests) == 1 and "Another title" in server.requests[0].prompt


def test_ctrl_c_keeps_every_written_line(server: FaultServer, tmp_path: Path) -> None:
    out = tmp_path / "enriched.jsonl"
    done: list[str] = []

    def stop_after_two(item: Item) -> None:
        done.append(item.item_id)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        summarize_catalog(settings(server.url, tmp_path, cache=False), ITEMS, out=out, on_item=stop_after_two)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["m0", "m1"] and all(r["keywords"] for r in rows)
    server.requests.clear()
    result = summarize_catalog(settings(server.url, tmp_path, cache=False), ITEMS, out=out)
    assert result.skipped == 2 and len(server.requests) == 2


# -- the command line, configured by msrkit.toml ----------------------------------------------------


def test_cli_takes_backend_url_and_retries_from_msrkit_toml(server: FaultServer, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", ITEMS)
    (tmp_path / "msrkit.toml").write_text(
        f'backend = "openai/x"\nsummary_batch = 1\nbase_url = "{server.url}"\nretries = 2\nconcurrency = 1\n'
        'cache_dir = "cache"\n'
    )
    server.enqueue(status(503), status(503))
    done = msrkit("summarize", "items.jsonl", "--out", "enriched.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(server.requests) == len(ITEMS) + 2  # two 503s retried, then one call per item
    report = json.loads(done.stdout)
    assert (report["items"], report["failed"], report["usage"]["llm_calls"]) == (4, 0, 4)
    rows = [json.loads(x) for x in (tmp_path / "enriched.jsonl").read_text().splitlines()]
    assert all(r["keywords"] == ["drama", "war", "number"] for r in rows)
    assert (tmp_path / "cache" / "catalog.sqlite3").is_file()


def test_cli_retries_as_the_toml_says_and_a_rerun_resumes(server: FaultServer, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "items.jsonl", ITEMS)
    (tmp_path / "msrkit.toml").write_text(
        f'backend = "openai/x"\nsummary_batch = 1\nbase_url = "{server.url}"\nretries = 1\nconcurrency = 1\n'
        'cache_dir = "cache"\n'
    )
    server.enqueue(status(503), status(503))  # one retry (the file's, not the default four): the first item fails
    first = msrkit("summarize", "items.jsonl", "--out", "enriched.jsonl", cwd=tmp_path)
    assert first.returncode == 6, first.stderr
    assert "1 item(s) could not be summarized" in first.stderr and "Traceback" not in first.stderr
    assert len(server.requests) == 2 + 3
    server.requests.clear()
    again = msrkit("summarize", "items.jsonl", "--out", "enriched.jsonl", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == 1 and "Movie 0" in server.requests[0].prompt
    assert "3 already in enriched.jsonl" in again.stderr


def test_index_build_reads_the_keywords_summarize_stored(server: FaultServer, tmp_path: Path) -> None:
    from msrkit.retrieval import load

    write_jsonl(tmp_path / "items.jsonl", ITEMS)
    write_jsonl(tmp_path / "interactions.jsonl", INTERACTIONS)
    (tmp_path / "msrkit.toml").write_text(
        f'backend = "openai/x"\nsummary_batch = 1\nbase_url = "{server.url}"\ncache_dir = "cache"\n'
    )
    done = msrkit("summarize", "items.jsonl", "-q", cwd=tmp_path)  # no --out: only the catalog store holds them
    assert done.returncode == 0, done.stderr
    built = msrkit("index", "build", "--interactions", "interactions.jsonl", "--catalog", "items.jsonl",
                   "--out", "idx", cwd=tmp_path)  # fmt: skip
    assert built.returncode == 0, built.stderr
    index = load(tmp_path / "idx")
    assert {"drama", "war", "number"} <= set(index.keywords)
    elsewhere = msrkit("index", "build", "--interactions", "interactions.jsonl", "--catalog", "items.jsonl",
                       "--out", "idx2", "--cache-dir", "other", cwd=tmp_path)  # fmt: skip
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert load(tmp_path / "idx2").keywords == []  # another store: nothing summarized there
