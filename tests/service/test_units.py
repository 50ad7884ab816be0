"""Pure parts of the service: trend buckets, metrics text, API-key helpers, settings validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inspection.service.auth import (
    KEY_PREFIX,
    AuthError,
    ForbiddenError,
    Principal,
    generate_key,
    hash_key,
    key_from_headers,
    require_role,
)
from inspection.service.metrics import Metrics
from inspection.service.settings import ServiceSettings
from inspection.service.trend import TrendPoint, trend

T0 = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)


def _points(grades: list[tuple[int | None, int | None]], step: timedelta) -> list[TrendPoint]:
    return [TrendPoint(T0 + i * step, p, s, p is None) for i, (p, s) in enumerate(grades)]


def test_trend_by_day_splits_at_utc_midnight() -> None:
    pts = _points([(0, 0), (2, 1), (1, 0), (None, None), (3, 3)], timedelta(hours=1))  # 22:00 .. 02:00
    days = trend(list(reversed(pts)), bucket="day")
    assert [d.label for d in days] == ["2026-11-24", "2026-11-25"]
    assert [d.inspections for d in days] == [2, 3]
    first, second = days
    assert first.porosity_rate == 0.5 and first.mean_porosity_grade == 1.0 and first.spatter_rate == 0.5
    assert second.graded == 2 and second.porosity_rate == 1.0 and second.mean_porosity_grade == 2.0
    assert second.needs_review_rate == pytest.approx(1 / 3, abs=1e-4)


@pytest.mark.parametrize(("n", "size", "sizes"), [(5, 2, [2, 2, 1]), (4, 4, [4]), (3, 10, [3]), (0, 3, [])])
def test_trend_by_count(n: int, size: int, sizes: list[int]) -> None:
    pts = _points([(i % 4, 0) for i in range(n)], timedelta(minutes=1))
    buckets = trend(pts, bucket="count", size=size)
    assert [b.inspections for b in buckets] == sizes
    assert sum(b.inspections for b in buckets) == n
    if buckets:
        assert buckets[0].label == f"1-{sizes[0]}"


def test_trend_without_grades_has_no_rates() -> None:
    (bucket,) = trend(_points([(None, None)], timedelta(minutes=1)), bucket="count", size=5)
    assert bucket.graded == 0 and bucket.porosity_rate is None and bucket.mean_spatter_grade is None


@pytest.mark.parametrize(("bucket", "size"), [("week", 5), ("count", 0)])
def test_trend_rejects_bad_arguments(bucket: str, size: int) -> None:
    with pytest.raises(ValueError, match="bucket"):
        trend([], bucket=bucket, size=size)


def _samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_inference_histogram_is_cumulative() -> None:
    m = Metrics(buckets=[0.1, 0.5])
    for v in (0.05, 0.1, 0.3, 2.0):
        m.inference(v)
    got = _samples(m.render())
    name = "weldinspect_inference_seconds"
    assert got[f'{name}_bucket{{le="0.1"}}'] == 2
    assert got[f'{name}_bucket{{le="0.5"}}'] == 3
    assert got[f'{name}_bucket{{le="+Inf"}}'] == 4
    assert got[f"{name}_count"] == 4 and got[f"{name}_sum"] == pytest.approx(2.45)


def test_metrics_render_escapes_labels_and_rejects_unknown_status() -> None:
    m = Metrics()
    m.request("GET", '/a"b', 200)
    m.request("GET", '/a"b', 200)
    assert 'route="/a\\"b",status="200"} 2.0' in m.render()
    with pytest.raises(ValueError, match="created"):
        m.inspection("exploded")
    with pytest.raises(ValueError, match="strictly increasing"):
        Metrics(buckets=[0.5, 0.1])


def test_each_app_has_its_own_registry_and_exposes_only_its_families() -> None:
    a, b = Metrics(), Metrics()  # a second registry with the same names must not clash
    a.request("GET", "/healthz", 200)
    a.inspection("created")
    got = _samples(a.render())
    assert got['weldinspect_http_requests_total{method="GET",route="/healthz",status="200"}'] == 1
    assert got['weldinspect_inspections_total{status="created"}'] == 1
    assert got['weldinspect_inspections_total{status="failed"}'] == 0  # every outcome, 0 until seen
    assert _samples(b.render())['weldinspect_inspections_total{status="created"}'] == 0
    families = {name.split("{")[0] for name in got}
    assert families == {
        "weldinspect_http_requests_total",
        "weldinspect_inspections_total",
        *(f"weldinspect_inference_seconds_{s}" for s in ("bucket", "count", "sum")),
    }  # no *_created series, no process or platform collectors


def test_generated_keys_are_distinct_and_hashed() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50 and all(k.startswith(KEY_PREFIX) and len(k) == len(KEY_PREFIX) + 43 for k in keys)
    k = next(iter(keys))
    assert hash_key(k) != k and len(hash_key(k)) == 64 and hash_key(k) == hash_key(k)


@pytest.mark.parametrize(
    ("authorization", "x_api_key", "expected"),
    [
        ("Bearer abc", None, "abc"),
        ("bearer  abc ", None, "abc"),
        (None, "xyz", "xyz"),
        ("Bearer abc", "xyz", "xyz"),
    ],
)
def test_key_from_headers(authorization: str | None, x_api_key: str | None, expected: str) -> None:
    assert key_from_headers(authorization, x_api_key) == expected


@pytest.mark.parametrize(
    ("authorization", "x_api_key"), [(None, None), ("Basic abc", None), ("Bearer ", None)]
)
def test_key_from_headers_refuses(authorization: str | None, x_api_key: str | None) -> None:
    with pytest.raises(AuthError):
        key_from_headers(authorization, x_api_key)


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [("station", "station", True), ("auditor", "station", False), ("station", "auditor", False),
     ("auditor", "auditor", True), ("admin", "auditor", True), ("admin", "station", True)],
)  # fmt: skip
def test_require_role(role: str, needed: str, allowed: bool) -> None:
    p = Principal("k", role, "S1" if role == "station" else None)
    if allowed:
        assert require_role(p, needed) is p
    else:
        with pytest.raises(ForbiddenError, match=needed):
            require_role(p, needed)


@pytest.mark.parametrize(
    ("principal", "station", "readable"),
    [(Principal("a", "station", "S1"), "S1", True), (Principal("a", "station", "S1"), "S2", False),
     (Principal("a", "station", "S1"), None, False), (Principal("b", "auditor"), "S2", True)],
)  # fmt: skip
def test_can_read(principal: Principal, station: str | None, readable: bool) -> None:
    assert principal.can_read(station) is readable


@pytest.mark.parametrize(
    ("field", "value"), [("db_url", ""), ("max_upload_bytes", 0), ("max_pixels", -1), ("inference_slots", 0)]
)
def test_settings_refuse_bad_values(field: str, value: object) -> None:
    kw: dict[str, object] = {"db_url": "sqlite:///x.db", "images_dir": Path("i"), "keys_dir": Path("k")}
    kw[field] = value
    with pytest.raises(ValueError, match=field if field != "db_url" else "database URL"):
        ServiceSettings(**kw)  # type: ignore[arg-type]
