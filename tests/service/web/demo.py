"""Demo data for the browser test and the screenshots: a machine's two-week history with a drift,
a recommendation that was applied and worked, plus real uploads through the service (synthetic
``weld_jpeg`` photos in CI; the bundled ``data/samples`` photos for the screenshots)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np

from inspection.data.synth import generate_weld
from inspection.evidence.keys import load_signer
from inspection.evidence.ledger import Ledger, record_inspection
from inspection.recommend.tracking import store_recommendation, update_outcomes
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from tests.evidence.factories import CONFIG_SHA, make_result
from tests.service.helpers import STATION_META

HISTORY_SERIAL = "LW-4471"
UPLOAD_SERIAL = "M-1"  # the machine of the uploads (the walkthrough filters on it)
SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
SPEED_REC = {
    "status": "change",
    "message": "reduce travel speed to let gas escape before the pool freezes",
    "material": "stainless",
    "thickness_mm": 2.0,
    "pattern": "distributed",
    "items": [
        {"rule_id": "porosity.speed_down", "defect": "porosity", "parameter": "speed_mm_s", "current": 25.0,
         "new": 22.0, "unit": "mm/s", "why": "porosity grade 2, distributed along the seam",
         "expected_effect": "fewer pores", "confidence": 0.6},
    ],
}  # fmt: skip


def weld_jpeg(seed: int, *, width: int = 480, height: int = 320, pores: int = 3, spatter: int = 5) -> bytes:
    """A synthetic weld photo as JPEG bytes."""
    weld = generate_weld(
        np.random.default_rng(seed),
        width=width,
        height=height,
        n_pores=pores,
        n_spatter=spatter,
        angle_deg=8.0,
    )
    ok, enc = cv2.imencode(
        ".jpg", np.ascontiguousarray(weld.image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    if not ok:
        msg = "could not encode the demo JPEG"
        raise RuntimeError(msg)
    return enc.tobytes()


def seed_history(settings: ServiceSettings, *, days: int = 14, per_day: int = 6, seed: int = 3) -> None:
    """``days`` x ``per_day`` inspections of :data:`HISTORY_SERIAL` ending yesterday: porosity drifts
    up from day 7; the speed recommendation issued on day 9 is applied from day 10 and works."""
    rng = np.random.default_rng(seed)
    start = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=days)
    times = iter([start + timedelta(days=d, minutes=90 * k) for d in range(days) for k in range(per_day)])
    with Store.open(settings.db_url, settings.images_dir) as store:
        ledger = Ledger(store, load_signer(settings.keys_dir), clock=lambda: next(times))
        trigger = None
        for d in range(days):
            for k in range(per_day):
                speed = 25.0 if d < 10 else 22.0
                p_bad = 0.1 if d < 7 else (0.65 if d < 10 else 0.1)
                porosity = int(rng.choice([1, 2, 3])) if rng.random() < p_bad else 0
                spatter = int(rng.random() < 0.3)
                img = weld_jpeg(
                    40_000 + d * 100 + k, width=160, height=120, pores=porosity, spatter=spatter * 3
                )
                result = make_result(
                    img, serial=HISTORY_SERIAL, porosity=porosity, spatter=spatter, station="S1",
                    part=f"BR-{1000 + d * per_day + k}",
                    params={"laser_power_w": 1500.0, "speed_mm_s": speed},
                    passed=porosity < 3, size=(160, 120),
                )  # fmt: skip
                if porosity == 3 or (d, k) == (days - 1, 0):
                    result = replace(result, needs_review=True, review_reasons=("abstain:porosity",))
                rec = SPEED_REC if (d, k) == (9, per_day - 1) else None
                iid, _ = record_inspection(
                    store, ledger, result, img, config_sha256=CONFIG_SHA, recommendation=rec
                )
                if rec is not None:
                    trigger = iid
        if trigger is not None:
            store_recommendation(store, trigger, HISTORY_SERIAL, SPEED_REC)
            update_outcomes(store, HISTORY_SERIAL)


def upload_demo(base_url: str, station_key: str, n: int = 4) -> list[str]:
    """Upload ``n`` synthetic photos through the running service's API; their inspection ids."""
    ids = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        for i in range(n):
            meta: dict[str, Any] = {
                **STATION_META,
                "machine_serial": UPLOAD_SERIAL,
                "part_id": f"P-{200 + i}",
            }
            r = http.post(
                "/v1/inspections",
                headers={"Authorization": f"Bearer {station_key}"},
                files={"image": (f"seam{i}.jpg", weld_jpeg(700 + i), "image/jpeg")},
                data={"metadata": json.dumps(meta)},
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
    return ids


# context.csv columns that are InspectionMetadata fields; the rest are welding parameters.
# station_id is left out (the uploading key's station is used) and the machine is UPLOAD_SERIAL.
_SAMPLE_META_FIELDS = (
    "process",
    "material",
    "firmware",
    "operator_id",
    "part_id",
    "seam_id",
    "quality_level",
)
_SAMPLE_FLOAT_FIELDS = ("thickness_mm", "mm_per_px")
_SAMPLE_SKIP = ("image", "machine_serial", "station_id")


def _number_or_text(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def sample_uploads(samples: Path = SAMPLES, n: int = 4) -> list[tuple[str, bytes, dict[str, Any]]]:
    """The first ``n`` bundled sample photos with their upload metadata from ``context.csv``."""
    with (samples / "context.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    uploads = []
    for row in rows:
        meta: dict[str, Any] = {"machine_serial": UPLOAD_SERIAL, "params": {}}
        for key, value in row.items():
            if key in _SAMPLE_SKIP or value in ("", None):
                continue
            if key in _SAMPLE_META_FIELDS:
                meta[key] = value
            elif key in _SAMPLE_FLOAT_FIELDS:
                meta[key] = float(value)
            else:
                meta["params"][key] = _number_or_text(value)
        uploads.append((row["image"], (samples / "images" / row["image"]).read_bytes(), meta))
    return uploads


def upload_samples(base_url: str, station_key: str, n: int = 4) -> list[str]:
    """Upload the first ``n`` bundled sample photos (for the screenshots); their inspection ids."""
    ids = []
    with httpx.Client(base_url=base_url, timeout=300) as http:
        for name, data, meta in sample_uploads(n=n):
            r = http.post(
                "/v1/inspections",
                headers={"Authorization": f"Bearer {station_key}"},
                files={"image": (name, data, "image/jpeg")},
                data={"metadata": json.dumps(meta)},
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
    return ids
