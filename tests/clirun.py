"""``python -m msrkit.cli ...`` in a subprocess, the way the command-line tests run it.

The child imports this checkout's msrkit (``PYTHONPATH``) and sees none of the caller's
``MSRKIT_*``, ``OPENAI_*`` or ``OLLAMA_*`` variables, so a developer's shell cannot change
a test's outcome; ``env`` adds variables on top.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def msrkit(
    *args: str,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``msrkit ARGS``; the completed process (stdout and stderr captured as text)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MSRKIT_", "OPENAI_", "OLLAMA_"))}
    base["PYTHONPATH"] = str(ROOT) + os.pathsep + base.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "msrkit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, input=stdin, env={**base, **(env or {})})  # fmt: skip
