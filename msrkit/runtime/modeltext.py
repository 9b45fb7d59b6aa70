"""A model's answer as a parser may read it: bounded in size and nesting before any regex or JSON work.

Every parser of model output (rankings, yes/no, keywords, preference
summaries, tool calls, plans) reads the answer through these helpers, so any
string in gives a result or a typed "nothing usable" out, never an exception:

- :func:`clip`: at most :data:`MAX_PARSE_CHARS` characters (anything not a string is ``""``);
- :func:`strip_think`: ``<think>`` blocks dropped in one linear pass (no regex that rescans);
- :func:`decode_json`: the JSON value at a position, or ``None`` when it is not JSON or nests
  deeper than :data:`MAX_JSON_DEPTH` (checked by a linear scan *before* the decoder runs, so
  ``[`` * 1000 or ``{"a":`` * 5000 never reaches it and no ``RecursionError`` can escape).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_PARSE_CHARS",
    "clip",
    "decode_json",
    "loads_json",
    "nesting_ok",
    "one_line",
    "strip_think",
]

#: a parser reads at most this much of an answer (answers are capped far below it: ``max_answer_chars``)
MAX_PARSE_CHARS = 100_000
#: JSON nested deeper than this is not an answer msrkit asked for (its deepest schema nests 4 levels)
MAX_JSON_DEPTH = 32

# a string literal (to its closing quote, or to the end when unclosed) or a bracket: one token each, no backtracking
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)
_OPEN_THINK = re.compile(r"<think>", re.I)
_CLOSE_THINK = re.compile(r"</think>", re.I)


def clip(text: object, limit: int = MAX_PARSE_CHARS) -> str:
    """``text`` cut at ``limit`` characters (``""`` for anything that is not a string)."""
    return text[:limit] if isinstance(text, str) else ""


def strip_think(text: object) -> str:
    """Drop reasoning blocks: ``<think>...</think>``, an unclosed ``<think>`` to the end, and what
    comes before a ``</think>`` whose opening tag was cut off (some servers drop it). Linear in the text."""
    text = clip(text)
    pieces, pos = [], 0
    while (opening := _OPEN_THINK.search(text, pos)) is not None:
        closing = _CLOSE_THINK.search(text, opening.end())
        if closing is None:
            break  # no later <think> can be closed either
        pieces += [text[pos : opening.start()], " "]
        pos = closing.end()
    text = "".join([*pieces, text[pos:]])
    ends = [m.end() for m in _CLOSE_THINK.finditer(text)]
    if ends:
        text = text[ends[-1] :]
    opening = _OPEN_THINK.search(text)
    return text[: opening.start()] if opening is not None else text


def one_line(text: object, *, max_chars: int) -> str:
    """A free-text answer (a summary, a description) as one line of at most ``max_chars``, ``<think>`` dropped."""
    return " ".join(strip_think(text).split())[:max_chars]


def nesting_ok(text: str, start: int = 0, *, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the value starting at ``text[start]`` nests at most ``max_depth`` deep (stops at its end)."""
    depth = 0
    for token in _TOKEN.finditer(text, start):
        mark = token.group()
        if mark in ("[", "{"):
            depth += 1
            if depth > max_depth:
                return False
        elif mark in ("]", "}"):
            depth -= 1
            if depth <= 0:
                return True
    return True  # unclosed: the decoder says it is not JSON


def decode_json(text: str, start: int = 0) -> tuple[Any, int] | None:
    """The JSON value that starts at ``text[start]`` and the index after it, or ``None``.

    ``None`` when it is not JSON, nests deeper than :data:`MAX_JSON_DEPTH`, or holds a number
    too long to read; never an exception.
    """
    if text[start : start + 1] in ("[", "{") and not nesting_ok(text, start):
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(text, start)
    except (ValueError, RecursionError):
        return None
    return value, end


def loads_json(text: str) -> tuple[Any] | None:
    """The whole of ``text`` (surrounding space allowed) as one JSON value, in a 1-tuple; ``None`` if it is not."""
    text = clip(text).strip()
    found = decode_json(text)
    if found is None or found[1] != len(text):
        return None
    return (found[0],)
