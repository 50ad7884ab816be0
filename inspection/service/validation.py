"""Input checks at the API boundary (pure): what a request may carry before any model or database work.

Everything an upload's ``metadata`` holds ends up in a signed evidence record (canonical JSON, see
:mod:`inspection.evidence.canonical`) and in database columns, so it is checked here, before the
model runs, against what both accept:

* the ``metadata`` text is at most :data:`MAX_METADATA_BYTES` (else 413) and nests objects/arrays
  at most :data:`MAX_JSON_DEPTH` deep (else 422; checked by a scan, before parsing, so a deeply
  nested document cannot exhaust the parser's recursion);
* JSON with ``NaN``/``Infinity`` or a duplicate key is refused;
* every string (field values, ``params`` keys and values at any depth) is valid Unicode (no lone
  surrogates) without the NUL character (PostgreSQL text cannot hold it);
* every number is finite; integers lie within +-(2**53 - 1), floats within +-2**53 (what every
  JSON reader represents exactly; larger values must be sent as strings).

Errors are :class:`InputError` with the HTTP status and a message naming the field and what is valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inspection.evidence.canonical import MAX_SAFE_INTEGER, CanonicalError, parse_json

MAX_METADATA_BYTES = 64 * 1024
"""Largest ``metadata`` form field, in UTF-8 bytes (413 above it)."""
MAX_JSON_DEPTH = 16
"""Deepest nesting of objects/arrays in ``metadata`` (the metadata object itself is level 1)."""
MAX_PARAM_KEY = 128
"""Longest ``params`` key (characters)."""
MAX_PARAM_STRING = 1024
"""Longest string value inside ``params`` (characters)."""
MAX_CONTAINER_ITEMS = 256
"""Most members of one object or array inside ``params``."""
MAX_FLOAT = 2.0**53


class InputError(ValueError):
    """A request value is invalid: ``status`` (413 or 422) and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored (NUL character, lone surrogate), or None when it can."""
    if "\x00" in value:
        return "must not contain the NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def check_text(value: str) -> str:
    """``value`` unchanged, or ValueError saying why it cannot be stored (pydantic validator)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def nesting_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests objects/arrays more than ``limit`` deep (strings are skipped).

    A linear scan that needs no recursion, so it is safe on any input, valid JSON or not.
    """
    depth = 0
    in_string = False
    escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_metadata(text: str) -> dict[str, Any]:
    """The ``metadata`` form field as a JSON object; :class:`InputError` (413/422) otherwise."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_METADATA_BYTES:
        msg = f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} bytes are accepted"
        raise InputError(413, msg)
    if nesting_exceeds(text, MAX_JSON_DEPTH):
        msg = f"metadata nests objects/arrays more than {MAX_JSON_DEPTH} levels deep; valid: at most that"
        raise InputError(422, msg)
    try:
        raw = parse_json(text.strip() or "{}")
    except CanonicalError as exc:
        msg = f"metadata is not valid JSON ({exc}); send an object without NaN, Infinity or duplicate keys"
        raise InputError(422, msg) from exc
    if not isinstance(raw, dict):
        msg = f"metadata must be a JSON object, got {type(raw).__name__}"
        raise InputError(422, msg)
    return raw


def check_json_value(value: Any, path: str) -> None:
    """ValueError naming ``path`` unless ``value`` is JSON that a signed record can hold exactly."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            msg = f"{path}: integer {value} is outside +-(2**53 - 1); send it as a string"
            raise ValueError(msg)
        return
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= MAX_FLOAT:
            msg = f"{path}: {value!r} is not a finite number below 2**53 in magnitude"
            raise ValueError(msg)
        return
    if isinstance(value, str):
        if len(value) > MAX_PARAM_STRING:
            msg = f"{path}: string of {len(value)} characters; at most {MAX_PARAM_STRING}"
            raise ValueError(msg)
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(f"{path}: {problem}")
        return
    if isinstance(value, Mapping | list | tuple):
        if len(value) > MAX_CONTAINER_ITEMS:
            msg = f"{path}: {len(value)} members; at most {MAX_CONTAINER_ITEMS}"
            raise ValueError(msg)
        if isinstance(value, Mapping):
            for key, item in value.items():
                check_param_key(key, path)
                check_json_value(item, f"{path}.{key}")
        else:
            for i, item in enumerate(value):
                check_json_value(item, f"{path}[{i}]")
        return
    valid = "object, array, string, number, bool, null"
    msg = f"{path}: {type(value).__name__} is not a JSON value; valid: {valid}"
    raise ValueError(msg)


def check_param_key(key: Any, path: str) -> None:
    """ValueError unless ``key`` is a storable object key of 1-:data:`MAX_PARAM_KEY` characters."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_PARAM_KEY:
        msg = f"{path}: key {key!r} must be a string of 1-{MAX_PARAM_KEY} characters"
        raise ValueError(msg)
    problem = text_problem(key)
    if problem is not None:
        msg = f"{path}: key {key!r} {problem}"
        raise ValueError(msg)
