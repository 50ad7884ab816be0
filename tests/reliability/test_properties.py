"""Property tests (Hypothesis): canonical JSON of evidence records and the ingest of random bytes.

* Canonical JSON round-trips for any unicode text (keys and values) and any finite float in its
  range; encoding is idempotent under a JSON round trip, so a verifier holding only the text
  re-derives the bytes; an evidence record built from such data verifies (hash, signature, form).
* NaN, +-inf, floats beyond +-2**53, integers beyond +-(2**53 - 1) and lone surrogates are refused
  with a CanonicalError naming the path, never written.
* Ingest of any bytes (random, or behind a real JPEG/PNG/GIF/TIFF/BMP/WebP signature) either decodes
  to an RGB uint8 image or raises IngestError with one of the documented codes: nothing else.

No timing: ``deadline=None`` everywhere (a busy machine must not fail a test)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from inspection.evidence.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalError,
    canonical_json,
    is_canonical,
    parse_json,
    sha256_hex,
)
from inspection.evidence.keys import Signer
from inspection.evidence.ledger import KIND_INSPECTION, EvidenceRecord, build_payload
from inspection.evidence.verify import check_record
from inspection.image.ingest import ERROR_CODES, IngestError, decode_image

SETTINGS = settings(
    deadline=None, max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow]
)

text = st.text()  # any unicode scalar value (Hypothesis leaves out lone surrogates, tested apart)
finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-(2.0**53), max_value=2.0**53,
                   exclude_min=True, exclude_max=True)  # fmt: skip
safe_int = st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
scalars = st.none() | st.booleans() | safe_int | finite | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def _close(a: Any, b: Any) -> bool:
    """``b`` is ``a`` after one canonical round trip (floats rounded to 6 decimals)."""
    if isinstance(a, float) and not isinstance(a, bool):
        return isinstance(b, int | float) and abs(float(b) - a) <= 5e-7 + abs(a) * 2**-52
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
        )
    return a == b and type(a) is type(b)


@SETTINGS
@given(json_values)
@example({"é": '\u2028\x00"\\', "\U0001f600": [0.1, -0.0, 1e-7, 4503599627370495.5]})
def test_canonical_json_round_trips(value: Any) -> None:
    encoded = canonical_json(value)
    assert is_canonical(encoded)  # canonical(parse(canonical(v))) == canonical(v)
    back = parse_json(encoded)
    assert _close(value, back), (value, back)
    assert json.loads(encoded) == back  # any JSON reader reads the same thing


@SETTINGS
@given(st.dictionaries(text, json_values, max_size=6), text, text)
def test_evidence_record_of_any_data_verifies(data: dict[str, Any], part_id: str, operator: str) -> None:
    signer = _SIGNER
    when, rid, genesis = "2026-12-05T21:00:00.000000Z", "r" * 36, "0" * 64
    full = {**data, "context": {"part_id": part_id, "operator_id": operator}}
    payload = build_payload(seq=1, prev_hash=genesis, record_id=rid, kind=KIND_INSPECTION, created_at=when,
                            key_id=signer.key_id, data=full)  # fmt: skip
    record_hash = sha256_hex(payload)
    rec = EvidenceRecord(seq=1, record_id=rid, kind=KIND_INSPECTION, created_at=when, payload=payload,
                         prev_hash=genesis, record_hash=record_hash, signature=signer.sign_hash(record_hash),
                         key_id=signer.key_id)  # fmt: skip
    assert check_record(rec, {signer.key_id: signer.public_key}) == []
    assert parse_json(payload)["data"]["context"]["part_id"] == part_id


_SIGNER = Signer.generate("st-prop")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (math.nan, "is not a finite number"),
        (math.inf, "is not a finite number"),
        (-math.inf, "is not a finite number"),
        (1e308, "is too large"),
        (2**70, "is outside +-(2**53 - 1)"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_non_finite_and_out_of_range_values_are_refused_by_name(value: Any, words: str) -> None:
    with pytest.raises(CanonicalError) as info:
        canonical_json({"params": {"power_w": value}})
    assert "$.params.power_w" in str(info.value) and words in str(info.value)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True), st.integers())
def test_any_float_or_int_is_written_or_refused_with_a_canonical_error(x: float, n: int) -> None:
    for value in (x, n):
        try:
            encoded = canonical_json([value])
        except CanonicalError as exc:
            assert "$[0]" in str(exc)
            assert not (isinstance(value, float) and math.isfinite(value) and abs(value) < 2**53)
            assert not (isinstance(value, int) and abs(value) <= MAX_SAFE_INTEGER)
        else:
            assert is_canonical(encoded)


SIGNATURES = [b"", b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n",
              b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM",
              b"RIFF\x00\x00\x00\x00WEBPVP8 "]  # fmt: skip


@settings(deadline=None, max_examples=400, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SIGNATURES), st.binary(max_size=2048))
def test_ingest_of_random_bytes_raises_only_ingest_error(signature: bytes, tail: bytes) -> None:
    data = signature + tail
    try:
        image = decode_image(data, name="fuzz.bin")
    except IngestError as exc:
        assert exc.code in ERROR_CODES and str(exc).startswith("fuzz.bin: ")
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def _valid_files() -> list[bytes]:
    from tests.helpers.images import encode, gradient_rgb

    rgb = gradient_rgb(12, 16)
    return [encode(rgb, "JPEG", quality=80), encode(rgb, "PNG"), encode(rgb, "TIFF"), encode(rgb, "BMP"),
            encode(rgb, "TIFF", compression="tiff_lzw"), encode(rgb, "JPEG", progressive=True)]  # fmt: skip


VALID_FILES = _valid_files()


@settings(deadline=None, max_examples=400, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(VALID_FILES))),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
    st.floats(0.05, 1.0),
)
def test_ingest_of_damaged_real_files_raises_only_ingest_error(
    which: int, flips: list[tuple[float, int]], keep: float
) -> None:
    """Real JPEG/PNG/TIFF/BMP files with bytes overwritten and the tail cut: the decoders' own
    exceptions (struct.error, SyntaxError, OSError, ...) must all come out as IngestError."""
    data = bytearray(VALID_FILES[which])
    for where, byte in flips:
        data[int(where * len(data))] = byte
    data = data[: max(1, int(len(data) * keep))]
    try:
        image = decode_image(bytes(data), name="damaged.bin")
    except IngestError as exc:
        assert exc.code in ERROR_CODES
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
