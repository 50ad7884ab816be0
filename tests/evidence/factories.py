"""Test factories: synthetic inspection results, image bytes, stores and ledgers (no model, no torch)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from inspection.evidence.keys import Signer
from inspection.evidence.ledger import Ledger
from inspection.store import Store
from inspection.types import (
    Defect,
    Finding,
    FindingVerdict,
    HeadResult,
    InspectionContext,
    InspectionResult,
    ModelInfo,
    QualityVerdict,
    SeamRegion,
    StandardsReport,
)

MODEL = ModelInfo("weldnet", "1.0.0", "ab" * 32)
CONFIG_SHA = "cd" * 32


def png_bytes(seed: int, size: tuple[int, int] = (24, 16)) -> bytes:
    """A tiny distinct PNG per ``seed`` (width x height = ``size``)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _probs(grade: int) -> tuple[float, ...]:
    p = [0.05, 0.05, 0.05, 0.05]
    p[grade] = 0.85
    return tuple(p)


def make_result(
    image: bytes,
    *,
    serial: str | None = "M-100",
    porosity: int = 0,
    spatter: int = 0,
    params: Mapping[str, Any] | None = None,
    station: str = "st-1",
    part: str = "P-1",
    thickness_mm: float = 2.0,
    passed: bool = True,
    size: tuple[int, int] = (24, 16),
) -> InspectionResult:
    """An :class:`InspectionResult` for ``image`` with the given grades and context."""
    findings = tuple(
        Finding(
            Defect.POROSITY,
            x=3.0 + i,
            y=8.0,
            diameter_px=1.5,
            score=0.9,
            along_seam=0.1 * i,
            diameter_mm=0.31,
        )
        for i in range(porosity)
    )
    verdict = FindingVerdict(
        imperfection="2017",
        name="surface pore",
        standard="ISO 13919-1:2019",
        clause="Table 1, 1.6",
        formula="d <= 0.3 s, max 2 mm",
        measured=0.31 if porosity else None,
        limit=0.6,
        unit="mm",
        level_reached="B" if passed else "below D",
        passed=passed,
    )
    standards = StandardsReport(
        assessable=True,
        standard="ISO 13919-1:2019",
        target_level="C",
        level_reached="B" if passed else "below D",
        verdicts=(verdict,),
        table_version="2019.1",
    )
    ctx = InspectionContext(
        process="laser",
        material="stainless",
        thickness_mm=thickness_mm,
        mm_per_px=0.05,
        machine_serial=serial,
        firmware="fw-2.3.1",
        station_id=station,
        operator_id="op-7",
        part_id=part,
        seam_id="S1",
        params=dict(params or {"laser_power_w": 1500.0, "speed_mm_s": 25.0}),
    )
    return InspectionResult(
        image_sha256=hashlib.sha256(image).hexdigest(),
        width=size[0],
        height=size[1],
        quality=QualityVerdict(True, (), {"sharpness": 55.5}),
        seam=SeamRegion((12.0, 8.0), 20.0, 6.0, 0.0, 0.93),
        porosity=HeadResult(porosity, _probs(porosity), 0.85),
        spatter=HeadResult(spatter, _probs(spatter), 0.85),
        findings=findings,
        standards=standards,
        needs_review=False,
        review_reasons=(),
        model=MODEL,
        timings_ms={"model": 1.25},
        ood_score=0.12,
        context=ctx,
    )


class StepClock:
    """A deterministic clock: each call advances by ``step``."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(hours=1)) -> None:
        self.now = start or datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        value = self.now
        self.now = self.now + self.step
        return value


def open_store(tmp: Path, url: str | None = None) -> Store:
    """A store in ``tmp`` (SQLite unless ``url`` is given)."""
    return Store.open(url or f"sqlite:///{tmp / 'weld.db'}", tmp / "images")


def make_ledger(store: Store, station: str = "st-1", clock: StepClock | None = None) -> Ledger:
    return Ledger(store, Signer.generate(station), clock=clock or StepClock())


WINDOW = {"laser_power_w": (900.0, 2000.0), "speed_mm_s": (10.0, 40.0)}
"""The fake expert-database window used by :func:`window_compliance`."""


def window_compliance(ctx: Mapping[str, Any]) -> Any:
    """A stand-in for the expert database: inside when every windowed parameter is in :data:`WINDOW`."""
    from inspection.evidence.report import Compliance

    params = ctx.get("params") or {}
    if not params:
        return Compliance("unknown", "no welding parameters recorded")
    out = [
        f"{k} {params[k]:g} outside {lo:g}-{hi:g}"
        for k, (lo, hi) in WINDOW.items()
        if k in params and not lo <= float(params[k]) <= hi
    ]
    return Compliance("outside" if out else "inside", "; ".join(out))


def build_history(
    store: Store, ledger: Ledger, *, serial: str = "LW-4471", n: int = 48, seed: int = 7
) -> list[str]:
    """A realistic synthetic history: ``n`` inspections of ``serial`` over ~12 weeks, interleaved with
    another machine's, defects rising in the last weeks with settings inside the window (a failing
    machine), a few outside-window welds, and two human reviews. Returns the inspection ids of ``serial``."""
    from inspection.evidence.ledger import record_inspection, record_review

    rng = np.random.default_rng(seed)
    ids: list[str] = []
    for i in range(n):
        frac = i / max(n - 1, 1)
        outside = i in (6, 19)
        params = {
            "laser_power_w": 2300.0 if outside else float(round(rng.normal(1500, 80))),
            "speed_mm_s": 25.0,
            "gas_flow_l_min": 20.0,
            "gas_type": "argon",
        }
        p_defect = 0.05 + 0.8 * max(0.0, frac - 0.6) / 0.4
        porosity = (
            int(rng.choice([2, 3])) if (outside or rng.random() < p_defect) else int(rng.integers(0, 2))
        )
        spatter = int(rng.integers(0, 3)) if outside else int(rng.integers(0, 2))
        img = png_bytes(10_000 + i)
        result = make_result(img, serial=serial, porosity=porosity, spatter=spatter, params=params,
                             part=f"BR-{1200 + i}", passed=porosity < 3)  # fmt: skip
        iid, _ = record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
        ids.append(iid)
        if i % 3 == 1:  # another machine on the same line, so the chain interleaves
            other = png_bytes(20_000 + i)
            record_inspection(
                store, ledger, make_result(other, serial="LW-9000"), other, config_sha256=CONFIG_SHA
            )
    record_review(store, ledger, inspection_id=ids[-2], reviewer="q.lee", porosity_grade=3, spatter_grade=1,
                  comment="confirmed: pore cluster at seam start")  # fmt: skip
    record_review(store, ledger, inspection_id=ids[3], reviewer="q.lee", porosity_grade=1, spatter_grade=0)
    return ids


def append_worker(args: tuple[str, str, int, int]) -> int:
    """Process entry point for the concurrency test: open the store at ``url`` and record ``n``
    inspections with a fresh station key. Returns how many were recorded."""
    from inspection.evidence.ledger import record_inspection

    url, images, worker, n = args
    store = Store.open(url, Path(images))
    ledger = Ledger(store, Signer.generate(f"st-{worker}"))
    try:
        for i in range(n):
            img = png_bytes(100_000 * (worker + 1) + i)
            record_inspection(
                store, ledger, make_result(img, station=f"st-{worker}"), img, config_sha256=CONFIG_SHA
            )
    finally:
        store.close()
    return n
