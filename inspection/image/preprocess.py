"""Seam localisation, the canonical horizontal seam strip and fixed-size model tiles.

Pipeline (pure functions of arrays, deterministic, no I/O)::

    image (H, W, 3) RGB uint8
      -> locate_seam      -> SeamRegion (oriented band around the bead, score in [0, 1])
      -> extract_strip    -> Strip (strip_height, L, 3): seam runs left to right, + coordinate maps
      -> make_tiles       -> Tile (strip_height, tile_length, 3) each, + offsets
    preprocess() runs all three (with a whole-image fallback when no seam is found). Training and
    inference use exactly this path.

Coordinates follow the image contract (``inspection.types``): continuous ``(x, y)`` with the
origin at the top-left corner of the top-left pixel, so pixel ``(col, row)`` has its centre at
``(col + 0.5, row + 0.5)``. The same convention holds in strip ``(u, v)`` and tile coordinates.

Seam localisation works on a grayscale copy whose long side is about ``cfg.work_size``. Texture
energy is the smaller eigenvalue of the local structure tensor (high on bead ripples and pores, low
on smooth metal and on straight edges and scratches). For every candidate seam direction the
energy is projected onto the axis across the seam (a Radon-like search); the direction with the
strongest centre-surround band wins, and the band is grown over neighbouring bins still above
``BAND_LEVEL`` of the way from the surround to the centre. When another direction scores almost
as well the orientation is unreliable and the whole image is used. Measured coverage of
annotated pores, and limits on other photos: ``docs/seam_coverage.md``.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from scipy import sparse

from inspection.config import PreprocessConfig
from inspection.types import Box, Image, SeamRegion, check_image, check_luma, luma

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

PROJECTION_SIZE = 80
"""Long side (cells) of the energy grid the angle search projects (speed vs angular precision)."""
GRADIENT_SIGMA = 1.0 / 160.0
"""Pre-blur before the gradients, as a fraction of the long side (sets the texture scale)."""
ENERGY_POWER = 1.0
"""Exponent applied to the Shi-Tomasi measure (> 1 favours the strongest texture, the bead)."""
TENSOR_SIGMA = 4.0 / 128.0
"""Structure-tensor integration scale as a fraction of the image's long side."""
BAND_WIDTHS = (0.06, 0.12, 0.2, 0.3, 0.45)
"""Candidate bead widths for the centre-surround search, as fractions of the image's short side."""
FLANK_WIDTH = 0.5
"""Width of each surround flank of a candidate band, as a fraction of the band width."""
FLANK_GUARD = 0.0
"""Gap between a candidate band and its flanks (fraction of the band width): skips a halo."""
MIN_BIN_FILL = 0.3
"""Profile bins holding fewer cells than this fraction of the fullest bin are ignored (corners)."""
AMBIGUITY_LIMIT = 0.85
"""If a direction >= AMBIGUITY_MIN_SEPARATION_DEG from the best scores above this share of the
best, the orientation is unreliable and the whole image is used."""
AMBIGUITY_MIN_SEPARATION_DEG = 30.0
"""Directions at least this far from the best count as competitors for the ambiguity test."""
SCORE_ZERO_CONTRAST = 0.25
"""Band contrast (centre - surround energy over mean energy) at or below which the score is 0.
Measured: isotropic noise 0.14-0.2 (5th-75th percentile), real weld photos >= 0.85 (5th)."""
SCORE_FULL_CONTRAST = 1.5
"""Band contrast that earns the full contrast part of the seam score."""
COARSE_STEP_DEG = 4.0
"""Angle step of the coarse search over [-90, 90); a fine search at 1 deg follows around the best."""
BAND_LEVEL = 0.4
"""Band growth threshold: fraction of the way from the surround to the centre (lower = wider)."""
BAND_GAP_FRACTION = 0.04
"""Gaps below threshold shorter than this fraction of the across-seam extent are bridged."""
MIN_ENERGY = 1e-2
"""Mean texture energy (squared grey-level gradient) below which the image is featureless."""


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


def _as_points(points: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        msg = f"points must have shape (N, 2) of (x, y), got {arr.shape}"
        raise ValueError(msg)
    return arr


def _apply(matrix: FloatArray, points: FloatArray) -> FloatArray:
    out: FloatArray = points @ matrix[:, :2].T + matrix[:, 2]
    return out


def _box_corners(box: Box) -> FloatArray:
    return np.array([[box.x0, box.y0], [box.x1, box.y0], [box.x1, box.y1], [box.x0, box.y1]], np.float64)


def _bbox(points: FloatArray, label: str) -> Box:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return Box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), label)


