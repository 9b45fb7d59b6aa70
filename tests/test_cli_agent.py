"""``msrkit agent`` and ``msrkit chat`` as subprocesses (retrieval only, ``--backend none``: the fallback path)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import clirun
import pytest
from agent_world import catalog, history, interactions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def world(tmp_path: Path) -> Path:
    (tmp_path / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in catalog().values()))
    rows = [{"user_id": r.user_id, "item_id": r.item_id, "timestamp": r.timestamp} for r in interactions()]
    (tmp_path / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "history.json").write_text(json.dumps(history()))
    return tmp_path


def msrkit(world: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    common = ["--backend", "none", "--catalog", str(world / "items.jsonl"), "--interactions",
              str(world / "interactions.jsonl"), "--no-cache"]  # fmt: skip
    return clirun.msrkit(*args, *common, stdin=stdin)


def test_agent_one_turn_keeps_state_and_writes_the_trace(world: Path) -> None:
    state, trace = world / "state.json", world / "trace.jsonl"
    first = msrkit(world, "agent", str(world / "history.json"), "something new", "--json", "--state", str(state),
                   "--trace", str(trace))  # fmt: skip
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout)
    top = out["ranking"]["ranking"][0]["item_id"]
    assert sorted(r["item_id"] for r in out["ranking"]["ranking"]) == sorted(history()["candidates"])
    assert out["trace"]["fallback"] == "no model to call (backend none)" and out["reply"].startswith("I recommend")
    assert json.loads(state.read_text())["shown"][0] == top
    second = msrkit(world, "agent", str(world / "history.json"), "not that one", "--json", "--state", str(state),
                    "--trace", str(trace))  # fmt: skip
    again = json.loads(second.stdout)
    assert again["state"]["rejected"] == [top] and again["ranking"]["ranking"][-1]["item_id"] == top
    kinds = [json.loads(line)["kind"] for line in trace.read_text().splitlines()]
    assert kinds == ["fallback", "feedback", "fallback"]


def test_chat_reads_turns_until_quit(world: Path) -> None:
    out = msrkit(world, "chat", str(world / "history.json"), stdin="not that one\nquit\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("agent: I recommend") == 2 and "fell back" in out.stdout


def test_agent_chat_and_mcp_are_listed_in_help() -> None:
    out = subprocess.run([sys.executable, "-m", "msrkit.cli", "--help"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)  # fmt: skip
    for command in ("agent", "chat", "mcp"):
        assert f" {command} " in out.stdout, out.stdout
