"""The prepare stage: decode, quality gate, seam localisation, domain gate and tiles (no model, no torch).

:func:`prepare` is pure CPU and picklable in and out, so batch scoring can run it in threads or in
worker processes; this module imports only the light stages (ingest, preprocess, quality, domain), so a
worker process starts in a fraction of a second. :class:`inspection.pipeline.Inspector` runs the
model stage on its output.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inspection.config import DomainConfig, IngestConfig, PreprocessConfig, QualityConfig
from inspection.image.domain import assess_domain
from inspection.image.ingest import Decoded, decode_reduced, image_sha256, read_image_bytes
from inspection.image.preprocess import Preprocessed, preprocess, seam_energy
from inspection.image.quality import assess_quality
from inspection.types import DomainVerdict, Image, InspectionContext, QualityVerdict, check_image, luma

ImageInput = Image | bytes | Path | str
"""What ``inspect`` accepts: an RGB array (the contract), encoded bytes, or a file path."""


@dataclass(frozen=True)
class PrepareConfig:
    """The configuration :func:`prepare` needs (picklable, so worker processes can receive it)."""

    ingest: IngestConfig
    quality: QualityConfig
    preprocess: PreprocessConfig
    domain: DomainConfig = field(default_factory=DomainConfig)


@dataclass(frozen=True, eq=False)
class Prepared:
    """An image after decode, quality gate, preprocessing and domain gate, ready for the model.

    ``pre`` is None when the quality gate or the domain gate failed (the image is not graded);
    ``domain`` is None when the domain gate did not run (quality gate failed, or it is disabled).
    """

    name: str
    sha256: str
    width: int
    height: int
    quality: QualityVerdict
    pre: Preprocessed | None
    context: InspectionContext | None
    timings_ms: dict[str, float] = field(default_factory=dict)
    domain: DomainVerdict | None = None


def elapsed_ms(t0: float) -> float:
    """Milliseconds since ``t0`` (a ``time.perf_counter()`` reading), rounded to microseconds."""
    return round((time.perf_counter() - t0) * 1000.0, 3)


def analysis_min_size(cfg: PrepareConfig) -> tuple[int, int]:
    """``(short, long)`` side in pixels below which decoding smaller would lose what the pipeline uses.

    * The quality gate measures on a copy whose long side is ``quality.work_size``.
    * The seam strip is ``strip_height`` pixels across a crop of at least ``(1 + 2 * margin) *
      min_width_fraction`` of the short side, so a short side of ``strip_height / ((1 + 2 *
      margin) * min_width_fraction)`` still gives the strip at least one source pixel per strip
      pixel (a crop clamped at the image edge may be up to ``(1 + 2m) / (1 + m)`` narrower).
    """
    p = cfg.preprocess
    short = math.ceil(p.strip_height / ((1.0 + 2.0 * p.margin) * p.min_width_fraction))
    return short, cfg.quality.work_size


def prepare(
    image: ImageInput,
    cfg: PrepareConfig,
    *,
    name: str | None = None,
    context: InspectionContext | None = None,
    sha256: str | None = None,
) -> Prepared:
    """Decode (if needed), run the quality gate, preprocess and run the domain gate on one image.

    ``sha256``: the caller's hash of ``image`` when it is encoded bytes it has already hashed
    (batch scoring hashes every file first to skip those already scored); otherwise computed here.

    Raises :class:`inspection.image.ingest.IngestError` (naming the file and the reason) when the input
    cannot be decoded.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    decoded: Decoded | None = None
    if isinstance(image, np.ndarray):
        arr = check_image(image, name or "image")
        sha = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()
        label = name or "<array>"
    else:
        if isinstance(image, bytes):
            data = image
            label = name or "<bytes>"
        else:
            label = name or str(image)
            data = read_image_bytes(Path(image), cfg.ingest)
        sha = sha256 if sha256 is not None and isinstance(image, bytes) else image_sha256(data)
        min_short, min_long = analysis_min_size(cfg)
        decoded = decode_reduced(data, name=label, cfg=cfg.ingest, min_short=min_short, min_long=min_long)
        arr = decoded.image
    height, width = (decoded.height, decoded.width) if decoded is not None else arr.shape[:2]
    timings["decode"] = elapsed_ms(t0)

    t0 = time.perf_counter()
    gray = luma(arr)  # both the seam search and the quality gate start from the grey levels
    energy = seam_energy(
        arr, cfg.preprocess.work_size, (height, width), gray=gray
    )  # seam search and domain gate
    pre = preprocess(arr, cfg.preprocess, (height, width), gray=gray, energy=energy)
    timings["preprocess"] = elapsed_ms(t0)

    t0 = time.perf_counter()
    quality = assess_quality(arr, cfg.quality, seam_score=pre.seam_score, gray=gray)
    timings["quality"] = elapsed_ms(t0)

    domain = None
    if quality.ok and cfg.domain.enabled:  # a photo unfit to judge gets no domain verdict
        t0 = time.perf_counter()
        domain = assess_domain(arr, pre.region, cfg.domain, (height, width), gray=gray, energy=energy)
        timings["domain"] = elapsed_ms(t0)

    return Prepared(
        name=label,
        sha256=sha,
        width=int(width),
        height=int(height),
        quality=quality,
        pre=pre if quality.ok and (domain is None or domain.ok) else None,
        context=context,
        timings_ms=timings,
        domain=domain,
    )
