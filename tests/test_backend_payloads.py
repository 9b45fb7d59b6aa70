"""The OpenAI and Ollama backends' wire protocol: exact payloads, answer parsing, error mapping.

This file checks the wire protocol only, with no model: the pure translation
functions on real photos (scikit-image's ``astronaut.png`` and ``rocket.jpg``),
then the real ``openai`` and ``ollama`` clients talking HTTP to loopback servers
(:mod:`faultserver` for OpenAI's ``/v1/chat/completions``, a small stub below
for Ollama's ``/api/chat`` and ``/api/show``) whose received JSON bodies are
compared byte for byte. Separate tests run real models behind both APIs.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

import pytest
from faultserver import (
    FaultServer,
    Reply,
    drop_mid_body,
    hang,
    insufficient_quota,
    malformed_json,
    ok,
    rate_limited,
    status,
)

from msrkit.backends.base import Capabilities, ChatRequest, ImagePart, Message, TextPart
from msrkit.backends.ollama import OllamaBackend, ollama_params, parse_ollama_response, to_ollama_messages
from msrkit.backends.openai import (
    OpenAIBackend,
    guess_vision,
    openai_params,
    parse_openai_completion,
    parse_retry_after,
    to_openai_messages,
)
from msrkit.errors import (
    BackendError,
    BackendPermanentError,
    BackendRefusedError,
    BackendTransientError,
    BackendUnavailableError,
    ConfigError,
)

pytestmark = pytest.mark.timeout(60)

ALL_CAPS = Capabilities(vision=True, logprobs=True, json_schema=True)
NO_CAPS = Capabilities()
SCHEMA = {
    "title": "Ranking",
    "type": "object",
    "properties": {"order": {"type": "array", "items": {"type": "integer"}}},
}
KEY = "sk-SECRET-0123456789abcdef"


def _photo(name: str) -> bytes:
    return (files("skimage") / "data" / name).read_bytes()


@pytest.fixture(scope="module")
def astronaut() -> ImagePart:
    return ImagePart(_photo("astronaut.png"), "image/png")


@pytest.fixture(scope="module")
def rocket() -> ImagePart:
    return ImagePart(_photo("rocket.jpg"), "image/jpeg")


def _request(*parts: TextPart | ImagePart, **kw: Any) -> ChatRequest:
    return ChatRequest((Message.text("system", "You rank items."), Message("user", parts)), **kw)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- OpenAI: pure translation -------------------------------------------------------------------------


def test_openai_text_only_messages_are_plain_strings() -> None:
    request = _request(TextPart("Rank [1] and [2]."))
    assert to_openai_messages(request) == [
        {"role": "system", "content": "You rank items."},
        {"role": "user", "content": "Rank [1] and [2]."},
    ]


def test_openai_images_become_data_uris_before_the_text(astronaut: ImagePart, rocket: ImagePart) -> None:
    request = _request(astronaut, TextPart("Which one is a rocket?"), rocket)
    system, user = to_openai_messages(request)
    assert system == {"role": "system", "content": "You rank items."}
    assert user == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{_b64(astronaut.data)}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{_b64(rocket.data)}"}},
            {"type": "text", "text": "Which one is a rocket?"},
        ],
    }
    urls = [p["image_url"]["url"] for p in user["content"][:2]]
    prefix, _, payload = urls[0].partition(",")
    assert prefix == "data:image/png;base64" and base64.b64decode(payload) == astronaut.data
    assert base64.b64decode(urls[1].split(",", 1)[1]) == rocket.data
    assert astronaut.data[:8] == b"\x89PNG\r\n\x1a\n" and rocket.data[:3] == b"\xff\xd8\xff"  # real photos


def test_openai_params_map_every_option() -> None:
    request = _request(TextPart("hi"), max_tokens=64, temperature=0.3, seed=7, stop=("\n\n",), top_logprobs=5,
                       json_schema=SCHEMA)  # fmt: skip
    assert openai_params(request, "gpt-4o-mini", ALL_CAPS) == {
        "model": "gpt-4o-mini",
        "messages": to_openai_messages(request),
        "max_tokens": 64,
        "temperature": 0.3,
        "seed": 7,
        "stop": ["\n\n"],
        "logprobs": True,
        "top_logprobs": 5,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Ranking", "schema": SCHEMA, "strict": False},
        },
    }


def test_openai_params_leave_out_what_is_unset_or_unsupported() -> None:
    request = _request(TextPart("hi"), seed=None, top_logprobs=5, json_schema=SCHEMA)
    params = openai_params(request, "m", NO_CAPS)
    assert set(params) == {"model", "messages", "max_tokens", "temperature"}
    assert openai_params(_request(TextPart("hi"), top_logprobs=50), "m", ALL_CAPS)["top_logprobs"] == 20  # API limit


def _completion(content: str | None = "[2] > [1]", *, logprobs: Any = None, model: str = "gpt-x") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "length",
                     "logprobs": logprobs}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
    }  # fmt: skip


def _token(token: str, logprob: float, *top: tuple[str, float]) -> dict[str, Any]:
    alternatives = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
    return {"token": token, "logprob": logprob, "bytes": None, "top_logprobs": alternatives}


LOGPROBS = {"content": [_token("[", -0.01, ("[", -0.01), ("The", -4.6)), _token("2", -0.2, ("2", -0.2), ("1", -1.7))]}


def test_parse_openai_completion_reads_text_usage_and_logprobs() -> None:
    from openai.types.chat import ChatCompletion

    response = parse_openai_completion(ChatCompletion.model_validate(_completion(logprobs=LOGPROBS)))
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("[2] > [1]", 11, 4)
    assert (response.model, response.finish_reason) == ("gpt-x", "length")
    assert response.top_logprobs == [{"[": -0.01, "The": -4.6}, {"2": -0.2, "1": -1.7}]
    assert parse_openai_completion(ChatCompletion.model_validate(_completion(None))).text == ""
    assert parse_openai_completion(ChatCompletion.model_validate(_completion())).top_logprobs is None


def test_retry_after_in_seconds_http_date_and_milliseconds() -> None:
    now = time.time()
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == pytest.approx(30, abs=1.0)
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("model", "vision"),
    [("gpt-4o-mini", True), ("gpt-4.1-nano", True), ("o3-mini", False), ("o4-mini", True), ("llava:7b", True),
     ("qwen2.5vl:3b", True), ("Qwen2.5-VL-7B-Instruct", True), ("gemma3:4b", True), ("gemma3:1b", False),
     ("llama3.2-vision", True), ("moondream", True), ("gpt-3.5-turbo", False), ("smollm2", False),
     ("llama3.1:8b", False)],
)  # fmt: skip
def test_vision_is_guessed_from_the_name(model: str, vision: bool) -> None:
    assert guess_vision(model) is vision


def test_vision_guess_is_overridden_by_the_option() -> None:
    assert OpenAIBackend("smollm2", base_url="http://127.0.0.1:9/v1", vision=True).capabilities.vision is True
    assert OpenAIBackend("gpt-4o", base_url="http://127.0.0.1:9/v1", vision=False).capabilities.vision is False


def test_openai_capabilities_and_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    official = OpenAIBackend("gpt-4o-mini")
    assert official.capabilities == Capabilities(vision=True, logprobs=True, json_schema=True, context_size=None,
                                                 tools=True)  # fmt: skip
    assert official.identity() == {"kind": "openai", "model": "gpt-4o-mini", "base_url": "default"}
    local = OpenAIBackend("smollm2", base_url="http://127.0.0.1:9/v1/", logprobs=False)
    assert local.capabilities == Capabilities(vision=False, logprobs=False, json_schema=False, tools=True)
    assert local.identity() == {"kind": "openai", "model": "smollm2", "base_url": "http://127.0.0.1:9/v1"}
    assert KEY not in repr(official) + repr(official.identity()) + repr(local)


def test_openai_without_key_or_base_url_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")


# -- OpenAI: the real client against the loopback server -------------------------------------------


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


def _openai(server: FaultServer, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend("x", **{"base_url": server.url, "api_key": KEY, "timeout": 0.5, **kw})


def test_openai_sends_the_documented_json_with_inline_images(
    server: FaultServer, astronaut: ImagePart, rocket: ImagePart
) -> None:
    request = _request(TextPart("Rank them."), astronaut, rocket, seed=3, stop=("###",), max_tokens=32)
    backend = _openai(server, vision=True)
    response = backend.chat(request)
    seen = server.requests[0]
    assert seen.path == "/v1/chat/completions" and seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body == {
        "model": "x",
        "messages": [
            {"role": "system", "content": "You rank items."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64(astronaut.data)}},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + _b64(rocket.data)}},
                {"type": "text", "text": "Rank them."},
            ]},
        ],
        "max_tokens": 32,
        "temperature": 0.0,
        "seed": 3,
        "stop": ["###"],
    }  # fmt: skip
    assert response.text == "likes: things" and response.warnings == []  # faultserver's default answer
    assert (response.prompt_tokens, response.completion_tokens, response.finish_reason) == (7, 3, "stop")
    assert response.seconds > 0


def test_openai_text_only_model_gets_no_images_and_a_warning(server: FaultServer, astronaut: ImagePart) -> None:
    response = _openai(server, vision=False).chat(_request(astronaut, TextPart("What is this?"), astronaut))
    assert server.requests[0].body["messages"][1] == {"role": "user", "content": "What is this?"}
    assert response.warnings == [
        "openai/x cannot see images (text-only): 2 image(s) left out; pass vision=True if it can"
    ]


def test_openai_schema_and_logprobs_on_the_wire_and_back(server: FaultServer) -> None:
    server.enqueue(Reply(raw=json.dumps(_completion("{}", logprobs=LOGPROBS)).encode()))
    backend = _openai(server, json_schema=True)
    response = backend.chat(_request(TextPart("json please"), json_schema=SCHEMA, top_logprobs=2))
    body = server.requests[0].body
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "Ranking", "schema": SCHEMA, "strict": False}
    }  # fmt: skip
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert response.top_logprobs == [{"[": -0.01, "The": -4.6}, {"2": -0.2, "1": -1.7}]


def test_openai_json_object_form_on_the_wire_for_llama_cpp_server(server: FaultServer) -> None:
    """``json_format="json_object"``: the form llama_cpp.server reads (it answers HTTP 500 to ``json_schema``)."""
    server.enqueue(Reply(raw=json.dumps(_completion("{}")).encode()))
    backend = _openai(server, json_format="json_object")
    assert backend.capabilities.json_schema  # the format turns structured answers on
    backend.chat(_request(TextPart("json please"), json_schema=SCHEMA))
    assert server.requests[0].body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    # constrained answers are not the free ones: the identity (so every cache key) says which form
    assert backend.identity()["json_format"] == "json_object" and "json_format" not in _openai(server).identity()
    assert _openai(server, json_schema=True).identity()["json_format"] == "json_schema"


def test_rate_limit_is_transient_with_retry_after(server: FaultServer) -> None:
    server.enqueue(rate_limited(retry_after=3))
    with pytest.raises(BackendTransientError) as info:
        _openai(server).chat(_request(TextPart("hi")))
    assert (info.value.status, info.value.retry_after) == (429, 3.0)
    assert "HTTP 429" in str(info.value) and "Rate limit" in str(info.value)


def test_rate_limit_with_an_http_date(server: FaultServer) -> None:
    server.enqueue(rate_limited(retry_after=email.utils.formatdate(time.time() + 20, usegmt=True)))
    with pytest.raises(BackendTransientError) as info:
        _openai(server).chat(_request(TextPart("hi")))
    assert info.value.retry_after == pytest.approx(20, abs=2.0)


@pytest.mark.parametrize(
    ("code", "cls"),
    [(400, BackendPermanentError), (401, BackendRefusedError), (403, BackendRefusedError), (404, BackendRefusedError),
     (408, BackendTransientError), (500, BackendTransientError), (503, BackendTransientError)],
)  # fmt: skip
def test_http_status_maps_to_the_error_tree(server: FaultServer, code: int, cls: type[BackendError]) -> None:
    server.enqueue(status(code, "nope"))
    with pytest.raises(cls) as info:
        _openai(server).chat(_request(TextPart("hi")))
    assert info.value.status == code and (info.value.backend, info.value.model) == ("openai", "x")
    assert not isinstance(info.value, BackendUnavailableError)


def test_insufficient_quota_is_a_refusal_by_its_code_not_a_rate_limit(server: FaultServer) -> None:
    server.enqueue(insufficient_quota())
    with pytest.raises(BackendRefusedError) as info:
        _openai(server).chat(_request(TextPart("hi")))
    assert info.value.status == 429
    server.enqueue(rate_limited(retry_after=1))  # the same status with another code stays transient
    with pytest.raises(BackendTransientError):
        _openai(server).chat(_request(TextPart("hi")))


def test_closed_port_is_unavailable() -> None:
    with FaultServer() as srv:
        url = srv.url
    with pytest.raises(BackendUnavailableError, match="could not connect to http://127.0.0.1"):
        OpenAIBackend("x", base_url=url, api_key=KEY).chat(_request(TextPart("hi")))


@pytest.mark.parametrize(
    ("fault", "words"),
    [(hang(2.0), "no answer within 0.5 s"), (malformed_json(), "not valid JSON"), (drop_mid_body(), "cut off"),
     (Reply(raw=b'{"object": "list"}'), "no choices")],
    ids=["hang", "malformed-json", "dropped-connection", "not-a-completion"],
)  # fmt: skip
def test_broken_answers_are_transient(server: FaultServer, fault: Reply, words: str) -> None:
    server.enqueue(fault)
    with pytest.raises(BackendTransientError, match=words) as info:
        _openai(server).chat(_request(TextPart("hi")))
    assert not isinstance(info.value, BackendUnavailableError)


def _everything_about(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc))


def test_the_key_never_shows_in_errors_or_repr(server: FaultServer) -> None:
    server.enqueue(status(401, f"Incorrect API key provided: {KEY}"), status(500, f"Bearer {KEY}"))
    backend = _openai(server)
    texts = [repr(backend), repr(backend.identity())]
    for cls in (BackendPermanentError, BackendTransientError):
        with pytest.raises(cls) as info:
            backend.chat(_request(TextPart("hi")))
        texts += [str(info.value), _everything_about(info.value)]
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}", "the key was not even sent"
    for text in texts:
        assert KEY not in text and KEY.removeprefix("sk-") not in text
    assert "[redacted]" in texts[2]


def test_openai_achat_speaks_the_same_protocol(server: FaultServer, rocket: ImagePart) -> None:
    server.enqueue(ok("[1]"), rate_limited(retry_after=2))
    backend = _openai(server, vision=True)
    request = _request(rocket, TextPart("go"))

    async def twice() -> tuple[Any, BaseException]:
        first = await backend.achat(request)
        with pytest.raises(BackendTransientError) as info:
            await backend.achat(request)
        return first, info.value

    first, error = asyncio.run(twice())
    assert first.text == "[1]"
    assert server.requests[0].body == server.requests[1].body
    assert server.requests[0].body["messages"] == to_openai_messages(request)
    assert (getattr(error, "status", None), getattr(error, "retry_after", None)) == (429, 2.0)
    backend.close()


# -- Ollama: pure translation -------------------------------------------------------------------------


def test_ollama_messages_carry_plain_base64_images(astronaut: ImagePart, rocket: ImagePart) -> None:
    request = _request(TextPart("Describe"), astronaut, TextPart("both."), rocket)
    system, user = to_ollama_messages(request)
    assert system == {"role": "system", "content": "You rank items."}  # no "images" key without images
    assert user == {"role": "user", "content": "Describe\nboth.", "images": [_b64(astronaut.data), _b64(rocket.data)]}
    assert [base64.b64decode(s) for s in user["images"]] == [astronaut.data, rocket.data]
    assert not any(s.startswith("data:") for s in user["images"])


def test_ollama_params_map_every_option() -> None:
    request = _request(TextPart("hi"), max_tokens=48, temperature=0.2, seed=5, stop=("</s>",), json_schema=SCHEMA,
                       top_logprobs=3)  # fmt: skip
    params = ollama_params(request, "llava:7b", ALL_CAPS, options={"num_ctx": 4096, "temperature": 1.0},
                           keep_alive="5m")  # fmt: skip
    assert params == {
        "model": "llava:7b",
        "messages": to_ollama_messages(request),
        "options": {"num_ctx": 4096, "temperature": 0.2, "num_predict": 48, "seed": 5, "stop": ["</s>"]},
        "format": SCHEMA,
        "logprobs": True,
        "top_logprobs": 3,
        "keep_alive": "5m",
        "stream": False,
    }
    bare = ollama_params(_request(TextPart("hi"), seed=None, json_schema=SCHEMA, top_logprobs=3), "m", NO_CAPS)
    assert bare["options"] == {"temperature": 0.0, "num_predict": 256}
    assert set(bare) == {"model", "messages", "options", "stream"}


OLLAMA_ANSWER = {
    "model": "llava:7b", "created_at": "2025-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": "[2] > [1]"},
    "done": True, "done_reason": "stop", "prompt_eval_count": 21, "eval_count": 6,
    "logprobs": [{"token": "[", "logprob": -0.1, "top_logprobs": [{"token": "[", "logprob": -0.1},
                                                                   {"token": "I", "logprob": -2.5}]},
                 {"token": "2", "logprob": -0.3}],
}  # fmt: skip


def test_parse_ollama_response_from_json_and_from_the_client_type() -> None:
    import ollama

    for resp in (OLLAMA_ANSWER, ollama.ChatResponse.model_validate(OLLAMA_ANSWER)):
        response = parse_ollama_response(resp)
        assert (response.text, response.prompt_tokens, response.completion_tokens) == ("[2] > [1]", 21, 6)
        assert (response.model, response.finish_reason) == ("llava:7b", "stop")
        assert response.top_logprobs == [{"[": -0.1, "I": -2.5}, {"2": -0.3}]


# -- Ollama: the real client against a loopback stub ------------------------------------------------


class OllamaStub:
    """Ollama's ``/api/chat`` and ``/api/show`` on ``127.0.0.1``: records bodies, answers from a script."""

    def __init__(self, *, capabilities: list[str] | None = None) -> None:
        self.capabilities = capabilities
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self.script: list[tuple[int, bytes, float]] = []
        self._closing = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                stub.seen.append((self.path, body))
                if self.path == "/api/show":
                    if stub.capabilities is None:
                        return self._send(404, {"error": f"model '{body.get('model')}' not found"})
                    return self._send(200, {"modelfile": "", "model_info": {}, "capabilities": stub.capabilities})
                code, payload, delay = (
                    stub.script.pop(0) if stub.script else (200, json.dumps(OLLAMA_ANSWER).encode(), 0)
                )
                if delay and stub._closing.wait(delay):
                    return None
                return self._send(code, payload)

            def _send(self, code: int, payload: dict[str, Any] | bytes) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, code: int, payload: dict[str, Any] | bytes, delay: float = 0.0) -> None:
        self.script.append((code, payload if isinstance(payload, bytes) else json.dumps(payload).encode(), delay))

    def chats(self) -> list[dict[str, Any]]:
        return [body for path, body in self.seen if path == "/api/chat"]

    def close(self) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def stub() -> Iterator[OllamaStub]:
    srv = OllamaStub(capabilities=["completion", "vision"])
    yield srv
    srv.close()


