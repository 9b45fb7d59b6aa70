"""The public API: ``__all__`` is exactly what ``import msrkit`` offers, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import msrkit


def test_every_name_in___all___resolves() -> None:
    for name in msrkit.__all__:
        assert getattr(msrkit, name) is not None, name
    assert sorted(msrkit.__all__) == sorted(set(msrkit.__all__))
    assert set(dir(msrkit)) == set(msrkit.__all__)


def test_import_msrkit_loads_no_model_client() -> None:
    code = (
        "import sys, msrkit; from msrkit import Recommender, Item, History;"
        "heavy = ('llama_cpp', 'openai', 'ollama', 'bm25s', 'PIL', 'numpy', 'mcp');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