@dataclass(frozen=True, eq=False)
class Strip:
    """The canonical seam strip: the seam runs left to right, across-seam is vertical.

    * ``image``: RGB uint8 ``(strip_height, L, 3)``.
    * ``region``: the oriented region actually cropped (band + margin, clamped to the image), in
      source pixels; its ``score`` is the localiser's seam score.
    * ``matrix``: 2x3 float64 affine, source ``(x, y)`` -> strip ``(u, v)`` (continuous coords).
    """

    image: Image
    region: SeamRegion
    matrix: FloatArray

    def __post_init__(self) -> None:
        check_image(self.image, "Strip.image")
        m = np.array(self.matrix, dtype=np.float64)
        if m.shape != (2, 3) or not np.all(np.isfinite(m)):
            msg = f"Strip.matrix must be a finite 2x3 affine, got shape {m.shape}"
            raise ValueError(msg)
        if abs(np.linalg.det(m[:, :2])) < 1e-12:
            msg = "Strip.matrix must be invertible (its 2x2 part has determinant 0)"
            raise ValueError(msg)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def length(self) -> int:
        """Strip length L in strip pixels (along the seam)."""
        return int(self.image.shape[1])

    @property
    def scale(self) -> float:
        """Strip pixels per source pixel across the seam (v axis)."""
        return float(math.hypot(self.matrix[1, 0], self.matrix[1, 1]))

    @property
    def scale_along(self) -> float:
        """Strip pixels per source pixel along the seam (u axis); equals ``scale`` unless the strip
        was compressed along the seam to fit ``max_tiles``."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[0, 1]))

    @functools.cached_property
    def inverse(self) -> FloatArray:
        """2x3 affine strip ``(u, v)`` -> source ``(x, y)``."""
        inv: FloatArray = cv2.invertAffineTransform(self.matrix).astype(np.float64)
        return inv

    def to_strip(self, points: npt.ArrayLike) -> FloatArray:
        """Map source ``(x, y)`` points, shape (N, 2), to strip ``(u, v)``, shape (N, 2)."""
        return _apply(self.matrix, _as_points(points))

    def to_source(self, points: npt.ArrayLike) -> FloatArray:
        """Map strip ``(u, v)`` points, shape (N, 2), to source ``(x, y)``, shape (N, 2)."""
        return _apply(self.inverse, _as_points(points))

    def box_to_strip(self, box: Box) -> Box:
        """Axis-aligned bounding box (in strip pixels) of the transformed corners of ``box``."""
        return _bbox(self.to_strip(_box_corners(box)), box.label)

    def box_to_source(self, box: Box) -> Box:
        """Axis-aligned bounding box (in source pixels) of a strip box's transformed corners."""
        return _bbox(self.to_source(_box_corners(box)), box.label)

    def along_seam(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Position along the seam in [0, 1] (0 = strip start) of source points, shape (N,)."""
        u = self.to_strip(points)[:, 0] / max(self.length, 1)
        out: FloatArray = np.clip(u, 0.0, 1.0)
        return out


@dataclass(frozen=True, eq=False)
class Tile:
    """One fixed-size model input cut from a strip.

    ``image`` is ``(strip_height, tile_length, 3)``. Tile column ``c`` (continuous) corresponds to
    strip ``u = u0 + c * u_scale`` (``u_scale`` > 1 only when the strip had to be compressed to fit
    ``max_tiles``); tile rows equal strip rows. Columns ``>= valid`` are padding (replicated
    border), not strip content.
    """

    image: Image
    u0: float
    valid: int
    u_scale: float = 1.0

    def __post_init__(self) -> None:
        check_image(self.image, "Tile.image")
        if not 1 <= self.valid <= self.image.shape[1]:
            msg = f"Tile.valid must be in 1..{self.image.shape[1]} (tile width), got {self.valid}"
            raise ValueError(msg)
        if not (math.isfinite(self.u0) and math.isfinite(self.u_scale) and self.u_scale > 0):
            msg = f"Tile.u0 must be finite and u_scale > 0, got u0={self.u0}, u_scale={self.u_scale}"
            raise ValueError(msg)

    def to_strip(self, points: npt.ArrayLike) -> FloatArray:
        """Tile ``(x, y)`` points (N, 2) -> strip ``(u, v)`` (N, 2)."""
        p = _as_points(points).copy()
        p[:, 0] = self.u0 + p[:, 0] * self.u_scale
        return p

    def from_strip(self, points: npt.ArrayLike) -> FloatArray:
        """Strip ``(u, v)`` points (N, 2) -> tile ``(x, y)`` (N, 2) (may fall outside the tile)."""
        p = _as_points(points).copy()
        p[:, 0] = (p[:, 0] - self.u0) / self.u_scale
        return p


@dataclass(frozen=True, eq=False)
class Preprocessed:
    """Everything the model stage needs. ``region`` is None when no seam was found (the strip then
    covers the whole image and ``seam_score`` is low)."""

    region: SeamRegion | None
    strip: Strip
    tiles: tuple[Tile, ...]
    seam_score: float

    def __post_init__(self) -> None:
        if not self.tiles:
            msg = "Preprocessed.tiles must hold at least one tile"
            raise ValueError(msg)
        if not 0.0 <= self.seam_score <= 1.0:
            msg = f"Preprocessed.seam_score must be in [0, 1], got {self.seam_score}"
            raise ValueError(msg)


def tile_to_source(tile: Tile, strip: Strip, points: npt.ArrayLike) -> FloatArray:
    """Map tile ``(x, y)`` points, shape (N, 2), e.g. heatmap peaks, to source pixels (N, 2).

    Heatmaps at a lower resolution than the tile must first be scaled to tile pixels.
    """
    return strip.to_source(tile.to_strip(points))


def box_inside_fraction(region: SeamRegion, box: Box, height: int, width: int) -> float:
    """Share in [0, 1] of ``box``'s area (clipped to the image) inside the oriented ``region``.

    A degenerate (zero-area) box counts as its centre point: 1.0 if inside, else 0.0.
    """
    x0, y0 = max(0.0, box.x0), max(0.0, box.y0)
    x1, y1 = min(float(width), box.x1), min(float(height), box.y1)
    rect = region.corners().astype(np.float32)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        cx, cy = box.center
        return 1.0 if cv2.pointPolygonTest(rect, (float(cx), float(cy)), False) >= 0 else 0.0
    poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    area, _ = cv2.intersectConvexConvex(poly, rect)
    return float(min(1.0, max(0.0, area / ((x1 - x0) * (y1 - y0)))))


def source_to_tile(tile: Tile, strip: Strip, points: npt.ArrayLike) -> FloatArray:
    """Map source ``(x, y)`` points (N, 2) to tile ``(x, y)`` (N, 2) (may fall outside the tile)."""
    return tile.from_strip(strip.to_strip(points))


# --------------------------------------------------------------------------------------------
# Seam localisation
# --------------------------------------------------------------------------------------------


def _source_size(image: Image, source_size: tuple[int, int] | None) -> tuple[int, int]:
    """``(height, width)`` of the source ``image`` stands for (itself unless ``source_size``)."""
    if source_size is None:
        return int(image.shape[0]), int(image.shape[1])
    h, w = int(source_size[0]), int(source_size[1])
    ih, iw = image.shape[:2]
    if h < ih or w < iw or abs(h / ih - w / iw) > 0.02 * max(h / ih, w / iw):
        msg = f"source_size {h}x{w} is not an upscale of the {ih}x{iw} image with one aspect ratio"
        raise ValueError(msg)
    return h, w


def _downscaled_size(h: int, w: int, factor: float) -> tuple[int, int]:
    """``(height, width)`` :func:`_downscale` gives an ``h`` x ``w`` image for ``factor``."""
    if factor <= 1.0:
        return h, w
    for k in sorted(
        range(max(1, math.floor(factor * 0.75)), math.ceil(factor * 1.25) + 1), key=lambda k: abs(k - factor)
    ):
        if k > 1 and w % k == 0 and h % k == 0:
            return h // k, w // k
    return max(1, round(h / factor)), max(1, round(w / factor))


def _downscale(image: npt.NDArray[np.uint8], factor: float) -> npt.NDArray[np.uint8]:
    """Area-average ``image`` down by about ``factor`` (>= 1), fast and alias free.

    Prefers an integer factor that divides both sides (OpenCV's fast exact area path, within 25 %
    of ``factor``); otherwise falls back to a general area resize. The result is an exact
    rescale in continuous coordinates: ``x_small = x * small_w / w`` (and likewise for y).
    """
    h, w = image.shape[:2]
    return _resize_area(image, _downscaled_size(h, w, factor))


def _resize_area(image: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Area-resize ``image`` to ``size`` ``(height, width)`` (no copy when it already has it)."""
    if image.shape[:2] == size:
        return image
    return np.asarray(cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def texture_energy(
    image: Image,
    work_size: int,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.float32]:
    """Blob/ripple texture energy of ``image`` on a grid whose long side is about ``work_size``.

    The energy is the smaller eigenvalue of the local structure tensor (Shi-Tomasi measure) of a
    grayscale copy, integrated over ``TENSOR_SIGMA`` x the long side: high where gradients point in
    many directions (bead ripples, pores, spatter), near zero on smooth metal and on straight
    edges or scratches (tube silhouettes, rolling marks), which are strongly oriented.
    Returns a float32 ``(gh, gw)`` map (squared grey-level gradients), aspect ratio kept. The grid
    depends on the source's size only: with ``source_size`` (``image`` is a downscaled copy of a
    source of that size) it is the grid the full-size source would get. ``gray``:
    :func:`inspection.types.luma` of ``image`` when the caller already has it.
    """
    h, w = source_size if source_size is not None else image.shape[:2]
    gray8 = luma(image) if gray is None else check_luma(gray, image)
    gray = _resize_area(gray8, _downscaled_size(h, w, max(h, w) / work_size)).astype(np.float32)
    size = max(gray.shape)
    gray = np.asarray(cv2.GaussianBlur(gray, (0, 0), GRADIENT_SIGMA * size), dtype=np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    sigma = TENSOR_SIGMA * size
    jxx = cv2.GaussianBlur(gx * gx, (0, 0), sigma)
    jyy = cv2.GaussianBlur(gy * gy, (0, 0), sigma)
    jxy = cv2.GaussianBlur(gx * gy, (0, 0), sigma)
    lam2 = 0.5 * (jxx + jyy) - np.sqrt(0.25 * (jxx - jyy) ** 2 + jxy**2)
    out: npt.NDArray[np.float32] = (np.maximum(lam2, 0.0) ** ENERGY_POWER).astype(np.float32)
    return out


@functools.lru_cache(maxsize=128)
def _projection_geometry(gh: int, gw: int, height: int, width: int, angles: tuple[float, ...]) -> _Geometry:
    """Everything of the angle search that depends on the grid and image size only, not on the
    energy: the projection matrix ``(angles * bins, cells)`` (1 where a cell falls in a bin at an
    angle), the bin geometry, which bins count, and per candidate band window how many valid bins
    it and its flanks hold. Cached: the coarse search always uses the same angles, the fine
    search one of 45 sets, so per image only the energy-dependent sums remain.

    Cell centres are in source pixels relative to the image centre; ``v = -x sin a + y cos a`` is
    the across-seam coordinate for seam direction ``a``.
    """
    sx, sy = width / gw, height / gh
    xs = (np.arange(gw) + 0.5) * sx - width / 2.0
    ys = (np.arange(gh) + 0.5) * sy - height / 2.0
    xx, yy = np.meshgrid(xs, ys)
    xx, yy = xx.ravel(), yy.ravel()
    a = np.radians(np.asarray(angles))[:, None]
    v = -xx[None, :] * np.sin(a) + yy[None, :] * np.cos(a)
    binw = max(sx, sy)
    half = math.hypot(width, height) / 2.0
    nbins = math.ceil(2 * half / binw) + 2
    idx = np.floor((v + half) / binw).astype(np.intp) + 1
    idx += (np.arange(len(angles)) * nbins)[:, None]
    counts = np.bincount(idx.ravel(), minlength=len(angles) * nbins).astype(np.float64)
    counts = counts.reshape(len(angles), nbins)
    cells = np.tile(np.arange(gh * gw), len(angles))
    proj = sparse.csr_matrix((np.ones(idx.size), (idx.ravel(), cells)), shape=(len(angles) * nbins, gh * gw))
    valid = counts >= MIN_BIN_FILL * counts.max(axis=1, keepdims=True)

    short = min(height, width) / binw
    widths = tuple(sorted({max(2, round(f * short)) for f in BAND_WIDTHS}))
    ix = _band_windows(nbins, widths)
    stats = None
    if ix is not None:
        n_a = len(angles)
        cc = np.concatenate([np.zeros((n_a, 1)), np.cumsum(valid.astype(np.float64), axis=1)], axis=1)
        cen_n = cc[:, ix.hi] - cc[:, ix.lo]
        left_n = cc[:, ix.l1] - cc[:, ix.l0]
        right_n = cc[:, ix.r1] - cc[:, ix.r0]
        stats = _WindowStats(
            windows=ix,
            # a flank needs >= f/2 valid bins (then its mean exists); both flanks must exist
            both=(left_n >= ix.half_flank) & (right_n >= ix.half_flank) & (cen_n >= ix.min_fill),
            cen_den=np.maximum(cen_n, 1e-9),
            left_den=np.maximum(left_n, 1e-9),
            right_den=np.maximum(right_n, 1e-9),
            gather=np.concatenate([ix.hi, ix.lo, ix.l1, ix.l0, ix.r1, ix.r0]),
        )
    geo = _Geometry(
        proj=proj,
        nbins=nbins,
        binw=binw,
        v0=-half - binw,
        count_den=np.maximum(counts, 1.0),
        valid=valid,
        valid_den=np.maximum(valid.sum(axis=1), 1).astype(np.float64),
        stats=stats,
    )
    for part in (geo, stats) if stats is not None else (geo,):
        for arr in vars(part).values():
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)
    return geo


@dataclass(frozen=True, eq=False)
class _WindowStats:
    """Per angle and candidate window: valid bins in the centre and flanks (as the divisors of
    their sums), whether the window qualifies, and the cumulative-sum columns to gather."""

    windows: _Windows
    both: npt.NDArray[np.bool_]
    cen_den: FloatArray
    left_den: FloatArray
    right_den: FloatArray
    gather: npt.NDArray[np.intp]


@dataclass(frozen=True, eq=False)
class _Geometry:
    """The energy-independent part of one angle search (see :func:`_projection_geometry`)."""

    proj: sparse.csr_matrix
    nbins: int
    binw: float
    v0: float
    count_den: FloatArray
    valid: npt.NDArray[np.bool_]
    valid_den: FloatArray
    stats: _WindowStats | None


@dataclass(frozen=True)
class _Profiles:
    """Across-seam energy profiles: ``mean[a, b]`` of bin b at angle a, ``valid`` bins, geometry."""

    angles: tuple[float, ...]
    mean: FloatArray
    valid: npt.NDArray[np.bool_]
    binw: float
    v0: float


def _profiles(energy: npt.NDArray[np.float32], geo: _Geometry, angles: tuple[float, ...]) -> _Profiles:
    sums = np.asarray(geo.proj @ energy.ravel().astype(np.float64)).reshape(len(angles), geo.nbins)
    mean = np.where(geo.valid, sums / geo.count_den, 0.0)
    return _Profiles(angles, mean, geo.valid, geo.binw, geo.v0)


@dataclass(frozen=True)
class _Band:
    """Best centre-surround band at one angle: bins [lo, hi) , response and surround level."""

    angle_index: int
    lo: int
    hi: int
    response: float
    centre: float
    surround: float


@dataclass(frozen=True, eq=False)
class _Bands:
    """The best band of every angle (:func:`_best_bands`), as arrays; ``band(i)`` for one."""

    lo: npt.NDArray[np.intp]
    hi: npt.NDArray[np.intp]
    response: FloatArray
    centre: FloatArray
    surround: FloatArray

    def band(self, i: int) -> _Band:
        return _Band(
            i,
            int(self.lo[i]),
            int(self.hi[i]),
            float(self.response[i]),
            float(self.centre[i]),
            float(self.surround[i]),
        )


def _best_bands(prof: _Profiles, geo: _Geometry) -> _Bands:
    """Per angle, the window (over the geometry's band widths) maximising centre mean - max(flank
    means); an angle without a valid window gets the empty band (0, 0) with response 0.

    A window is a band of the profile; its flanks are the half-width runs on either side (only
    valid bins count; both flanks must lie at least half inside the image). A band of high energy
    with lower energy on both sides scores high; a step or ramp scores ~0.
    """
    n_a, n_b = prof.mean.shape
    st = geo.stats
    if st is None:
        zi, zf = np.zeros(n_a, np.intp), np.zeros(n_a)
        return _Bands(zi, zi, zf, zf, zf)
    ix = st.windows
    cp = np.zeros((n_a, n_b + 1))
    np.cumsum(prof.mean, axis=1, out=cp[:, 1:])  # invalid bins hold 0 in ``mean``
    g = cp[:, st.gather].reshape(n_a, 6, -1)
    cen = (g[:, 0] - g[:, 1]) / st.cen_den
    left = (g[:, 2] - g[:, 3]) / st.left_den
    right = (g[:, 4] - g[:, 5]) / st.right_den
    sur = np.maximum(left, right)
    r = np.where(st.both, cen - sur, -np.inf)
    # the first maximum in (width, start) order: the narrowest width reaching it, then the first start
    j = np.argmax(r, axis=1)
    rows = np.arange(n_a)
    rj = r[rows, j]
    found = rj != -np.inf  # else no valid window at this angle
    return _Bands(
        lo=np.where(found, ix.lo[j], 0),
        hi=np.where(found, ix.hi[j], 0),
        response=np.where(found, rj, 0.0),
        centre=np.where(found, cen[rows, j], 0.0),
        surround=np.where(found & st.both[rows, j], sur[rows, j], 0.0),
    )


@dataclass(frozen=True)
class _Windows:
    """Every candidate band window of a profile of ``n_b`` bins, all widths concatenated in order:
    centre bins ``[lo, hi)``, flanks ``[l0, l1)`` and ``[r0, r1)`` (clipped to the profile),
    ``half_flank`` (valid bins each flank needs) and ``min_fill`` (valid centre bins needed)."""

    lo: npt.NDArray[np.intp]
    hi: npt.NDArray[np.intp]
    l0: npt.NDArray[np.intp]
    l1: npt.NDArray[np.intp]
    r0: npt.NDArray[np.intp]
    r1: npt.NDArray[np.intp]
    half_flank: FloatArray
    min_fill: FloatArray


@functools.lru_cache(maxsize=64)
def _band_windows(n_b: int, widths_bins: tuple[int, ...]) -> _Windows | None:
    parts: list[tuple[npt.NDArray[np.intp], ...]] = []
    for w in widths_bins:
        if w >= n_b:
            continue
        f = max(2, round(FLANK_WIDTH * w))
        g = round(FLANK_GUARD * w)
        s = np.arange(n_b - w + 1)
        parts.append(
            (
                s,
                s + w,
                np.maximum(s - g - f, 0),
                np.maximum(s - g, 0),
                np.minimum(s + w + g, n_b),
                np.minimum(s + w + g + f, n_b),
                np.full(s.shape, f / 2.0),
                np.full(s.shape, 0.6 * w),
            )
        )
    if not parts:
        return None
    cols = [np.concatenate(arrays) for arrays in zip(*parts, strict=True)]
    for a in cols:
        a.setflags(write=False)
    return _Windows(*cols)


def _smooth1d(p: FloatArray, sigma: float) -> FloatArray:
    r = max(1, int(3 * sigma))
    x = np.arange(-r, r + 1)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    out: FloatArray = np.convolve(np.pad(p, r, mode="edge"), k, mode="valid")
    return out


def _grow_band(profile: FloatArray, valid: npt.NDArray[np.bool_], band: _Band, gap: int) -> tuple[int, int]:
    """Widen the window [lo, hi) over contiguous bins whose smoothed energy is above the threshold
    ``surround + BAND_LEVEL * (centre - surround)``; gaps up to ``gap`` bins are bridged."""
    p = _smooth1d(np.where(valid, profile, 0.0), 1.0)
    thr = band.surround + BAND_LEVEL * (band.centre - band.surround)
    above = (p >= thr) & valid
    n = len(p)
    lo, hi = band.lo, band.hi - 1
    run = 0
    j = hi + 1
    while j < n and run <= gap:
        if above[j]:
            hi, run = j, 0
        else:
            run += 1
        j += 1
    run = 0
    j = lo - 1
    while j >= 0 and run <= gap:
        if above[j]:
            lo, run = j, 0
        else:
            run += 1
        j -= 1
    return lo, hi + 1


def _extent(width: int, height: int, angle_deg: float) -> tuple[float, float, float, float]:
    """Range of u (along) and v (across) over the image rectangle, relative to the image centre."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    hw, hh = width / 2.0, height / 2.0
    xs = np.array([-hw, hw, hw, -hw])
    ys = np.array([-hh, -hh, hh, hh])
    u = xs * c + ys * s
    v = -xs * s + ys * c
    return float(u.min()), float(u.max()), float(v.min()), float(v.max())


def _wrap_angle(angle: float) -> float:
    """Map any direction (mod 180 deg) into [-90, 90)."""
    return float((angle + 90.0) % 180.0 - 90.0)


def _seam_score(contrast: float, ambiguity: float) -> float:
    """Confidence in [0, 1] that a seam band exists.

    ``contrast``: best band response (centre - surround) over the mean energy of the image;
    ``ambiguity``: best response among directions >= ``AMBIGUITY_MIN_SEPARATION_DEG`` away over the
    best response (1 = another direction is as good, e.g. isotropic texture).
    """
    s_con = min(1.0, max(0.0, (contrast - SCORE_ZERO_CONTRAST) / (SCORE_FULL_CONTRAST - SCORE_ZERO_CONTRAST)))
    s_sel = min(1.0, max(0.0, (1.0 - ambiguity) / (1.0 - AMBIGUITY_LIMIT)))
    return float(np.clip(s_con * (0.5 + 0.5 * s_sel), 0.0, 1.0))


def _search(
    energy: npt.NDArray[np.float32], height: int, width: int, angles: tuple[float, ...]
) -> tuple[_Profiles, _Bands, FloatArray]:
    """Profiles, best band per angle and its response normalised by the profile's mean energy."""
    gh, gw = energy.shape
    geo = _projection_geometry(gh, gw, height, width, angles)
    prof = _profiles(energy, geo, angles)
    bands = _best_bands(prof, geo)
    means = prof.mean.sum(axis=1) / geo.valid_den  # invalid bins hold 0 in ``mean``
    norm = bands.response / np.maximum(means, 1e-9)
    return prof, bands, norm


def seam_energy(
    image: Image,
    work_size: int,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
) -> npt.NDArray[np.float32]:
    """The texture-energy grid the seam search projects: :func:`texture_energy` at ``work_size``,
    area-reduced to a long side of at most ``PROJECTION_SIZE`` cells. Arguments as for
    :func:`texture_energy`; computed once per photo and shared with the domain gate."""
    energy = texture_energy(image, work_size, source_size, gray=gray)
    if max(energy.shape) > PROJECTION_SIZE:
        k = PROJECTION_SIZE / max(energy.shape)
        size = (max(1, round(energy.shape[1] * k)), max(1, round(energy.shape[0] * k)))
        energy = np.asarray(cv2.resize(energy, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
    return energy


def locate_seam(
    image: Image,
    cfg: PreprocessConfig,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
    energy: npt.NDArray[np.float32] | None = None,
) -> SeamRegion | None:
    """Find the weld bead: an oriented band (centre, length along, width across, angle, score).

    ``image``: RGB uint8 (H, W, 3), not modified. Returns None when the image has no texture at
    all (nothing to localise); otherwise a :class:`SeamRegion` in source pixels whose ``score`` in
    [0, 1] is the confidence that a seam was found (low for featureless or isotropic images). The
    band is the bead itself (no margin): at least ``cfg.min_width_fraction`` of the image's extent
    across the seam, spanning the image along the seam.

    Method: texture energy (:func:`texture_energy`) projected across every candidate direction
    (coarse ``COARSE_STEP_DEG`` steps, then 1 deg around the best); the direction with the
    strongest centre-surround band (normalised by the profile's mean energy) wins; the band is
    grown over neighbouring bins still clearly above the surround. When another direction at
    least ``AMBIGUITY_MIN_SEPARATION_DEG`` away scores within ``AMBIGUITY_LIMIT`` of the best, the
    orientation is unreliable and the whole image is returned (:func:`whole_image_region`), so that
    the strip still contains the bead; the score is lowered accordingly.

    ``source_size`` ``(height, width)``: ``image`` is a downscaled copy of a source of that size
    (a reduced JPEG decode); the region is then in source pixels. ``gray``: the image's luma
    when the caller already has it (see :func:`texture_energy`); ``energy``: :func:`seam_energy`
    of the image at ``cfg.work_size`` when the caller already has it.
    """
    check_image(image)
    height, width = _source_size(image, source_size)
    if energy is None:
        energy = seam_energy(image, cfg.work_size, (height, width), gray=gray)
    mean_e = float(energy.mean())
    if mean_e < MIN_ENERGY:
        logger.debug("locate_seam: featureless image (mean energy %.3g)", mean_e)
        return None

    coarse = tuple(float(a) for a in np.arange(-90.0, 90.0, COARSE_STEP_DEG))
    _, _, norm_c = _search(energy, height, width, coarse)
    ib = int(np.argmax(norm_c))
    far = [
        j for j, a in enumerate(coarse) if abs(_wrap_angle(a - coarse[ib])) >= AMBIGUITY_MIN_SEPARATION_DEG
    ]
    ambiguity = float(max(0.0, norm_c[far].max()) / max(float(norm_c[ib]), 1e-9)) if far else 0.0

    fine = tuple(_wrap_angle(coarse[ib] + d) for d in np.arange(-COARSE_STEP_DEG + 1, COARSE_STEP_DEG))
    prof, bands, norm = _search(energy, height, width, fine)
    i = int(np.argmax(norm))
    band, angle = bands.band(i), fine[i]
    score = _seam_score(float(band.response / mean_e), ambiguity)
    logger.debug(
        "locate_seam: angle %.1f response %.3f ambiguity %.2f score %.2f", angle, norm[i], ambiguity, score
    )
    if ambiguity > AMBIGUITY_LIMIT or band.response <= 0:
        return whole_image_region(height, width, score, angle_hint=angle)

    gap = max(1, round(BAND_GAP_FRACTION * min(height, width) / prof.binw))
    lo, hi = _grow_band(prof.mean[i], prof.valid[i], band, gap)
    v_lo, v_hi = prof.v0 + lo * prof.binw, prof.v0 + hi * prof.binw
    u_min, u_max, vmin_img, vmax_img = _extent(width, height, angle)
    band_w = max(v_hi - v_lo, cfg.min_width_fraction * (vmax_img - vmin_img))
    v_mid = (v_lo + v_hi) / 2.0
    v_lo2 = max(vmin_img, v_mid - band_w / 2.0)
    v_hi2 = min(vmax_img, v_lo2 + band_w)
    v_lo2 = max(vmin_img, v_hi2 - band_w)
    v_mid, band_w = (v_lo2 + v_hi2) / 2.0, v_hi2 - v_lo2

    u_lo, u_hi = _chord(width, height, angle, v_lo2, v_hi2, u_min, u_max)
    u_mid, length = (u_lo + u_hi) / 2.0, u_hi - u_lo
    a = math.radians(angle)
    cx = width / 2.0 + u_mid * math.cos(a) - v_mid * math.sin(a)
    cy = height / 2.0 + u_mid * math.sin(a) + v_mid * math.cos(a)
    return SeamRegion(
        center=(float(cx), float(cy)), length=float(length), width=float(band_w), angle_deg=angle, score=score
    )


def _chord(
    width: int, height: int, angle: float, v_lo: float, v_hi: float, u_min: float, u_max: float
) -> tuple[float, float]:
    """Range of u over the part of the image rectangle whose v lies in [v_lo, v_hi] (centred coords)."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    hw, hh = width / 2.0, height / 2.0
    # Clip the rectangle polygon to the slab v_lo <= v <= v_hi, then take the u range.
    poly = [(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)]
    uv = [(x * c + y * s, -x * s + y * c) for x, y in poly]
    for bound, keep_above in ((v_lo, True), (v_hi, False)):
        out: list[tuple[float, float]] = []
        for j in range(len(uv)):
            p, q = uv[j], uv[(j + 1) % len(uv)]
            pin = p[1] >= bound if keep_above else p[1] <= bound
            qin = q[1] >= bound if keep_above else q[1] <= bound
            if pin:
                out.append(p)
            if pin != qin:
                t = (bound - p[1]) / (q[1] - p[1])
                out.append((p[0] + t * (q[0] - p[0]), bound))
        uv = out
        if not uv:
            return u_min, u_max
    us = [p[0] for p in uv]
    lo, hi = min(us), max(us)
    if hi - lo < 1.0:
        return u_min, u_max
    return lo, hi


def whole_image_region(
    height: int, width: int, score: float = 0.0, angle_hint: float | None = None
) -> SeamRegion:
    """The fallback region: the whole image, the seam assumed along an image axis (angle 0 or -90).

    Without ``angle_hint`` the long axis is used; with it, the axis nearest to the hinted direction
    (the best, if unreliable, seam direction), so a bead still tends to run along the strip.
    """
    if angle_hint is None:
        horizontal = width >= height
    else:
        horizontal = abs(_wrap_angle(angle_hint)) <= 45.0
    if horizontal:
        return SeamRegion((width / 2.0, height / 2.0), float(width), float(height), 0.0, score)
    return SeamRegion((width / 2.0, height / 2.0), float(height), float(width), -90.0, score)


# --------------------------------------------------------------------------------------------
# Strip and tiles
# --------------------------------------------------------------------------------------------


def max_strip_length(cfg: PreprocessConfig) -> int:
    """Longest strip (strip pixels) that ``cfg.max_tiles`` tiles cover with ``cfg.tile_overlap``."""
    return cfg.tile_length + (cfg.max_tiles - 1) * _stride(cfg)


def _stride(cfg: PreprocessConfig) -> int:
    return max(1, math.floor(cfg.tile_length * (1.0 - cfg.tile_overlap)))


def crop_region(region: SeamRegion, height: int, width: int, margin: float) -> SeamRegion:
    """The region widened by ``margin`` x width on each side, clamped to the image's extent.

    Clamping intersects the widened band (across) and the region (along) with the image
    rectangle's projection on those axes, so the crop never extends past the image on both sides.
    """
    a = region.angle_deg
    u_min, u_max, v_min, v_max = _extent(width, height, a)
    r = math.radians(a)
    c, s = math.cos(r), math.sin(r)
    dx, dy = region.center[0] - width / 2.0, region.center[1] - height / 2.0
    uc, vc = dx * c + dy * s, -dx * s + dy * c
    half_w = region.width * (0.5 + margin)
    v_lo, v_hi = max(v_min, vc - half_w), min(v_max, vc + half_w)
    u_lo, u_hi = max(u_min, uc - region.length / 2.0), min(u_max, uc + region.length / 2.0)
    if v_hi - v_lo < 1.0:
        v_lo, v_hi = vc - 0.5, vc + 0.5
    if u_hi - u_lo < 1.0:
        u_lo, u_hi = uc - 0.5, uc + 0.5
    um, vm = (u_lo + u_hi) / 2.0, (v_lo + v_hi) / 2.0
    cx = width / 2.0 + um * c - vm * s
    cy = height / 2.0 + um * s + vm * c
    return SeamRegion((float(cx), float(cy)), float(u_hi - u_lo), float(v_hi - v_lo), a, region.score)


def _strip_matrix(region: SeamRegion, strip_len: int, strip_h: int) -> FloatArray:
    a = math.radians(region.angle_deg)
    c, s = math.cos(a), math.sin(a)
    su = strip_len / region.length
    sv = strip_h / region.width
    cx, cy = region.center
    return np.array(
        [
            [su * c, su * s, -su * (c * cx + s * cy) + strip_len / 2.0],
            [-sv * s, sv * c, -sv * (-s * cx + c * cy) + strip_h / 2.0],
        ],
        dtype=np.float64,
    )


def extract_strip(
    image: Image, region: SeamRegion, cfg: PreprocessConfig, source_size: tuple[int, int] | None = None
) -> Strip:
    """Crop and rotate ``region`` (widened by ``cfg.margin``) into a horizontal seam strip.

    ``image``: RGB uint8 (H, W, 3), not modified. The strip is ``(cfg.strip_height, L, 3)`` with
    ``L = round(length * strip_height / width)`` (aspect kept); if L would exceed what
    ``cfg.max_tiles`` tiles cover, the strip is compressed along the seam to that length (then
    ``Strip.scale_along < Strip.scale``). Pixels outside the image are filled by replicating its
    border. Strong downscales are pre-filtered with an area resize (no aliasing).

    ``source_size`` ``(height, width)``: ``image`` is a downscaled copy of a source of that size;
    ``region`` and the strip's matrix are in source pixels.
    """
    check_image(image)
    height, width = _source_size(image, source_size)
    crop = crop_region(region, height, width, cfg.margin)
    sv = cfg.strip_height / crop.width
    strip_len = max(1, round(crop.length * sv))
    strip_len = min(strip_len, max_strip_length(cfg))
    matrix = _strip_matrix(crop, strip_len, cfg.strip_height)

    f = max(sv, strip_len / crop.length) * width / image.shape[1]  # strip px per image px
    src = _downscale(image, 1.0 / f) if f < 0.7 else image
    pre = np.diag([width / src.shape[1], height / src.shape[0], 1.0])  # resized (x', y') -> source
    m_src = matrix @ pre  # resized continuous coords -> strip
    # OpenCV indexes pixel centres at integers: shift by half a pixel on both sides.
    shift_in = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m_cv = (np.vstack([m_src, [0, 0, 1]]) @ shift_in)[:2]
    m_cv[:, 2] -= 0.5
    out = cv2.warpAffine(
        src, m_cv, (strip_len, cfg.strip_height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return Strip(image=np.ascontiguousarray(out), region=crop, matrix=matrix)


def make_tiles(strip: Strip, cfg: PreprocessConfig) -> list[Tile]:
    """Cut the strip into fixed-size model tiles of ``(strip.height, cfg.tile_length, 3)``.

    * L <= tile_length: one tile, the strip on the left, the rest padded by replicating the last
      strip column (``valid`` = L).
    * Longer: n = 1 + ceil((L - T) / stride) tiles with stride = floor(T * (1 - tile_overlap)),
      offsets spread evenly so the first starts at 0 and the last ends at L (overlap >= requested).
    * If n > ``cfg.max_tiles``, the strip is first resized along the seam to the longest length
      ``max_tiles`` cover (``Tile.u_scale`` > 1 records the compression).

    The tile height is the strip's height (``cfg.strip_height`` for strips from :func:`extract_strip`).
    """
    img = strip.image
    t = cfg.tile_length
    length = strip.length
    u_scale = 1.0
    cap = max_strip_length(cfg)
    if length > cap:
        img = np.asarray(cv2.resize(img, (cap, img.shape[0]), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        u_scale = length / cap
        length = cap
    if length <= t:
        pad = t - length
        tile = img if pad == 0 else cv2.copyMakeBorder(img, 0, 0, 0, pad, cv2.BORDER_REPLICATE)
        return [Tile(np.ascontiguousarray(tile), 0.0, length, u_scale)]
    n = 1 + math.ceil((length - t) / _stride(cfg))
    offsets = [round(k * (length - t) / (n - 1)) for k in range(n)]
    return [Tile(np.ascontiguousarray(img[:, o : o + t]), o * u_scale, t, u_scale) for o in offsets]


def preprocess(
    image: Image,
    cfg: PreprocessConfig,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
    energy: npt.NDArray[np.float32] | None = None,
) -> Preprocessed:
    """Locate the seam, extract the strip and cut the tiles (the one path for training and inference).

    When no seam is found (featureless image), the strip covers the whole image along its long axis
    and ``seam_score`` is 0, so the pipeline still runs and the quality gate routes to review.
    ``source_size`` ``(height, width)``: ``image`` is a downscaled copy of a source of that size
    (a reduced JPEG decode); every coordinate returned is then in source pixels. ``gray``: the
    image's luma when the caller already has it (see :func:`texture_energy`); ``energy``: its
    :func:`seam_energy` at ``cfg.work_size``.
    """
    check_image(image)
    height, width = _source_size(image, source_size)
    region = locate_seam(image, cfg, (height, width), gray=gray, energy=energy)
    if region is None:
        use = whole_image_region(height, width, 0.0)
        score = 0.0
    else:
        use = region
        score = region.score
    strip_cfg = cfg if region is not None else cfg.model_copy(update={"margin": 0.0})
    strip = extract_strip(image, use, strip_cfg, (height, width))
    tiles = make_tiles(strip, cfg)
    return Preprocessed(region=region, strip=strip, tiles=tuple(tiles), seam_score=score)