def test_ollama_client_sends_the_documented_body(stub: OllamaStub, astronaut: ImagePart, rocket: ImagePart) -> None:
    backend = OllamaBackend("llava:7b", host=stub.url, vision=True, keep_alive="10m", options={"num_ctx": 4096})
    request = _request(TextPart("Rank"), astronaut, rocket, max_tokens=40, seed=9, stop=("\n",), json_schema=SCHEMA,
                       top_logprobs=2)  # fmt: skip
    response = backend.chat(request)
    (body,) = stub.chats()
    assert body["messages"] == [
        {"role": "system", "content": "You rank items."},
        {"role": "user", "content": "Rank", "images": [_b64(astronaut.data), _b64(rocket.data)]},
    ]
    assert base64.b64decode(body["messages"][1]["images"][1]) == rocket.data
    assert body["options"] == {"num_ctx": 4096, "temperature": 0.0, "num_predict": 40, "seed": 9, "stop": ["\n"]}
    assert (body["model"], body["stream"], body["format"], body["keep_alive"]) == ("llava:7b", False, SCHEMA, "10m")
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    assert set(body) <= {"model", "messages", "options", "format", "logprobs", "top_logprobs", "keep_alive", "stream",
                         "tools"}  # fmt: skip
    assert (response.text, response.prompt_tokens, response.completion_tokens) == ("[2] > [1]", 21, 6)
    assert response.top_logprobs == [{"[": -0.1, "I": -2.5}, {"2": -0.3}]
    assert backend.capabilities.context_size == 4096
    assert backend.identity() == {"kind": "ollama", "model": "llava:7b", "base_url": stub.url}
    assert not [path for path, _ in stub.seen if path == "/api/show"], "vision=True must not ask the server"


