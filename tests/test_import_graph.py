"""msrkit's modules import each other without circles, and each one imports on its own.

The graph is read from the source with :mod:`ast`: every import of one of msrkit's own modules,
function-local ones included (a local import that dodges a circle hides it, it does not remove
it), relative ones resolved. ``from . import x`` where ``x`` is a submodule is an import of
``pkg.x``; ``from . import name`` of anything else is an import of the package's ``__init__``,
which counts as a module. Imports under ``if TYPE_CHECKING:`` never run, so they do not count
for the circles that break imports; they do for the circles of *types* (a module typed with a
class whose module calls it back), which may not grow beyond those known below.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import msrkit

ROOT = Path(msrkit.__file__).parent

#: The circles of types still left (none: the retrieval index, once their centre, is plain data that
#: imports none of the modules that act on it).
KNOWN_TYPE_CIRCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(node: ast.AST, *, typing_too: bool) -> Iterator[ast.AST]:
    """Every statement under ``node`` (function bodies included), less ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test) and not typing_too:
            for other in child.orelse:
                yield other
                yield from _statements(other, typing_too=typing_too)
            continue
        yield child
        yield from _statements(child, typing_too=typing_too)


def imports_of(name: str, *, typing_too: bool = False) -> set[str]:
    """The msrkit modules that module ``name`` imports (see the module docstring)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8")), typing_too=typing_too):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            submodules = {f"{target}.{a.name}" for a in node.names} & MODULES.keys()
            found |= submodules
            if len(submodules) < len(node.names):
                found.add(target)
    return {m for m in found if m in MODULES and m != name}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as a cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(component) > 1:
                found.append(_cycle(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One path that starts and ends at the first module of ``component`` (a breadth-first search)."""
    start = min(component)
    came: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in came:
                    came[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def _graph(*, typing_too: bool) -> dict[str, set[str]]:
    return {name: imports_of(name, typing_too=typing_too) for name in MODULES}


def test_the_reader_resolves_relative_and_submodule_imports() -> None:
    assert "msrkit.agent.loop" in imports_of("msrkit.agent")  # from .loop import Agent
    assert "msrkit.cli.admin" in imports_of("msrkit.cli")  # from . import admin
    assert "msrkit.cli" not in imports_of("msrkit.cli.rank")
    assert "msrkit.errors" in imports_of("msrkit.cli.common")  # from .. import errors, in a function
    assert "msrkit.runtime.pipeline" not in imports_of("msrkit.agent.loop")  # under TYPE_CHECKING only
    assert "msrkit.runtime.pipeline" in imports_of("msrkit.agent.loop", typing_too=True)
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert circles(graph) == [["a", "b", "c", "a"]]


def test_no_module_imports_itself_through_others() -> None:
    found = circles(_graph(typing_too=False))
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_new_circle_of_types() -> None:
    found = circles(_graph(typing_too=True))
    new = [c for c in found if not any(set(c) <= known for known in KNOWN_TYPE_CIRCLES)]
    assert not new, "circles through TYPE_CHECKING imports: " + "; ".join(" -> ".join(c) for c in new)


_ALONE = """
import importlib, os, sys, traceback
import numpy, pydantic  # third-party, imported once: each module still meets no msrkit module before it
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0:
        failed.append(name)
print("FAILED", *failed)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="imports each module in a forked interpreter")
def test_each_module_imports_alone() -> None:
    """Each module imports first, in an interpreter that imported no msrkit module before it."""
    names = [n for n in MODULES if not n.endswith("__main__")]
    out = subprocess.run([sys.executable, "-c", _ALONE, *names], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip().splitlines()[-1] == "FAILED", out.stdout[-2000:] + out.stderr[-4000:]
