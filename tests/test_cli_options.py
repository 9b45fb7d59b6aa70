"""The shared options: a group spreads into its options where the command names it, and becomes settings."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from msrkit.cli.options import CacheOptions, DataOptions, ModelOptions, RayOptions, option_groups, settings


@option_groups
def _command(
    path: Annotated[Path, typer.Argument(help="a file")],
    *,
    data: DataOptions,
    top: Annotated[int, typer.Option("--top", help="how many")] = 3,
    cache: CacheOptions,
) -> None:
    typer.echo(f"{path} {data.catalog} {data.interactions} {top} {cache.cache_dir} {cache.no_cache}")


def test_a_group_stands_in_the_signature_as_its_options_in_its_place() -> None:
    names = list(inspect.signature(_command).parameters)
    assert names == ["path", "catalog", "interactions", "top", "cache_dir", "no_cache"]


def test_the_command_gets_each_group_built_from_its_options() -> None:
    app = typer.Typer()
    app.command("cmd")(_command)
    app.command("other")(lambda: None)  # two commands, so one is called by its name
    result = CliRunner().invoke(app, ["cmd", "h.json", "--interactions", "i.jsonl", "--no-cache", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "h.json None i.jsonl 5 None True"


def test_groups_and_flags_become_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no msrkit.toml, no MSRKIT_* variable
    for key in [k for k in os.environ if k.startswith("MSRKIT_")]:
        monkeypatch.delenv(key)
    model = ModelOptions(backend="none", backend_options=["n_ctx=2048", "name=x"])
    assert model.overrides() == {
        "backend": "none", "base_url": None, "backend_options": {"n_ctx": 2048, "name": "x"}, "adapter": None
    }  # fmt: skip
    s = settings(model, CacheOptions(no_cache=True), RayOptions(out_format="parquet"), config=None, window=30)
    assert (s.backend, s.backend_options) == ("none", {"n_ctx": 2048, "name": "x"})
    assert (s.cache, s.window, s.engine) == (False, 30, "local")  # --format is no setting; None is "not given"
