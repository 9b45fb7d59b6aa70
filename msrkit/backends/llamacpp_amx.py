"""Keep llama.cpp off its AMX matrix kernels, which crash on some machines.

On a CPU with AMX (Intel Sapphire Rapids and later) llama.cpp repacks a quantized
model's weights into an AMX buffer, and its AMX matrix product can then crash the
process on the first decode (a segmentation fault inside
``ggml_backend_amx_mul_mat``: llama.cpp issue 20824, seen here with the embedded
SmolLM2 Q4_1 model and llama-cpp-python 0.3.36). llama-cpp-python has no argument
for it, so before msrkit loads a model it makes llama.cpp's default model
parameters say ``use_extra_bufts = False`` (llama.cpp's ``--no-repack``): the
weights stay in ordinary memory and the AVX kernels run them. Only where llama.cpp
reports ``AMX_INT8 = 1``; elsewhere nothing changes. Set ``MSRKIT_LLAMACPP_AMX=1``
to keep llama.cpp's own choice (a llama.cpp whose AMX kernels work for your model).

``python -m msrkit.backends.llamacpp_server ARGS`` is ``python -m llama_cpp.server
ARGS`` with the same guard, for serving on such a machine.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ENV", "guard_amx", "needs_guard"]

log = logging.getLogger("msrkit")

#: the environment variable that keeps llama.cpp's AMX repacking ("1")
ENV = "MSRKIT_LLAMACPP_AMX"


def needs_guard(system_info: bytes | str, environ: Mapping[str, str]) -> bool:
    """Whether llama.cpp (its ``llama_print_system_info()``) runs AMX kernels and the user did not keep them."""
    info = system_info.decode("utf-8", "replace") if isinstance(system_info, bytes) else system_info
    return "AMX_INT8 = 1" in info and environ.get(ENV, "") != "1"


def guard_amx(module: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """Make ``module``'s (``llama_cpp.llama_cpp``'s) default model parameters skip the extra buffer types
    where :func:`needs_guard`; idempotent. True when the guard is in place."""
    if module is None:
        import llama_cpp.llama_cpp as module
    defaults: Callable[[], Any] = module.llama_model_default_params
    if getattr(defaults, "_msrkit_amx_guard", False):
        return True
    if not needs_guard(module.llama_print_system_info(), os.environ if environ is None else environ):
        return False

    @functools.wraps(defaults)
    def without_extra_buffers() -> Any:
        params = defaults()
        params.use_extra_bufts = False
        return params

    without_extra_buffers._msrkit_amx_guard = True  # type: ignore[attr-defined]
    module.llama_model_default_params = without_extra_buffers
    log.info("llamacpp: AMX CPU: weights kept out of llama.cpp's AMX buffer (its AMX kernels can crash; "
             "%s=1 keeps them)", ENV)  # fmt: skip
    return True
