"""Read-only queries the service needs beyond :mod:`inspection.store.repo` (kept here, not there)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, text

from inspection.service.trend import TrendPoint
from inspection.store import Store
from inspection.store.models import InspectionRow, as_utc


def ping(store: Store) -> None:
    """Run ``SELECT 1`` (raises when the database is unreachable)."""
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def trend_points(
    store: Store,
    serial: str,
    *,
    station_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[TrendPoint]:
    """Grades of machine ``serial``'s inspections (optionally of one station, in ``[since, until)``)."""
    stmt = select(
        InspectionRow.created_at,
        InspectionRow.porosity_grade,
        InspectionRow.spatter_grade,
        InspectionRow.needs_review,
    ).where(InspectionRow.machine_serial == serial)
    if station_id is not None:
        stmt = stmt.where(InspectionRow.station_id == station_id)
    if since is not None:
        stmt = stmt.where(InspectionRow.created_at >= as_utc(since))
    if until is not None:
        stmt = stmt.where(InspectionRow.created_at < as_utc(until))
    with store.session() as s:
        rows = s.execute(stmt.order_by(InspectionRow.created_at)).all()
    return [TrendPoint(as_utc(r[0]), r[1], r[2], bool(r[3])) for r in rows]


def count_inspections(store: Store) -> int:
    """How many inspection rows the store holds."""
    return store.list_inspections().total
