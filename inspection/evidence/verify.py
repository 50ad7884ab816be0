"""Verify the evidence chain: hashes, links, signatures, images, and the tables that mirror it.

The per-record and per-link checks are pure (:func:`check_record`, :class:`ChainChecker`) and
shared by :func:`verify_store` (the database) and :mod:`inspection.evidence.bundle` (claim zips).

Problem codes (stable):

===================  =================================================================
``payload_invalid``  the payload is not a JSON object with the record envelope
``not_canonical``    the payload text is not in canonical form (it was rewritten)
``hash_mismatch``    sha256(payload) differs from ``record_hash`` (the payload was edited)
``field_mismatch``   a column (seq, record id, kind, prev hash, key id, time) disagrees with the payload
``seq_gap``          seq numbers are not consecutive (a record was deleted or records reordered)
``broken_link``      ``prev_hash`` is not the previous record's hash
``missing_signature`` no signature
``unknown_key``      the key id is not among the public keys used for verification
``bad_signature``    the signature does not verify (forged, or hash/payload replaced)
``image_missing``    an image referenced by evidence is not in the store / bundle
``image_mismatch``   an image file's bytes no longer hash to its sha256 (swapped or damaged)
``row_mismatch``     an ``inspections``/``reviews`` row disagrees with its evidence record
``no_evidence``      an inspection row has no evidence record
``head_missing``     an expected head (``--expect-head SEQ:HASH``) is past the chain's end (tail truncated)
``head_mismatch``    the record at an expected head's seq has another hash (chain rewritten)
===================  =================================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from inspection.evidence.canonical import GENESIS_HASH, CanonicalError, canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import KeyFileError, load_public_pem, verify_signature
from inspection.evidence.ledger import (
    ENVELOPE_FIELDS,
    KIND_INSPECTION,
    KIND_REVIEW,
    EvidenceRecord,
    iter_records,
)
from inspection.store.db import Store
from inspection.store.models import InspectionRow, ReviewRow, SigningKey, StoredImageRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One thing wrong, located by record ``seq`` / ``record_id`` when it belongs to a record."""

    code: str
    message: str
    seq: int | None = None
    record_id: str | None = None

    def __str__(self) -> str:
        where = "" if self.seq is None else f"record seq {self.seq} ({self.record_id}): "
        return f"{where}{self.code}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a verification: what was checked and every problem found (empty = valid)."""

    records: int
    images: int
    problems: tuple[Problem, ...]
    head_seq: int | None
    head_hash: str | None
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The problem of the lowest-seq record (record-less problems last)."""
        if not self.problems:
            return None
        return min(self.problems, key=lambda p: (p.seq is None, p.seq or 0))


def _problem(code: str, message: str, rec: EvidenceRecord | None = None) -> Problem:
    return Problem(code, message, None if rec is None else rec.seq, None if rec is None else rec.record_id)


def check_record(rec: EvidenceRecord, keys: Mapping[str, Ed25519PublicKey]) -> list[Problem]:
    """Self-checks of one record, most telling first: hash, signature, then envelope vs columns."""
    out: list[Problem] = []
    actual = sha256_hex(rec.payload)
    if actual != rec.record_hash:
        msg = f"sha256 of the payload is {actual}, record_hash says {rec.record_hash} (payload edited)"
        out.append(_problem("hash_mismatch", msg, rec))
    out.extend(check_signature(rec.record_hash, rec.signature, rec.key_id, keys, rec))
    try:
        envelope = parse_json(rec.payload)
    except CanonicalError as exc:
        out.append(_problem("payload_invalid", f"payload is not valid JSON ({exc})", rec))
        return out
    if not isinstance(envelope, dict) or sorted(envelope) != sorted(ENVELOPE_FIELDS):
        found = sorted(envelope) if isinstance(envelope, dict) else type(envelope).__name__
        out.append(
            _problem("payload_invalid", f"payload fields {found}; expected {sorted(ENVELOPE_FIELDS)}", rec)
        )
        return out
    try:
        canonical = canonical_json(envelope) == rec.payload
    except CanonicalError:
        canonical = False
    if not canonical:
        out.append(_problem("not_canonical", "payload text is not in canonical form", rec))
    columns = {
        "seq": rec.seq,
        "record_id": rec.record_id,
        "kind": rec.kind,
        "prev_hash": rec.prev_hash,
        "key_id": rec.key_id,
        "created_at": rec.created_at,
    }
    for name, value in columns.items():
        if envelope.get(name) != value:
            msg = f"{name} is {value!r} but the signed payload says {envelope.get(name)!r}"
            out.append(_problem("field_mismatch", msg, rec))
    return out


def check_signature(
    record_hash: str,
    signature: str | None,
    key_id: str | None,
    keys: Mapping[str, Ed25519PublicKey],
    rec: EvidenceRecord | None = None,
    *,
    seq: int | None = None,
    record_id: str | None = None,
) -> list[Problem]:
    """Signature checks of one record hash (``missing_signature``, ``unknown_key``, ``bad_signature``)."""
    where_seq = rec.seq if rec is not None else seq
    where_id = rec.record_id if rec is not None else record_id
    if not signature:
        return [Problem("missing_signature", "the record has no signature", where_seq, where_id)]
    if key_id is None or key_id not in keys:
        known = ", ".join(sorted(keys)) or "none"
        return [
            Problem(
                "unknown_key",
                f"signed by key {key_id!r}, which is not a known key (known: {known})",
                where_seq,
                where_id,
            )
        ]
    if not verify_signature(keys[key_id], record_hash, signature):
        return [Problem("bad_signature", f"signature does not verify with key {key_id}", where_seq, where_id)]
    return []


class ChainChecker:
    """Checks consecutive seq numbers and hash links over records fed in seq order."""

    def __init__(self, *, start_seq: int = 1, start_prev_hash: str = GENESIS_HASH) -> None:
        self.expected_seq = start_seq
        self.prev_hash = start_prev_hash
        self.count = 0

    def feed(self, rec: EvidenceRecord) -> list[Problem]:
        out: list[Problem] = []
        if rec.seq != self.expected_seq:
            if rec.seq > self.expected_seq:
                what = f"records {self.expected_seq}..{rec.seq - 1} are missing (deleted?)"
            else:
                what = "seq goes backwards (records reordered or duplicated)"
            out.append(_problem("seq_gap", f"expected seq {self.expected_seq}, found {rec.seq}: {what}", rec))
        if rec.prev_hash != self.prev_hash:
            out.append(
                _problem(
                    "broken_link",
                    f"prev_hash {rec.prev_hash} is not the previous record's hash {self.prev_hash}",
                    rec,
                )
            )
        self.expected_seq = rec.seq + 1
        self.prev_hash = rec.record_hash
        self.count += 1
        return out


_HEAD = re.compile(r"^(?P<seq>[1-9][0-9]{0,17}):(?P<hash>[0-9a-f]{64})$")


def parse_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as printed by ``weldinspect evidence head``) -> ``(seq, hash)``; ValueError says
    what is valid."""
    m = _HEAD.match(text.strip().lower())
    if m is None:
        msg = (
            f"expected head {text!r} is not SEQ:HASH (a positive record seq, a colon, the 64-hex-digit "
            "record hash, e.g. 42:3f9c...; `weldinspect evidence head` prints both)"
        )
        raise ValueError(msg)
    return int(m["seq"]), m["hash"]


