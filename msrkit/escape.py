"""Text every UTF-8 writer accepts: lone surrogates escaped where text leaves msrkit.

JSON may spell a lone surrogate (``"\\ud800"``). Python reads it into a ``str`` that no
UTF-8 encoder accepts, so a user id or a title holding one would crash every writer: a
``--json`` line, an ``--out`` journal, an index's ``strings.json``, a Parquet table, the
terminal. msrkit keeps such text as it was read (two ids stay two ids) and escapes it on
output, as the same ``\\ud800`` escape: in JSON a reader turns it back into the very same string.

- :func:`to_json`: one JSON text of a pydantic model, a mapping or any JSON value;
- :func:`json_data`: a model as JSON data (``model_dump(mode="json")``);
- :data:`ENCODE_ERRORS`: the error handler for files written as UTF-8 (``open(..., errors=ENCODE_ERRORS)``);
- :func:`escape_surrogates` / :func:`escape_value`: for text that is not JSON (a terminal, a Parquet cell);
- :func:`shown`: a file path or URL as an error message shows it (one line, long ones shortened).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError

__all__ = ["ENCODE_ERRORS", "escape_surrogates", "escape_value", "json_data", "shown", "to_json"]

#: the encoding error handler of msrkit's UTF-8 writers: an unencodable character (only a lone
#: surrogate is, in UTF-8) is written as its ``\\udXXX`` escape
ENCODE_ERRORS = "backslashreplace"

_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\udXXX`` escape (other text unchanged)."""
    if not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape_value(value: Any) -> Any:
    """``value`` (strings, lists, dicts, nested) with :func:`escape_surrogates` applied to every string in it."""
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, list):
        return [escape_value(v) for v in value]
    if isinstance(value, dict):
        return {escape_value(k): escape_value(v) for k, v in value.items()}
    return value


def json_data(model: BaseModel, **options: Any) -> Any:
    """``model.model_dump(mode="json", **options)``, also for a model holding lone surrogates (pydantic's JSON
    mode refuses one in a mapping's key)."""
    try:
        return model.model_dump(mode="json", **options)
    except ValueError:  # UnicodeEncodeError: the same data through the stdlib, which keeps the surrogates
        return json.loads(json.dumps(model.model_dump(**options), default=str))


def to_json(value: Any, *, indent: int | None = None) -> str:
    """One JSON text of ``value`` (a pydantic model, or what ``json.dumps`` takes), UTF-8-encodable whatever it holds.

    Non-ASCII text stays as it is; only lone surrogates are escaped (``\\ud800``), which any JSON
    reader reads back as the same string.
    """
    if isinstance(value, BaseModel):
        try:
            return value.model_dump_json(indent=indent)
        except PydanticSerializationError:  # a lone surrogate: pydantic's writer encodes strictly
            value = json_data(value)
    return escape_surrogates(json.dumps(value, ensure_ascii=False, indent=indent))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def shown(ref: str) -> str:
    """A reference as an error message shows it: on one line (control characters escaped), long ones shortened."""
    ref = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", ref)
    return ref if len(ref) <= 80 else ref[:60] + "..." + ref[-12:]
