"""The image contract and result types."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspection.types import (
    Box,
    Defect,
    Finding,
    FindingVerdict,
    HeadResult,
    ImageContractError,
    InspectionContext,
    InspectionResult,
    ModelInfo,
    QualityVerdict,
    SeamRegion,
    StandardsReport,
    check_image,
)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([[1, 2, 3]], "numpy.ndarray"),
        (np.zeros((4, 4, 3), np.float32), "uint8"),
        (np.zeros((4, 4), np.uint8), "(H, W, 3)"),
        (np.zeros((4, 4, 4), np.uint8), "(H, W, 3)"),
        (np.zeros((0, 4, 3), np.uint8), "at least 1 x 1"),
    ],
)
def test_check_image_refuses(value: object, fragment: str) -> None:
    with pytest.raises(ImageContractError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_image(value, "img")


def test_check_image_accepts_one_pixel() -> None:
    img = np.zeros((1, 1, 3), np.uint8)
    assert check_image(img) is img


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"x0": 5, "y0": 0, "x1": 1, "y1": 1}, "x0 <= x1"),
        ({"x0": 0, "y0": float("nan"), "x1": 1, "y1": 1}, "finite"),
    ],
)
def test_box_validation(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Box(**kwargs)


def test_seam_region_corners_horizontal() -> None:
    region = SeamRegion(center=(50.0, 20.0), length=100.0, width=10.0, angle_deg=0.0)
    corners = region.corners()
    assert corners.min(axis=0).tolist() == [0.0, 15.0]
    assert corners.max(axis=0).tolist() == [100.0, 25.0]


def test_seam_region_corners_vertical() -> None:
    region = SeamRegion(center=(50.0, 50.0), length=100.0, width=10.0, angle_deg=90.0)
    lo, hi = region.corners().min(axis=0), region.corners().max(axis=0)
    np.testing.assert_allclose(lo, [45.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(hi, [55.0, 100.0], atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"thickness_mm": -1.0}, "thickness_mm"),
        ({"mm_per_px": 0.0}, "mm_per_px"),
        ({"quality_level": "A"}, "B, C, D"),
    ],
)
def test_context_validation(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        InspectionContext(**kwargs)  # type: ignore[arg-type]


def test_context_from_dict_names_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown context field\(s\) \['thicknes'\]"):
        InspectionContext.from_dict({"thicknes": 3})


def test_head_result_validation() -> None:
    with pytest.raises(ValueError, match="grade"):
        HeadResult(grade=4, probs=(0.25,) * 4, confidence=0.25)
    with pytest.raises(ValueError, match="4 entries"):
        HeadResult(grade=1, probs=(0.5, 0.5), confidence=0.5)


def _result() -> InspectionResult:
    verdict = FindingVerdict(
        imperfection="2017",
        name="surface pore",
        standard="ISO 5817:2023",
        clause="1.3",
        formula="d <= 0.3 s",
        measured=0.4,
        limit=0.9,
        unit="mm",
        level_reached="C",
        passed=True,
        unconfirmed=True,
        finding_indices=(0,),
    )
    return InspectionResult(
        image_sha256="ab" * 32,
        width=640,
        height=480,
        quality=QualityVerdict(ok=True, reasons=(), measures={"sharpness": 55.0}),
        seam=SeamRegion(center=(320.0, 240.0), length=600.0, width=80.0, angle_deg=12.5, score=0.8),
        porosity=HeadResult(grade=1, probs=(0.1, 0.7, 0.15, 0.05), confidence=0.7),
        spatter=HeadResult(grade=0, probs=(0.9, 0.05, 0.03, 0.02), confidence=0.9),
        findings=(Finding(Defect.POROSITY, 100.0, 120.0, 8.0, 0.8, 0.2, 0.4, 5.0, 6.0),),
        standards=StandardsReport(
            assessable=True,
            standard="ISO 5817:2023",
            target_level="C",
            level_reached="C",
            verdicts=(verdict,),
            notes=("internal porosity not assessable",),
            unconfirmed=True,
        ),
        needs_review=True,
        review_reasons=("abstain:porosity",),
        model=ModelInfo("weld-grader", "2026.11.0", "cd" * 32),
        timings_ms={"decode": 3.0, "model": 10.0},
        ood_score=1.5,
        context=InspectionContext(process="arc", material="carbon_steel", thickness_mm=3.0, mm_per_px=0.05),
    )


def test_result_json_round_trip() -> None:
    result = _result()
    text = json.dumps(result.to_dict())
    back = InspectionResult.from_dict(json.loads(text))
    assert back == result
    assert json.loads(text)["schema_version"] == "1.0"
    assert json.loads(text)["findings"][0]["kind"] == "porosity"


def test_domain_verdict_round_trips_and_is_omitted_when_not_assessed() -> None:
    from dataclasses import replace

    from inspection.types import DomainVerdict

    assert "domain" not in _result().to_dict()  # records made without the gate stay as they were
    verdict = DomainVerdict(
        ok=False,
        reasons=("unfamiliar_appearance",),
        failed=("colourfulness", "ood_score"),
        measures={"colourfulness": 0.0, "ood_score": 0.9},
    )
    result = replace(_result(), domain=verdict)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["domain"]["failed"] == ["colourfulness", "ood_score"]
    assert InspectionResult.from_dict(data) == result


def test_result_refuses_unknown_schema_version() -> None:
    data = _result().to_dict()
    data["schema_version"] = "9.9"
    with pytest.raises(ValueError, match=r"unsupported InspectionResult schema_version '9\.9'"):
        InspectionResult.from_dict(data)
