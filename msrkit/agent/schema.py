"""Checking a tool call's arguments against the tool's JSON schema, with the repairs small models need.

The agent's tools take flat objects (strings, integers, booleans, arrays of
strings), so a small checker covers them: required keys, types, ``enum``,
``minimum``/``maximum``, ``maxItems``, ``maxLength``. What a weak model gets
slightly wrong and the meaning is plain is repaired and reported (a number
sent as text, one id sent where a list is asked for, ``"[12]"`` for an id);
everything else is an error the model is told about, with an example.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["check_arguments", "example_arguments"]

_BRACKETED = re.compile(r"^\s*[\[(<#]\s*([^\[\]()<>]+?)\s*[\])>]?\s*$")  # "[12]", "(12)", "#12" -> "12"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _as_str(value: Any) -> str | None:
    if isinstance(value, str):
        match = _BRACKETED.match(value)
        return match.group(1) if match else value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if float(value).is_integer() else str(value)
    return None


def _one(name: str, value: Any, schema: Mapping[str, Any], repairs: list[str]) -> tuple[Any, str | None]:
    kind = schema.get("type")
    if kind == "array":
        if not isinstance(value, list):
            repairs.append(f"'{name}': one value taken as a list")
            value = [value]
        limit = schema.get("maxItems")
        if limit is not None and len(value) > limit:
            repairs.append(f"'{name}': cut to its first {limit} entries")
            value = value[:limit]
        out = []
        for n, entry in enumerate(value):
            fixed, error = _one(f"{name}[{n}]", entry, schema.get("items", {}), repairs)
            if error:
                return None, error
            out.append(fixed)
        return out, None
    convert = {"integer": _as_int, "boolean": _as_bool, "string": _as_str}.get(str(kind))
    fixed = convert(value) if convert is not None else value
    if fixed is None:
        return None, f"'{name}' must be {'an' if kind == 'integer' else 'a'} {kind}, got {value!r}"
    if fixed != value:
        repairs.append(f"'{name}': {value!r} read as {fixed!r}")
    if "enum" in schema and fixed not in schema["enum"]:
        return None, f"'{name}' must be one of {schema['enum']}, got {value!r}"
    if isinstance(fixed, int) and not isinstance(fixed, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and fixed < low) or (high is not None and fixed > high):
            clamped = max(low if low is not None else fixed, min(high if high is not None else fixed, fixed))
            repairs.append(f"'{name}': {fixed} clamped to {clamped}")
            fixed = clamped
    if isinstance(fixed, str) and schema.get("maxLength") and len(fixed) > schema["maxLength"]:
        fixed = fixed[: schema["maxLength"]]
        repairs.append(f"'{name}': cut to {schema['maxLength']} characters")
    return fixed, None


def check_arguments(
    arguments: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str], str | None]:
    """``(arguments with defaults and repairs, repairs made, error)`` for an object schema; unknown keys are dropped."""
    properties: Mapping[str, Any] = schema.get("properties", {})
    repairs: list[str] = []
    out: dict[str, Any] = {}
    for key, value in arguments.items():
        if key not in properties:
            repairs.append(f"unknown argument '{key}' ignored")
            continue
        if value is None:
            continue
        fixed, error = _one(key, value, properties[key], repairs)
        if error:
            return {}, repairs, error
        out[key] = fixed
    missing = [k for k in schema.get("required", ()) if k not in out]
    if missing:
        return {}, repairs, f"missing required argument(s) {missing}"
    for key, spec in properties.items():
        if key not in out and "default" in spec:
            out[key] = spec["default"]
    return out, repairs, None


def example_arguments(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A valid example for an object schema (each property's ``examples[0]`` or ``default``, else a sample)."""
    samples = {"string": "text", "integer": 1, "boolean": True, "array": ["1"]}
    out: dict[str, Any] = {}
    for key, spec in schema.get("properties", {}).items():
        if spec.get("examples"):
            out[key] = spec["examples"][0]
        elif key in schema.get("required", ()):
            out[key] = spec.get("default", samples.get(str(spec.get("type")), "text"))
    return out
