"""``msrkit eval`` and :func:`run_experiment` from Python: the same variants, numbers, files and model requests.

The LLM variants use a real OpenAI-compatible HTTP path on loopback
(:class:`faultserver.FaultServer`, which answers ranking prompts with the
candidates in the order given and other prompts with a fixed summary), so
both sides run the whole stack; only wall-clock seconds may differ.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import clirun
import pytest
from faultserver import FaultServer, echo_order, status

from msrkit.config import Settings
from msrkit.data import Item
from msrkit.datasets import write_dataset
from msrkit.errors import ConfigError
from msrkit.evaluation.experiments import Experiment, run_experiment, variants_for
from msrkit.inputs.io import Interaction

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parent.parent
GENRES = ["Drama", "Comedy", "Horror", "Sci-Fi"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 items, 8 users with 5 interactions each, leave-one-out cases with 4 negatives."""
    folder = tmp_path_factory.mktemp("data")
    catalog = {
        f"i{n}": Item(item_id=f"i{n}", title=f"Film {n}", attributes={"genres": [GENRES[n % 4]]}) for n in range(12)
    }
    rows = [Interaction(f"u{u}", f"i{(u * 3 + k * (u % 3 + 1)) % 12}", float(u * 10 + k)) for u in range(8)
            for k in range(5)]  # fmt: skip
    write_dataset(folder, catalog, rows, negatives=4, seed=0)
    return folder


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def msrkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return clirun.msrkit(*args, cwd=cwd, timeout=200)