def check_expected_heads(
    expected: Sequence[tuple[int, str]], seen: Mapping[int, str], head_seq: int | None
) -> list[Problem]:
    """Heads reported earlier must still be in the chain with the same hash: a chain truncated below
    one (``head_missing``) or rewritten at or before one (``head_mismatch``) fails. ``seen`` maps the
    expected seqs found in the chain to their record hashes."""
    out: list[Problem] = []
    for seq, record_hash in expected:
        actual = seen.get(seq)
        if actual is None:
            out.append(
                Problem(
                    "head_missing",
                    f"expected head seq {seq} ({record_hash}) is not in the chain, which ends at seq "
                    f"{head_seq if head_seq is not None else 'none (empty)'}: records after it were removed",
                    seq,
                )
            )
        elif actual != record_hash:
            out.append(
                Problem(
                    "head_mismatch",
                    f"record seq {seq} hashes to {actual}, the expected head says {record_hash}: the chain "
                    "was rewritten up to this record",
                    seq,
                )
            )
    return out


def registry_keys(store: Store) -> dict[str, Ed25519PublicKey]:
    """Public keys registered in the store's ``evidence_keys`` table, by key id."""
    out: dict[str, Ed25519PublicKey] = {}
    with store.session() as s:
        for row in s.scalars(select(SigningKey)):
            try:
                out[row.key_id] = load_public_pem(row.public_key_pem, f"evidence_keys[{row.key_id}]")
            except KeyFileError as exc:
                logger.warning("skipping unreadable registered key: %s", exc)
    return out


