"""Machine trends: defect rates and mean grades per day or per N inspections (pure functions).

A "defect" is a grade >= 1 (any pore / any spatter). Ungraded inspections (quality gate failed)
count in ``inspections`` but not in the rates or means (``graded`` says how many did).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

BUCKETS = ("day", "count")


@dataclass(frozen=True)
class TrendPoint:
    """One inspection's grades as the trend needs them (``created_at`` is aware UTC)."""

    created_at: datetime
    porosity_grade: int | None
    spatter_grade: int | None
    needs_review: bool


@dataclass(frozen=True)
class TrendBucket:
    """Aggregates over one bucket. Rates are fractions in [0, 1]; None when nothing was graded."""

    label: str  # "2026-11-25" for days, "1-50" (1-based positions) for count buckets
    start: datetime
    end: datetime
    inspections: int
    graded: int
    porosity_rate: float | None
    spatter_rate: float | None
    mean_porosity_grade: float | None
    mean_spatter_grade: float | None
    needs_review_rate: float


def _rate(values: Sequence[int]) -> float | None:
    return None if not values else round(sum(1 for v in values if v >= 1) / len(values), 4)


def _mean(values: Sequence[int]) -> float | None:
    return None if not values else round(sum(values) / len(values), 4)


def _bucket(label: str, points: Sequence[TrendPoint]) -> TrendBucket:
    por = [p.porosity_grade for p in points if p.porosity_grade is not None]
    spa = [p.spatter_grade for p in points if p.spatter_grade is not None]
    return TrendBucket(
        label=label,
        start=points[0].created_at,
        end=points[-1].created_at,
        inspections=len(points),
        graded=len(por),
        porosity_rate=_rate(por),
        spatter_rate=_rate(spa),
        mean_porosity_grade=_mean(por),
        mean_spatter_grade=_mean(spa),
        needs_review_rate=round(sum(p.needs_review for p in points) / len(points), 4),
    )


def trend(points: Sequence[TrendPoint], *, bucket: str = "day", size: int = 50) -> list[TrendBucket]:
    """Group ``points`` (any order) oldest first into UTC days or runs of ``size`` inspections."""
    if bucket not in BUCKETS:
        msg = f"unknown trend bucket {bucket!r}; valid: {', '.join(BUCKETS)}"
        raise ValueError(msg)
    if size < 1:
        msg = f"bucket size must be >= 1, got {size}"
        raise ValueError(msg)
    ordered = sorted(points, key=lambda p: p.created_at)
    if bucket == "count":
        return [
            _bucket(f"{i + 1}-{i + len(ordered[i : i + size])}", ordered[i : i + size])
            for i in range(0, len(ordered), size)
        ]
    days: dict[str, list[TrendPoint]] = {}
    for p in ordered:
        days.setdefault(p.created_at.date().isoformat(), []).append(p)
    return [_bucket(day, pts) for day, pts in days.items()]
