"""A tool's arguments: their pydantic model and JSON schema made from its function, and the checks with repairs.

:func:`arguments_model` reads a tool function's keyword parameters (their
annotations, ``Annotated[..., Field(...)]`` limits and examples, and defaults)
into a pydantic model; :func:`parameters_schema` is that model's JSON schema in
the flat form the model is shown (an optional ``T | None = None`` shown as ``T``,
not required; no titles). So a tool's schema cannot drift from its function,
and its arguments are validated by the same model before it runs.

The agent's tools take flat objects (strings, integers, booleans, arrays of
strings), so a small checker covers them: required keys, types, ``enum``,
``minimum``/``maximum``, ``maxItems``, ``maxLength``. What a weak model gets
slightly wrong and the meaning is plain is repaired and reported (a number
sent as text, one id sent where a list is asked for, ``"[12]"`` for an id);
everything else is an error the model is told about, with an example.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

__all__ = ["arguments_model", "check_arguments", "example_arguments", "parameters_schema"]

#: the order of a property's keys in the schema shown to the model (any others follow)
_KEY_ORDER = (
    "type",
    "description",
    "items",
    "enum",
    "minimum",
    "maximum",
    "maxItems",
    "maxLength",
    "default",
    "examples",
)

_BRACKETED = re.compile(r"^\s*[\[(<#]\s*([^\[\]()<>]+?)\s*[\])>]?\s*$")  # "[12]", "(12)", "#12" -> "12"


def arguments_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first (the tool's context): name, type, default."""
    hints = get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())[1:]
    fields: dict[str, Any] = {p.name: (hints[p.name], ... if p.default is p.empty else p.default) for p in params}
    config = ConfigDict(extra="forbid")
    model: type[BaseModel] = create_model(f"{fn.__name__}_arguments", __config__=config, **fields)
    return model


def _shown(prop: Mapping[str, Any]) -> dict[str, Any]:
    """One property as the model is shown it: ``T | None = None`` as ``T``, no title, keys in a fixed order."""
    prop = {k: v for k, v in prop.items() if k != "title"}
    branches = prop.get("anyOf", [])
    if len(branches) == 2 and {"type": "null"} in branches and prop.get("default", ...) is None:
        rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
        prop = {**next(b for b in branches if b != {"type": "null"}), **rest}
    if isinstance(prop.get("items"), Mapping):
        prop["items"] = _shown(prop["items"])
    ordered = {k: prop[k] for k in _KEY_ORDER if k in prop}
    return {**ordered, **{k: v for k, v in prop.items() if k not in ordered}}


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments model, as the model is shown it (see the module docstring)."""
    schema = model.model_json_schema()
    properties = {name: _shown(prop) for name, prop in schema.get("properties", {}).items()}
    return {"type": "object", "properties": properties, "required": list(schema.get("required", []))}


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