def test_ollama_vision_is_asked_of_the_server_once(stub: OllamaStub, rocket: ImagePart) -> None:
    backend = OllamaBackend("my-model", host=stub.url)  # the name says nothing
    backend.chat(_request(rocket, TextPart("hi")))
    backend.chat(_request(rocket, TextPart("again")))
    assert [path for path, _ in stub.seen].count("/api/show") == 1
    assert stub.seen[0] == ("/api/show", {"model": "my-model"})
    assert all(chat["messages"][1]["images"] == [_b64(rocket.data)] for chat in stub.chats())


def test_ollama_text_only_model_gets_no_images_and_a_warning(rocket: ImagePart) -> None:
    srv = OllamaStub(capabilities=["completion"])
    try:
        response = OllamaBackend("llava:7b", host=srv.url).chat(_request(rocket, TextPart("hi")))
    finally:
        srv.close()
    assert srv.chats()[0]["messages"][1] == {"role": "user", "content": "hi"}  # the server's word beats the name
    assert response.warnings == [
        "ollama/llava:7b cannot see images (text-only): 1 image(s) left out; pass vision=True if it can"
    ]


def test_ollama_vision_falls_back_to_the_name_when_show_fails() -> None:
    srv = OllamaStub(capabilities=None)  # /api/show answers 404
    try:
        assert OllamaBackend("llava:7b", host=srv.url).capabilities.vision is True
        assert OllamaBackend("llama3.1:8b", host=srv.url).capabilities.vision is False
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("code", "cls"), [(404, BackendPermanentError), (400, BackendPermanentError), (503, BackendTransientError),
                      (500, BackendTransientError), (429, BackendTransientError)],
)  # fmt: skip
def test_ollama_status_maps_to_the_error_tree(stub: OllamaStub, code: int, cls: type[BackendError]) -> None:
    stub.answer(code, {"error": "model 'nope:1b' not found, try pulling it first"})
    with pytest.raises(cls) as info:
        OllamaBackend("nope:1b", host=stub.url, vision=False).chat(_request(TextPart("hi")))
    assert info.value.status == code and (info.value.backend, info.value.model) == ("ollama", "nope:1b")
    assert "not found" in str(info.value)
    if code == 404:
        assert "ollama pull nope:1b" in str(info.value)


