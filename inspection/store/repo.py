"""Repository functions over a :class:`~sqlalchemy.orm.Session`, returning frozen DTOs (never ORM rows).

Write functions expect to run inside :meth:`inspection.store.db.Store.write`; they flush but never
commit, so a caller can combine several into one transaction (``record_inspection`` does).
Batch scoring and the service store inspections through
:func:`inspection.evidence.ledger.record_inspection`, which calls :func:`add_inspection` together
with the evidence append.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from inspection.config import GradingConfig
from inspection.store.images import PutResult, check_sha256
from inspection.store.marks import grades_with_marks, parse_marks
from inspection.store.models import (
    ApiKeyRow,
    InspectionRow,
    Machine,
    RecommendationOutcomeRow,
    RecommendationRow,
    ReviewRow,
    StoredImageRow,
    as_utc,
    utcnow,
)
from inspection.types import GRADE_LEVELS, InspectionResult

API_ROLES = ("station", "auditor", "admin")
MAX_PAGE = 1000


def new_id() -> str:
    """A new random UUID string (36 characters)."""
    return str(uuid.uuid4())


def _check_grade(value: int | None, name: str) -> int | None:
    if value is not None and not (isinstance(value, int) and 0 <= value < GRADE_LEVELS):
        msg = f"{name} must be an integer in 0..{GRADE_LEVELS - 1} or None, got {value!r}"
        raise ValueError(msg)
    return value


# ---- DTOs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectionRecord:
    """One stored inspection. ``result`` is :meth:`InspectionResult.to_dict` output."""

    id: str
    created_at: datetime
    image_sha256: str
    station_id: str | None
    machine_serial: str | None
    part_id: str | None
    seam_id: str | None
    operator_id: str | None
    process: str | None
    material: str | None
    thickness_mm: float | None
    params: Mapping[str, Any]
    porosity_grade: int | None
    spatter_grade: int | None
    needs_review: bool
    result: Mapping[str, Any]
    model_name: str
    model_version: str
    model_sha256: str
    evidence_seq: int | None
    idempotency_key: str | None

    def to_result(self) -> InspectionResult:
        """The stored result as an :class:`InspectionResult`."""
        return InspectionResult.from_dict(self.result)


@dataclass(frozen=True)
class InspectionFilter:
    """Filters for :func:`list_inspections`; None means "any". Times select ``since <= t < until``."""

    machine_serial: str | None = None
    station_id: str | None = None
    part_id: str | None = None
    seam_id: str | None = None
    needs_review: bool | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_porosity_grade: int | None = None
    min_spatter_grade: int | None = None

    def __post_init__(self) -> None:
        _check_grade(self.min_porosity_grade, "min_porosity_grade")
        _check_grade(self.min_spatter_grade, "min_spatter_grade")
        if self.since is not None and self.until is not None and as_utc(self.until) <= as_utc(self.since):
            msg = f"until ({self.until.isoformat()}) must be after since ({self.since.isoformat()})"
            raise ValueError(msg)


@dataclass(frozen=True)
class Page:
    """``limit`` rows (1..1000) starting at ``offset`` (>= 0)."""

    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            msg = f"page limit must be in 1..{MAX_PAGE}, got {self.limit}"
            raise ValueError(msg)
        if self.offset < 0:
            msg = f"page offset must be >= 0, got {self.offset}"
            raise ValueError(msg)


@dataclass(frozen=True)
class PageResult:
    """One page of inspections (newest first) and the total number matching the filters."""

    items: tuple[InspectionRecord, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True)
class MachineInfo:
    serial: str
    model: str | None
    firmware: str | None
    first_seen: datetime


@dataclass(frozen=True)
class ReviewInfo:
    id: str
    inspection_id: str
    reviewer: str
    porosity_grade: int | None
    spatter_grade: int | None
    comment: str
    evidence_seq: int | None
    created_at: datetime
    marks: tuple[Mapping[str, Any], ...] | None = None
    """The reviewer's marks (:mod:`inspection.store.marks`); None = the review drew no marks."""
    not_gradable_reason: str | None = None
    """Set when the reviewer flagged the photo not gradable."""
    audit: bool = False
    """The inspection was a random audit sample (not flagged) when it was reviewed."""

    @property
    def not_gradable(self) -> bool:
        return self.not_gradable_reason is not None


