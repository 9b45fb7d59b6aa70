"""The agent loop on real engines: the embedded model through llama-cpp-python in-process (a function-calling
chat format chosen per call) and through the real ``llama_cpp.server`` (OpenAI-compatible, started with
``--chat_format chatml-function-calling``).

Structure only (SmolLM2-135M is far too small to recommend well): the run stays within its bounds, at
least one tool call comes back parsed from the engine's own tool-call output, and the result is a valid
Ranking of catalog items (a permutation of the given candidates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agent_world import assert_valid, catalog, history, interactions
from conftest import N_THREADS, OPENAI_ALIAS, TOOLS_N_CTX

from msrkit.recommender import Recommender

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
TURNS = 3
QUIET = {"item_summaries": False, "preference_summary": False, "explain": False, "cache": False}


def _check(result: Any, given: dict[str, Any]) -> None:
    assert_valid(result.ranking, given, catalog())
    summary = result.trace.summary()
    assert 1 <= summary["model_turns"] <= TURNS
    parsed = [c for s in result.trace.steps if s.kind == "model" and not s.repairs for c in s.calls if not c["error"]]
    assert parsed, f"no tool call parsed from the engine's tool-call output: {result.trace.records()}"
    assert all(
        s.status in ("ok", "invalid", "repeat", "budget", "error", "refused")
        for s in result.trace.steps
        if s.kind == "tool"
    )
    assert result.ranking.usage.llm_calls >= summary["model_turns"]


def test_agent_on_llamacpp_in_process_with_a_function_calling_format(embedded_model: Path) -> None:
    options = {"n_ctx": TOOLS_N_CTX, "n_threads": N_THREADS}
    with Recommender(f"llamacpp/{embedded_model}", catalog=catalog(), interactions=interactions(),
                     backend_options=options, agent_max_turns=TURNS, **QUIET) as rec:  # fmt: skip
        result = rec.chat(history())
        assert rec.backend is not None and rec.backend.capabilities.tools
    _check(result, history())


def test_agent_through_the_real_llama_cpp_server(openai_tools_server: str) -> None:
    with Recommender(f"openai/{OPENAI_ALIAS}", base_url=openai_tools_server, catalog=catalog(),
                     interactions=interactions(), agent_max_turns=TURNS, backend_options={"timeout": 600},
                     **QUIET) as rec:  # fmt: skip
        result = rec.chat(history())
    _check(result, history())
