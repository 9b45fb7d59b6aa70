"""``python -m llama_cpp.server`` behind msrkit's AMX guard (:mod:`msrkit.backends.llamacpp_amx`).

    python -m msrkit.backends.llamacpp_server --model model.gguf --port 8080   # llama_cpp.server's arguments

The real llama-cpp-python server, unchanged, except that on a CPU where llama.cpp
runs AMX kernels the model's weights are not repacked for them (they can crash the
server on its first answer). Elsewhere it is exactly ``python -m llama_cpp.server``.
"""

from __future__ import annotations

import runpy

from .llamacpp_amx import guard_amx


def main() -> None:
    guard_amx()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