def test_ollama_closed_port_is_unavailable() -> None:
    srv = OllamaStub()
    url = srv.url
    srv.close()
    with pytest.raises(BackendUnavailableError, match="could not connect to .*ollama serve"):
        OllamaBackend("m", host=url, vision=False).chat(_request(TextPart("hi")))


def test_ollama_timeout_and_malformed_json_are_transient(stub: OllamaStub) -> None:
    backend = OllamaBackend("m", host=stub.url, vision=False, timeout=1.0)  # 0.3 s was flaky on a busy machine
    stub.answer(200, OLLAMA_ANSWER, delay=3.0)
    with pytest.raises(BackendTransientError, match="no answer within 1 s"):
        backend.chat(_request(TextPart("hi")))
    stub.answer(200, b'{"model": "m", "message": {"content": "[1')
    with pytest.raises(BackendTransientError, match="not a valid") as info:
        backend.chat(_request(TextPart("hi")))
    assert not isinstance(info.value, BackendUnavailableError)


def test_ollama_achat_speaks_the_same_protocol(stub: OllamaStub, astronaut: ImagePart) -> None:
    backend = OllamaBackend("llava:7b", host=stub.url)
    request = _request(astronaut, TextPart("hi"), seed=1)
    stub.answer(200, OLLAMA_ANSWER)
    stub.answer(503, {"error": "server busy"})

    async def twice() -> tuple[Any, BaseException]:
        first = await backend.achat(request)
        with pytest.raises(BackendTransientError) as info:
            await backend.achat(request)
        return first, info.value

    first, error = asyncio.run(twice())
    assert first.text == "[2] > [1]"
    chats = stub.chats()
    assert len(chats) == 2 and chats[0] == chats[1]
    assert chats[0]["messages"] == to_ollama_messages(request)
    assert getattr(error, "status", None) == 503
    backend.close()
