"""The bounds of issue 20 on real engines: the embedded model behind the real ``llama_cpp.server`` and behind
the loopback Ollama server (the real ``ollama`` client over HTTP).

- the agent's turn ends within its deadline (+ 5 s) on a real server, with a valid ranking;
- ``Recommender.close()`` after :meth:`~msrkit.recommender.Recommender.arank` leaves no socket open and no
  ``ResourceWarning`` for either HTTP client (openai, ollama), and ``aclose()`` closes from async code.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from agent_world import assert_valid, catalog, history, interactions
from conftest import OPENAI_ALIAS
from faultserver import open_sockets

from msrkit.recommender import Recommender

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
QUIET = {"item_summaries": False, "preference_summary": False, "explain": False, "cache": False}


def test_the_agent_turn_ends_within_its_deadline_on_the_real_llama_cpp_server(openai_tools_server: str) -> None:
    with Recommender(f"openai/{OPENAI_ALIAS}", base_url=openai_tools_server, catalog=catalog(),
                     interactions=interactions(), deadline=4.0, agent_max_turns=20, agent_max_invalid=20,
                     **QUIET) as rec:  # fmt: skip
        started = time.monotonic()  # the turn (building the index before it is not the request's time)
        result = rec.chat(history(candidates=False), "space")
        took = time.monotonic() - started
    assert took <= 4.0 + 5.0, took
    assert_valid(result.ranking, history(candidates=False), catalog())


def _close_after_arank(rec: Recommender) -> tuple[int, list[str]]:
    given = history()

    async def burst() -> list[Any]:  # one after the other: the loopback Ollama server's engine runs one at a time
        return [await rec.arank(given) for _ in range(2)]

    before = open_sockets()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rankings = asyncio.run(burst())
        assert all(sorted(r.item_ids()) == sorted(given["candidates"]) for r in rankings)
        rec.close()
        left = open_sockets() - before
        gc.collect()
    return left, [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc")
def test_close_after_arank_leaves_no_socket_open_on_the_real_llama_cpp_server(openai_server: str) -> None:
    rec = Recommender(f"openai/{OPENAI_ALIAS}", base_url=openai_server, catalog=catalog(),
                      backend_options={"timeout": 600}, **QUIET)  # fmt: skip
    left, resource_warnings = _close_after_arank(rec)
    assert left <= 0 and not resource_warnings, (left, resource_warnings)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc")
def test_close_after_arank_leaves_no_socket_open_with_the_ollama_client(ollama_server: Any) -> None:
    rec = Recommender(f"ollama/{ollama_server.model}", base_url=ollama_server.url, catalog=catalog(), **QUIET)
    left, resource_warnings = _close_after_arank(rec)
    assert left <= 0 and not resource_warnings, (left, resource_warnings)
