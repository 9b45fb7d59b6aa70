"""Tool calling on every backend's wire format: exact payloads out, calls parsed back into one type.

Pure translation functions on canned payloads first (OpenAI, Ollama, llama.cpp),
then the real ``openai`` and ``ollama`` clients against the loopback servers of
``test_backend_payloads`` (bodies compared as received), the response cache with
tool calls, and the scripted model. Real models calling tools are in
``test_agent_real.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from faultserver import FaultServer, Reply
from test_backend_payloads import OllamaStub

from msrkit.backends.base import (
    Capabilities,
    ChatRequest,
    ChatResponse,
    Message,
    ToolCall,
    ToolSpec,
    make_tool_call,
    read_arguments,
    read_tool_calls,
)
from msrkit.backends.cache import CachedBackend, ResponseCache, request_key
from msrkit.backends.fake import FakeBackend
from msrkit.backends.llamacpp import completion_kwargs, llamacpp_tool_choice, to_llamacpp_messages
from msrkit.backends.ollama import OllamaBackend, ollama_params, parse_ollama_response
from msrkit.backends.openai import OpenAIBackend, openai_params, parse_openai_completion, to_openai_messages
from msrkit.errors import BackendPermanentError

pytestmark = pytest.mark.timeout(60)

SEARCH = ToolSpec(
    "search_catalog",
    "Find items by keywords.",
    {"type": "object", "properties": {"query": {"type": "string", "maxLength": 80}}, "required": ["query"]},
)
FINISH = ToolSpec(
    "finish",
    "Give the final recommendation.",
    {"type": "object", "properties": {"item_ids": {"type": "array", "items": {"type": "string"}}}},
)
CAPS = Capabilities(tools=True)
FUNCTIONS = [
    {"type": "function", "function": {"name": "search_catalog", "description": "Find items by keywords.",
                                      "parameters": dict(SEARCH.parameters)}},
    {"type": "function", "function": {"name": "finish", "description": "Give the final recommendation.",
                                      "parameters": dict(FINISH.parameters)}},
]  # fmt: skip
CALL = ToolCall("call_1", "search_catalog", {"query": "space opera"})


def _conversation(**kw: Any) -> ChatRequest:
    """System, user, the assistant's call, the tool's result: one round of a tool loop."""
    messages = (
        Message.text("system", "You recommend."),
        Message.text("user", "Something like Dune."),
        Message.calls([CALL]),
        Message.tool_result(CALL, "3 items found: [B1] Dune"),
    )
    return ChatRequest(messages, tools=(SEARCH, FINISH), **kw)


# -- the one internal call type ----------------------------------------------------------------------


def test_arguments_as_object_as_json_text_and_malformed() -> None:
    assert read_arguments({"query": "x"}) == ({"query": "x"}, None, None)
    assert read_arguments('{"query": "x"}') == ({"query": "x"}, '{"query": "x"}', None)
    assert read_arguments(None) == ({}, None, None) and read_arguments("") == ({}, None, None)
    args, raw, error = read_arguments('{"query": "x"')
    assert (args, raw) == ({}, '{"query": "x"') and error is not None and "not valid JSON" in error
    args, _, error = read_arguments('["x"]')
    assert args == {} and error == "arguments must be a JSON object, not list"


def test_missing_ids_are_made_stable_and_distinct() -> None:
    a = make_tool_call(None, "search_catalog", {"query": "x"}, index=0)
    again = make_tool_call("", "search_catalog", '{"query":"x"}', index=0)
    other = make_tool_call(None, "search_catalog", {"query": "y"}, index=1)
    assert a.id.startswith("call_0_") and a.id != other.id
    assert a.arguments == again.arguments == {"query": "x"}
    assert make_tool_call("given", "f", {}, index=3).id == "given"


def test_read_tool_calls_takes_dicts_and_objects_and_skips_non_functions() -> None:
    calls = read_tool_calls([
        {"id": "a", "type": "function", "function": {"name": "finish", "arguments": '{"item_ids": ["B1"]}'}},
        {"type": "custom", "custom": {"name": "x", "input": "y"}},
        {"function": {"name": "search_catalog", "arguments": {"query": "q"}}},
    ])  # fmt: skip
    assert [(c.id, c.name, c.arguments) for c in calls[:1]] == [("a", "finish", {"item_ids": ["B1"]})]
    assert (
        calls[1].name == "search_catalog" and calls[1].arguments == {"query": "q"} and calls[1].id.startswith("call_2_")
    )
    assert len(calls) == 2


# -- OpenAI ------------------------------------------------------------------------------------------------


def test_openai_tools_and_tool_messages_on_the_wire() -> None:
    params = openai_params(_conversation(), "gpt-4o-mini", CAPS)
    assert params["tools"] == FUNCTIONS and params["tool_choice"] == "auto"
    assert params["messages"] == [
        {"role": "system", "content": "You recommend."},
        {"role": "user", "content": "Something like Dune."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "search_catalog", "arguments": '{"query":"space opera"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3 items found: [B1] Dune"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "wire"),
    [("auto", "auto"), ("none", "none"), ("required", "required"),
     ("finish", {"type": "function", "function": {"name": "finish"}})],
)  # fmt: skip
def test_openai_tool_choice_forms(choice: str, wire: Any) -> None:
    assert openai_params(_conversation(tool_choice=choice), "m", CAPS)["tool_choice"] == wire


def test_openai_leaves_tools_out_when_the_model_has_none() -> None:
    params = openai_params(_conversation(), "m", Capabilities(tools=False))
    assert "tools" not in params and "tool_choice" not in params


def _tool_completion(*calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": content, "tool_calls": list(calls)}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
    }  # fmt: skip


PARALLEL = (
    {"id": "call_a", "type": "function", "function": {"name": "search_catalog", "arguments": '{"query": "dune"}'}},
    {"id": "call_b", "type": "function", "function": {"name": "search_catalog", "arguments": '{"query": "alien'}},
)


def test_parse_openai_parallel_calls_with_malformed_arguments() -> None:
    from openai.types.chat import ChatCompletion

    response = parse_openai_completion(ChatCompletion.model_validate(_tool_completion(*PARALLEL)))
    assert response.text == "" and response.finish_reason == "tool_calls"
    first, second = response.tool_calls
    assert first == ToolCall("call_a", "search_catalog", {"query": "dune"}, '{"query": "dune"}', None)
    assert (second.id, second.name, second.arguments, second.raw) == (
        "call_b",
        "search_catalog",
        {},
        '{"query": "alien',
    )
    assert second.error is not None and "not valid JSON" in second.error


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def test_openai_client_sends_tools_and_reads_calls_back(server: FaultServer) -> None:
    server.enqueue(Reply(raw=json.dumps(_tool_completion(*PARALLEL)).encode()))
    backend = OpenAIBackend("x", base_url=server.url, api_key="k", timeout=2.0)
    response = backend.chat(_conversation(tool_choice="finish"))
    body = server.requests[0].body
    assert body["tools"] == FUNCTIONS
    assert body["tool_choice"] == {"type": "function", "function": {"name": "finish"}}
    assert body["messages"][2:] == to_openai_messages(_conversation())[2:]
    assert [c.id for c in response.tool_calls] == ["call_a", "call_b"]
    assert response.tool_calls[0].arguments == {"query": "dune"} and response.tool_calls[1].error
    assert (response.prompt_tokens, response.completion_tokens) == (50, 12)


# -- Ollama ------------------------------------------------------------------------------------------------


def test_ollama_tools_and_tool_messages_on_the_wire() -> None:
    params = ollama_params(_conversation(), "qwen2.5:7b", CAPS)
    assert params["tools"] == FUNCTIONS and "tool_choice" not in params
    assert params["messages"][2:] == [
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "search_catalog", "arguments": {"query": "space opera"}}}]},
        {"role": "tool", "content": "3 items found: [B1] Dune", "tool_name": "search_catalog"},
    ]  # fmt: skip
    assert "tools" not in ollama_params(_conversation(tool_choice="none"), "m", CAPS)
    assert "tools" not in ollama_params(_conversation(), "m", Capabilities(tools=False))


OLLAMA_CALLS = {
    "model": "qwen2.5:7b", "created_at": "2025-01-01T00:00:00Z", "done": True, "done_reason": "stop",
    "prompt_eval_count": 40, "eval_count": 9,
    "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "search_catalog", "arguments": {"query": "dune"}}},
        {"function": {"name": "finish", "arguments": '{"item_ids": ["B1"]}'}},
        {"function": {"name": "finish", "arguments": "{item_ids: B1}"}},
    ]},
}  # fmt: skip


def test_parse_ollama_calls_object_or_string_arguments_and_made_ids() -> None:
    response = parse_ollama_response(OLLAMA_CALLS)
    search, finish, broken = response.tool_calls
    assert (search.name, search.arguments, search.raw, search.error) == (
        "search_catalog",
        {"query": "dune"},
        None,
        None,
    )
    assert (finish.name, finish.arguments, finish.raw) == ("finish", {"item_ids": ["B1"]}, '{"item_ids": ["B1"]}')
    assert broken.arguments == {} and broken.error is not None
    assert [c.id[:7] for c in response.tool_calls] == ["call_0_", "call_1_", "call_2_"]
    assert parse_ollama_response(OLLAMA_CALLS).tool_calls == response.tool_calls  # stable ids


@pytest.fixture
def stub() -> Iterator[OllamaStub]:
    srv = OllamaStub(capabilities=["completion", "tools"])
    yield srv
    srv.close()


def test_ollama_client_sends_tools_and_reads_calls(stub: OllamaStub) -> None:
    answer = {
        **OLLAMA_CALLS,
        "message": {**OLLAMA_CALLS["message"], "tool_calls": OLLAMA_CALLS["message"]["tool_calls"][:1]},
    }  # type: ignore[index]
    stub.answer(200, answer)
    response = OllamaBackend("qwen2.5:7b", host=stub.url, vision=False).chat(_conversation())
    (body,) = stub.chats()
    assert [t["function"]["name"] for t in body["tools"]] == ["search_catalog", "finish"]
    assert body["tools"][0]["function"]["parameters"]["properties"]["query"]["type"] == "string"
    assert body["messages"][2]["tool_calls"] == [
        {"function": {"name": "search_catalog", "arguments": {"query": "space opera"}}}
    ]
    assert body["messages"][3] == {"role": "tool", "content": "3 items found: [B1] Dune", "tool_name": "search_catalog"}
    assert [(c.name, c.arguments) for c in response.tool_calls] == [("search_catalog", {"query": "dune"})]


def test_ollama_model_without_tools_is_a_permanent_error_naming_it(stub: OllamaStub) -> None:
    stub.answer(400, {"error": "registry.ollama.ai/library/gemma:2b does not support tools"})
    with pytest.raises(BackendPermanentError, match="the model 'gemma:2b' rejected a request with tools") as info:
        OllamaBackend("gemma:2b", host=stub.url, vision=False).chat(_conversation())
    assert info.value.status == 400 and (info.value.backend, info.value.model) == ("ollama", "gemma:2b")


# -- llama.cpp (pure) --------------------------------------------------------------------------------------


def test_llamacpp_tool_results_fold_into_user_turns_for_chatml_function_calling() -> None:
    folded = to_llamacpp_messages(_conversation(), fold_tool_results=True)
    call = {"id": "call_1", "type": "function",
            "function": {"name": "search_catalog", "arguments": '{"query":"space opera"}'}}  # fmt: skip
    assert folded[2] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert folded[3] == {"role": "user", "content": "Result of search_catalog (call call_1):\n3 items found: [B1] Dune"}
    native = to_llamacpp_messages(_conversation())
    assert native[3] == {"role": "tool", "tool_call_id": "call_1", "content": "3 items found: [B1] Dune"}


@pytest.mark.parametrize(
    ("choice", "tools", "wire"),
    [("auto", (SEARCH, FINISH), "auto"), ("none", (SEARCH, FINISH), "none"),
     ("finish", (SEARCH, FINISH), {"type": "function", "function": {"name": "finish"}}),
     ("required", (FINISH,), {"type": "function", "function": {"name": "finish"}}),
     ("required", (SEARCH, FINISH), "auto")],
)  # fmt: skip
def test_llamacpp_tool_choice_never_sends_required(choice: str, tools: tuple[ToolSpec, ...], wire: Any) -> None:
    request = ChatRequest((Message.text("user", "hi"),), tools=tools, tool_choice=choice)
    assert llamacpp_tool_choice(request) == wire
    kwargs = completion_kwargs(request, default_seed=0)
    assert kwargs["tool_choice"] == wire and kwargs["tools"] == [t.as_function() for t in tools]
    assert "tools" not in completion_kwargs(ChatRequest((Message.text("user", "hi"),)), default_seed=0)


# -- cache and scripted model ------------------------------------------------------------------------------


def test_cache_keys_tell_tools_apart_and_keep_plain_keys(tmp_path: Any) -> None:
    identity = {"kind": "x"}
    plain = ChatRequest((Message.text("user", "hi"),))
    assert request_key(identity, plain) != request_key(identity, ChatRequest(plain.messages, tools=(SEARCH,)))
    with_tools = _conversation()
    assert request_key(identity, with_tools) != request_key(identity, _conversation(tool_choice="finish"))
    other_result = ChatRequest((*with_tools.messages[:3], Message.tool_result(CALL, "0 items")), tools=with_tools.tools)
    assert request_key(identity, with_tools) != request_key(identity, other_result)
    # a plain request's key does not depend on the tool fields (old cache entries stay valid)
    assert request_key(identity, plain) == request_key(identity, ChatRequest(plain.messages, tool_choice="none"))


def test_cached_tool_calls_come_back_as_tool_calls(tmp_path: Any) -> None:
    fake = FakeBackend().enqueue([CALL, ToolCall("c2", "finish", {}, "{bad", "not JSON")])
    cached = CachedBackend(fake, ResponseCache(tmp_path))
    first = cached.chat(_conversation())
    again = cached.chat(_conversation())
    assert fake.calls == 1 and again.cached
    assert again.tool_calls == first.tool_calls == [CALL, ToolCall("c2", "finish", {}, "{bad", "not JSON")]
    cached.close()


def test_fake_backend_scripts_single_and_parallel_calls() -> None:
    fake = FakeBackend().enqueue(CALL, [CALL, ToolCall("c2", "finish", {"item_ids": ["B1"]})], "plain text")
    assert fake.chat(_conversation()).tool_calls == [CALL]
    parallel = fake.chat(_conversation())
    assert [c.name for c in parallel.tool_calls] == ["search_catalog", "finish"] and parallel.text == ""
    plain = fake.chat(_conversation())
    assert plain.text == "plain text" and plain.tool_calls == []
    assert fake.capabilities.tools and isinstance(plain, ChatResponse)