@dataclass(frozen=True)
class RecommendationInfo:
    id: str
    inspection_id: str
    machine_serial: str | None
    rule_id: str
    parameter: str
    current_value: float | None
    new_value: float | None
    payload: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key's metadata; ``key_hash`` is the stored hash, never the key."""

    id: str
    name: str
    role: str
    key_hash: str
    station_id: str | None
    created_at: datetime
    revoked_at: datetime | None = field(default=None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _inspection(row: InspectionRow) -> InspectionRecord:
    return InspectionRecord(
        id=row.id,
        created_at=as_utc(row.created_at),
        image_sha256=row.image_sha256,
        station_id=row.station_id,
        machine_serial=row.machine_serial,
        part_id=row.part_id,
        seam_id=row.seam_id,
        operator_id=row.operator_id,
        process=row.process,
        material=row.material,
        thickness_mm=row.thickness_mm,
        params=dict(row.params or {}),
        porosity_grade=row.porosity_grade,
        spatter_grade=row.spatter_grade,
        needs_review=bool(row.needs_review),
        result=dict(row.result),
        model_name=row.model_name,
        model_version=row.model_version,
        model_sha256=row.model_sha256,
        evidence_seq=row.evidence_seq,
        idempotency_key=row.idempotency_key,
    )


def _machine(row: Machine) -> MachineInfo:
    return MachineInfo(row.serial, row.model, row.firmware, as_utc(row.first_seen))


def review_info(row: ReviewRow) -> ReviewInfo:
    """The :class:`ReviewInfo` of a review row."""
    return ReviewInfo(
        row.id,
        row.inspection_id,
        row.reviewer,
        row.porosity_grade,
        row.spatter_grade,
        row.comment,
        row.evidence_seq,
        as_utc(row.created_at),
        None if row.marks is None else tuple(dict(m) for m in row.marks),
        row.not_gradable_reason,
        bool(row.audit),
    )


def _api_key(row: ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(
        row.id,
        row.name,
        row.role,
        row.key_hash,
        row.station_id,
        as_utc(row.created_at),
        None if row.revoked_at is None else as_utc(row.revoked_at),
    )


# ---- images and machines --------------------------------------------------------------------------


def add_image(session: Session, put: PutResult, width: int | None, height: int | None) -> None:
    """Insert the ``images`` row for a stored file unless it is already there."""
    if session.get(StoredImageRow, put.sha256) is None:
        session.add(
            StoredImageRow(
                sha256=put.sha256,
                bytes=put.size,
                width=width,
                height=height,
                media_type=put.media_type,
                path=put.relpath,
                created_at=utcnow(),
            )
        )
        session.flush()


def upsert_machine(
    session: Session, serial: str, *, firmware: str | None, model: str | None, seen_at: datetime
) -> None:
    """Create the machine on first sight; keep ``firmware``/``model`` at their latest known values."""
    row = session.get(Machine, serial)
    if row is None:
        session.add(Machine(serial=serial, model=model, firmware=firmware, first_seen=seen_at))
    else:
        if firmware is not None:
            row.firmware = firmware
        if model is not None:
            row.model = model
    session.flush()


def get_machine(session: Session, serial: str) -> MachineInfo | None:
    row = session.get(Machine, serial)
    return None if row is None else _machine(row)


def list_machines(session: Session) -> list[MachineInfo]:
    return [_machine(r) for r in session.scalars(select(Machine).order_by(Machine.serial))]


# ---- inspections ----------------------------------------------------------------------------------


def add_inspection(
    session: Session,
    result: InspectionResult,
    *,
    inspection_id: str,
    created_at: datetime,
    evidence_seq: int | None,
    idempotency_key: str | None = None,
) -> InspectionRecord:
    """Insert one inspection row from ``result`` (the image row must exist already)."""
    check_sha256(result.image_sha256, "result.image_sha256")
    ctx = result.context
    data = result.to_dict()
    row = InspectionRow(
        id=inspection_id,
        created_at=created_at,
        image_sha256=result.image_sha256,
        station_id=ctx.station_id if ctx else None,
        machine_serial=ctx.machine_serial if ctx else None,
        part_id=ctx.part_id if ctx else None,
        seam_id=ctx.seam_id if ctx else None,
        operator_id=ctx.operator_id if ctx else None,
        process=ctx.process if ctx else None,
        material=ctx.material if ctx else None,
        thickness_mm=ctx.thickness_mm if ctx else None,
        params=dict(data["context"]["params"]) if ctx else {},
        porosity_grade=result.porosity.grade if result.porosity else None,
        spatter_grade=result.spatter.grade if result.spatter else None,
        needs_review=result.needs_review,
        result=data,
        model_name=result.model.name,
        model_version=result.model.version,
        model_sha256=result.model.sha256,
        evidence_seq=evidence_seq,
        idempotency_key=idempotency_key,
    )
    session.add(row)
    session.flush()
    return _inspection(row)


def get_inspection(session: Session, inspection_id: str) -> InspectionRecord | None:
    row = session.get(InspectionRow, inspection_id)
    return None if row is None else _inspection(row)


def find_by_idempotency_key(session: Session, key: str) -> InspectionRecord | None:
    row = session.scalars(select(InspectionRow).where(InspectionRow.idempotency_key == key)).first()
    return None if row is None else _inspection(row)


def list_inspections(session: Session, filters: InspectionFilter, page: Page) -> PageResult:
    """Inspections matching ``filters``, newest first (ties by id), and how many match in total."""
    conds: list[Any] = []
    for name in ("machine_serial", "station_id", "part_id", "seam_id", "needs_review"):
        value = getattr(filters, name)
        if value is not None:
            conds.append(getattr(InspectionRow, name) == value)
    if filters.since is not None:
        conds.append(InspectionRow.created_at >= as_utc(filters.since))
    if filters.until is not None:
        conds.append(InspectionRow.created_at < as_utc(filters.until))
    if filters.min_porosity_grade is not None:
        conds.append(InspectionRow.porosity_grade >= filters.min_porosity_grade)
    if filters.min_spatter_grade is not None:
        conds.append(InspectionRow.spatter_grade >= filters.min_spatter_grade)
    total = session.scalar(select(func.count()).select_from(InspectionRow).where(*conds)) or 0
    rows = session.scalars(
        select(InspectionRow)
        .where(*conds)
        .order_by(InspectionRow.created_at.desc(), InspectionRow.id)
        .limit(page.limit)
        .offset(page.offset)
    )
    return PageResult(tuple(_inspection(r) for r in rows), int(total), page.limit, page.offset)


# ---- reviews --------------------------------------------------------------------------------------


def add_review(
    session: Session,
    *,
    inspection_id: str,
    reviewer: str,
    porosity_grade: int | None,
    spatter_grade: int | None,
    comment: str = "",
    evidence_seq: int | None = None,
    review_id: str | None = None,
    created_at: datetime | None = None,
    marks: Sequence[Mapping[str, Any]] | None = None,
    not_gradable_reason: str | None = None,
    audit: bool = False,
    grading: GradingConfig | None = None,
) -> ReviewInfo:
    """Insert a review of an existing inspection (``LookupError`` when the inspection is unknown).

    ``marks`` are validated against the inspection's photo size and findings
    (:func:`inspection.store.marks.parse_marks`, ``MarkError`` naming the field), and the grades
    against the marks with ``grading``'s count thresholds (None = the defaults;
    :func:`inspection.store.marks.grades_with_marks`: a porosity grade equal to the binned pore
    marks, taken from them when missing; a spatter grade at least the binned spatter marks). A
    review with a ``not_gradable_reason`` carries no grades and no marks.
    """
    _check_grade(porosity_grade, "porosity_grade")
    _check_grade(spatter_grade, "spatter_grade")
    if not reviewer.strip():
        msg = "reviewer must be a non-empty name"
        raise ValueError(msg)
    inspection = session.get(InspectionRow, inspection_id)
    if inspection is None:
        msg = f"no inspection with id {inspection_id!r} to review"
        raise LookupError(msg)
    if not_gradable_reason is not None:
        check_not_gradable(not_gradable_reason, porosity_grade, spatter_grade, marks)
    stored_marks = None
    if marks is not None:
        result = inspection.result or {}
        stored_marks = parse_marks(
            list(marks),
            width=result.get("width"),
            height=result.get("height"),
            n_findings=len(result.get("findings") or ()),
        )
        if not_gradable_reason is None:
            porosity_grade, spatter_grade = grades_with_marks(
                porosity_grade, spatter_grade, stored_marks, grading
            )
    row = ReviewRow(
        id=review_id or new_id(),
        inspection_id=inspection_id,
        reviewer=reviewer,
        porosity_grade=porosity_grade,
        spatter_grade=spatter_grade,
        comment=comment,
        evidence_seq=evidence_seq,
        created_at=created_at or utcnow(),
        marks=stored_marks,
        not_gradable_reason=not_gradable_reason,
        audit=bool(audit),
    )
    session.add(row)
    session.flush()
    return review_info(row)


MAX_REASON_CHARS = 1000


def check_not_gradable(
    reason: str,
    porosity_grade: int | None,
    spatter_grade: int | None,
    marks: Sequence[Mapping[str, Any]] | None,
) -> None:
    """A not-gradable review needs a reason (1..1000 characters) and has no grades and no marks."""
    if not isinstance(reason, str) or not reason.strip():
        msg = "not_gradable_reason must say why the photo cannot be graded (non-empty text)"
        raise ValueError(msg)
    if len(reason) > MAX_REASON_CHARS:
        msg = f"not_gradable_reason has {len(reason)} characters; at most {MAX_REASON_CHARS}"
        raise ValueError(msg)
    if porosity_grade is not None or spatter_grade is not None:
        msg = "a review flagged not_gradable has no grades (porosity_grade and spatter_grade must be None)"
        raise ValueError(msg)
    if marks:
        msg = "a review flagged not_gradable has no marks"
        raise ValueError(msg)


def set_review_evidence(session: Session, review_id: str, evidence_seq: int) -> None:
    """Link a review to its evidence record."""
    row = session.get(ReviewRow, review_id)
    if row is None:
        msg = f"no review with id {review_id!r}"
        raise LookupError(msg)
    row.evidence_seq = evidence_seq
    session.flush()


def list_reviews(session: Session, inspection_id: str) -> list[ReviewInfo]:
    rows = session.scalars(
        select(ReviewRow).where(ReviewRow.inspection_id == inspection_id).order_by(ReviewRow.created_at)
    )
    return [review_info(r) for r in rows]


# ---- recommendations ------------------------------------------------------------------------------


def _opt_float(value: float | None, name: str) -> float | None:
    if value is not None and not math.isfinite(value):
        msg = f"{name} must be a finite number or None, got {value!r}"
        raise ValueError(msg)
    return value


def add_recommendation(
    session: Session,
    *,
    inspection_id: str,
    rule_id: str,
    parameter: str,
    current_value: float | None,
    new_value: float | None,
    machine_serial: str | None = None,
    payload: Mapping[str, Any] | None = None,
    created_at: datetime | None = None,
) -> str:
    """Insert a recommendation made for an inspection; returns its id."""
    rid = new_id()
    session.add(
        RecommendationRow(
            id=rid,
            inspection_id=inspection_id,
            machine_serial=machine_serial,
            rule_id=rule_id,
            parameter=parameter,
            current_value=_opt_float(current_value, "current_value"),
            new_value=_opt_float(new_value, "new_value"),
            payload=dict(payload or {}),
            created_at=created_at or utcnow(),
        )
    )
    session.flush()
    return rid


def _recommendation_info(r: RecommendationRow) -> RecommendationInfo:
    return RecommendationInfo(
        r.id,
        r.inspection_id,
        r.machine_serial,
        r.rule_id,
        r.parameter,
        r.current_value,
        r.new_value,
        dict(r.payload or {}),
        as_utc(r.created_at),
    )


def list_recommendations(session: Session, machine_serial: str | None = None) -> list[RecommendationInfo]:
    stmt = select(RecommendationRow).order_by(RecommendationRow.created_at, RecommendationRow.id)
    if machine_serial is not None:
        stmt = stmt.where(RecommendationRow.machine_serial == machine_serial)
    return [_recommendation_info(r) for r in session.scalars(stmt)]


ID_CHUNK = 500
"""Ids per ``IN (...)`` query (well below every backend's bound-parameter limit)."""


def id_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """``ids`` in lists of at most :data:`ID_CHUNK`, for ``IN (...)`` queries."""
    for start in range(0, len(ids), ID_CHUNK):
        yield list(ids[start : start + ID_CHUNK])


def get_recommendations(session: Session, ids: Sequence[str]) -> list[RecommendationInfo]:
    """The recommendations with these ids (unknown ids are left out), oldest first."""
    out: list[RecommendationInfo] = []
    for chunk in id_chunks(ids):
        stmt = select(RecommendationRow).where(RecommendationRow.id.in_(chunk))
        out.extend(_recommendation_info(r) for r in session.scalars(stmt))
    out.sort(key=lambda r: (r.created_at, r.id))
    return out


def add_recommendation_outcome(
    session: Session,
    *,
    recommendation_id: str,
    applied_inspection_id: str | None,
    before_rate: float | None,
    after_rate: float | None,
    p_value: float | None,
    worked: bool | None,
    computed_at: datetime | None = None,
) -> str:
    """Insert the measured outcome of a recommendation; returns its id."""
    for name, value in (("before_rate", before_rate), ("after_rate", after_rate), ("p_value", p_value)):
        if _opt_float(value, name) is not None and not 0.0 <= float(value) <= 1.0:  # type: ignore[arg-type]
            msg = f"{name} must be in [0, 1] or None, got {value!r}"
            raise ValueError(msg)
    oid = new_id()
    session.add(
        RecommendationOutcomeRow(
            id=oid,
            recommendation_id=recommendation_id,
            applied_inspection_id=applied_inspection_id,
            before_rate=before_rate,
            after_rate=after_rate,
            p_value=p_value,
            worked=worked,
            computed_at=computed_at or utcnow(),
        )
    )
    session.flush()
    return oid


# ---- API keys -------------------------------------------------------------------------------------


def add_api_key(
    session: Session, *, name: str, role: str, key_hash: str, station_id: str | None = None
) -> ApiKeyInfo:
    """Insert an API key hash. ``role`` must be one of :data:`API_ROLES`; stations need a station id."""
    if role not in API_ROLES:
        msg = f"unknown API key role {role!r}; valid: {', '.join(API_ROLES)}"
        raise ValueError(msg)
    if role == "station" and not station_id:
        msg = "a station API key needs a station_id"
        raise ValueError(msg)
    if not key_hash:
        msg = "key_hash must be non-empty (store a hash of the key, never the key)"
        raise ValueError(msg)
    row = ApiKeyRow(
        id=new_id(), name=name, role=role, key_hash=key_hash, station_id=station_id, created_at=utcnow()
    )
    session.add(row)
    session.flush()
    return _api_key(row)


def find_api_key(session: Session, key_hash: str) -> ApiKeyInfo | None:
    row = session.scalars(
        select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
    ).first()
    return None if row is None else _api_key(row)


def revoke_api_key(session: Session, key_id: str, when: datetime | None = None) -> bool:
    row = session.get(ApiKeyRow, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = when or utcnow()
    session.flush()
    return True


def list_api_keys(session: Session) -> list[ApiKeyInfo]:
    return [_api_key(r) for r in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]
