"""Canonical JSON: one byte string per value, so that hashes and signatures are reproducible.

The rule (RFC 8785 style, with a fixed number rule instead of ES6 double printing):

* **Objects**: keys must be strings; members are sorted by the UTF-16 code units of their keys
  (as RFC 8785; identical to code-point order outside the astral planes); no duplicate keys.
* **Whitespace**: none (separators ``,`` and ``:``).
* **Strings**: UTF-8, not ASCII-escaped; ``"`` and ``\\`` escaped; control characters as ``\\b``
  ``\\f`` ``\\n`` ``\\r`` ``\\t`` or ``\\u00xx`` (lower-case hex), as RFC 8785. Lone surrogates are
  refused.
* **Literals**: ``true``, ``false``, ``null``.
* **Integers**: decimal, no leading zeros, must lie within +-(2**53 - 1) (the exactly representable
  range every JSON reader shares).
* **Floats**: must be finite and ``abs(x) < 2**53``. Written in fixed-point notation rounded to
  **6 decimal places** (``format(x, ".6f")``: correct rounding of the binary value), then trailing
  zeros and a trailing ``.`` are removed and ``-0`` becomes ``0``. So ``0.1 -> 0.1``,
  ``2.0 -> 2``, ``1e-7 -> 0``, ``0.12345678 -> 0.123457``. Probabilities and millimetres keep
  6 decimals, far below any measurement's precision.
* **Sequences** (list, tuple) become arrays; nothing else is accepted (the error names the path).

The encoding is idempotent under a JSON round trip: ``canonical(json.loads(canonical(v))) ==
canonical(v)`` for every accepted ``v`` -- which is what lets a verifier holding only the JSON
text re-derive the exact bytes (:func:`is_canonical`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1
FLOAT_DECIMALS = 6
GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first record of a chain."""


class CanonicalError(ValueError):
    """A value cannot be written as canonical JSON; the message names the path and the reason."""


def _number(value: float, path: str) -> str:
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            msg = f"{path}: integer {value} is outside +-(2**53 - 1); store it as a string"
            raise CanonicalError(msg)
        return str(value)
    if not math.isfinite(value):
        msg = f"{path}: {value!r} is not a finite number; JSON has no NaN or Infinity"
        raise CanonicalError(msg)
    if abs(value) >= 2.0**53:
        msg = f"{path}: float {value!r} is too large (|x| must be < 2**53)"
        raise CanonicalError(msg)
    text = format(value, f".{FLOAT_DECIMALS}f").rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _string(value: str, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        msg = f"{path}: string holds a lone surrogate and cannot be UTF-8 ({exc.reason})"
        raise CanonicalError(msg) from exc
    return json.dumps(value, ensure_ascii=False)


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _encode(value: Any, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value, path))
    elif isinstance(value, int | float):
        out.append(_number(value, path))
    elif isinstance(value, Mapping):
        keys = list(value.keys())
        for k in keys:
            if not isinstance(k, str):
                msg = f"{path}: object keys must be strings, got {type(k).__name__} {k!r}"
                raise CanonicalError(msg)
        out.append("{")
        for i, k in enumerate(sorted(keys, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(k, f"{path}.<key>"))
            out.append(":")
            _encode(value[k], f"{path}.{k}", out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, f"{path}[{i}]", out)
        out.append("]")
    else:
        valid = "dict, list, tuple, str, int, float, bool, None"
        msg = f"{path}: {type(value).__name__} is not JSON; valid: {valid}"
        raise CanonicalError(msg)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (see the module docstring for the rule)."""
    out: list[str] = []
    _encode(value, "$", out)
    return "".join(out)


def canonical_bytes(value: Any) -> bytes:
    """UTF-8 bytes of :func:`canonical_json`."""
    return canonical_json(value).encode("utf-8")


def sha256_hex(data: bytes | str) -> str:
    """Lower-case hex SHA-256 of bytes (a ``str`` is hashed as its UTF-8 bytes)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            msg = f"duplicate object key {k!r}"
            raise CanonicalError(msg)
        out[k] = v
    return out


def parse_json(text: str) -> Any:
    """Parse JSON text, refusing duplicate keys and NaN/Infinity (``CanonicalError``)."""

    def _constant(name: str) -> Any:
        msg = f"{name} is not valid JSON"
        raise CanonicalError(msg)

    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc}"
        raise CanonicalError(msg) from exc


def is_canonical(text: str) -> bool:
    """True when ``text`` parses and re-encodes to exactly the same string."""
    try:
        return canonical_json(parse_json(text)) == text
    except CanonicalError:
        return False
