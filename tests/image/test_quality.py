"""Quality gate: synthetic sharp/blurred/dark/bright cases, the seam check, and real photos."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.config import QualityConfig
from inspection.data.synth import generate_weld
from inspection.image.ingest import read_image
from inspection.image.quality import REASONS, assess_quality, measure
from inspection.types import Image

CFG = QualityConfig()


@pytest.fixture(scope="module")
def weld() -> Image:
    """One synthetic weld photo at 640 px (blur is defined relative to an 800 px image)."""
    return generate_weld(np.random.default_rng(11), width=640, height=640, n_pores=2, n_spatter=6).image


def _blur(img: Image) -> Image:
    sigma = 6.0 * img.shape[1] / 800.0
    return np.asarray(cv2.GaussianBlur(img, (0, 0), sigma), np.uint8)


def _dark(img: Image) -> Image:
    return (img.astype(np.float32) * 0.1).astype(np.uint8)


def _blown_out(img: Image) -> Image:
    return np.clip(img.astype(np.float32) * 4.0, 0, 255).astype(np.uint8)


def _identity(img: Image) -> Image:
    return img


@pytest.mark.parametrize(
    ("transform", "ok", "must_have", "must_not_have"),
    [
        (_identity, True, (), ("blurred", "underexposed", "overexposed")),
        (_blur, False, ("blurred",), ("underexposed", "overexposed")),
        (_dark, False, ("underexposed",), ("overexposed",)),
        (_blown_out, False, ("overexposed",), ("underexposed",)),
    ],
    ids=["sharp", "blurred", "dark", "blown_out"],
)
def test_synthetic_cases(
    weld: Image,
    transform: Callable[[Image], Image],
    ok: bool,
    must_have: tuple[str, ...],
    must_not_have: tuple[str, ...],
) -> None:
    verdict = assess_quality(transform(weld), CFG)
    assert verdict.ok is ok, verdict
    assert set(must_have) <= set(verdict.reasons)
    assert not set(must_not_have) & set(verdict.reasons)
    assert set(verdict.reasons) <= set(REASONS)
    assert {"sharpness", "mean", "dark_fraction", "bright_fraction"} <= set(verdict.measures)


@pytest.mark.parametrize(("score", "flagged"), [(0.0, True), (0.1, True), (0.15, False), (0.9, False)])
def test_no_seam_reason_follows_seam_score(weld: Image, score: float, flagged: bool) -> None:
    verdict = assess_quality(weld, CFG, seam_score=score)
    assert ("no_seam" in verdict.reasons) is flagged
    assert verdict.measures["seam_score"] == pytest.approx(score)


def test_seam_check_skipped_without_score(weld: Image) -> None:
    verdict = assess_quality(weld, CFG)
    assert "no_seam" not in verdict.reasons and "seam_score" not in verdict.measures


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_invalid_seam_score_is_refused(weld: Image, bad: float) -> None:
    with pytest.raises(ValueError, match="seam_score"):
        assess_quality(weld, CFG, seam_score=bad)


def test_does_not_mutate_input(weld: Image) -> None:
    before = weld.copy()
    assess_quality(weld, CFG, seam_score=0.5)
    assert np.array_equal(before, weld)


def test_sharpness_is_comparable_across_sizes(weld: Image) -> None:
    """A large image is measured at work_size, so upscaling it does not change the verdict."""
    big = np.asarray(cv2.resize(weld, (1280, 1280), interpolation=cv2.INTER_NEAREST), np.uint8)
    s_small, s_big = measure(weld, CFG)["sharpness"], measure(big, CFG)["sharpness"]
    assert s_big > CFG.blur_min_sharpness
    assert 0.3 < s_big / s_small < 3.0


def test_thresholds_come_from_config(weld: Image) -> None:
    strict = QualityConfig(blur_min_sharpness=1e9)
    assert assess_quality(weld, strict).reasons == ("blurred",)


def test_tiny_image_is_assessed() -> None:
    verdict = assess_quality(np.full((1, 1, 3), 128, np.uint8), CFG)
    assert "blurred" in verdict.reasons  # a flat pixel has no detail


def _real_images(root: Path, limit: int) -> list[Path]:
    files = sorted((root / "images").glob("*.jpg"))
    step = max(1, len(files) // limit)
    return files[::step][:limit]


@pytest.mark.realdata
@pytest.mark.parametrize("fixture", ["porosity_data", "unlabelled_data"])
def test_real_photos_mostly_pass(request: pytest.FixtureRequest, fixture: str) -> None:
    """>= 95 % of real photos pass (a sample of 120 per set keeps this fast)."""
    root: Path = request.getfixturevalue(fixture)
    files = _real_images(root, 120)
    assert files, f"no images under {root / 'images'}"
    verdicts = [assess_quality(read_image(p), CFG) for p in files]
    rate = sum(v.ok for v in verdicts) / len(verdicts)
    assert rate >= 0.95, [(p.name, v.reasons) for p, v in zip(files, verdicts, strict=True) if not v.ok]
    blurred = [assess_quality(_blur(read_image(p)), CFG) for p in files[:20]]
    assert all("blurred" in v.reasons for v in blurred)


@pytest.mark.parametrize("transform", [_identity, _blur, _dark, _blown_out])
def test_shared_luma_gives_the_same_verdict(weld: Image, transform: Callable[[Image], Image]) -> None:
    from inspection.types import luma

    img = transform(weld)
    alone = assess_quality(img, CFG, seam_score=0.7)
    shared = assess_quality(img, CFG, seam_score=0.7, gray=luma(img))
    assert shared == alone


@pytest.mark.parametrize(
    "gray",
    [np.zeros((10, 10), np.uint8), np.zeros((640, 640), np.float32), np.zeros((640, 640, 3), np.uint8)],
)
def test_a_luma_of_the_wrong_image_is_refused(weld: Image, gray: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8 luma of shape"):
        assess_quality(weld, CFG, gray=gray)
