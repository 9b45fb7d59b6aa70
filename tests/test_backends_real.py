"""Each backend against a REAL model: llama.cpp in-process, its OpenAI-compatible server, and Ollama's protocol.

Every test that runs a model is marked ``slow``; the llama.cpp translation
functions at the end are pure and run always.

All use the embedded SmolLM2-135M-Instruct (Q4_1). The model is tiny, so these
tests check the plumbing (tokens counted, logprobs returned, JSON constrained,
errors classified, rankings complete), never the quality of its answers.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from msrkit.backends import get_backend
from msrkit.backends.base import ChatRequest, ImagePart, Message, TextPart
from msrkit.errors import BackendPermanentError, ConfigError

EXAMPLE_HISTORY = Path(__file__).resolve().parent.parent / "examples" / "history.json"
OPENAI_ALIAS = "smollm2"  # what the openai_server fixture passes as --model_alias
# Closed values: the grammar then bounds the output (a free string lets a 135M model ramble to max_tokens).
TINY_SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"enum": ["apple", "banana", "cherry"]}, "ripe": {"type": "boolean"}},
    "required": ["fruit", "ripe"],
}


def _rerank_only() -> Any:
    """Only the LLM rerank stage: the full pipeline makes ~22 calls, minutes on two CPU cores."""
    try:
        from msrkit.recommender import Stages
    except ImportError:
        return None
    return Stages(item_summaries=False, preference_summary=False)


RERANK_ONLY = _rerank_only()


def ask(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest((Message.text("user", text),), **kw)


def candidate_ids() -> list[str]:
    data = json.loads(EXAMPLE_HISTORY.read_text())
    return [c["item_id"] for c in data["candidates"]]


# --------------------------------------------------------------------------- llama.cpp in-process


@pytest.fixture(scope="module")
def llamacpp(embedded_model: Path) -> Any:
    from msrkit.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(embedded_model, n_ctx=2048, n_threads=1)
    yield backend
    backend.close()


@pytest.mark.slow
def test_llamacpp_chat_answers_with_token_counts(llamacpp: Any) -> None:
    resp = llamacpp.chat(ask("Name one fruit.", max_tokens=16))
    assert resp.text.strip()
    assert resp.prompt_tokens > 0 and resp.completion_tokens > 0
    assert resp.finish_reason in ("stop", "length")
    assert resp.model == "SmolLM2-135M-Instruct.Q4_1" and resp.seconds > 0
    assert resp.warnings == []


@pytest.mark.slow
def test_llamacpp_same_seed_and_temperature_zero_give_the_same_text(llamacpp: Any) -> None:
    request = ask("Write a short sentence about rivers.", max_tokens=12, temperature=0.0, seed=7)
    assert llamacpp.chat(request).text == llamacpp.chat(request).text


@pytest.mark.slow
def test_llamacpp_returns_top_logprobs_per_token(llamacpp: Any) -> None:
    resp = llamacpp.chat(ask("Answer yes or no: is water wet?", max_tokens=1, top_logprobs=3))
    assert resp.completion_tokens == 1
    assert resp.top_logprobs is not None and len(resp.top_logprobs) == 1
    (alternatives,) = resp.top_logprobs
    assert 1 <= len(alternatives) <= 3
    assert all(isinstance(t, str) and isinstance(lp, float) and lp <= 0.0 for t, lp in alternatives.items())


@pytest.mark.slow
def test_llamacpp_json_schema_constrains_the_output(llamacpp: Any) -> None:
    resp = llamacpp.chat(
        ask("Pick a fruit and say whether it is ripe, as JSON.", max_tokens=48, json_schema=TINY_SCHEMA)
    )
    assert json.loads(resp.text).keys() == {"fruit", "ripe"}
    assert json.loads(resp.text)["fruit"] in ("apple", "banana", "cherry")


@pytest.mark.slow
def test_llamacpp_prompt_longer_than_the_context_is_permanent(embedded_model: Path) -> None:
    from msrkit.backends.llamacpp import LlamaCppBackend

    small = LlamaCppBackend(embedded_model, n_ctx=256, n_threads=1)
    try:
        with pytest.raises(BackendPermanentError, match=r"n_ctx is 256") as info:
            small.chat(ask("movie " * 600, max_tokens=4))
        assert "raise n_ctx" in str(info.value)
    finally:
        small.close()


@pytest.mark.slow
def test_llamacpp_text_only_model_leaves_images_out_with_a_warning(llamacpp: Any) -> None:
    image = ImagePart(b"\x89PNG\r\n\x1a\nnot really a png", mime="image/png")
    request = ChatRequest((Message("user", (image, TextPart("Say hello."))),), max_tokens=8)
    resp = llamacpp.chat(request)
    assert resp.text.strip()
    assert len(resp.warnings) == 1
    assert "cannot see images" in resp.warnings[0] and "1 image(s) left out" in resp.warnings[0]
    assert not llamacpp.capabilities.vision


@pytest.mark.slow
def test_llamacpp_capabilities_and_identity(llamacpp: Any, embedded_model: Path) -> None:
    caps = llamacpp.capabilities
    assert caps.logprobs and caps.json_schema and caps.context_size == 2048
    ident = llamacpp.identity()
    assert ident["kind"] == "llamacpp" and ident["model"] == "SmolLM2-135M-Instruct.Q4_1"
    assert ident["n_ctx"] == "2048" and ident["mmproj"] == "" and len(ident["path_digest"]) >= 8
    assert str(embedded_model) not in json.dumps(ident)


@pytest.mark.slow
def test_llamacpp_missing_file_is_a_config_error(tmp_path: Path) -> None:
    from msrkit.backends.llamacpp import LlamaCppBackend

    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match="nope.gguf"):
        LlamaCppBackend(missing)
    with pytest.raises(ConfigError, match="nope.gguf"):
        get_backend(f"llamacpp/{missing}")


@pytest.mark.slow
def test_default_and_embedded_names_give_the_embedded_llamacpp_model(embedded_model: Path) -> None:
    from msrkit.backends.llamacpp import LlamaCppBackend

    for spec in ("llamacpp/default", "embedded"):
        backend = get_backend(spec, n_ctx=2048, n_threads=1)
        assert isinstance(backend, LlamaCppBackend)
        assert backend.path == embedded_model.resolve()
        backend.close()


# --------------------------------------------------------------------------- OpenAI-compatible server


def _openai_backend(url: str) -> Any:
    openai_mod = pytest.importorskip("msrkit.backends.openai")
    return openai_mod.OpenAIBackend(OPENAI_ALIAS, base_url=url, api_key="sk-loopback", timeout=60)


@pytest.mark.slow
def test_openai_server_reports_the_alias(openai_server: str) -> None:
    with urllib.request.urlopen(openai_server + "/models", timeout=10) as resp:  # noqa: S310 (loopback)
        ids = [m["id"] for m in json.loads(resp.read())["data"]]
    assert ids == [OPENAI_ALIAS]


@pytest.mark.slow
def test_openai_backend_chat_against_llama_cpp_server(openai_server: str) -> None:
    backend = _openai_backend(openai_server)
    try:
        resp = backend.chat(ask("Name one fruit.", max_tokens=16))
        assert resp.text.strip()
        assert resp.prompt_tokens > 0 and resp.completion_tokens > 0
        assert resp.finish_reason in ("stop", "length")
    finally:
        backend.close()


@pytest.mark.slow
def test_openai_backend_gets_logprobs_from_llama_cpp_server(openai_server: str) -> None:
    backend = _openai_backend(openai_server)
    try:
        resp = backend.chat(ask("Answer yes or no: is water wet?", max_tokens=2, top_logprobs=3))
        assert resp.top_logprobs is not None and len(resp.top_logprobs) == resp.completion_tokens
        assert all(lp <= 0.0 for alternatives in resp.top_logprobs for lp in alternatives.values())
    finally:
        backend.close()


@pytest.mark.slow
def test_recommender_end_to_end_through_openai_server(openai_server: str) -> None:
    rec_mod = pytest.importorskip("msrkit.recommender")
    pytest.importorskip("msrkit.backends.openai")
    pytest.importorskip("msrkit.ranking")
    rec = rec_mod.Recommender(
        backend=f"openai/{OPENAI_ALIAS}", base_url=openai_server, api_key="sk-loopback", cache=False, stages=RERANK_ONLY
    )
    ranking = rec.rank(EXAMPLE_HISTORY)
    assert sorted(ranking.item_ids()) == sorted(candidate_ids())
    assert ranking.usage.llm_calls > 0


# --------------------------------------------------------------------------- Ollama protocol (loopback)


def _ollama_backend(server: Any) -> Any:
    ollama_mod = pytest.importorskip("msrkit.backends.ollama")
    return ollama_mod.OllamaBackend(server.model, host=server.url, timeout=60)


@pytest.mark.slow
def test_ollama_backend_chat_sends_the_request_options(ollama_server: Any, ollama_requests: list[Any]) -> None:
    backend = _ollama_backend(ollama_server)
    try:
        resp = backend.chat(ask("Name one fruit.", max_tokens=12, temperature=0.0, seed=3, stop=("\n\n",)))
    finally:
        backend.close()
    assert resp.text.strip()
    assert resp.prompt_tokens > 0 and resp.completion_tokens > 0
    (chat,) = [r for r in ollama_requests if r.path == "/api/chat"]
    assert chat.body["model"] == ollama_server.model
    assert chat.body["messages"][-1]["role"] == "user"
    assert chat.body["messages"][-1]["content"] == "Name one fruit."
    options = chat.body["options"]
    assert options["temperature"] == 0.0 and options["seed"] == 3 and options["num_predict"] == 12
    assert options["stop"] == ["\n\n"]


@pytest.mark.slow
def test_ollama_backend_logprobs_and_json_schema(ollama_server: Any, ollama_requests: list[Any]) -> None:
    backend = _ollama_backend(ollama_server)
    try:
        lp = backend.chat(ask("Answer yes or no: is water wet?", max_tokens=1, top_logprobs=2))
        js = backend.chat(
            ask("Pick a fruit and say whether it is ripe, as JSON.", max_tokens=48, json_schema=TINY_SCHEMA)
        )
    finally:
        backend.close()
    assert lp.top_logprobs is not None and len(lp.top_logprobs) == 1
    assert all(v <= 0.0 for v in lp.top_logprobs[0].values())
    data = json.loads(js.text)
    assert data["fruit"] in ("apple", "banana", "cherry") and isinstance(data["ripe"], bool)
    chats = [r.body for r in ollama_requests if r.path == "/api/chat"]
    assert chats[0].get("logprobs") is True and chats[0].get("top_logprobs") == 2
    assert chats[1]["format"] == TINY_SCHEMA


@pytest.mark.slow
def test_ollama_unknown_model_is_permanent(ollama_server: Any) -> None:
    ollama_mod = pytest.importorskip("msrkit.backends.ollama")
    backend = ollama_mod.OllamaBackend("no-such-model:1b", host=ollama_server.url, timeout=30)
    try:
        with pytest.raises(BackendPermanentError):
            backend.chat(ask("hi", max_tokens=2))
    finally:
        backend.close()


@pytest.mark.slow
def test_recommender_end_to_end_through_ollama_protocol(ollama_server: Any, ollama_requests: list[Any]) -> None:
    rec_mod = pytest.importorskip("msrkit.recommender")
    pytest.importorskip("msrkit.backends.ollama")
    pytest.importorskip("msrkit.ranking")
    rec = rec_mod.Recommender(
        backend=f"ollama/{ollama_server.model}", base_url=ollama_server.url, cache=False, stages=RERANK_ONLY
    )
    ranking = rec.rank(EXAMPLE_HISTORY)
    assert sorted(ranking.item_ids()) == sorted(candidate_ids())
    assert ranking.usage.llm_calls > 0
    assert any(r.path == "/api/chat" for r in ollama_requests)


# --------------------------------------------------------------------------- llama.cpp translation (pure)


def test_to_llamacpp_messages_keeps_text_plain_and_images_as_data_url_parts() -> None:
    from msrkit.backends.llamacpp import to_llamacpp_messages

    request = ChatRequest(
        (
            Message.text("system", "Be brief."),
            Message("user", (TextPart("Which poster?"), ImagePart(b"\x01\x02", mime="image/png"), TextPart("Why?"))),
        )
    )
    assert to_llamacpp_messages(request) == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Which poster?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AQI="}},
                {"type": "text", "text": "Why?"},
            ],
        },
    ]


def test_parse_top_logprobs_reads_the_chat_logprobs_shape() -> None:
    from msrkit.backends.llamacpp import parse_top_logprobs

    # the shape llama-cpp-python 0.3.x returns in choices[0]["logprobs"] (values are numpy float32 there)
    raw = {
        "content": [
            {
                "token": "Yes",
                "logprob": -0.25,
                "bytes": None,
                "top_logprobs": [{"token": "Yes", "logprob": -0.25, "bytes": None}, {"token": "No", "logprob": -1.5}],
            },
            {"token": ".", "logprob": -0.5, "bytes": None, "top_logprobs": []},
        ],
        "refusal": None,
    }
    assert parse_top_logprobs(raw) == [{"Yes": -0.25, "No": -1.5}, {".": -0.5}]
    assert parse_top_logprobs(None) is None


def test_completion_kwargs_ask_for_logprobs_and_schema_only_when_wanted() -> None:
    from msrkit.backends.llamacpp import completion_kwargs

    plain = completion_kwargs(ask("x", max_tokens=5, seed=None, stop=("\n",)), default_seed=9)
    assert plain == {"max_tokens": 5, "temperature": 0.0, "seed": 9, "stop": ["\n"]}
    full = completion_kwargs(ask("x", top_logprobs=2, json_schema=TINY_SCHEMA), default_seed=0)
    assert full["logprobs"] is True and full["top_logprobs"] == 2
    assert full["response_format"] == {"type": "json_object", "schema": TINY_SCHEMA}
