"""Image quality gate: is this photo sharp and exposed well enough (and is a seam visible)?

All measures are taken on a grayscale copy (ITU-R BT.601 luma, 0..255) shrunk so that its long
side is at most ``QualityConfig.work_size`` px, which makes them comparable across image sizes
(smaller images are measured as they are; enlarging them would fake blur):

* ``sharpness``: variance of the 3x3 Laplacian (grey levels squared). It is an absolute measure,
  so a severely underexposed image usually also reads as ``blurred``.
* ``mean``: mean grey level (0..255).
* ``dark_fraction`` / ``bright_fraction``: fraction of pixels clipped dark (<= ``DARK_LEVEL``) or
  bright (>= ``BRIGHT_LEVEL``).
* ``seam_score``: the seam localiser's score, when given.

Reasons (stable codes): ``blurred`` (sharpness < ``blur_min_sharpness``), ``underexposed``
(mean < ``dark_max_mean`` or dark_fraction > ``clipped_max_fraction``), ``overexposed``
(mean > ``bright_min_mean`` or bright_fraction > ``clipped_max_fraction``), ``no_seam``
(seam_score < ``seam_min_score``).

Calibration of the defaults (``QualityConfig``), on the 613 + 835 real photos
(``../shared/data/weld-porosity`` and ``weld-photos-unlabelled``), measured the way the pipeline
sees them (JPEGs decoded at the pipeline's reduced scale, see ``inspection.image.prepare``), at
``work_size`` 320: sharpness of the real photos ranged 11 .. 6983 (1st percentile 42), the same
photos blurred with a Gaussian of sigma 6 px per 800 px and re-encoded ranged 1.8 .. 17 (99.7 %
below 12), hence the threshold 12; real means ranged 23 .. 246 and the photos darkened x0.1 all
had mean < 25, hence 30; mean > 240 or more than 70 % clipped pixels marks overexposure. With
these defaults 1431 / 1448 real photos (98.8 %) pass (6 underexposed, 6 overexposed, 4 no seam, 1
blurred), 1444 / 1448 blurred and every darkened copy fail. (The earlier calibration at 512 px,
full decodes, threshold 6: 99.2 % pass and every blurred copy failed; 320 px lets 800 px photos be
decoded at half size, see docs/performance.md.)
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from inspection.config import QualityConfig
from inspection.types import Image, QualityVerdict, check_image, check_luma, luma

DARK_LEVEL = 5
"""Grey levels <= this count as clipped dark."""

BRIGHT_LEVEL = 250
"""Grey levels >= this count as clipped bright."""

REASONS: tuple[str, ...] = ("blurred", "underexposed", "overexposed", "no_seam")
"""Every reason code :func:`assess_quality` may give, in the order it reports them."""


def work_gray(image: Image, work_size: int, gray: np.ndarray | None = None) -> np.ndarray:
    """Grayscale float32 copy ``(h, w)`` of ``image``, shrunk (never enlarged) to long side ``work_size``.

    ``gray``: :func:`inspection.types.luma` of ``image`` when the caller already has it."""
    check_image(image)
    gray = luma(image) if gray is None else check_luma(gray, image)
    h, w = gray.shape
    scale = work_size / max(h, w)
    if scale < 1.0:  # only ever shrink: upscaling would blur small images
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray.astype(np.float32)


def measure(image: Image, cfg: QualityConfig, gray: np.ndarray | None = None) -> dict[str, float]:
    """The quality measures of ``image`` (see the module docstring for their definitions).

    ``gray``: :func:`inspection.types.luma` of ``image`` when the caller already has it."""
    g = work_gray(image, cfg.work_size, gray)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
    return {
        "sharpness": float(lap.var()),
        "mean": float(g.mean()),
        "dark_fraction": np.count_nonzero(g <= DARK_LEVEL) / g.size,
        "bright_fraction": np.count_nonzero(g >= BRIGHT_LEVEL) / g.size,
    }


def assess_quality(
    image: Image, cfg: QualityConfig, seam_score: float | None = None, *, gray: np.ndarray | None = None
) -> QualityVerdict:
    """Decide whether ``image`` (RGB uint8 ``(H, W, 3)``) is fit for grading. Pure; no mutation.

    ``seam_score`` in [0, 1] is the seam localiser's confidence (omit it to skip the seam check);
    ``gray``: :func:`inspection.types.luma` of ``image`` when the caller already has it.
    Returns a :class:`QualityVerdict` whose ``reasons`` are in :data:`REASONS` order and whose
    ``measures`` hold every value a reason was decided on.
    """
    if seam_score is not None and not (math.isfinite(seam_score) and 0.0 <= seam_score <= 1.0):
        msg = f"seam_score must be a number in [0, 1] or None, got {seam_score!r}"
        raise ValueError(msg)
    m = measure(image, cfg, gray)
    reasons: list[str] = []
    if m["sharpness"] < cfg.blur_min_sharpness:
        reasons.append("blurred")
    if m["mean"] < cfg.dark_max_mean or m["dark_fraction"] > cfg.clipped_max_fraction:
        reasons.append("underexposed")
    if m["mean"] > cfg.bright_min_mean or m["bright_fraction"] > cfg.clipped_max_fraction:
        reasons.append("overexposed")
    if seam_score is not None:
        m["seam_score"] = float(seam_score)
        if seam_score < cfg.seam_min_score:
            reasons.append("no_seam")
    return QualityVerdict(ok=not reasons, reasons=tuple(reasons), measures=m)
