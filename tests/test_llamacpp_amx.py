"""The AMX guard (msrkit.backends.llamacpp_amx): llama.cpp's default model parameters lose the extra
buffer types (AMX repacking) only where llama.cpp reports AMX and the user did not keep it."""

from __future__ import annotations

import importlib.util
import logging
from types import SimpleNamespace

import pytest

from msrkit.backends.llamacpp_amx import ENV, guard_amx, needs_guard

AMX = b"CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | REPACK = 1 | "
NO_AMX = b"CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | REPACK = 1 | "


def _module(info: bytes) -> SimpleNamespace:
    """A stand-in for ``llama_cpp.llama_cpp``: its two functions the guard reads."""

    def defaults() -> SimpleNamespace:
        return SimpleNamespace(use_extra_bufts=True, n_gpu_layers=0)

    return SimpleNamespace(llama_print_system_info=lambda: info, llama_model_default_params=defaults)


def test_needs_guard_reads_amx_and_the_escape_hatch() -> None:
    assert needs_guard(AMX, {})
    assert needs_guard(AMX.decode(), {ENV: "0"})
    assert not needs_guard(AMX, {ENV: "1"})
    assert not needs_guard(NO_AMX, {})


def test_guard_turns_off_extra_buffers_on_amx_once(caplog: pytest.LogCaptureFixture) -> None:
    module = _module(AMX)
    with caplog.at_level(logging.INFO, logger="msrkit"):
        assert guard_amx(module, {})
        assert guard_amx(module, {})  # idempotent: wrapped once
    params = module.llama_model_default_params()
    assert params.use_extra_bufts is False and params.n_gpu_layers == 0
    assert sum("AMX" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(("info", "env"), [(NO_AMX, {}), (AMX, {ENV: "1"})])
def test_guard_leaves_other_machines_and_the_opt_out_alone(info: bytes, env: dict[str, str]) -> None:
    module = _module(info)
    assert not guard_amx(module, env)
    assert module.llama_model_default_params().use_extra_bufts is True


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_guard_on_the_installed_llama_cpp_matches_its_system_info() -> None:
    """On the real bindings: the defaults say no extra buffers exactly where llama.cpp reports AMX."""
    import os

    import llama_cpp.llama_cpp as real

    guarded = guard_amx(real)
    assert guarded == needs_guard(real.llama_print_system_info(), os.environ)
    assert hasattr(real.llama_model_default_params(), "use_extra_bufts")
    if guarded:
        assert real.llama_model_default_params().use_extra_bufts is False
