"""Helpers for the service tests: synthetic seam JPEGs, keys, and a service set-up in a tmp dir."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspection.data.synth import generate_weld
from inspection.evidence.keys import init_key
from inspection.evidence.ledger import Ledger, record_inspection
from inspection.service.auth import add_key
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from inspection.types import Defect, Finding, HeadResult
from tests.evidence.factories import CONFIG_SHA, make_result, png_bytes

STATION_META: dict[str, Any] = {
    "machine_serial": "M-1",
    "part_id": "P-1",
    "seam_id": "S-1",
    "operator_id": "op-7",
    "process": "laser",
    "material": "stainless",
    "thickness_mm": 2.0,
    "mm_per_px": 0.1,
    "quality_level": "C",
    "params": {"power_w": 2000.0, "speed_mm_s": 40.0},
}


def seam_jpeg(seed: int, size: int = 96) -> bytes:
    """A small synthetic weld photo (JPEG bytes), distinct per ``seed``."""
    weld = generate_weld(np.random.default_rng(seed), width=size, height=size, n_pores=2, n_spatter=2)
    ok, enc = cv2.imencode(
        ".jpg", np.ascontiguousarray(weld.image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    if not ok:
        msg = "could not encode the test JPEG"
        raise RuntimeError(msg)
    return enc.tobytes()


@dataclass(frozen=True)
class Keys:
    """Plain API keys made for a test service."""

    s1: str
    s2: str
    auditor: str
    admin: str


def make_settings(root: Path, model_dir: Path, db_url: str | None = None, **kw: Any) -> ServiceSettings:
    """Settings for a service in ``root`` (SQLite there unless ``db_url``), with one signing key."""
    keys_dir = root / "keys"
    if not keys_dir.is_dir() or not list(keys_dir.glob("*.key")):
        init_key(keys_dir, station_id="test-station")
    return ServiceSettings(
        db_url=db_url or f"sqlite:///{root / 'store.db'}",
        images_dir=root / "images",
        keys_dir=keys_dir,
        model_dir=model_dir,
        **kw,
    )


def make_keys(settings: ServiceSettings) -> Keys:
    """Create station (S1, S2), auditor and admin keys in the settings' store."""
    with Store.open(settings.db_url, settings.images_dir) as store:
        return Keys(
            s1=add_key(store, "station-1", "station", "S1")[0],
            s2=add_key(store, "station-2", "station", "S2")[0],
            auditor=add_key(store, "auditor", "auditor")[0],
            admin=add_key(store, "admin", "admin")[0],
        )


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(
    client: Any,
    key: str,
    data: bytes,
    meta: dict[str, Any] | None = None,
    *,
    content_type: str = "image/jpeg",
    idempotency_key: str | None = None,
    filename: str = "seam.jpg",
) -> Any:
    """POST /v1/inspections with ``data`` and ``meta`` (defaults to :data:`STATION_META`)."""
    headers = auth(key)
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return client.post(
        "/v1/inspections",
        headers=headers,
        files={"image": (filename, data, content_type)},
        data={"metadata": json.dumps(STATION_META if meta is None else meta)},
    )


PHOTO_W, PHOTO_H = 320, 160
"""Size of the photos :func:`photo_with_findings` records."""


def photo_with_findings(
    store: Store, ledger: Ledger, seed: int, *, needs_review: bool = False, reasons: tuple[str, ...] = (),
    porosity: HeadResult | None = None, serial: str = "M-7", station: str = "st-1",
) -> str:  # fmt: skip
    """Record a PHOTO_W x PHOTO_H inspection (porosity grade 2, spatter 0) with two porosity
    findings and one spatter finding; its id."""
    size = (PHOTO_W, PHOTO_H)
    img = png_bytes(seed, size=size)
    base = make_result(img, porosity=2, serial=serial, size=size, station=station)
    findings = (
        Finding(Defect.POROSITY, x=80.0, y=60.0, diameter_px=20.0, score=0.9, along_seam=0.2),
        Finding(Defect.POROSITY, x=200.0, y=90.0, diameter_px=10.0, score=0.7, along_seam=0.6),
        Finding(Defect.SPATTER, x=300.0, y=20.0, diameter_px=6.0, score=0.6, along_seam=0.9),
    )
    result = dataclasses.replace(
        base, findings=findings, needs_review=needs_review, review_reasons=reasons,
        porosity=porosity or base.porosity,
    )  # fmt: skip
    iid, _ = record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
    return iid