@dataclass
class _Refs:
    images: dict[str, EvidenceRecord] = field(default_factory=dict)
    inspections: dict[int, tuple[EvidenceRecord, dict[str, Any]]] = field(default_factory=dict)
    reviews: dict[int, tuple[EvidenceRecord, dict[str, Any]]] = field(default_factory=dict)


def _collect(rec: EvidenceRecord, refs: _Refs) -> None:
    try:
        data = rec.data
    except (CanonicalError, ValueError):
        return
    if rec.kind == KIND_INSPECTION:
        sha = (data.get("image") or {}).get("sha256")
        if isinstance(sha, str):
            refs.images.setdefault(sha, rec)
        refs.inspections[rec.seq] = (rec, data)
    elif rec.kind == KIND_REVIEW:
        refs.reviews[rec.seq] = (rec, data)


def verify_records(
    records: Iterable[EvidenceRecord], keys: Mapping[str, Ed25519PublicKey]
) -> tuple[list[Problem], int, str | None]:
    """Check a whole chain (from seq 1, in seq order). Returns (problems, count, head hash)."""
    checker = ChainChecker()
    problems: list[Problem] = []
    for rec in records:
        problems.extend(check_record(rec, keys))
        problems.extend(checker.feed(rec))
    return problems, checker.count, (None if checker.count == 0 else checker.prev_hash)


def _grades(data: Mapping[str, Any]) -> tuple[Any, Any]:
    grades = data.get("grades") or {}
    p, s = grades.get("porosity"), grades.get("spatter")
    p = p.get("grade") if isinstance(p, Mapping) else p
    s = s.get("grade") if isinstance(s, Mapping) else s
    return p, s


def _check_rows(store: Store, refs: _Refs) -> list[Problem]:
    out: list[Problem] = []
    with store.session() as s:
        for row in s.scalars(select(InspectionRow)):
            if row.evidence_seq is None:
                out.append(Problem("no_evidence", f"inspection {row.id} has no evidence record"))
                continue
            found = refs.inspections.get(int(row.evidence_seq))
            if found is None:
                out.append(
                    Problem(
                        "row_mismatch",
                        f"inspection {row.id} points to evidence seq {row.evidence_seq}: no such record",
                    )
                )
                continue
            rec, data = found
            ctx = data.get("context") or {}
            expected = {
                "id": data.get("inspection_id"),
                "image_sha256": (data.get("image") or {}).get("sha256"),
                "porosity_grade": _grades(data)[0],
                "spatter_grade": _grades(data)[1],
                "machine_serial": ctx.get("machine_serial"),
                "station_id": ctx.get("station_id"),
                "part_id": ctx.get("part_id"),
            }
            for name, value in expected.items():
                if getattr(row, name) != value:
                    out.append(
                        _problem(
                            "row_mismatch",
                            f"inspections.{name} of {row.id} is {getattr(row, name)!r}; evidence: {value!r}",
                            rec,
                        )
                    )
        for review in s.scalars(select(ReviewRow)):
            found = None if review.evidence_seq is None else refs.reviews.get(int(review.evidence_seq))
            if found is None:
                out.append(Problem("no_evidence", f"review {review.id} has no evidence record"))
                continue
            rec, data = found
            expected_review = {
                "id": data.get("review_id"),
                "inspection_id": data.get("inspection_id"),
                "porosity_grade": _grades(data)[0],
                "spatter_grade": _grades(data)[1],
                "marks": data.get("marks"),
                "not_gradable_reason": data.get("not_gradable"),
                "audit": bool(data.get("audit", False)),
            }
            for name, value in expected_review.items():
                if getattr(review, name) != value:
                    out.append(
                        _problem(
                            "row_mismatch",
                            f"reviews.{name} of {review.id} is {getattr(review, name)!r}; evidence {value!r}",
                            rec,
                        )
                    )
    return out


