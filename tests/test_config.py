"""Settings: defaults < config file < MSRKIT_* variables < flags, each value validated where it came from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import clirun
import pytest

from msrkit.config import Settings, load_settings
from msrkit.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "history.json"


def msrkit(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return clirun.msrkit(*args, cwd=cwd, env=env)


def test_defaults_are_the_recommenders(tmp_path: Path) -> None:
    settings, sources = load_settings({}, cwd=tmp_path, env={})
    assert settings == Settings()
    assert (settings.backend, settings.window, settings.fusion_weight, settings.retries) == ("auto", 20, None, 4)
    assert settings.effective_fusion_weight == 0.5  # unset: an adapter's tuned weight, else 0.5
    assert set(sources.values()) == {"default"}


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    (tmp_path / "msrkit.toml").write_text('window = 30\npasses = 2\nbackend = "none"\nfusion_weight = 0.1\n')
    env = {"MSRKIT_WINDOW": "40", "MSRKIT_PASSES": "3"}
    settings, sources = load_settings({"window": 50, "stride": None}, cwd=tmp_path, env=env)
    assert (settings.window, settings.passes, settings.backend, settings.fusion_weight) == (50, 3, "none", 0.1)
    assert sources["window"] == "flag"
    assert sources["passes"] == "env MSRKIT_PASSES"
    assert sources["backend"] == sources["fusion_weight"] == "msrkit.toml"
    assert sources["stride"] == "default"  # a flag left at None was not given
    assert load_settings({}, cwd=tmp_path, env=env)[0].window == 40
    assert load_settings({}, cwd=tmp_path, env={})[0].window == 30


def test_tool_msrkit_in_pyproject_and_msrkit_toml_wins_over_it(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.msrkit]\nbackend = "none"\nmax-side = 256\n'
    )
    settings, sources = load_settings({}, cwd=tmp_path, env={})
    assert (settings.backend, settings.max_side) == ("none", 256)  # dashed keys accepted as in pyproject style
    assert sources["backend"] == "pyproject.toml [tool.msrkit]"
    (tmp_path / "msrkit.toml").write_text("max_side = 512\n")
    settings, sources = load_settings({}, cwd=tmp_path, env={})
    assert (settings.backend, settings.max_side, sources["max_side"]) == ("auto", 512, "msrkit.toml")


def test_pyproject_without_the_table_is_no_config(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert set(load_settings({}, cwd=tmp_path, env={})[1].values()) == {"default"}


def test_environment_values_are_typed_by_the_field(tmp_path: Path) -> None:
    env = {
        "MSRKIT_STRICT": "true", "MSRKIT_FUSION_WEIGHT": "0.25", "MSRKIT_WINDOW": "8", "MSRKIT_STRIDE": "",
        "MSRKIT_CATALOG": "items.jsonl", "MSRKIT_BACKEND_OPTIONS": '{"temperature": 0, "num_ctx": 4096}',
        "MSRKIT_VISION_BACKEND": "ollama/llava:7b", "MSRKIT_OLLAMA_MODEL": "not a setting, ignored",
    }  # fmt: skip
    settings, sources = load_settings({}, cwd=tmp_path, env=env)
    assert settings.strict is True and settings.fusion_weight == 0.25 and settings.window == 8
    assert settings.stride is None and settings.catalog == Path("items.jsonl")
    assert settings.backend_options == {"temperature": 0, "num_ctx": 4096}
    assert settings.vision_backend == "ollama/llava:7b" and sources["vision_backend"] == "env MSRKIT_VISION_BACKEND"
    assert load_settings({}, cwd=tmp_path, env={"MSRKIT_STRICT": "0"})[0].strict is False


@pytest.mark.parametrize(
    ("toml", "env", "flags", "names"),
    [
        ("window = 1\n", {}, {}, ["msrkit.toml", "window", "greater than or equal to 2"]),
        ('fusion_weight = "high"\n', {}, {}, ["msrkit.toml", "fusion_weight"]),
        ("windw = 30\n", {}, {}, ["msrkit.toml", "unknown setting 'windw'"]),
        ("backend_options = 3\n", {}, {}, ["msrkit.toml", "backend_options"]),
        ("", {"MSRKIT_PASSES": "many"}, {}, ["env MSRKIT_PASSES", "passes", "integer"]),
        ("", {"MSRKIT_STRICT": "perhaps"}, {}, ["env MSRKIT_STRICT", "strict"]),
        ("", {"MSRKIT_BACKEND_OPTIONS": "{oops"}, {}, ["env MSRKIT_BACKEND_OPTIONS", "JSON object"]),
        ("", {}, {"fusion_weight": 2.0}, ["flag --fusion-weight", "fusion_weight"]),
        ("window = [\n", {}, {}, ["msrkit.toml", "not valid TOML"]),
    ],
)
def test_a_bad_value_is_a_config_error_naming_source_and_key(
    tmp_path: Path, toml: str, env: dict[str, str], flags: dict[str, object], names: list[str]
) -> None:
    (tmp_path / "msrkit.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(flags, cwd=tmp_path, env=env)
    for name in names:
        assert name in str(caught.value)


def test_relative_paths_in_a_config_file_are_read_from_its_folder(tmp_path: Path) -> None:
    conf = tmp_path / "project" / "conf"
    conf.mkdir(parents=True)
    (conf / "msrkit.toml").write_text(
        'catalog = "data/items.jsonl"\nindex = "../idx"\nprompts = "/abs/prompts"\ncache_dir = "~/c"\n'
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for settings, sources in (
        load_settings({}, cwd=elsewhere, env={"MSRKIT_CONFIG": str(conf / "msrkit.toml")}),
        load_settings({}, config=conf / "msrkit.toml", cwd=elsewhere, env={}),
    ):
        assert settings.catalog == conf / "data" / "items.jsonl"
        assert settings.index == conf / ".." / "idx"
        assert settings.prompts == Path("/abs/prompts")
        assert settings.cache_dir == Path("~/c").expanduser()
        assert sources["catalog"].endswith("msrkit.toml")


def test_an_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, config=tmp_path / "nope.toml", cwd=tmp_path, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, cwd=tmp_path, env={"MSRKIT_CONFIG": "nope.toml"})


# -- through the command line ---------------------------------------------------------


def test_config_show_json_gives_each_value_and_its_source(tmp_path: Path) -> None:
    (tmp_path / "msrkit.toml").write_text('backend = "none"\nwindow = 30\ncatalog = "items.jsonl"\n')
    shown = msrkit("config", "show", "--json", cwd=tmp_path, MSRKIT_WINDOW="12")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    rows = data["settings"]
    assert Path(data["config_file"]).resolve() == (tmp_path / "msrkit.toml").resolve()
    assert rows["backend"] == {"value": "none", "source": "msrkit.toml"}
    assert rows["window"] == {"value": 12, "source": "env MSRKIT_WINDOW"}
    assert rows["passes"] == {"value": 1, "source": "default"}
    assert Path(rows["catalog"]["value"]).resolve() == (tmp_path / "items.jsonl").resolve()
    assert set(rows) == set(Settings.model_fields)


def test_config_show_text_and_a_bad_value_is_one_line_with_exit_code_4(tmp_path: Path) -> None:
    shown = msrkit("config", "show", cwd=tmp_path, MSRKIT_BACKEND="none")
    assert shown.returncode == 0 and "config file: none" in shown.stdout
    assert any(line.startswith("backend") and "env MSRKIT_BACKEND" in line for line in shown.stdout.splitlines())
    bad = msrkit("config", "show", cwd=tmp_path, MSRKIT_WINDOW="-3")
    assert bad.returncode == 4
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "env MSRKIT_WINDOW" in bad.stderr
    assert "Traceback" not in bad.stderr


def _rank_json(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return msrkit("rank", str(EXAMPLE), "--json", "--no-cache", *args, cwd=cwd, **env)


def test_rank_takes_its_backend_from_the_config_file_and_a_flag_beats_it(tmp_path: Path) -> None:
    (tmp_path / "msrkit.toml").write_text('backend = "none"\n')
    done = _rank_json(tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["backend"] == "none"

    (tmp_path / "msrkit.toml").write_text('backend = "nonsense"\n')
    assert _rank_json(tmp_path).returncode == 4  # the file's backend is used, and is wrong
    flagged = _rank_json(tmp_path, "--backend", "none")
    assert flagged.returncode == 0, flagged.stderr
    assert json.loads(flagged.stdout)["backend"] == "none"
    env_beats_file = _rank_json(tmp_path, MSRKIT_BACKEND="none")
    assert env_beats_file.returncode == 0, env_beats_file.stderr


def test_rank_reports_a_bad_config_value_by_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "msrkit.toml").write_text("window = 1\n")
    done = _rank_json(tmp_path, "--backend", "none")
    assert done.returncode == 4 and "msrkit.toml: window" in done.stderr
    # each value is checked where it comes from: a broken file stays an error even where a flag overrides it
    assert _rank_json(tmp_path, "--backend", "none", "--window", "4").returncode == 4
    (tmp_path / "msrkit.toml").write_text("window = 6\n")
    assert _rank_json(tmp_path, "--backend", "none", "--window", "4").returncode == 0


def test_eval_takes_its_backend_and_options_from_the_config_file(tmp_path: Path) -> None:
    case = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    first = case["candidates"][0]
    case["target"] = first["item_id"] if isinstance(first, dict) else first
    (tmp_path / "cases.jsonl").write_text(json.dumps(case) + "\n", encoding="utf-8")
    (tmp_path / "msrkit.toml").write_text('backend = "none"\n')
    done = msrkit("eval", "cases.jsonl", "--no-cache", "--out", "out", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "| retrieval |" in done.stdout  # backend none: the retrieval-only variant


# -- typed backend options ---------------------------------------------------------------


def test_backend_options_temperature_reaches_the_backend_and_its_cache_identity(tmp_path: Path) -> None:
    from msrkit.backends.base import ChatRequest, Message
    from msrkit.recommender import Recommender

    (tmp_path / "msrkit.toml").write_text(
        'backend = "openai/m"\nbase_url = "http://127.0.0.1:9/v1"\n\n[backend_options]\ntemperature = 0.7\n'
    )
    settings, sources = load_settings({}, cwd=tmp_path, env={})
    assert settings.backend_options == {"temperature": 0.7} and sources["backend_options"] == "msrkit.toml"
    with Recommender(settings=settings, cache=False) as rec:
        openai_backend: Any = rec.backend
        while hasattr(openai_backend, "inner"):  # under the wrappers of the stack
            openai_backend = openai_backend.inner
        params, _ = openai_backend._prepare(ChatRequest((Message.text("user", "hi"),)))
        assert params["temperature"] == 0.7
        assert rec.backend.identity()["temperature"] == "0.7"  # type: ignore[union-attr]


def test_a_backend_that_takes_no_such_option_is_one_line_exit_4(tmp_path: Path) -> None:
    (tmp_path / "msrkit.toml").write_text('backend = "none"\n\n[backend_options]\ntemperature = 0.0\n')
    done = _rank_json(tmp_path)
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "backend_options for none: 'temperature': not an option of this backend" in done.stderr


@pytest.mark.parametrize(
    ("spec", "options", "names"),
    [
        ("openai/m", {"temprature": 0.1}, ["'temprature': not an option", "allowed: timeout, vision"]),
        ("openai/m", {"timeout": "abc"}, ["'timeout'", "valid number"]),
        ("ollama/m", {"keep_alive": [1]}, ["'keep_alive'"]),
        ("llamacpp/x.gguf", {"n_ctx": 10}, ["'n_ctx'", "greater than or equal to 64"]),
    ],
)
def test_mistyped_backend_options_name_the_option_and_the_allowed_ones(
    spec: str, options: dict[str, object], names: list[str]
) -> None:
    from msrkit.backends import get_backend

    with pytest.raises(ConfigError) as caught:
        get_backend(spec, base_url="http://127.0.0.1:9/v1", **options)
    for name in names:
        assert name in str(caught.value)
