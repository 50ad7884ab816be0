"""Spatter compositor: deterministic, count honoured, boxes inside, input untouched, visible."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from inspection.data.spatter import composite_spatter, estimate_look, sample_spatter_count
from inspection.types import SeamRegion


def _strip(h: int = 128, w: int = 512, seed: int = 0) -> np.ndarray:
    """A grey plate with a brighter horizontal bead band and some texture."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 110, np.uint8)
    band = slice(int(h * 0.275), int(h * 0.725))
    img[band] = 150
    noise = rng.normal(0, 6, (h, w, 1))
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def test_deterministic_for_a_seed() -> None:
    img = _strip()
    a, boxes_a = composite_spatter(img, np.random.default_rng(5), n_droplets=25, mm_per_px=0.1)
    b, boxes_b = composite_spatter(img, np.random.default_rng(5), n_droplets=25, mm_per_px=0.1)
    c, _boxes_c = composite_spatter(img, np.random.default_rng(6), n_droplets=25, mm_per_px=0.1)
    assert np.array_equal(a, b) and boxes_a == boxes_b
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("n", [0, 1, 7, 30, 60])
@pytest.mark.parametrize("shape", [(128, 512), (64, 64), (300, 200)])
def test_count_honoured_and_boxes_inside(n: int, shape: tuple[int, int]) -> None:
    img = _strip(*shape)
    before = img.copy()
    out, boxes = composite_spatter(img, np.random.default_rng(n), n_droplets=n, mm_per_px=0.08)
    assert np.array_equal(img, before), "input image was modified"
    assert out is not img and out.shape == img.shape and out.dtype == np.uint8
    assert len(boxes) == n
    h, w = shape
    for b in boxes:
        assert b.label == "spatter"
        assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
    assert np.array_equal(out, img) == (n == 0)


def test_droplets_change_pixels_inside_their_boxes() -> None:
    img = _strip()
    out, boxes = composite_spatter(img, np.random.default_rng(2), n_droplets=20, mm_per_px=0.1)
    diff = np.abs(out.astype(int) - img.astype(int)).sum(axis=2)
    changed = [diff[int(b.y0) : int(np.ceil(b.y1)), int(b.x0) : int(np.ceil(b.x1))].max() > 20 for b in boxes]
    assert sum(changed) >= 0.8 * len(boxes)
    mask = np.zeros(diff.shape, bool)
    for b in boxes:
        x0, y0 = max(0, int(b.x0) - 12), max(0, int(b.y0) - 12)
        mask[y0 : int(b.y1) + 12, x0 : int(b.x1) + 12] = True
    assert diff[~mask].max() == 0, "pixels far from every droplet changed"


def test_sizes_follow_mm_per_px() -> None:
    img = _strip(256, 1024)
    _, fine = composite_spatter(img, np.random.default_rng(3), n_droplets=40, mm_per_px=0.05)
    _, coarse = composite_spatter(img, np.random.default_rng(3), n_droplets=40, mm_per_px=0.2)
    med_fine = np.median([b.width for b in fine])
    med_coarse = np.median([b.width for b in coarse])
    # median droplet ~0.55 mm: ~11 px at 0.05 mm/px, ~3 px at 0.2 mm/px
    assert 7 <= med_fine <= 16
    assert med_coarse < med_fine / 2


def test_density_falls_off_away_from_the_seam() -> None:
    img = np.full((400, 400, 3), 120, np.uint8)
    seam = SeamRegion(center=(200.0, 200.0), length=400.0, width=60.0, angle_deg=90.0)  # vertical bead
    _, boxes = composite_spatter(img, np.random.default_rng(4), n_droplets=60, seam=seam, mm_per_px=0.1)
    dist = np.array([abs(b.center[0] - 200.0) for b in boxes])
    near = np.sum(dist < 80)
    far = np.sum(dist >= 120)
    assert near > 2 * far


@pytest.mark.parametrize(
    ("grade", "lo", "hi"),
    [(0, 0, 0), (1, 1, 5), (2, 6, 20), (3, 21, 60)],
)
def test_sample_spatter_count_in_grade_range(grade: int, lo: int, hi: int) -> None:
    rng = np.random.default_rng(grade)
    counts = [sample_spatter_count(grade, rng) for _ in range(300)]
    assert min(counts) >= lo and max(counts) <= hi
    if hi > lo:
        assert len(set(counts)) > 1


@pytest.mark.parametrize("bad", [-1, 4, 1.5])
def test_sample_spatter_count_rejects_bad_grade(bad: float) -> None:
    with pytest.raises(ValueError, match="grade"):
        sample_spatter_count(bad, np.random.default_rng(0))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n_droplets": -1}, "n_droplets"), ({"mm_per_px": 0.0}, "mm_per_px")]
)
def test_rejects_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"n_droplets": 3, "mm_per_px": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        composite_spatter(_strip(), np.random.default_rng(0), **args)  # type: ignore[arg-type]


def test_blur_estimate_tracks_photo_sharpness() -> None:
    img = np.full((256, 256, 3), 60, np.uint8)
    for i in range(0, 256, 32):  # sharp step edges, then known Gaussian blurs
        img[i : i + 16] = 200
    blurs = (0.0, 1.0, 2.0, 3.0)
    sigmas = [estimate_look(cv2.GaussianBlur(img, (0, 0), s) if s else img).blur_sigma for s in blurs]
    assert sigmas == sorted(sigmas)
    for true, est in zip(blurs[1:], sigmas[1:], strict=True):
        assert abs(est - true) < 0.35 * true
