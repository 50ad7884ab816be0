"""Overlays: a new image with heatmaps, seam and findings; golden-image test.

Regenerate the golden file after an intended change with ``UPDATE_GOLDEN=1 pytest tests/test_overlay.py``
and look at it before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.data.synth import generate_weld
from inspection.image.overlay import draw_overlay
from inspection.types import (
    Defect,
    Finding,
    HeadResult,
    InspectionResult,
    ModelInfo,
    QualityVerdict,
    SeamRegion,
)

GOLDEN = Path(__file__).parents[1] / "golden" / "overlay.png"


def _scene() -> tuple[np.ndarray, InspectionResult, np.ndarray]:
    image = generate_weld(
        np.random.default_rng(5), width=400, height=300, n_pores=2, n_spatter=4, angle_deg=10.0
    ).image
    yy, xx = np.mgrid[0:300, 0:400].astype(np.float32)
    heat = np.zeros((2, 300, 400), np.float32)
    heat[0] = np.exp(-((xx - 150) ** 2 + (yy - 140) ** 2) / (2 * 12.0**2))
    heat[1] = np.exp(-((xx - 300) ** 2 + (yy - 200) ** 2) / (2 * 8.0**2))
    result = InspectionResult(
        image_sha256="0" * 64,
        width=400,
        height=300,
        quality=QualityVerdict(ok=True),
        seam=SeamRegion(center=(200.0, 150.0), length=380.0, width=90.0, angle_deg=10.0, score=0.9),
        porosity=HeadResult(grade=2, probs=(0.1, 0.2, 0.6, 0.1), confidence=0.6),
        spatter=HeadResult(grade=1, probs=(0.2, 0.7, 0.05, 0.05), confidence=0.7),
        findings=(
            Finding(Defect.POROSITY, 150.0, 140.0, 14.0, 0.9, 0.35),
            Finding(Defect.SPATTER, 300.0, 200.0, 8.0, 0.8, 0.75),
        ),
        standards=None,
        needs_review=True,
        review_reasons=("abstain:porosity",),
        model=ModelInfo("m", "1.0.0", "0" * 64),
        timings_ms={},
    )
    return image, result, heat


def test_overlay_matches_golden_image() -> None:
    image, result, heat = _scene()
    drawn = draw_overlay(image, result, heat)
    if os.environ.get("UPDATE_GOLDEN"):
        cv2.imwrite(str(GOLDEN), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    golden = cv2.cvtColor(cv2.imread(str(GOLDEN)), cv2.COLOR_BGR2RGB)
    assert drawn.shape == golden.shape
    diff = np.abs(drawn.astype(np.int16) - golden.astype(np.int16))
    # anti-aliased text may differ by a few levels between OpenCV builds; shapes must not move
    assert float(diff.mean()) < 1.0
    assert float((diff.max(axis=2) > 40).mean()) < 0.002


def test_overlay_never_mutates_its_input() -> None:
    image, result, heat = _scene()
    before, heat_before = image.copy(), heat.copy()
    drawn = draw_overlay(image, result, heat)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(heat, heat_before)
    assert drawn is not image
    assert drawn.shape[1] == image.shape[1] and drawn.shape[0] > image.shape[0]  # header band added


def test_overlay_draws_findings_in_their_colours() -> None:
    image, result, _ = _scene()
    drawn = draw_overlay(image, result, None, header=False)
    assert drawn.shape == image.shape
    ring = drawn[140, 150 + 7 + 1 : 150 + 7 + 5]  # the porosity circle's ring, right of centre
    assert (ring[:, 0].astype(int) - ring[:, 2].astype(int)).max() > 60  # red dominates


@pytest.mark.parametrize(
    ("heat_shape", "fragment"),
    [((2, 10, 10), "heatmaps must have shape"), ((3, 300, 400), "heatmaps must have shape")],
)
def test_overlay_refuses_mismatched_maps(heat_shape: tuple[int, int, int], fragment: str) -> None:
    image, result, _ = _scene()
    with pytest.raises(ValueError, match=fragment):
        draw_overlay(image, result, np.zeros(heat_shape, np.float32))


def test_overlay_refuses_result_of_another_image() -> None:
    image, result, _ = _scene()
    with pytest.raises(ValueError, match="result is for 400 x 300"):
        draw_overlay(image[:100], result)