def timeless(value: Any) -> Any:
    """``value`` without wall-clock seconds (the only thing two identical runs may differ in)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def results(folder: Path) -> dict[str, list[Any]]:
    return {
        p.name: [timeless(json.loads(line)) for line in p.read_text().splitlines()]
        for p in sorted(folder.glob("*.results.jsonl"))
    }


def markdown_without_seconds(folder: Path) -> str:
    text = (folder / "report.md").read_text()
    return re.sub(r"\| [0-9.]+ \| (\d+) \| (\d+) \|$", r"| s | \1 | \2 |", text, flags=re.M)


def assert_same_run(py: Path, cli: Path, cli_stdout: str) -> None:
    assert sorted(p.name for p in py.iterdir()) == sorted(p.name for p in cli.iterdir())
    report = json.loads((py / "report.json").read_text())
    assert timeless(report) == timeless(json.loads((cli / "report.json").read_text()))
    assert timeless(json.loads(cli_stdout)) == timeless(report)  # --json prints the comparison
    assert results(py) == results(cli)
    assert markdown_without_seconds(py) == markdown_without_seconds(cli)


def test_backend_none_from_python_and_from_the_cli_agree(data: Path, tmp_path: Path) -> None:
    paths = dict(catalog=data / "items.jsonl", interactions=data / "interactions.jsonl")
    result = run_experiment(Experiment(cases=data / "cases.jsonl", settings=Settings(backend="none", cache=False,
                                       **paths), out=tmp_path / "py", ks=[1, 3]))  # fmt: skip
    done = msrkit("eval", str(data / "cases.jsonl"), "--backend", "none", "--catalog", str(paths["catalog"]),
                  "--interactions", str(paths["interactions"]), "--no-cache", "--ks", "1,3", "--out", "cli",
                  "--json", "-q", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(result.reports) == ["retrieval"] and result.reports["retrieval"].counts["cases"] == 8
    assert_same_run(tmp_path / "py", tmp_path / "cli", done.stdout)


def test_ablations_from_python_and_from_the_cli_send_the_same_requests(
    data: Path, tmp_path: Path, server: FaultServer
) -> None:
    paths = dict(catalog=data / "items.jsonl", interactions=data / "interactions.jsonl")
    settings = Settings(backend="openai/x", base_url=server.url, cache=False, **paths)
    result = run_experiment(Experiment(cases=data / "cases.jsonl", settings=settings, ablations=True,
                                       out=tmp_path / "py"))  # fmt: skip
    from_python = [r.body for r in server.requests]
    server.requests.clear()
    done = msrkit("eval", str(data / "cases.jsonl"), "--backend", "openai/x", "--base-url", server.url,
                  "--catalog", str(paths["catalog"]), "--interactions", str(paths["interactions"]), "--no-cache",
                  "--ablations", "--out", "cli", "--json", "-q", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(result.reports) == ["retrieval", "+llm", "+summaries", "+collaborative"]
    assert result.reports["+summaries"].usage.llm_calls > result.reports["+llm"].usage.llm_calls > 0
    assert [r.body for r in server.requests] == from_python  # the same calls, byte for byte, in the same order
    assert_same_run(tmp_path / "py", tmp_path / "cli", done.stdout)

    server.requests.clear()  # the CLI's results files resume from Python: nothing left to run
    again = run_experiment(Experiment(cases=data / "cases.jsonl", settings=settings, ablations=True,
                                      out=tmp_path / "cli"))  # fmt: skip
    assert server.requests == []
    assert timeless(again.comparison.model_dump()) == timeless(result.comparison.model_dump())


def test_prompt_variants_from_python_and_from_the_cli_agree(data: Path, tmp_path: Path, server: FaultServer) -> None:
    dirs = [ROOT / "prompts", ROOT / "examples" / "prompt_variants" / "terse"]
    settings = Settings(backend="openai/x", base_url=server.url, cache=False, item_summaries=False,
                        preference_summary=False, catalog=data / "items.jsonl")  # fmt: skip
    result = run_experiment(Experiment(cases=data / "cases.jsonl", settings=settings, prompt_dirs=dirs, limit=3,
                                       out=tmp_path / "py"))  # fmt: skip
    assert list(result.reports) == [str(d) for d in dirs]
    prompts = {json.dumps(r.body["messages"]) for r in server.requests}
    assert len(prompts) == 6  # 3 cases x 2 templates: the variants really sent different prompts
    (tmp_path / "msrkit.toml").write_text("item_summaries = false\npreference_summary = false\n")
    done = msrkit("eval", str(data / "cases.jsonl"), "--backend", "openai/x", "--base-url", server.url,
                  "--catalog", str(data / "items.jsonl"), "--no-cache", "--limit", "3", "--out", "cli", "--json",
                  "-q", *[a for d in dirs for a in ("--prompts", str(d))], cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_same_run(tmp_path / "py", tmp_path / "cli", done.stdout)


def test_variants_for_prompt_folders_and_ablations() -> None:
    llm = Settings(backend="openai/x")
    one = variants_for(llm, ablations=True, prompt_dirs=[Path("p")], has_index=True)
    assert [v.name for v in one] == ["retrieval", "+llm", "+summaries", "+collaborative"]
    with pytest.raises(ConfigError, match="not both"):
        variants_for(llm, ablations=True, prompt_dirs=[Path("p"), Path("q")], has_index=True)
    with pytest.raises(ConfigError, match="not 'none'"):
        variants_for(Settings(backend="none"), ablations=False, prompt_dirs=[Path("p"), Path("q")], has_index=False)
    assert [v.name for v in variants_for(Settings(backend="none"), ablations=True, prompt_dirs=[],
                                         has_index=True)] == ["retrieval"]  # fmt: skip


def test_one_prompt_folder_runs_every_variant_with_it(data: Path, tmp_path: Path, server: FaultServer) -> None:
    terse = ROOT / "examples" / "prompt_variants" / "terse"
    settings = Settings(backend="openai/x", base_url=server.url, cache=False, catalog=data / "items.jsonl",
                        item_summaries=False, preference_summary=False)  # fmt: skip
    run_experiment(Experiment(cases=data / "cases.jsonl", settings=settings, prompt_dirs=[terse], limit=2,
                              out=tmp_path))  # fmt: skip
    sent = [r.body["messages"][0]["content"] for r in server.requests]
    assert sent == ["Rank items. Answer only with item numbers."] * 2  # the folder's system prompt, not the shipped


def test_bad_cutoffs_are_a_config_error(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ks"):
        run_experiment(Experiment(cases=data / "cases.jsonl", settings=Settings(backend="none"), ks=[0], out=tmp_path))
    done = msrkit("eval", str(data / "cases.jsonl"), "--backend", "none", "--ks", "1,x", cwd=tmp_path)
    assert done.returncode == 4 and "--ks" in done.stderr and "Traceback" not in done.stderr


# -- eval-keywords: compare_keyword_prompts(settings, ...) ---------------------------------------------

KEYWORD_ITEMS = [Item(item_id=f"k{n}", title=f"Film {n}", description=f"A {g.lower()} film.") for n, g in
                 enumerate(GENRES)]  # fmt: skip
MY_KEYWORDS = '''id = "item_keywords"
version = 7
system = "MY KEYWORD PROMPT"
user = """At most $max_keywords keywords for <<<$item>>>"""
'''


def item_words(prompt: str) -> str:
    """A model that names each item by its own text (so items get different keywords), else echoes an order."""
    if "keywords for <<<" in prompt or "Keywords:" in prompt:
        return prompt.rsplit("<<<", 1)[1].split(">>>")[0].replace("|", ",")
    return echo_order(prompt)


@pytest.fixture
def keyword_server() -> Iterator[FaultServer]:
    with FaultServer(default=item_words) as srv:
        yield srv


def test_eval_keywords_honours_the_settings(
    tmp_path: Path, keyword_server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_summarize_catalog import FastRetry

    import msrkit.backends.stack as stack_module
    from msrkit.evaluation.keywords import compare_keyword_prompts

    monkeypatch.setattr(stack_module, "RetryingBackend", FastRetry)
    server = keyword_server
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "item_keywords.toml").write_text(MY_KEYWORDS)
    settings = Settings(backend="openai/x", base_url=server.url, cache_dir=tmp_path / "cache", retries=2, prompts=mine)
    server.enqueue(status(503), status(503))
    scores = compare_keyword_prompts(settings, KEYWORD_ITEMS, distractors=2)
    calls = int(scores["shipped"]["llm_calls"])
    assert calls == 2 * len(KEYWORD_ITEMS)  # keywords, then reconstruction, per item
    assert len(server.requests) == calls + 2  # the settings' retries took the two 503s
    keyword_requests = [r for r in server.requests if "keywords for <<<" in r.prompt]
    assert len(keyword_requests) == len(KEYWORD_ITEMS) + 2  # the settings' prompts folder was used
    assert all(r.body["messages"][0]["content"] == "MY KEYWORD PROMPT" for r in keyword_requests)
    server.requests.clear()
    again = compare_keyword_prompts(settings, KEYWORD_ITEMS, distractors=2)
    assert server.requests == [] and again["shipped"]["cache_hits"] == calls  # the settings' cache folder
    with pytest.raises(ConfigError, match="not 'none'"):
        compare_keyword_prompts(Settings(backend="none"), KEYWORD_ITEMS)


def test_eval_keywords_cli_takes_its_backend_from_msrkit_toml(tmp_path: Path, keyword_server: FaultServer) -> None:
    server = keyword_server
    (tmp_path / "items.jsonl").write_text("".join(i.model_dump_json() + "\n" for i in KEYWORD_ITEMS))
    (tmp_path / "msrkit.toml").write_text(f'backend = "openai/x"\nbase_url = "{server.url}"\ncache = false\n')
    done = msrkit("eval-keywords", "items.jsonl", "--distractors", "2", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores["shipped"]["llm_calls"] == 2 * len(KEYWORD_ITEMS) == len(server.requests)


def test_every_variant_has_its_own_visible_results_file(tmp_path: Path) -> None:
    from msrkit.evaluation.experiments import results_files

    files = results_files(tmp_path, ["retrieval", "+llm", "../prompts", "prompts", "a/b", "a_b"])
    names = [p.name for p in files.values()]
    assert len(set(names)) == len(names) and not any(n.startswith(".") for n in names)
    assert files["retrieval"].name == "retrieval.results.jsonl" and files["+llm"].name == "llm.results.jsonl"
    assert files == results_files(tmp_path, ["retrieval", "+llm", "../prompts", "prompts", "a/b", "a_b"])
