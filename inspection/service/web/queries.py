"""Read-only queries the dashboard needs beyond the store's repository and the service's queries.

Also the retraining export: :func:`review_manifest` turns reviewed inspections into
``annotations.jsonl``-style records (see :mod:`inspection.data.manifest`). The review queue is in
:mod:`inspection.service.web.queue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from inspection.store import Store, repo
from inspection.store.images import relative_path
from inspection.store.models import InspectionRow, Machine, ReviewRow, StoredImageRow, as_utc

MANIFEST_SOURCE = "weldinspect-review"


def latest_reviews(store: Store, inspection_ids: list[str]) -> dict[str, repo.ReviewInfo]:
    """The latest review of each of ``inspection_ids`` that has one (the final grades)."""
    if not inspection_ids:
        return {}
    out: dict[str, repo.ReviewInfo] = {}
    with store.session() as s:
        rows = s.scalars(
            select(ReviewRow)
            .where(ReviewRow.inspection_id.in_(inspection_ids))
            .order_by(ReviewRow.created_at, ReviewRow.id)
        )
        for row in rows:  # later reviews overwrite earlier ones
            out[row.inspection_id] = repo.review_info(row)
    return out


@dataclass(frozen=True)
class MachineSummary:
    """One machine with its inspection count, last inspection time and defect rates (fractions)."""

    serial: str
    model: str | None
    firmware: str | None
    inspections: int
    last_at: datetime | None
    porosity_rate: float | None
    spatter_rate: float | None


def machine_summaries(store: Store, *, station_id: str | None = None) -> list[MachineSummary]:
    """Every machine (with ``station_id``: only those inspected at that station), by serial."""
    por = func.sum(case((InspectionRow.porosity_grade >= 1, 1), else_=0))
    spa = func.sum(case((InspectionRow.spatter_grade >= 1, 1), else_=0))
    stmt = (
        select(
            InspectionRow.machine_serial,
            func.count(),
            func.max(InspectionRow.created_at),
            por,
            func.count(InspectionRow.porosity_grade),
            spa,
            func.count(InspectionRow.spatter_grade),
        )
        .where(InspectionRow.machine_serial.is_not(None))
        .group_by(InspectionRow.machine_serial)
    )
    if station_id is not None:
        stmt = stmt.where(InspectionRow.station_id == station_id)
    with store.session() as s:
        stats = {r[0]: r[1:] for r in s.execute(stmt).all()}
        machines = list(s.scalars(select(Machine).order_by(Machine.serial)))
        out = []
        for m in machines:
            if m.serial not in stats:
                if station_id is not None:
                    continue
                out.append(MachineSummary(m.serial, m.model, m.firmware, 0, None, None, None))
                continue
            n, last, d_por, n_por, d_spa, n_spa = stats[m.serial]
            out.append(
                MachineSummary(
                    m.serial,
                    m.model,
                    m.firmware,
                    int(n),
                    None if last is None else as_utc(last),
                    int(d_por) / n_por if n_por else None,
                    int(d_spa) / n_spa if n_spa else None,
                )
            )
    return out


@dataclass(frozen=True)
class ParamChange:
    """The welding parameters from one inspection on, and which of them changed (``changed``)."""

    at: datetime
    inspection_id: str
    params: Mapping[str, Any]
    changed: frozenset[str]


def param_history(
    store: Store, serial: str, *, station_id: str | None = None, limit: int = 200
) -> tuple[list[ParamChange], list[str]]:
    """Parameter changes of machine ``serial`` over time (oldest first) and all parameter names.

    Only inspections whose ``params`` differ from the previous inspection's are listed (the first
    is always listed); at most the last ``limit`` changes.
    """
    stmt = select(InspectionRow.created_at, InspectionRow.id, InspectionRow.params).where(
        InspectionRow.machine_serial == serial
    )
    if station_id is not None:
        stmt = stmt.where(InspectionRow.station_id == station_id)
    with store.session() as s:
        rows = s.execute(stmt.order_by(InspectionRow.created_at, InspectionRow.id)).all()
    changes: list[ParamChange] = []
    names: set[str] = set()
    prev: dict[str, Any] | None = None
    for at, iid, params in rows:
        cur = dict(params or {})
        names |= set(cur)
        if prev is None or cur != prev:
            changed = (
                set(cur) if prev is None else {k for k in set(cur) | set(prev) if cur.get(k) != prev.get(k)}
            )
            changes.append(ParamChange(as_utc(at), iid, cur, frozenset(changed)))
        prev = cur
    return changes[-limit:], sorted(names)


def image_media_type(store: Store, sha256: str) -> str | None:
    """The stored media type of an image, or None when the store has no such image row."""
    with store.session() as s:
        row = s.get(StoredImageRow, sha256)
        return None if row is None else row.media_type


def review_manifest(store: Store) -> list[dict[str, Any]]:
    """One ``annotations.jsonl`` record per reviewed inspection (its latest review), oldest first.

    ``image`` is the image's path relative to the store's images directory (``ab/cd/<sha256>``:
    put the manifest in that directory, or rewrite the paths); ``sha256`` its content hash;
    ``grades`` the reviewer's grades (only those set); ``objects`` the reviewer's box marks
    (``{"label", "box"}``; empty when the review drew none); ``marks`` all of the review's marks
    (boxes and points, :mod:`inspection.store.marks`) only when the reviewer edited marks, so a
    missing ``marks`` means "not marked" and ``marks: []`` means "marked: no pores, no spatter";
    ``not_gradable`` the reason when the reviewer flagged the photo; ``audit`` true for a random
    audit sample; ``group`` is the part id (or the inspection id) so that a split keeps photos of
    one part together. Also: ``inspection_id``, ``review_id``, ``reviewer``, ``reviewed_at``,
    ``machine_serial``, ``material``, ``thickness_mm``, ``mm_per_px`` and ``params`` where known.
    """
    with store.session() as s:
        rows = s.execute(
            select(ReviewRow, InspectionRow, StoredImageRow)
            .join(InspectionRow, InspectionRow.id == ReviewRow.inspection_id)
            .join(StoredImageRow, StoredImageRow.sha256 == InspectionRow.image_sha256)
            .order_by(ReviewRow.created_at, ReviewRow.id)
        ).all()
        latest: dict[str, tuple[ReviewRow, InspectionRow, StoredImageRow]] = {}
        for review, insp, image in rows:
            latest.pop(insp.id, None)  # re-insert so the order follows the latest review
            latest[insp.id] = (review, insp, image)
        out = []
        for review, insp, image in latest.values():
            grades = {
                k: v
                for k, v in (("porosity", review.porosity_grade), ("spatter", review.spatter_grade))
                if v is not None
            }
            ctx = (insp.result or {}).get("context") or {}
            record: dict[str, Any] = {
                "image": relative_path(insp.image_sha256),
                "sha256": insp.image_sha256,
                "width": image.width if image.width is not None else insp.result.get("width"),
                "height": image.height if image.height is not None else insp.result.get("height"),
                "group": insp.part_id or insp.id,
                "objects": [
                    {"label": m["label"], "box": list(m["box"])} for m in review.marks or () if "box" in m
                ],
                "grades": grades,
                "source": MANIFEST_SOURCE,
                "inspection_id": insp.id,
                "review_id": review.id,
                "reviewer": review.reviewer,
                "reviewed_at": as_utc(review.created_at).isoformat(),
            }
            extra = {
                "machine_serial": insp.machine_serial,
                "material": insp.material,
                "thickness_mm": insp.thickness_mm,
                "mm_per_px": ctx.get("mm_per_px"),
                "params": dict(insp.params) if insp.params else None,
                "marks": None if review.marks is None else [dict(m) for m in review.marks],
                "not_gradable": review.not_gradable_reason,
                "audit": True if review.audit else None,
            }
            record.update({k: v for k, v in extra.items() if v is not None})
            out.append(record)
    return out
