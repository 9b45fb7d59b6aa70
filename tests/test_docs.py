"""The documentation: the site builds with no warning (every page in the nav, every link resolved,
every API entry found: mkdocs --strict), the generated pages equal what generates them, and the
README stays a front page that links every page."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

import msrkit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None,
    reason="needs: pip install 'msrkit[docs]'",
)
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "finetune" / "index.html").is_file()
    assert "msrkit.recommender.Recommender" in (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert PAGES and [p for p in PAGES if p not in nav] == []


def _gen_cli():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_is_what_the_commands_say() -> None:
    """docs/cli-reference.md is generated: run ``python docs/gen_cli.py`` after changing a command."""
    text = _gen_cli().render()
    assert (DOCS / "cli-reference.md").read_text(encoding="utf-8") == text
    assert "\x1b" not in text
    for command in ("msrkit rank", "msrkit index build", "msrkit data movielens", "msrkit mcp"):
        assert f"## `{command}`" in text


def test_the_cli_reference_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert _gen_cli().render() == (DOCS / "cli-reference.md").read_text(encoding="utf-8")


def test_the_api_page_lists_every_public_name() -> None:
    entries = re.findall(r"^::: ([\w.]+)$", (DOCS / "api.md").read_text(encoding="utf-8"), flags=re.M)
    names = [e.rsplit(".", 1)[1] for e in entries]
    assert sorted(names) == sorted(n for n in msrkit.__all__ if n != "__version__")
    assert all(e == f"{msrkit._EXPORTS[n]}.{n}" for e, n in zip(entries, names, strict=True))


def test_the_readme_is_a_front_page_linking_every_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    linked = set(re.findall(r"\]\(docs/([\w./-]+\.md)\)", readme))
    assert [p for p in PAGES if p not in linked] == []
    assert all((DOCS / p).is_file() for p in linked)