def _check_images(store: Store, refs: _Refs) -> tuple[list[Problem], int]:
    out: list[Problem] = []
    with store.session() as s:
        shas = set(s.scalars(select(StoredImageRow.sha256)))
    shas |= set(refs.images)
    for sha in sorted(shas):
        rec = refs.images.get(sha)
        try:
            actual = store.images.hash_file(sha)
        except ValueError:
            out.append(_problem("image_missing", f"image id {sha!r} is not a valid sha256", rec))
            continue
        if actual is None:
            out.append(
                _problem("image_missing", f"image {sha} is missing: {store.images.path_for(sha)}", rec)
            )
        elif actual != sha:
            out.append(
                _problem(
                    "image_mismatch",
                    f"image file {store.images.path_for(sha)} hashes to {actual}, not {sha}",
                    rec,
                )
            )
    return out, len(shas)


def verify_store(
    store: Store,
    trusted_keys: Mapping[str, Ed25519PublicKey] | None = None,
    *,
    expected_heads: Sequence[tuple[int, str]] = (),
) -> VerifyReport:
    """Verify every record, link, signature, image file and mirrored row of ``store``.

    ``expected_heads`` are ``(seq, record_hash)`` heads reported earlier (``weldinspect evidence
    head``): each must still be in the chain with that hash (``head_missing`` / ``head_mismatch``).

    Signatures are checked against ``trusted_keys`` when given (public keys held independently of
    the database, e.g. ``StoreConfig.keys_dir``), else against the store's own key registry --
    which proves the chain is intact but not who wrote it (see docs/evidence.md).
    """
    notes: list[str] = []
    if trusted_keys is None:
        keys: Mapping[str, Ed25519PublicKey] = registry_keys(store)
        notes.append(
            "signatures checked against the key registry in the database (pass trusted keys to pin them)"
        )
    else:
        keys = trusted_keys
        notes.append(
            f"signatures checked against {len(keys)} trusted public key(s): {', '.join(sorted(keys))}"
        )
    refs = _Refs()
    problems: list[Problem] = []
    checker = ChainChecker()
    wanted = {seq for seq, _ in expected_heads}
    seen: dict[int, str] = {}
    with store.session() as s:
        for rec in iter_records(s):
            problems.extend(check_record(rec, keys))
            problems.extend(checker.feed(rec))
            _collect(rec, refs)
            if rec.seq in wanted:
                seen[rec.seq] = rec.record_hash
    image_problems, n_images = _check_images(store, refs)
    problems.extend(image_problems)
    problems.extend(_check_rows(store, refs))
    head_hash = None if checker.count == 0 else checker.prev_hash
    head_seq = None if checker.count == 0 else checker.expected_seq - 1
    problems.extend(check_expected_heads(expected_heads, seen, head_seq))
    if expected_heads:
        notes.append(f"expected head(s) checked: {', '.join(f'{q}:{h[:12]}...' for q, h in expected_heads)}")
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return VerifyReport(checker.count, n_images, tuple(problems), head_seq, head_hash, tuple(notes))
