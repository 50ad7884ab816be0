"""Small builders for recommendation tests (synthetic InspectionResults, no images)."""

from __future__ import annotations

from collections.abc import Sequence

from inspection.types import (
    GRADE_LEVELS,
    Defect,
    Finding,
    HeadResult,
    InspectionContext,
    InspectionResult,
    ModelInfo,
    QualityVerdict,
)


def head(grade: int | None, confidence: float = 0.9) -> HeadResult | None:
    if grade is None:
        return None
    rest = (1.0 - confidence) / (GRADE_LEVELS - 1)
    probs = tuple(confidence if g == grade else rest for g in range(GRADE_LEVELS))
    return HeadResult(grade=grade, probs=probs, confidence=confidence)


def pores(positions: Sequence[float]) -> tuple[Finding, ...]:
    """Pores at the given ``along_seam`` positions (0 = seam start, 1 = end)."""
    return tuple(Finding(Defect.POROSITY, 10.0 + 100 * p, 20.0, 6.0, 0.9, p) for p in positions)


def result(
    porosity: int | None = 0,
    spatter: int | None = 0,
    findings: Sequence[Finding] = (),
    context: InspectionContext | None = None,
) -> InspectionResult:
    return InspectionResult(
        image_sha256="0" * 64,
        width=320,
        height=64,
        quality=QualityVerdict(ok=True),
        seam=None,
        porosity=head(porosity),
        spatter=head(spatter),
        findings=tuple(findings),
        standards=None,
        needs_review=False,
        review_reasons=(),
        model=ModelInfo("test", "0", "0" * 64),
        timings_ms={},
        context=context,
    )


ALONG_WHOLE_SEAM = (0.2, 0.35, 0.5, 0.65, 0.8)
AT_ENDS = (0.02, 0.05, 0.95, 0.97)

LASER_PARAMS: dict[str, float | str] = {
    "laser_power_w": 1500.0,
    "speed_mm_s": 25.0,
    "wobble_width_mm": 2.0,
    "wobble_freq_hz": 100.0,
    "defocus_mm": 0.0,
    "gas_type": "argon",
    "gas_flow_l_min": 20.0,
    "gas_preflow_s": 0.3,
    "gas_postflow_s": 1.0,
    "ramp_up_ms": 100.0,
    "ramp_down_ms": 200.0,
    "wire_feed_m_min": 0.8,
}
