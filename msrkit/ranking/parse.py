"""Reading a model's ranking answer: any reasonable form in, a permutation out.

:func:`parse_order` accepts JSON (``{"ranking": [3, 1, 2]}`` or ``[3, 1, 2]``),
bracketed lists (``[3] > [1] > [2]``), plain numbers (``3, 1, 2``) and,
failing those, candidate ids written out; ``<think>`` blocks are dropped
first. Reasons the model gave for its first items (``"reasons"`` in JSON, or
lines ``[3] because ...`` after the ranking) are read too. :func:`repair`
turns whatever was parsed into a permutation: duplicates dropped, unknown
numbers ignored, missing candidates appended in the order they came in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..runtime.modeltext import clip, decode_json, strip_think
from ..runtime.prompts import quote

__all__ = ["Parsed", "Repaired", "parse_order", "repair", "strip_think", "MAX_REASON_CHARS"]

MAX_REASON_CHARS = 200
#: a line longer than this is never a reason line (and is not matched against its pattern)
MAX_REASON_LINE = 1_000
_BRACKETED = re.compile(r"\[\s*(\d{1,6})\s*\]")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,6})(?![\w])")
# each run of spaces has one place to go, so a failing line costs one pass (no backtracking blow-up)
_REASON_LINE = re.compile(r"^\s*(?:\[\s*)?(\d{1,4})(?:\s*\])?(?:\s*[:.)\-\u2013])?\s+(.*)$")
_WORDY = re.compile(r"[A-Za-z]{3}")


@dataclass
class Parsed:
    """What an answer said: 1-based numbers in the order given, how it was read, and reasons by number."""

    numbers: list[int]
    form: str  # json | brackets | numbers | ids | none
    reasons: dict[int, str] = field(default_factory=dict)


def _clean_reason(text: Any) -> str:
    """One line of at most :data:`MAX_REASON_CHARS`; "" unless it has two words or more (one word is no reason)."""
    if not isinstance(text, str):
        return ""
    cleaned = quote(text).strip(" -:")[:MAX_REASON_CHARS]
    return cleaned if len(cleaned.split()) >= 2 else ""


def _split_reasons(text: str) -> tuple[str, dict[int, str]]:
    """Lines like ``[3] because ...`` after the ranking line are reasons; the rest is the ranking.

    The ranking line is the first with two or more bracketed numbers; without one
    there are no reasons (a model echoing candidate lines has not ranked them).
    """
    lines = text.splitlines()
    first = next((n for n, line in enumerate(lines) if len(_BRACKETED.findall(line)) >= 2), None)
    if first is None:
        return text, {}
    kept: list[str] = lines[: first + 1]
    reasons: dict[int, str] = {}
    for line in lines[first + 1 :]:
        m = _REASON_LINE.match(line) if len(line) <= MAX_REASON_LINE else None
        said = m.group(2) if m and _WORDY.search(m.group(2)) and ">" not in m.group(2) else ""
        reason = _clean_reason(said) if said else ""
        if m and reason:
            reasons.setdefault(int(m.group(1)), reason)
        else:
            kept.append(line)
    return "\n".join(kept), reasons


def _json_numbers(text: str) -> tuple[list[int], dict[int, str]] | None:
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None
    found = decode_json(text, start)
    if found is None:
        return None
    value, end = found
    if isinstance(value, list) and re.search(r"\d", text[end:]):
        return None  # "[3] > [1]": brackets, not a JSON list
    given: Any = None
    if isinstance(value, dict):
        given = value.get("reasons")
        value = value.get("ranking", value.get("order", value.get("items")))
    if not isinstance(value, list) or not value:
        return None
    out: list[int] = []
    for v in value:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, str) and v.strip().strip("[]").isdigit():
            out.append(int(v.strip().strip("[]")))
        else:
            return None
    reasons: dict[int, str] = {}
    if isinstance(given, list):  # reasons[j] is about the j-th number of the ranking
        for number, reason in zip(out, given, strict=False):
            if _clean_reason(reason):
                reasons.setdefault(number, _clean_reason(reason))
    return out, reasons


def parse_order(text: str, *, ids: Sequence[str] = ()) -> Parsed:
    """Read a ranking from a model's answer (see the module docs for the forms accepted).

    >>> parse_order("<think>...</think> [3] > [1] > [2]").numbers
    [3, 1, 2]
    >>> parse_order('{"ranking": [2, 1]}').numbers
    [2, 1]
    """
    text = strip_think(clip(text))
    json_first = "{" in text or "```" in text  # an object or a fenced block: JSON is meant
    found = _json_numbers(text) if json_first else None
    if found is not None:
        return Parsed(found[0], "json", found[1])
    text, reasons = _split_reasons(text)
    bracketed = [int(m) for m in _BRACKETED.findall(text)]
    if bracketed:  # "[3] > [1]"; a JSON list "[3, 1]" has no "[n]" in it (and "[3]" reads the same either way)
        return Parsed(bracketed, "brackets", reasons)
    found = None if json_first else _json_numbers(text)
    if found is not None:
        return Parsed(found[0], "json", reasons)
    plain = [int(m) for m in _NUMBER.findall(text)]
    if plain:
        return Parsed(plain, "numbers", reasons)
    if ids:
        position = {item_id: i + 1 for i, item_id in enumerate(ids)}
        pattern = re.compile("|".join(re.escape(i) for i in sorted(position, key=len, reverse=True)))
        by_id = [position[m.group(0)] for m in pattern.finditer(text)]
        if by_id:
            return Parsed(by_id, "ids", reasons)
    return Parsed([], "none")


@dataclass
class Repaired:
    order: list[int]  # 0-based, a permutation of range(n)
    used: int  # how many came from the answer
    duplicates: int
    invalid: int
    missing: int


def repair(numbers: Sequence[int], n: int) -> Repaired:
    """A permutation of ``range(n)`` from 1-based ``numbers``: duplicates and unknowns dropped, missing appended."""
    seen: set[int] = set()
    order: list[int] = []
    duplicates = invalid = 0
    for number in numbers:
        index = number - 1
        if not 0 <= index < n:
            invalid += 1
        elif index in seen:
            duplicates += 1
        else:
            seen.add(index)
            order.append(index)
    used = len(order)
    order += [i for i in range(n) if i not in seen]
    return Repaired(order, used, duplicates, invalid, n - used)
