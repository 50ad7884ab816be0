"""One story per photo (issue 22): the porosity grade is the binned count of the circles, the
ordinal head cross-checks it, and the overlay caption, standards verdict and advice say the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from inspection.config import AppConfig, GradingConfig
from inspection.data.synth import generate_weld
from inspection.image.overlay import grade_range, porosity_caption
from inspection.model.postprocess import grade_from_findings
from inspection.pipeline import Inspector, recommendation_for
from inspection.types import (
    Defect,
    Finding,
    HeadResult,
    InspectionContext,
    InspectionResult,
    grade_from_count,
)

THRESHOLDS = (1, 2, 4)


@pytest.fixture(scope="module")
def shipped() -> Inspector:
    """The shipped default model, as a user runs it."""
    return Inspector.from_artifact()


@pytest.fixture(scope="module")
def weld(shipped: Inspector) -> InspectionResult:
    return shipped.inspect(generate_weld(np.random.default_rng(5), n_pores=2, n_spatter=0).image)


HEAD = HeadResult(grade=2, probs=(0.05, 0.15, 0.6, 0.2), confidence=0.6)


@pytest.mark.parametrize(
    ("n", "grade", "confidence", "disagree"),
    [
        (0, 0, 0.05, True),  # no circle while the head gives "none" 5 %: a person looks
        (1, 1, 0.15, False),  # one circle, the head admits one pore at 15 %
        (2, 2, 0.6, False),
        (3, 2, 0.6, False),
        (4, 3, 0.2, False),
        (9, 3, 0.2, False),
    ],
)
def test_grade_is_the_binned_count_and_the_head_cross_checks(
    n: int, grade: int, confidence: float, disagree: bool
) -> None:
    head, flagged = grade_from_findings(HEAD, n, THRESHOLDS, min_prob=0.1)
    assert (head.grade, head.confidence, flagged) == (grade, confidence, disagree)
    assert head.probs == HEAD.probs, "the calibrated distribution is kept"


@pytest.mark.parametrize(("count", "bad"), [(-1, "non-negative"), (True, "non-negative")])
def test_counts_are_validated(count: int, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        grade_from_count(count, THRESHOLDS)


def test_agreement_probability_is_validated() -> None:
    with pytest.raises(ValueError, match="min_prob"):
        grade_from_findings(HEAD, 1, THRESHOLDS, min_prob=1.5)
    with pytest.raises(ValueError, match="findings_agreement_min_prob"):
        AppConfig.model_validate({"grading": {"findings_agreement_min_prob": -0.1}})


@pytest.mark.parametrize(
    ("grade", "words"), [(0, "no pores"), (1, "1 pore"), (2, "2-3 pores"), (3, "4 or more pores")]
)
def test_grade_range_in_words(grade: int, words: str) -> None:
    assert grade_range(grade) == words


def _result(base: InspectionResult, n_pores: int, grade: int) -> InspectionResult:
    findings = tuple(Finding(Defect.POROSITY, 10.0 * i, 5.0, 4.0, 0.9, 0.1) for i in range(n_pores))
    probs = (0.1, 0.2, 0.5, 0.2)
    return dataclasses.replace(base, porosity=HeadResult(grade, probs, probs[grade]), findings=findings)


@pytest.mark.parametrize(
    ("n", "grade", "caption"),
    [
        (2, 2, "2 pores found (grade 2, 2-3 pores)"),
        (1, 1, "1 pore found (grade 1, 1 pore)"),
        (0, 0, "no pores found (grade 0, no pores)"),
        (1, 2, "1 pore found; porosity grade 2 (2-3 pores)"),  # a result from before the rule
    ],
)
def test_overlay_caption_explains_the_grade(
    shipped: Inspector, weld: InspectionResult, n: int, grade: int, caption: str
) -> None:
    assert porosity_caption(_result(weld, n, grade)) == caption


def _story_holds(result: InspectionResult, grading: GradingConfig) -> None:
    if result.porosity is None:
        return
    n = sum(1 for f in result.findings if f.kind is Defect.POROSITY)
    assert result.porosity.grade == grade_from_count(n, grading.porosity_thresholds)
    assert porosity_caption(result).startswith(f"{n} pore" if n else "no pores")
    assert str(result.porosity.grade) in porosity_caption(result)
    if result.standards is not None and result.standards.assessable:
        pore_verdicts = [v for v in result.standards.verdicts if v.imperfection == "2017"]
        assert bool(pore_verdicts) or n == 0
    advice = recommendation_for(result)
    if advice is not None and "grades" in advice:
        assert advice["grades"]["porosity"] == result.porosity.grade


def test_every_synthetic_photo_tells_one_story(shipped: Inspector) -> None:
    rng = np.random.default_rng(22)
    ctx = InspectionContext(
        process="laser", material="stainless", thickness_mm=2.0, mm_per_px=0.05,
        params={"laser_power_w": 1200, "speed_mm_s": 30, "wobble_width_mm": 1.5,
                "gas_type": "argon", "gas_flow_l_min": 14},
    )  # fmt: skip
    graded = 0
    # a property over photos with known pore counts: whatever the model finds, one story
    for n_pores in (0, 1, 2, 3, 5, 0, 1, 4):
        weld = generate_weld(rng, n_pores=n_pores, n_spatter=2)
        result = shipped.inspect(weld.image, context=ctx)
        _story_holds(result, shipped.app_config.grading)
        graded += result.porosity is not None
    assert graded >= 6, "most synthetic photos pass the quality gate and are graded"


@pytest.mark.realdata
def test_real_dev_photos_tell_one_story(shipped: Inspector, porosity_data: Path) -> None:
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest

    records, _ = read_manifest(porosity_data, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    for rec in records[::60]:
        _story_holds(shipped.inspect(rec.path()), shipped.app_config.grading)
