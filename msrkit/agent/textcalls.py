"""Tool calls written as text: what a model without native tool calling (or a weak one) answers instead.

Three shapes are read, in this order, each call at most once:

- JSON objects ``{"name" | "tool" | "function": NAME, "arguments" | "parameters" | "args": {...}}``
  (also inside a ``{"tool_calls": [...]}`` or a list);
- ``functions.NAME:`` followed by a JSON object (the chatml-function-calling form);
- ``NAME({...})`` or ``NAME()`` for a known tool name.

Only names in ``known`` count; ids are made stable (:func:`~msrkit.backends.base.make_tool_call`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from ..backends.base import ToolCall, make_tool_call
from ..ranking.parse import strip_think

__all__ = ["calls_from_text"]

_NAME_KEYS = ("name", "tool", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
_FUNCTIONS = re.compile(r"functions\.([A-Za-z_][\w]*)\s*:\s*")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def _objects(text: str) -> Iterator[tuple[int, Any]]:
    """Every JSON value that starts at a ``{`` or ``[`` in ``text``, with its position (outermost only)."""
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        yield start, value
        pos = end


def _from_json(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, list):
        for entry in value:
            yield from _from_json(entry)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("tool_calls"), list):
        yield from _from_json(value["tool_calls"])
        return
    inner = value.get("function")
    if isinstance(inner, dict):  # the OpenAI shape {"function": {"name", "arguments"}}
        value = inner
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is not None:
        yield name, next((value[k] for k in _ARG_KEYS if k in value), {})


def calls_from_text(text: str, known: Collection[str]) -> list[ToolCall]:
    """The tool calls written in ``text`` (see the module docstring), in order of appearance."""
    text = strip_think(text or "")
    found: list[tuple[int, str, Any]] = []
    for pos, value in _objects(text):
        found += [(pos, name, args) for name, args in _from_json(value) if name in known]
    for match in _FUNCTIONS.finditer(text):
        if match.group(1) in known:
            found.append((match.start(), match.group(1), _first_object(text, match.end())))
    for match in _CALL.finditer(text):
        if match.group(1) in known:
            found.append((match.start(), match.group(1), _first_object(text, match.end(), stop=")")))
    found.sort(key=lambda f: f[0])
    calls: list[ToolCall] = []
    seen: set[tuple[str, str]] = set()
    for _pos, name, args in found:
        key = (name, json.dumps(args, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        calls.append(make_tool_call(None, name, args if isinstance(args, (dict, str)) else {}, index=len(calls)))
    return calls


def _first_object(text: str, start: int, *, stop: str | None = None) -> Any:
    """The JSON object right after ``start`` (``{}`` when there is none before ``stop``)."""
    rest = text[start:].lstrip()
    if stop is not None and rest.startswith(stop):
        return {}
    if not rest.startswith("{"):
        return {}
    try:
        value, _ = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return rest.split("\n", 1)[0]  # kept as text: the call becomes invalid, and the model is told why
    return value
