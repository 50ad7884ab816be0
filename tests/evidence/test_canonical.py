"""Canonical JSON: the fixed encoding rule and its round-trip property."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from inspection.evidence.canonical import (
    CanonicalError,
    canonical_bytes,
    canonical_json,
    is_canonical,
    parse_json,
    sha256_hex,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        ({"a": [1, 2, {"d": None, "c": True}]}, '{"a":[1,2,{"c":true,"d":null}]}'),
        ((1, "x"), '[1,"x"]'),
        (0.1, "0.1"),
        (2.0, "2"),
        (-0.0, "0"),
        (1e-7, "0"),
        (-1e-7, "0"),
        (0.12345678, "0.123457"),
        (0.1234565, "0.123456"),  # binary value is just below the half: correct rounding
        (123456.5, "123456.5"),
        (1e15, "1000000000000000"),
        (-3, "-3"),
        (2**53 - 1, "9007199254740991"),
        ("é ü 漢字 🙂", '"é ü 漢字 🙂"'),
        ('q"b\\', '"q\\"b\\\\"'),
        ("\n\t\x01\x1f", '"\\n\\t\\u0001\\u001f"'),
        ({"\u00e9": 1, "z": 2, "\U0001f600": 3, "\uff61": 4}, '{"z":2,"é":1,"😀":3,"｡":4}'),
    ],
)
def test_encoding_rule(value: Any, expected: str) -> None:
    assert canonical_json(value) == expected
    assert canonical_bytes(value) == expected.encode("utf-8")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (math.nan, r"\$: nan is not a finite number"),
        ({"p": [1.0, math.inf]}, r"\$\.p\[1\]: inf is not a finite number"),
        (2**53, "outside"),
        (2.0**60, "too large"),
        ({1: "x"}, "object keys must be strings"),
        ({"b": b"raw"}, r"\$\.b: bytes is not JSON"),
        ({"s": {1, 2}}, r"\$\.s: set is not JSON"),
        ("\ud800", "lone surrogate"),
        (np.int64(3), "int64 is not JSON"),
    ],
)
def test_refuses_what_has_no_single_encoding(value: Any, match: str) -> None:
    with pytest.raises(CanonicalError, match=match):
        canonical_json(value)


def test_round_trip_is_idempotent(rng: np.random.Generator) -> None:
    """canonical(json.loads(canonical(v))) == canonical(v) for many random nested values."""

    def rand(depth: int) -> Any:
        kind = rng.integers(0, 7 if depth < 3 else 4)
        if kind == 0:
            return float(rng.normal() * 10.0 ** int(rng.integers(-8, 9)))
        if kind == 1:
            return int(rng.integers(-(10**12), 10**12))
        if kind == 2:
            return "".join(chr(int(c)) for c in rng.integers(1, 0x2FF, rng.integers(0, 6)))
        if kind == 3:
            return [None, True, False][int(rng.integers(0, 3))]
        if kind in (4, 5):
            return {f"k{int(rng.integers(0, 99))}": rand(depth + 1) for _ in range(int(rng.integers(0, 4)))}
        return [rand(depth + 1) for _ in range(int(rng.integers(0, 4)))]

    for _ in range(300):
        text = canonical_json(rand(0))
        assert canonical_json(json.loads(text)) == text
        assert is_canonical(text)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('{"a":1,"b":2}', True),
        ('{"b":2,"a":1}', False),
        ('{"a": 1}', False),
        ('{"a":1.50}', False),
        ('{"a":1,"a":1}', False),
        ('{"a":NaN}', False),
        ("not json", False),
    ],
)
def test_is_canonical(text: str, ok: bool) -> None:
    assert is_canonical(text) is ok


def test_parse_json_refuses_duplicates_and_constants() -> None:
    with pytest.raises(CanonicalError, match="duplicate object key 'a'"):
        parse_json('{"a":1,"a":2}')
    with pytest.raises(CanonicalError, match="Infinity is not valid JSON"):
        parse_json("[Infinity]")


def test_sha256_of_text_is_of_utf8_bytes() -> None:
    assert sha256_hex("é") == sha256_hex("é".encode())
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
