"""Importing msrkit stays light: no model client, array or tensor library until a part is used.

(That ``__all__`` is exactly what ``import msrkit`` offers: ``tests/test_public_names.py``.)"""

from __future__ import annotations

import subprocess
import sys


def test_import_msrkit_loads_no_model_client() -> None:
    code = (
        "import sys, msrkit; from msrkit import Recommender, Item, History;"
        "heavy = ('llama_cpp', 'openai', 'ollama', 'bm25s', 'PIL', 'numpy', 'mcp', 'torch');"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
