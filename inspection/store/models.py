"""SQLAlchemy 2 ORM models: the whole schema (mirrored by ``alembic/versions/0001_initial.py``).

Conventions:

* Timestamps are UTC, ``DateTime(timezone=True)``. SQLite drops the zone, so readers normalise
  naive values to UTC (:func:`as_utc`).
* Identifiers of inspections, evidence records and reviews are UUID strings (36 characters).
* JSON columns are ``JSON`` (``JSONB`` on PostgreSQL).
* ``evidence_records.payload`` is the canonical JSON text that was hashed and signed; it is never
  re-serialised (see :mod:`inspection.evidence.canonical`).

Changing this module needs a new Alembic revision; ``tests/store/test_migrations.py`` fails when
the models and the migrations disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON everywhere, JSONB on PostgreSQL (indexable, compact)."""

UUID_LEN = 36
SHA256_LEN = 64


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (SQLite returns naive datetimes that were stored as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Stable constraint names, so later migrations can address them on every backend."""


class Base(DeclarativeBase):
    """Declarative base of every table of the store."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Machine(Base):
    """A welding machine, first seen in an inspection's context."""

    __tablename__ = "machines"

    serial: Mapped[str] = mapped_column(String(128), primary_key=True)
    model: Mapped[str | None] = mapped_column(String(128))
    firmware: Mapped[str | None] = mapped_column(String(128))
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StoredImageRow(Base):
    """One image file, content-addressed: ``path`` is relative to the store's images directory."""

    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(SHA256_LEN), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    media_type: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SigningKey(Base):
    """Registry of evidence public keys (Ed25519, PEM) by key id, filled by the ledger on append."""

    __tablename__ = "evidence_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    station_id: Mapped[str | None] = mapped_column(String(128))
    public_key_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvidenceRecordRow(Base):
    """One link of the evidence hash chain. ``seq`` runs 1, 2, 3, ... without gaps."""

    __tablename__ = "evidence_records"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    record_id: Mapped[str] = mapped_column(String(UUID_LEN), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(SHA256_LEN))
    record_hash: Mapped[str] = mapped_column(String(SHA256_LEN), unique=True)
    signature: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(16), ForeignKey("evidence_keys.key_id"))


class InspectionRow(Base):
    """One inspection: the searchable columns plus the full result JSON."""

    __tablename__ = "inspections"
    __table_args__ = (Index("ix_inspections_machine_serial_created_at", "machine_serial", "created_at"),)

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    image_sha256: Mapped[str] = mapped_column(String(SHA256_LEN), ForeignKey("images.sha256"), index=True)
    station_id: Mapped[str | None] = mapped_column(String(128), index=True)
    machine_serial: Mapped[str | None] = mapped_column(String(128), ForeignKey("machines.serial"))
    part_id: Mapped[str | None] = mapped_column(String(128), index=True)
    seam_id: Mapped[str | None] = mapped_column(String(128))
    operator_id: Mapped[str | None] = mapped_column(String(128))
    process: Mapped[str | None] = mapped_column(String(32))
    material: Mapped[str | None] = mapped_column(String(64))
    thickness_mm: Mapped[float | None] = mapped_column(Float)
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    porosity_grade: Mapped[int | None] = mapped_column(Integer)
    spatter_grade: Mapped[int | None] = mapped_column(Integer)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    model_sha256: Mapped[str] = mapped_column(String(SHA256_LEN))
    evidence_seq: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("evidence_records.seq"))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)


class RecommendationRow(Base):
    """A parameter recommendation made for an inspection."""

    __tablename__ = "recommendations"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("inspections.id"), index=True)
    machine_serial: Mapped[str | None] = mapped_column(String(128), index=True)
    rule_id: Mapped[str] = mapped_column(String(128))
    parameter: Mapped[str] = mapped_column(String(128))
    current_value: Mapped[float | None] = mapped_column(Float)
    new_value: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecommendationOutcomeRow(Base):
    """Whether a recommendation worked: defect rates before/after and a test's p-value."""

    __tablename__ = "recommendation_outcomes"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    recommendation_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("recommendations.id"), index=True
    )
    applied_inspection_id: Mapped[str | None] = mapped_column(String(UUID_LEN), ForeignKey("inspections.id"))
    before_rate: Mapped[float | None] = mapped_column(Float)
    after_rate: Mapped[float | None] = mapped_column(Float)
    p_value: Mapped[float | None] = mapped_column(Float)
    worked: Mapped[bool | None] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewRow(Base):
    """A human review of an inspection (grades override the model's for reporting)."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    inspection_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("inspections.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    porosity_grade: Mapped[int | None] = mapped_column(Integer)
    spatter_grade: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    evidence_seq: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("evidence_records.seq"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    marks: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    """The reviewer's marks (:mod:`inspection.store.marks`); None = the review drew no marks."""
    not_gradable_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Set when the reviewer flagged the photo ``not_gradable`` (the grades are then None)."""
    audit: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The inspection was a random audit sample (not flagged for review) when it was reviewed."""


class ReviewCandidateRow(Base):
    """An inspection in the review queue: flagged ``needs_review``, or drawn as an audit sample.

    Filled by ``inspection.service.web.queue.refresh_candidates`` as inspections arrive (by evidence
    seq); ``value`` is the review value of the result (``queue.review_value``) when it was added.
    """

    __tablename__ = "review_candidates"

    inspection_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("inspections.id"), primary_key=True
    )
    evidence_seq: Mapped[int] = mapped_column(BigInteger, index=True)
    flagged: Mapped[bool] = mapped_column(Boolean)
    audit: Mapped[bool] = mapped_column(Boolean)
    audit_rate: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float] = mapped_column(Float)
    ood_score: Mapped[float | None] = mapped_column(Float)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewQueueStateRow(Base):
    """How far the review queue has scanned the inspections (one row, ``id`` 1)."""

    __tablename__ = "review_queue_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    scanned_seq: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKeyRow(Base):
    """An HTTP API key: only its hash is stored. ``role`` is ``station``, ``auditor`` or ``admin``."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    station_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
