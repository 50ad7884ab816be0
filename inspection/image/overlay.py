"""Overlays for evidence bundles and the UI: drawing is separate from inference.

:func:`draw_overlay` returns a NEW image (the input is never modified) with, in this order: the
defect heatmaps blended in (porosity red, spatter cyan), the localised seam region (yellow
outline), each finding as a circle of its diameter (porosity red, spatter cyan) and a header band
with the grades and the review flag.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from inspection.config import GradingConfig
from inspection.types import Defect, Image, InspectionResult, check_image, grade_from_count

COLOURS: dict[Defect, tuple[int, int, int]] = {
    Defect.POROSITY: (255, 40, 40),
    Defect.SPATTER: (0, 220, 255),
}
SEAM_COLOUR = (255, 220, 0)
REVIEW_COLOUR = (255, 140, 0)


def _scaled(size: int) -> float:
    return max(0.75, size / 900.0)


def blend_heatmaps(image: Image, heatmaps: npt.NDArray[np.floating], alpha: float = 0.5) -> Image:
    """Blend ``heatmaps`` ``(2, H, W)`` in [0, 1] onto a copy of ``image`` ``(H, W, 3)``."""
    check_image(image)
    if heatmaps.ndim != 3 or heatmaps.shape[0] != 2 or heatmaps.shape[1:] != image.shape[:2]:
        msg = f"heatmaps must have shape (2, {image.shape[0]}, {image.shape[1]}), got {heatmaps.shape}"
        raise ValueError(msg)
    out = image.astype(np.float32)
    for channel, defect in enumerate((Defect.POROSITY, Defect.SPATTER)):
        weight = np.clip(heatmaps[channel].astype(np.float32), 0.0, 1.0)[..., None] * alpha
        colour = np.array(COLOURS[defect], np.float32)
        out = out * (1.0 - weight) + colour * weight
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_overlay(
    image: Image,
    result: InspectionResult,
    heatmaps: npt.NDArray[np.floating] | None = None,
    *,
    alpha: float = 0.5,
    header: bool = True,
) -> Image:
    """Draw ``result`` (and optionally its ``heatmaps``) onto a copy of ``image``."""
    check_image(image)
    if (image.shape[1], image.shape[0]) != (result.width, result.height):
        msg = (
            f"image is {image.shape[1]} x {image.shape[0]} but the result is for "
            f"{result.width} x {result.height}"
        )
        raise ValueError(msg)
    out = blend_heatmaps(image, heatmaps, alpha) if heatmaps is not None else image.copy()
    scale = _scaled(max(result.width, result.height))
    thick = max(1, round(2 * scale))
    if result.seam is not None:
        pts = np.round(result.seam.corners()).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], isClosed=True, color=SEAM_COLOUR, thickness=thick, lineType=cv2.LINE_AA)
    for f in result.findings:
        radius = max(3, round(f.diameter_px / 2 + 2 * scale))
        cv2.circle(out, (round(f.x), round(f.y)), radius, COLOURS[f.kind], thick, lineType=cv2.LINE_AA)
    if header:
        out = _header(out, result, scale)
    return out


POROSITY_THRESHOLDS: tuple[int, int, int] = GradingConfig().porosity_thresholds
"""Pore counts that reach grades 1, 2 and 3 (the default ``GradingConfig.porosity_thresholds``)."""


def grade_range(
    grade: int, thresholds: tuple[int, int, int] = POROSITY_THRESHOLDS, noun: str = "pore"
) -> str:
    """The counts a grade stands for, in words: ``"no pores"``, ``"1 pore"``, ``"2-3 pores"``,
    ``"4 or more pores"`` with the default thresholds."""
    if not 0 <= grade <= len(thresholds):
        msg = f"grade must be in 0..{len(thresholds)}, got {grade}"
        raise ValueError(msg)
    if grade == 0:
        return f"no {noun}s"
    lo = thresholds[grade - 1]
    if grade == len(thresholds):
        return f"{lo} or more {noun}s"
    hi = thresholds[grade] - 1
    if lo == hi:
        return f"{lo} {noun}" + ("" if lo == 1 else "s")
    return f"{lo}-{hi} {noun}s"


def porosity_caption(result: InspectionResult, thresholds: tuple[int, int, int] = POROSITY_THRESHOLDS) -> str:
    """The porosity line a welder reads: ``"2 pores found (grade 2, 2-3 pores)"``; names the
    head's grade separately when it is not the count's (an older result, or the rule switched off)."""
    head = result.porosity
    if head is None:
        return "porosity: not graded"
    n = sum(1 for f in result.findings if f.kind is Defect.POROSITY)
    found = "no pores found" if n == 0 else f"{n} pore{'s' if n != 1 else ''} found"
    text = f"{found} (grade {head.grade}, {grade_range(head.grade, thresholds)})"
    if grade_from_count(n, thresholds) != head.grade:
        text = f"{found}; porosity grade {head.grade} ({grade_range(head.grade, thresholds)})"
    return text


def _head_text(result: InspectionResult, defect: Defect) -> str:
    head = result.head(defect)
    if head is None:
        return f"{defect.value}: not graded"
    return f"{defect.value}: {head.grade} ({head.confidence:.0%})"


def _header(image: Image, result: InspectionResult, scale: float) -> Image:
    lines = [f"{porosity_caption(result)}   {_head_text(result, Defect.SPATTER)}"]
    if result.needs_review:
        lines.append("REVIEW: " + ", ".join(result.review_reasons))
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = 0.6 * scale
    line_h = round(26 * scale)
    band = np.zeros((line_h * len(lines) + round(8 * scale), image.shape[1], 3), np.uint8)
    band[:] = (30, 30, 30)
    for i, text in enumerate(lines):
        colour = REVIEW_COLOUR if i > 0 else (255, 255, 255)
        org = (round(8 * scale), round(line_h * (i + 1) - 6 * scale + 4 * scale))
        cv2.putText(band, text, org, font, fs, colour, max(1, round(scale * 1.5)), cv2.LINE_AA)
    return np.ascontiguousarray(np.vstack([band, image]))
