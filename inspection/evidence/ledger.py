"""The evidence ledger: an append-only, hash-chained, signed list of records in the store.

Each record's ``payload`` is canonical JSON (:mod:`inspection.evidence.canonical`) of::

    {"schema": "weldinspect.evidence/1", "seq": n, "prev_hash": <hash of record n-1 | 64 zeros>,
     "record_id": <uuid>, "kind": "inspection" | "review" | ..., "created_at": "...Z",
     "key_id": <signing key id>, "data": {...kind-specific...}}

``record_hash = sha256(payload bytes)``; ``signature = Ed25519(station key, 32 bytes of record_hash)``.

Appends run inside :meth:`Store.write` (one serialised write transaction: ``BEGIN IMMEDIATE`` on
SQLite, an advisory lock on PostgreSQL), read the head under that lock and insert ``seq = head + 1``,
so concurrent appenders from several processes still produce one chain. :func:`record_inspection`
stores the image row, the evidence record and the inspection row in ONE transaction; the image
file is written (content-addressed, idempotent) just before it, so a failed transaction leaves at
most an unreferenced image file, never a half-recorded inspection.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inspection.config import GradingConfig
from inspection.evidence.canonical import GENESIS_HASH, canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import Signer
from inspection.store import repo
from inspection.store.db import Store
from inspection.store.images import PutResult
from inspection.store.images import sha256_hex as bytes_sha256
from inspection.store.models import EvidenceRecordRow, ReviewCandidateRow, SigningKey, as_utc, utcnow
from inspection.types import InspectionResult

logger = logging.getLogger(__name__)

RECORD_SCHEMA = "weldinspect.evidence/1"
KIND_INSPECTION = "inspection"
KIND_REVIEW = "review"
_KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
ENVELOPE_FIELDS = ("schema", "seq", "prev_hash", "record_id", "kind", "created_at", "key_id", "data")


class IdempotencyConflictError(ValueError):
    """An idempotency key was reused for a different image; the message names the key and both images."""


def format_time(value: datetime) -> str:
    """UTC ISO 8601 with microseconds and a ``Z``: ``2025-11-25T10:40:00.123456Z``."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class EvidenceRecord:
    """One stored record. ``payload`` is the exact canonical text that was hashed and signed."""

    seq: int
    record_id: str
    kind: str
    created_at: str
    payload: str
    prev_hash: str
    record_hash: str
    signature: str | None
    key_id: str | None

    @property
    def envelope(self) -> dict[str, Any]:
        """The parsed payload (envelope and ``data``)."""
        parsed = parse_json(self.payload)
        if not isinstance(parsed, dict):
            msg = f"record seq {self.seq}: payload is not a JSON object"
            raise ValueError(msg)
        return parsed

    @property
    def data(self) -> dict[str, Any]:
        """The kind-specific part of the payload."""
        data = self.envelope.get("data")
        return dict(data) if isinstance(data, Mapping) else {}

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (one line of a bundle's ``records.jsonl``)."""
        return {
            "seq": self.seq,
            "record_id": self.record_id,
            "kind": self.kind,
            "created_at": self.created_at,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "record_hash": self.record_hash,
            "signature": self.signature,
            "key_id": self.key_id,
        }

    @classmethod
    def from_row(cls, row: EvidenceRecordRow) -> EvidenceRecord:
        return cls(
            seq=int(row.seq),
            record_id=row.record_id,
            kind=row.kind,
            created_at=format_time(row.created_at),
            payload=row.payload,
            prev_hash=row.prev_hash,
            record_hash=row.record_hash,
            signature=row.signature,
            key_id=row.key_id,
        )


def build_payload(
    *,
    seq: int,
    prev_hash: str,
    record_id: str,
    kind: str,
    created_at: str,
    key_id: str,
    data: Mapping[str, Any],
) -> str:
    """The canonical payload text of a record (pure)."""
    if not _KIND_RE.match(kind):
        msg = f"record kind {kind!r} is invalid; use 1-64 of a-z 0-9 _ . - starting with a letter"
        raise ValueError(msg)
    if seq < 1:
        msg = f"seq must be >= 1, got {seq}"
        raise ValueError(msg)
    envelope = {
        "schema": RECORD_SCHEMA,
        "seq": seq,
        "prev_hash": prev_hash,
        "record_id": record_id,
        "kind": kind,
        "created_at": created_at,
        "key_id": key_id,
        "data": dict(data),
    }
    return canonical_json(envelope)


class Ledger:
    """Appends signed records to the store's evidence chain with one station key."""

    def __init__(self, store: Store, signer: Signer, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.signer = signer
        self.clock = clock

    def append(self, kind: str, data: Mapping[str, Any]) -> EvidenceRecord:
        """Append one record in its own write transaction and return it."""
        with self.store.write() as session:
            return self.append_in(session, kind, data)

    def append_in(
        self, session: Session, kind: str, data: Mapping[str, Any], *, now: datetime | None = None
    ) -> EvidenceRecord:
        """Append inside a transaction opened by :meth:`Store.write` (which holds the chain lock)."""
        self._register_key(session)
        head = session.execute(
            select(EvidenceRecordRow.seq, EvidenceRecordRow.record_hash)
            .order_by(EvidenceRecordRow.seq.desc())
            .limit(1)
        ).first()
        seq = 1 if head is None else int(head.seq) + 1
        prev_hash = GENESIS_HASH if head is None else head.record_hash
        when = now or self.clock()
        record_id = str(uuid.uuid4())
        created_at = format_time(when)
        payload = build_payload(
            seq=seq,
            prev_hash=prev_hash,
            record_id=record_id,
            kind=kind,
            created_at=created_at,
            key_id=self.signer.key_id,
            data=data,
        )
        record_hash = sha256_hex(payload)
        signature = self.signer.sign_hash(record_hash)
        session.add(
            EvidenceRecordRow(
                seq=seq,
                record_id=record_id,
                kind=kind,
                created_at=as_utc(when),
                payload=payload,
                prev_hash=prev_hash,
                record_hash=record_hash,
                signature=signature,
                key_id=self.signer.key_id,
            )
        )
        session.flush()
        logger.debug("appended evidence record seq=%d kind=%s hash=%s", seq, kind, record_hash)
        return EvidenceRecord(
            seq, record_id, kind, created_at, payload, prev_hash, record_hash, signature, self.signer.key_id
        )

    def _register_key(self, session: Session) -> None:
        info = self.signer.info
        row = session.get(SigningKey, info.key_id)
        if row is None:
            session.add(
                SigningKey(
                    key_id=info.key_id,
                    station_id=info.station_id,
                    public_key_pem=info.public_key_pem,
                    created_at=utcnow(),
                )
            )
            session.flush()
        elif row.public_key_pem.strip() != info.public_key_pem.strip():
            msg = f"key id {info.key_id} is registered with a different public key; refusing to sign"
            raise ValueError(msg)

    def head(self) -> EvidenceRecord | None:
        """The last record of the chain, or None when it is empty."""
        return head_record(self.store)


def head_record(store: Store) -> EvidenceRecord | None:
    """The last record of the store's chain, or None."""
    with store.session() as s:
        row = s.scalars(select(EvidenceRecordRow).order_by(EvidenceRecordRow.seq.desc()).limit(1)).first()
        return None if row is None else EvidenceRecord.from_row(row)


def iter_records(
    session: Session, *, start_seq: int = 1, end_seq: int | None = None
) -> Iterator[EvidenceRecord]:
    """Records with ``start_seq <= seq (<= end_seq)``, in seq order, streamed."""
    stmt = select(EvidenceRecordRow).where(EvidenceRecordRow.seq >= start_seq).order_by(EvidenceRecordRow.seq)
    if end_seq is not None:
        stmt = stmt.where(EvidenceRecordRow.seq <= end_seq)
    for row in session.scalars(stmt.execution_options(yield_per=500)):
        yield EvidenceRecord.from_row(row)


def get_record(session: Session, seq: int) -> EvidenceRecord | None:
    """The record with this seq, or None."""
    row = session.get(EvidenceRecordRow, seq)
    return None if row is None else EvidenceRecord.from_row(row)


# ---- inspections and reviews ----------------------------------------------------------------------


def inspection_evidence(
    result: InspectionResult,
    *,
    inspection_id: str,
    image_bytes: int,
    media_type: str,
    config_sha256: str,
    recommendation: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``data`` of an inspection record (pure): everything a warranty claim needs to re-check.

    Holds the image hash and size, model name/version/weights hash, the model config hash,
    grades with probabilities, quality verdict, findings, standards verdicts, the full context
    (machine serial and firmware, station, operator, part/seam, process, material, thickness,
    welding parameters) and the recommendation if any. Timings are left out (not evidence).
    """
    d = result.to_dict()
    return {
        "inspection_id": inspection_id,
        "schema_version": d["schema_version"],
        "image": {
            "sha256": result.image_sha256,
            "bytes": image_bytes,
            "media_type": media_type,
            "width": result.width,
            "height": result.height,
        },
        "model": d["model"],
        "config_sha256": config_sha256,
        "grades": {"porosity": d["porosity"], "spatter": d["spatter"]},
        "quality": d["quality"],
        "needs_review": d["needs_review"],
        "review_reasons": d["review_reasons"],
        "ood_score": d["ood_score"],
        "findings": d["findings"],
        "standards": d["standards"],
        "seam": d["seam"],
        "context": d["context"],
        "recommendation": None if recommendation is None else dict(recommendation),
    }


def _check_hex64(value: str, name: str) -> None:
    if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
        msg = f"{name} must be a 64-character lower-case hex SHA-256, got {value!r}"
        raise ValueError(msg)


@dataclass(frozen=True)
class InspectionToRecord:
    """One inspection to record: the result, the exact image bytes it was computed from, the model
    config hash (sha256 of the model's ``config.json``), an optional recommendation and key."""

    result: InspectionResult
    image_bytes: bytes
    config_sha256: str
    recommendation: Mapping[str, Any] | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        _check_hex64(self.config_sha256, "config_sha256")
        actual = bytes_sha256(self.image_bytes)
        if actual != self.result.image_sha256:
            msg = (
                f"image bytes hash to {actual} but result.image_sha256 is {self.result.image_sha256}; "
                "pass the exact bytes that were inspected"
            )
            raise ValueError(msg)
        if self.idempotency_key is not None and not self.idempotency_key.strip():
            msg = "idempotency_key must be non-empty when given"
            raise ValueError(msg)


def record_inspection(
    store: Store,
    ledger: Ledger,
    result: InspectionResult,
    image_bytes: bytes,
    *,
    config_sha256: str,
    recommendation: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> tuple[str, EvidenceRecord]:
    """Store the image, the inspection row and its evidence record in ONE transaction.

    ``image_bytes`` must be the bytes whose SHA-256 is ``result.image_sha256``. With an
    ``idempotency_key`` seen before, nothing new is written and the earlier inspection id and
    record are returned (:class:`IdempotencyConflictError` if that key was used for another image).
    Returns ``(inspection_id, record)``.
    """
    item = InspectionToRecord(result, image_bytes, config_sha256, recommendation, idempotency_key)
    return record_inspections(store, ledger, [item])[0]


def record_inspections(
    store: Store, ledger: Ledger, items: Sequence[InspectionToRecord]
) -> list[tuple[str, EvidenceRecord]]:
    """Record several inspections in ONE transaction (all or nothing), in order.

    Much faster than one :func:`record_inspection` per image (one commit and one lock for the
    whole batch); batch scoring should call this once per scored batch.
    """
    puts = [store.images.put(item.image_bytes) for item in items]
    with store.write() as session:
        out = [_record_in(session, ledger, item, put) for item, put in zip(items, puts, strict=True)]
    for inspection_id, record in out:
        logger.debug("recorded inspection %s as evidence seq %d", inspection_id, record.seq)
    return out


def _record_in(
    session: Session, ledger: Ledger, item: InspectionToRecord, put: PutResult
) -> tuple[str, EvidenceRecord]:
    result, key = item.result, item.idempotency_key
    if key is not None:
        existing = repo.find_by_idempotency_key(session, key)
        if existing is not None:
            return _replay(session, existing, key, result.image_sha256)
    inspection_id = str(uuid.uuid4())
    repo.add_image(session, put, result.width, result.height)
    now = ledger.clock()
    ctx = result.context
    if ctx is not None and ctx.machine_serial:
        model = ctx.params.get("machine_model")
        repo.upsert_machine(
            session,
            ctx.machine_serial,
            firmware=ctx.firmware,
            model=model if isinstance(model, str) else None,
            seen_at=now,
        )
    data = inspection_evidence(
        result,
        inspection_id=inspection_id,
        image_bytes=put.size,
        media_type=put.media_type,
        config_sha256=item.config_sha256,
        recommendation=item.recommendation,
    )
    record = ledger.append_in(session, KIND_INSPECTION, data, now=now)
    repo.add_inspection(
        session,
        result,
        inspection_id=inspection_id,
        created_at=now,
        evidence_seq=record.seq,
        idempotency_key=key,
    )
    return inspection_id, record


def _replay(
    session: Session, existing: repo.InspectionRecord, key: str, image_sha256: str
) -> tuple[str, EvidenceRecord]:
    if existing.image_sha256 != image_sha256:
        msg = (
            f"idempotency key {key!r} was already used for image {existing.image_sha256}, "
            f"not {image_sha256}; use a new key for a new image"
        )
        raise IdempotencyConflictError(msg)
    record = None if existing.evidence_seq is None else get_record(session, existing.evidence_seq)
    if record is None:
        msg = f"inspection {existing.id} (idempotency key {key!r}) has no evidence record"
        raise LookupError(msg)
    logger.info("idempotency key %r seen before: returning inspection %s", key, existing.id)
    return existing.id, record


def record_review(
    store: Store,
    ledger: Ledger,
    *,
    inspection_id: str,
    reviewer: str,
    porosity_grade: int | None,
    spatter_grade: int | None,
    comment: str = "",
    marks: Sequence[Mapping[str, Any]] | None = None,
    not_gradable_reason: str | None = None,
    grading: GradingConfig | None = None,
) -> tuple[str, EvidenceRecord]:
    """Store a human review and its evidence record (kind ``review``) in one transaction.

    Grades are held to the marks with ``grading``'s count thresholds (None = the defaults; the
    service passes the ``grading`` section it grades with): :func:`inspection.store.marks.grades_with_marks`,
    so the record's ``grades`` are the final ones (a porosity grade left out is the marks' grade).

    The record links to the inspection's own record (``inspection_seq``, ``inspection_record_hash``).
    Keys added only when they apply (so a grades-only review's record reads as before): ``marks``
    (the validated marks, :mod:`inspection.store.marks`), ``not_gradable`` (the reason) and
    ``audit: true`` (the inspection is a random audit sample in the review queue, table
    ``review_candidates``). Returns ``(review_id, record)``; ``LookupError`` when the inspection
    does not exist, ``ValueError`` (``MarkError``) for bad grades or marks.
    """
    review_id = str(uuid.uuid4())
    with store.write() as session:
        inspection = repo.get_inspection(session, inspection_id)
        if inspection is None:
            msg = f"no inspection with id {inspection_id!r} to review"
            raise LookupError(msg)
        target = None if inspection.evidence_seq is None else get_record(session, inspection.evidence_seq)
        now = ledger.clock()
        candidate = session.get(ReviewCandidateRow, inspection_id)
        # Validate before appending so a bad grade or mark never reaches the chain.
        info = repo.add_review(
            session,
            inspection_id=inspection_id,
            reviewer=reviewer,
            porosity_grade=porosity_grade,
            spatter_grade=spatter_grade,
            comment=comment,
            review_id=review_id,
            created_at=now,
            marks=marks,
            not_gradable_reason=not_gradable_reason,
            audit=candidate is not None and bool(candidate.audit),
            grading=grading,
        )
        data: dict[str, Any] = {
            "review_id": review_id,
            "inspection_id": inspection_id,
            "inspection_seq": None if target is None else target.seq,
            "inspection_record_hash": None if target is None else target.record_hash,
            "reviewer": reviewer,
            "grades": {"porosity": info.porosity_grade, "spatter": info.spatter_grade},
            "comment": comment,
        }
        if info.marks is not None:
            data["marks"] = [dict(m) for m in info.marks]
        if info.not_gradable_reason is not None:
            data["not_gradable"] = info.not_gradable_reason
        if info.audit:
            data["audit"] = True
        record = ledger.append_in(session, KIND_REVIEW, data, now=now)
        repo.set_review_evidence(session, review_id, record.seq)
    return review_id, record
