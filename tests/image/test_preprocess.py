"""Seam localisation, strip extraction, tiles and coordinate maps (``inspection.image.preprocess``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.config import PreprocessConfig
from inspection.image.preprocess import (
    Preprocessed,
    Strip,
    Tile,
    box_inside_fraction,
    extract_strip,
    locate_seam,
    make_tiles,
    max_strip_length,
    preprocess,
    source_to_tile,
    tile_to_source,
    whole_image_region,
)
from inspection.types import Box, Image, SeamRegion

CFG = PreprocessConfig()
SIZE = 240
BAND = 40.0  # true bead width (px) of the synthetic seams


def angle_diff(a: float, b: float) -> float:
    """Smallest difference between two directions, modulo 180 degrees."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def band_mask(h: int, w: int, center: tuple[float, float], angle_deg: float, width: float) -> np.ndarray:
    """Boolean (h, w) mask of pixels whose centres lie within width/2 of the seam line."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    a = math.radians(angle_deg)
    v = -(xx - center[0]) * math.sin(a) + (yy - center[1]) * math.cos(a)
    return np.abs(v) <= width / 2.0


def synthetic_seam(
    angle_deg: float, rng: np.random.Generator, size: int = SIZE, offset: float = 0.0, width: float = BAND
) -> tuple[Image, tuple[float, float]]:
    """A smooth, slightly shaded plate with a rippled bright/dark textured band at ``angle_deg``.

    Returns the RGB image and the band's centre (the image centre shifted ``offset`` px across).
    """
    a = math.radians(angle_deg)
    center = (size / 2.0 - offset * math.sin(a), size / 2.0 + offset * math.cos(a))
    xx = np.mgrid[0:size, 0:size][1].astype(np.float32)
    plate = 120.0 + 20.0 * xx / size + rng.normal(0.0, 1.5, (size, size)).astype(np.float32)
    blobs = cv2.GaussianBlur(rng.normal(0.0, 1.0, (size, size)).astype(np.float32), (0, 0), 1.5)
    texture = 70.0 * blobs / (blobs.std() + 1e-6)
    mask = band_mask(size, size, center, angle_deg, width)
    gray = np.where(mask, plate + texture, plate)
    rgb = np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return np.ascontiguousarray(rgb), center


def identity_strip(length: int, height: int = CFG.strip_height) -> Strip:
    """A strip whose image has a column ramp (value = column % 256) and an identity matrix."""
    cols = (np.arange(length) % 256).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(cols[None, :, None], (height, length, 3)))
    region = SeamRegion((length / 2.0, height / 2.0), float(length), float(height), 0.0, 1.0)
    return Strip(image=img, region=region, matrix=np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))


# ------------------------------------------------------------------------------------------
# locate_seam
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("angle", "offset"), [(0.0, 0.0), (30.0, 20.0), (90.0, -30.0), (-45.0, 0.0), (60.0, -15.0)]
)
def test_locate_seam_finds_synthetic_band(angle: float, offset: float, rng: np.random.Generator) -> None:
    image, center = synthetic_seam(angle, rng, offset=offset)
    region = locate_seam(image, CFG)
    assert region is not None
    assert angle_diff(region.angle_deg, angle) <= 4.0
    assert -90.0 <= region.angle_deg < 90.0
    # The found centre lies on the true seam line (distance across the seam).
    a = math.radians(angle)
    dx, dy = region.center[0] - center[0], region.center[1] - center[1]
    assert abs(-dx * math.sin(a) + dy * math.cos(a)) <= 0.25 * BAND
    # The band (no margin yet) covers the true band, and is tighter than the image.
    mask = band_mask(SIZE, SIZE, center, angle, BAND)
    inside = np.zeros((SIZE, SIZE), np.uint8)
    cv2.fillConvexPoly(inside, np.round(region.corners() - 0.5).astype(np.int32), 1)
    assert inside[mask].mean() >= 0.9
    assert region.width < 0.6 * SIZE
    assert region.score >= 0.3


def test_seam_score_orders_seam_above_isotropic_texture(rng: np.random.Generator) -> None:
    seam, _ = synthetic_seam(20.0, rng)
    noise = cv2.GaussianBlur(rng.normal(128, 40, (SIZE, SIZE)).astype(np.float32), (0, 0), 1.5)
    noise_img = np.repeat(np.clip(noise, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    r_seam, r_noise = locate_seam(seam, CFG), locate_seam(noise_img, CFG)
    assert r_seam is not None and r_noise is not None
    assert r_seam.score > r_noise.score + 0.2


def test_flat_image_has_no_seam_and_falls_back_to_whole_image() -> None:
    image = np.full((90, 150, 3), 128, np.uint8)
    assert locate_seam(image, CFG) is None
    pre = preprocess(image, CFG)
    assert pre.region is None
    assert pre.seam_score == 0.0
    assert box_inside_fraction(pre.strip.region, Box(0, 0, 150, 90), 90, 150) == pytest.approx(1.0, abs=1e-3)
    assert pre.strip.image.shape[0] == CFG.strip_height


@pytest.mark.parametrize(("h", "w", "angle"), [(90, 150, 0.0), (150, 90, -90.0)])
def test_whole_image_region_follows_long_axis(h: int, w: int, angle: float) -> None:
    region = whole_image_region(h, w, 0.1)
    assert region.angle_deg == angle
    assert region.length == max(h, w) and region.width == min(h, w)
    assert region.score == 0.1


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (40, 300), (300, 40)])
def test_preprocess_handles_tiny_and_elongated_images(
    shape: tuple[int, int], rng: np.random.Generator
) -> None:
    image = rng.integers(0, 255, (*shape, 3), dtype=np.uint8)
    pre = preprocess(image, CFG)
    assert pre.strip.image.shape[0] == CFG.strip_height
    assert all(t.image.shape == (CFG.strip_height, CFG.tile_length, 3) for t in pre.tiles)
    assert 0.0 <= pre.seam_score <= 1.0


def test_preprocess_does_not_mutate_input_and_is_deterministic(rng: np.random.Generator) -> None:
    image, _ = synthetic_seam(30.0, rng)
    before = image.copy()
    a, b = preprocess(image, CFG), preprocess(image, CFG)
    np.testing.assert_array_equal(image, before)
    assert a.region == b.region
    np.testing.assert_array_equal(a.strip.image, b.strip.image)
    np.testing.assert_array_equal(a.strip.matrix, b.strip.matrix)


# ------------------------------------------------------------------------------------------
# extract_strip and coordinate maps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 30.0, -45.0, -90.0, 75.0])
def test_strip_shape_aspect_and_round_trip(angle: float, rng: np.random.Generator) -> None:
    image = rng.integers(0, 255, (200, 260, 3), dtype=np.uint8)
    region = SeamRegion((130.0, 100.0), 160.0, 30.0, angle, 0.9)
    strip = extract_strip(image, region, CFG)
    h, length = strip.image.shape[:2]
    assert strip.image.shape == (CFG.strip_height, length, 3)
    assert strip.image.dtype == np.uint8
    crop = strip.region
    assert crop.width == pytest.approx(min(30.0 * (1 + 2 * CFG.margin), crop.width), rel=1e-6)
    assert length == round(crop.length * CFG.strip_height / crop.width)
    assert strip.scale == pytest.approx(CFG.strip_height / crop.width, rel=1e-9)
    pts = rng.uniform(-50, 300, (25, 2))
    np.testing.assert_allclose(strip.to_source(strip.to_strip(pts)), pts, atol=1e-6)
    # The crop's corners land on the strip's corners.
    corners = strip.to_strip(crop.corners())
    expected = np.array([[0, 0], [length, 0], [length, h], [0, h]], np.float64)
    np.testing.assert_allclose(corners, expected, atol=1e-6)


@pytest.mark.parametrize("angle", [0.0, 33.0, -60.0, -90.0])
def test_strip_pixels_match_the_coordinate_map(angle: float) -> None:
    """A bright dot drawn in the source appears in the strip where ``to_strip`` says it is."""
    image = np.full((300, 300, 3), 20, np.uint8)
    dot = np.array([[171.5, 143.5]])  # a pixel centre (x, y)
    cv2.circle(image, (171, 143), 2, (255, 255, 255), -1)
    region = SeamRegion((150.0, 150.0), 200.0, 40.0, angle, 1.0)
    strip = extract_strip(image, region, CFG.model_copy(update={"margin": 0.2}))
    u, v = strip.to_strip(dot)[0]
    gray = strip.image[:, :, 0].astype(np.float64)
    ys, xs = np.nonzero(gray > 0.5 * gray.max())
    w = gray[ys, xs]
    cu, cv = (np.sum((xs + 0.5) * w) / w.sum(), np.sum((ys + 0.5) * w) / w.sum())
    assert math.hypot(cu - u, cv - v) <= 1.0


def test_box_to_strip_for_axis_aligned_and_vertical_seams() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    cfg = CFG.model_copy(update={"margin": 0.0, "strip_height": 32})
    horiz = extract_strip(image, SeamRegion((100.0, 50.0), 200.0, 32.0, 0.0), cfg)
    assert horiz.scale == pytest.approx(1.0)
    b = horiz.box_to_strip(Box(10, 40, 30, 60, "porosity"))
    assert b.as_tuple() == pytest.approx((10.0, 6.0, 30.0, 26.0))
    assert b.label == "porosity"
    # Seam running up the image (angle -90): source y decreasing is strip u increasing.
    vert = extract_strip(image, SeamRegion((100.0, 50.0), 100.0, 64.0, -90.0), cfg)
    vb = vert.box_to_strip(Box(90, 10, 110, 20))
    assert vb.width == pytest.approx(10.0 * vert.scale_along)
    assert vb.height == pytest.approx(20.0 * vert.scale)
    back = vert.box_to_source(vb)
    assert back.as_tuple() == pytest.approx((90.0, 10.0, 110.0, 20.0))


def test_strip_too_long_for_max_tiles_is_compressed_along_the_seam() -> None:
    image = np.zeros((50, 4000, 3), np.uint8)
    strip = extract_strip(image, SeamRegion((2000.0, 25.0), 4000.0, 20.0, 0.0), CFG)
    assert strip.length == max_strip_length(CFG)
    assert strip.scale_along < strip.scale
    pts = np.array([[0.0, 25.0], [4000.0, 25.0]])
    np.testing.assert_allclose(strip.to_strip(pts)[:, 0], [0.0, strip.length], atol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 3)), np.array([[1.0, 0, 0], [2.0, 0, 0]]), np.array([[np.nan, 0, 0], [0, 1, 0]])],
)
def test_strip_rejects_bad_matrix(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"Strip\.matrix"):
        Strip(np.zeros((8, 8, 3), np.uint8), SeamRegion((4.0, 4.0), 8.0, 8.0, 0.0), bad)


def test_points_shape_is_validated() -> None:
    strip = identity_strip(16, 8)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        strip.to_strip(np.zeros((3, 3)))


# ------------------------------------------------------------------------------------------
# tiles
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 100, 512, 513, 900, 1664, 5000])
def test_tiles_have_fixed_shape_and_cover_the_strip(length: int) -> None:
    strip = identity_strip(length)
    tiles = make_tiles(strip, CFG)
    assert 1 <= len(tiles) <= CFG.max_tiles
    for t in tiles:
        assert t.image.shape == (CFG.strip_height, CFG.tile_length, 3)
    covered = np.zeros(length, bool)
    for t in tiles:
        lo = t.u0
        hi = t.u0 + t.valid * t.u_scale
        covered[max(0, math.floor(lo + 1e-9)) : min(length, math.ceil(hi - 1e-9))] = True
    assert covered.all()
    assert tiles[0].u0 == 0.0
    if length <= max_strip_length(CFG):
        assert all(t.u_scale == 1.0 for t in tiles)
        for t in tiles:  # tile content is the strip slice; padding replicates the last column
            o = int(t.u0)
            np.testing.assert_array_equal(t.image[:, : t.valid], strip.image[:, o : o + t.valid])
            if t.valid < CFG.tile_length:
                assert (t.image[:, t.valid :] == strip.image[:, -1:]).all()
    else:
        assert tiles[0].u_scale == pytest.approx(length / max_strip_length(CFG))


def test_long_strip_tiles_overlap_at_least_as_configured() -> None:
    tiles = make_tiles(identity_strip(1500), CFG)
    starts = [t.u0 for t in tiles]
    steps = np.diff(starts)
    assert (steps <= CFG.tile_length * (1 - CFG.tile_overlap) + 1).all()
    assert starts[-1] + CFG.tile_length == pytest.approx(1500)


def test_tile_to_source_round_trip(rng: np.random.Generator) -> None:
    image, _ = synthetic_seam(-30.0, rng)
    pre = preprocess(image, CFG)
    pts = rng.uniform(0, SIZE, (20, 2))
    for tile in pre.tiles:
        np.testing.assert_allclose(
            tile_to_source(tile, pre.strip, source_to_tile(tile, pre.strip, pts)), pts, atol=1e-6
        )


def test_tile_validation() -> None:
    img = np.zeros((4, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="valid"):
        Tile(img, 0.0, 9)
    with pytest.raises(ValueError, match="u_scale"):
        Tile(img, 0.0, 8, u_scale=0.0)
    with pytest.raises(ValueError, match="tiles"):
        Preprocessed(None, identity_strip(8, 4), (), 0.0)


def pore_box(values: list[float]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return Box(x0, y0, x1, y1)


# ------------------------------------------------------------------------------------------
# real photos (skipped when ../shared/data is absent)
# ------------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_photos_pore_boxes_inside_strip(porosity_data: Path) -> None:
    """On 60 evenly spaced photos with pores, >= 95 % have every pore box (>= 90 % of its area)
    inside the strip region, while the strip is on average clearly smaller than the image."""
    rows = [
        json.loads(line) for line in (porosity_data / "annotations.jsonl").read_text().splitlines() if line
    ]
    rows = sorted(
        (r for r in rows if any(o["label"] == "Surface_pores" for o in r["objects"])),
        key=lambda r: r["image"],
    )
    rows = [rows[int(i * len(rows) / 60)] for i in range(60)]
    covered, areas = 0, []
    for row in rows:
        bgr = cv2.imread(str(porosity_data / row["image"]), cv2.IMREAD_COLOR)
        assert bgr is not None, row["image"]
        image = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
        h, w = image.shape[:2]
        region = preprocess(image, CFG).strip.region
        boxes = [pore_box(o["box"]) for o in row["objects"] if o["label"] == "Surface_pores"]
        covered += all(box_inside_fraction(region, b, h, w) >= 0.9 for b in boxes)
        areas.append(box_inside_fraction(region, Box(0, 0, w, h), h, w))
    assert covered / len(rows) >= 0.95
    assert float(np.mean(areas)) <= 0.8


# ------------------------------------------------------------------------------------------
# Downscaled input (a reduced JPEG decode): geometry stays in source pixels
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("angle", [0.0, 30.0, -60.0, 90.0])
def test_preprocess_of_a_half_size_copy_gives_the_source_geometry(
    angle: float, rng: np.random.Generator
) -> None:
    image, _ = synthetic_seam(angle, rng, size=480, width=80.0)
    half = cv2.resize(image, (240, 240), interpolation=cv2.INTER_AREA)
    full = preprocess(image, CFG)
    small = preprocess(half, CFG, source_size=(480, 480))
    assert full.region is not None and small.region is not None
    assert angle_diff(small.region.angle_deg, full.region.angle_deg) <= 2.0
    assert math.dist(small.region.center, full.region.center) <= 0.1 * full.region.width
    assert small.region.width == pytest.approx(full.region.width, rel=0.15)
    # the strip maps source pixels: same matrix scale, and its pixels show the same content
    assert small.strip.scale == pytest.approx(full.strip.scale, rel=0.15)
    assert (
        small.strip.image.shape == full.strip.image.shape or abs(small.strip.length - full.strip.length) <= 8
    )
    h = min(small.strip.length, full.strip.length)
    a, b = small.strip.image[:, :h].astype(float), full.strip.image[:, :h].astype(float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.8


def test_locate_seam_grid_depends_on_the_source_size_only(rng: np.random.Generator) -> None:
    from inspection.image.preprocess import texture_energy

    image, _ = synthetic_seam(20.0, rng, size=480)
    half = cv2.resize(image, (240, 240), interpolation=cv2.INTER_AREA)
    full_grid = texture_energy(image, CFG.work_size)
    half_grid = texture_energy(half, CFG.work_size, source_size=(480, 480))
    assert half_grid.shape == full_grid.shape
    assert np.corrcoef(half_grid.ravel(), full_grid.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("source", [(100, 240), (480, 240), (240, 600)])
def test_source_size_must_be_an_upscale_with_one_aspect(
    source: tuple[int, int], rng: np.random.Generator
) -> None:
    image, _ = synthetic_seam(0.0, rng, size=240)
    with pytest.raises(ValueError, match="source_size"):
        preprocess(image, CFG, source_size=source)


def test_shared_luma_gives_the_same_seam_and_tiles() -> None:
    from inspection.types import luma

    img, _ = synthetic_seam(30.0, np.random.default_rng(5))
    alone, shared = preprocess(img, CFG), preprocess(img, CFG, gray=luma(img))
    assert shared.region == alone.region
    assert [t.image.tobytes() for t in shared.tiles] == [t.image.tobytes() for t in alone.tiles]
    with pytest.raises(ValueError, match="uint8 luma of shape"):
        preprocess(img, CFG, gray=luma(img)[:-1])
