"""The command line: output formats, documented exit codes, one clear line instead of a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from clirun import msrkit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "history.json"


def test_rank_json_with_backend_none_keeps_every_candidate(tmp_path: Path) -> None:
    out = msrkit("rank", str(EXAMPLE), "--backend", "none", "--json", "--cache-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    ranking = json.loads(out.stdout)
    given = [c["item_id"] for c in json.loads(EXAMPLE.read_text())["candidates"]]
    assert sorted(r["item_id"] for r in ranking["ranking"]) == sorted(given)
    assert [r["rank"] for r in ranking["ranking"]] == list(range(1, len(given) + 1))
    assert ranking["backend"] == "none" and ranking["usage"]["llm_calls"] == 0
    assert set(ranking) >= {"user_id", "ranking", "preference_summary", "degraded", "warnings", "usage"}


def test_rank_top_k_and_table(tmp_path: Path) -> None:
    out = msrkit("rank", str(EXAMPLE), "--backend", "none", "--top-k", "3", "--json", "--no-cache")
    assert len(json.loads(out.stdout)["ranking"]) == 3
    table = msrkit("rank", str(EXAMPLE), "--backend", "none", "--no-cache")
    assert table.returncode == 0 and "Right Stuff" not in table.stdout and "rank" in table.stdout


@pytest.mark.parametrize(
    ("content", "code", "needle"),
    [
        ('{"history": [', 3, "invalid JSON"),
        ('{"history": [{"title": "x"}], "candidates": ["a"]}', 3, "history[0].item_id"),
        ('{"history": ["a"], "candidates": ["b"]}', 3, "unknown item id 'a'"),
        ('{"history": [], "candidates": []}', 3, "candidates"),
        (
            '{"history": [{"item_id": "a", "image": "poster.jpg"}], "candidates": [{"item_id": "b"}]}',
            3,
            "history[0].image",
        ),
        ('{"history": [], "candidates": [{"item_id": "b", "image": "nope.png"}]}', 3, "does not exist"),
    ],
)
def test_bad_input_is_one_line_with_exit_code(tmp_path: Path, content: str, code: int, needle: str) -> None:
    p = tmp_path / "h.json"
    p.write_text(content, encoding="utf-8")
    (tmp_path / "poster.jpg").write_text("not a picture")
    out = msrkit("rank", str(p), "--backend", "none", "--no-cache")
    assert out.returncode == code, out.stderr
    assert needle in out.stderr and str(p) in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_bad_backend_string_is_a_config_error(tmp_path: Path) -> None:
    out = msrkit("rank", str(EXAMPLE), "--backend", "nonsense", "--no-cache")
    assert out.returncode == 4 and "KIND/MODEL" in out.stderr and "Traceback" not in out.stderr


def test_prompts_list_and_render() -> None:
    listed = msrkit("prompts", "list")
    assert listed.returncode == 0 and "listwise_rank@v2#" in listed.stdout
    shown = msrkit("prompts", "render", "listwise_rank", str(EXAMPLE))
    assert shown.returncode == 0, shown.stderr
    assert "[10] " in shown.stdout and "Tin Men" in shown.stdout


def test_help_lists_exit_codes() -> None:
    out = msrkit("--help")
    assert out.returncode == 0 and "Exit codes" in out.stdout


def test_unreachable_backend_is_exit_6_with_strict(tmp_path: Path) -> None:
    out = msrkit(
        "rank", str(EXAMPLE), "--backend", "openai/x", "--base-url", "http://127.0.0.1:9/v1", "--strict",
        "--no-cache", "--retries", "0",
    )  # fmt: skip
    assert out.returncode == 6, out.stderr
    assert "127.0.0.1:9" in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_unreachable_backend_without_strict_still_prints_a_ranking_but_exits_6(tmp_path: Path) -> None:
    out = msrkit("rank", str(EXAMPLE), "--backend", "openai/x", "--base-url", "http://127.0.0.1:9/v1", "--json",
                 "--no-cache", "--retries", "0", "--no-item-summaries", "--no-preference-summary")  # fmt: skip
    assert out.returncode == 6, out.stderr
    ranking = json.loads(out.stdout)
    assert ranking["degraded"] is True and len(ranking["ranking"]) == 10
    assert "could not be reached" in out.stderr and "Traceback" not in out.stderr


def test_a_fifo_as_the_history_file_is_exit_3_at_once(tmp_path: Path) -> None:

    fifo = tmp_path / "history.json"
    os.mkfifo(fifo)
    out = msrkit("rank", str(fifo), "--backend", "none", "--no-cache")
    assert out.returncode == 3, out.stderr
    assert "FIFO" in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("toml", "needle"),
    [(b'backend = "openai/x"\n[backend_options]\ntimeout = "abc"\n', "timeout"),
     (b"window = 3\n# caf\xe9 \xff\n", "not UTF-8")],
    ids=["timeout-abc", "not-utf8"],
)  # fmt: skip
def test_a_bad_config_file_is_one_line_and_exit_4(tmp_path: Path, toml: bytes, needle: str) -> None:
    (tmp_path / "msrkit.toml").write_bytes(toml)
    (tmp_path / "h.json").write_text(json.dumps({"history": [], "candidates": ["a"]}))
    out = msrkit("rank", "h.json", "--base-url", "http://127.0.0.1:9/v1", "--no-cache", cwd=tmp_path)
    assert out.returncode == 4, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_bad_key_prints_the_fallback_ranking_and_exits_6(tmp_path: Path) -> None:
    from faultserver import FaultServer, status

    with FaultServer() as server:
        server.always(status(401, "Incorrect API key provided"))
        out = msrkit("rank", str(EXAMPLE), "--backend", "openai/x", "--base-url", server.url, "--json", "--no-cache",
                     "--deadline", "20", env={"OPENAI_API_KEY": "k-wrong-0123456789"})  # fmt: skip
    assert out.returncode == 6, out.stderr
    ranking = json.loads(out.stdout)
    assert ranking["degraded"] is True and ranking["degraded_by"] == "backend_permanent"
    assert "refused the requests for good" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("a\x1b]8;;http://evil.example/\x07click\x1b]8;;\x07b", "aclickb"),  # OSC 8 hyperlink, BEL-terminated
        ("t\x1b]0;owned\x1b\\ok", "tok"),  # OSC window title, ST-terminated
        ("c\x9d8;;u\x9cz", "cz"),  # the 8-bit OSC and ST
        ("x\x1b[31mred\x1b[0m\x1b[2J", "xred"),  # CSI colours, erase screen
        ("\x1bPq#0;2;0;0;0\x1b\\dcs", "dcs"),  # DCS (sixel) with its payload
        ("esc\x1b7save\x1bc", "escsave"),  # two-byte escapes: save cursor, reset terminal
        ("bell\x07\x00nul", "bellnul"),
        ("tab\tand\nnewline kept", "tab\tand\nnewline kept"),
    ],
)
def test_safe_drops_escape_sequences_whole_payload_included(text: str, shown: str) -> None:
    from msrkit.cli.common import safe

    assert safe(text) == shown


def test_the_table_never_prints_an_escape_sequence_from_a_title(tmp_path: Path) -> None:
    title = "Film\x1b]8;;http://evil.example/\x07click me\x1b]8;;\x07 \x1b[2J\x1b]0;owned\x07"
    history = {"history": [], "candidates": [{"item_id": "c1", "title": title}, {"item_id": "c2", "title": "plain"}]}
    (tmp_path / "h.json").write_text(json.dumps(history))
    out = msrkit("rank", str(tmp_path / "h.json"), "--backend", "none", "--no-cache")
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "evil.example" not in out.stdout and "owned" not in out.stdout and "Filmclick me" in out.stdout
