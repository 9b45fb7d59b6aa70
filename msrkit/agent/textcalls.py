"""Tool calls written as text: what a model without native tool calling (or a weak one) answers instead.

Three shapes are read, in this order, each call at most once:

- JSON objects ``{"name" | "tool" | "function": NAME, "arguments" | "parameters" | "args": {...}}``
  (also inside a ``{"tool_calls": [...]}`` or a list);
- ``functions.NAME:`` followed by a JSON object (the chatml-function-calling form);
- ``NAME({...})`` or ``NAME()`` for a known tool name.

Only names in ``known`` count; ids are made stable (:func:`~msrkit.backends.base.make_tool_call`).
Total over any text: the answer is clipped and JSON nesting checked first (:mod:`msrkit.runtime.modeltext`),
at most :data:`MAX_TEXT_CALLS` calls are read and at most :data:`MAX_JSON_TRIES` failed JSON starts
are tried, so a hostile answer costs linear time and gives at worst no calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from ..backends.base import ToolCall, make_tool_call
from ..runtime.modeltext import decode_json, strip_think

__all__ = ["MAX_JSON_TRIES", "MAX_TEXT_CALLS", "calls_from_text"]

#: calls read from one answer's text at most (the agent's budget refuses most of them anyway)
MAX_TEXT_CALLS = 256
#: positions where a JSON value failed to start, tried at most per answer
MAX_JSON_TRIES = 256

_NAME_KEYS = ("name", "tool", "function")
_ARG_KEYS = ("arguments", "parameters", "args", "input")
_FUNCTIONS = re.compile(r"functions\.([A-Za-z_][\w]*)\s*:\s*")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
_SPACE = re.compile(r"\s*")


def _objects(text: str) -> Iterator[tuple[int, Any]]:
    """Every JSON value that starts at a ``{`` or ``[`` in ``text``, with its position (outermost only)."""
    pos, tries = 0, 0
    while tries < MAX_JSON_TRIES:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return
        start = min(starts)
        found = decode_json(text, start)
        if found is None:
            pos, tries = start + 1, tries + 1
            continue
        yield start, found[0]
        pos = found[1]


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
        found += [(pos, name, args) for name, args in _from_json(value) if name in known][:MAX_TEXT_CALLS]
        if len(found) >= MAX_TEXT_CALLS:
            break
    for pattern in (_FUNCTIONS, _CALL):
        named = (m for m in pattern.finditer(text) if m.group(1) in known)
        for _, match in zip(range(MAX_TEXT_CALLS), named, strict=False):
            found.append((match.start(), match.group(1), _first_object(text, match.end())))
    found.sort(key=lambda f: f[0])
    calls: list[ToolCall] = []
    seen: set[tuple[str, str]] = set()
    for _pos, name, args in found[:MAX_TEXT_CALLS]:
        key = (name, json.dumps(args, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        calls.append(make_tool_call(None, name, args if isinstance(args, (dict, str)) else {}, index=len(calls)))
    return calls


def _first_object(text: str, start: int) -> Any:
    """The JSON object right after ``start`` (``{}`` when none starts there, as in ``NAME()``)."""
    match = _SPACE.match(text, start)
    at = match.end() if match is not None else start
    if not text.startswith("{", at):
        return {}
    found = decode_json(text, at)
    if found is None:  # kept as text (one line, capped): the call becomes invalid, and the model is told why
        end = text.find("\n", at)
        return text[at : end if 0 <= end < at + 200 else at + 200]
    return found[0]
