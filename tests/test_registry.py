"""Backends by name: each kind is one class that declares its name, options, needs and adapter support.

The registry reads nothing else of a backend, so these tests check each class's declarations, what
``get_backend`` builds from them (the identity, so the cache key, of each kind as it was), and that
the kinds' modules are imported only when used. Whether a backend works: ``tests/test_backends_real.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from msrkit.backends import KINDS, available_backends, get_backend, parse_spec
from msrkit.backends.kind import BackendKind
from msrkit.backends.options import LlamaCppOptions, OllamaOptions, OpenAIOptions
from msrkit.backends.registry import backend_class
from msrkit.errors import ConfigError


def test_each_kind_is_the_one_class_of_its_module_that_names_it() -> None:
    declared = {kind: backend_class(kind) for kind in KINDS}
    assert {kind: cls.__name__ for kind, cls in declared.items()} == {
        "llamacpp": "LlamaCppBackend", "openai": "OpenAIBackend", "ollama": "OllamaBackend"}  # fmt: skip
    assert all(issubclass(cls, BackendKind) and cls.name == kind for kind, cls in declared.items())
    assert [declared[k].options_model for k in KINDS] == [LlamaCppOptions, OpenAIOptions, OllamaOptions]
    assert [declared[k].loads_adapters for k in KINDS] == [True, False, False]
    assert [(declared[k].package, declared[k].extra) for k in KINDS] == [
        ("llama_cpp", "local"), ("openai", ""), ("ollama", "")]  # fmt: skip


def test_specs_split_at_the_first_slash_and_unknown_kinds_are_config_errors() -> None:
    assert parse_spec("ollama/llava:7b") == ("ollama", "llava:7b")
    assert parse_spec("llamacpp/models/a.gguf") == ("llamacpp", "models/a.gguf")
    assert [parse_spec(s) for s in ("auto", "none", "default", "embedded")] == [
        ("auto", ""), ("none", ""), ("default", ""), ("embedded", "")]  # fmt: skip
    with pytest.raises(ConfigError, match="unknown backend kind 'x' in 'x/y': use one of llamacpp, openai, ollama"):
        parse_spec("x/y")
    with pytest.raises(ConfigError, match="is not of the form KIND/MODEL"):
        parse_spec("openai/")
    with pytest.raises(ConfigError, match="unknown backend kind 'fake'"):
        backend_class("fake")


def test_options_are_checked_against_the_declared_model() -> None:
    with pytest.raises(ConfigError) as caught:
        get_backend("ollama/m", bogus=1)
    allowed = "host, timeout, vision, keep_alive, options, temperature, capabilities"
    assert (
        str(caught.value) == f"backend_options for ollama: 'bogus': not an option of this backend (allowed: {allowed})"
    )
    with pytest.raises(ConfigError, match="backend_options for none: 'bogus'"):
        get_backend("none", bogus=1)


def test_identities_and_so_cache_keys_are_those_of_before() -> None:
    openai = get_backend("openai/m", base_url="http://u:p@h:1/v1", temperature=0.5)
    ollama = get_backend("ollama/m:1", host="h:2")
    over = get_backend("ollama/m:1", host="h:2", base_url="http://other:3")  # --base-url wins over the option
    try:
        assert openai is not None and ollama is not None and over is not None
        assert openai.identity() == {"kind": "openai", "model": "m", "base_url": "http://h:1/v1", "temperature": "0.5"}
        assert ollama.identity() == {"kind": "ollama", "model": "m:1", "base_url": "http://h:2"}
        assert over.identity()["base_url"] == "http://other:3"
    finally:
        for backend in (openai, ollama, over):
            if backend is not None:
                backend.close()


class _Adapter:
    directory = Path("/adapters/a")

    def base_backend(self) -> str:
        return "llamacpp/default"


def test_a_server_backend_says_how_its_server_serves_an_adapter() -> None:
    with pytest.raises(ConfigError, match=r"'ADAPTER /adapters/a/adapter\.gguf', run 'ollama create NAME"):
        get_backend("ollama/m", adapter=_Adapter())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"--lora-modules NAME=/adapters/a/peft"):
        get_backend("openai/m", adapter=_Adapter())  # type: ignore[arg-type]


def test_available_backends_has_one_row_per_kind_in_order() -> None:
    rows = available_backends({"OLLAMA_HOST": "127.0.0.1:9", "OPENAI_BASE_URL": "http://x/v1"})
    assert [r["backend"] for r in rows] == list(KINDS)
    assert rows[1]["status"] == "installed; OPENAI_BASE_URL=http://x/v1; OPENAI_API_KEY not set"
    assert rows[2]["status"] == "installed; server at http://127.0.0.1:9: not reachable"


def test_a_kinds_module_is_imported_only_when_that_kind_is_used() -> None:
    code = ("import sys; from msrkit.backends import get_backend, parse_spec; parse_spec('openai/m');"
            "get_backend('none'); print(','.join(m for m in ('msrkit.backends.openai', 'msrkit.backends.ollama',"
            "'msrkit.backends.llamacpp', 'openai', 'ollama') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
