"""Domain gate: is this photo a seam close-up in the appearance range the grader learned?

The grader was trained on close-ups of three arc/TIG welds on steel tube (``weld-porosity``): the
bead crosses the frame, the tube fills most of it, the photos are colour JPEGs from one phone.
Outside that range its grades are not worth trusting (held-back tests: whole coupons and a
flange's bolt holes circled as pores; pores graded 0 on another camera's photos), so such photos
go to review instead of being graded. Two reasons (stable review codes):

* ``not_seam_closeup``: a wide shot (whole parts, several coupons, other objects) or a photo in
  which the seam is a small part of the frame.
* ``unfamiliar_appearance``: greyscale, saturated colours (paint, text overlays, graphics), salt
  and pepper noise; the model's embedding distance (``out_of_distribution``) is added to this
  reason by :class:`inspection.pipeline.Inspector`.

Measures (all pure functions of the decoded pixels and the seam region; torch-free):

* ``seam_found``: 1 when the seam search found a region at all (0 = no texture anywhere).
* ``background_share``: share of the frame that is featureless (local grey-level standard
  deviation below ``BACKGROUND_STD`` in a 5 x 5 window of a grey copy with long side
  ``work_size``): bench, paper, a wall. A close-up is filled by the workpiece.
* ``seam_span``: the seam band cut into ``SPAN_BINS`` pieces along its length; the share of pieces
  whose mean texture energy (:func:`inspection.image.preprocess.texture_energy`) reaches
  ``SPAN_LEVEL`` of the 90th percentile piece. A bead crosses a close-up; in a wide shot the band
  runs over a short coupon and then over the bench. Texture energy is the seam search's grid
  (:func:`inspection.image.preprocess.seam_energy`, about 80 cells on the long side).
* ``texture_share``: the smallest share of the frame that holds half of the texture energy.
* ``texture_extent``: how far those cells spread along their main axis (5th to 95th percentile),
  as a share of the frame's extent along it. Small when the texture sits in one compact object.
* ``seam_contrast``: mean texture energy inside the seam band over the mean outside it (1.0 when
  the band is the whole frame). A bead across a plain plate holds its texture in the band even
  when ``texture_share`` is small.
* ``detail_share``: share of the frame in focus: cells (``DETAIL_CELLS`` per side) of a grey copy
  at long side ``2 * work_size`` whose mean squared Laplacian reaches ``DETAIL_LEVEL`` of the
  95th percentile cell. Small for a small sharp object on a blurred background.
* ``colourfulness``: mean over pixels of (max - min channel), grey levels (0 = greyscale).
* ``vivid_share``: share of pixels with HSV saturation and value both above 0.5.
* ``impulse_share``: share of pixels brighter or darker by more than ``IMPULSE_LEVEL`` grey
  levels than all 8 of their neighbours (salt and pepper noise; bead texture and edges are not
  single-pixel extremes).

Checks (thresholds in :class:`inspection.config.DomainConfig`; measured: ``docs/domain_gate.md``):
``seam_found``, ``background_share > max``, ``seam_span < min``, ``texture_extent < min``,
``texture_share < min and seam_contrast < min``, ``detail_share < min`` give
``not_seam_closeup``; ``colourfulness < min``, ``vivid_share > max``, ``impulse_share > max`` give
``unfamiliar_appearance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt

from inspection.config import DomainConfig
from inspection.image.preprocess import seam_energy
from inspection.types import DomainVerdict, Image, SeamRegion, check_image, check_luma, luma

NOT_SEAM_CLOSEUP = "not_seam_closeup"
"""Review code: a wide shot or a photo in which the seam is a small part of the frame."""
UNFAMILIAR_APPEARANCE = "unfamiliar_appearance"
"""Review code: the photo looks unlike the photos the grader learned (or its embedding does)."""
REASONS: tuple[str, ...] = (NOT_SEAM_CLOSEUP, UNFAMILIAR_APPEARANCE)
"""Every reason code :func:`assess_domain` may give, in the order it reports them."""

BACKGROUND_STD = 1.5
"""Local grey-level standard deviation (5 x 5 window at ``work_size``) below which a pixel is
featureless background."""
SPAN_BINS = 24
"""Pieces the seam band is cut into along its length for ``seam_span``."""
SPAN_LEVEL = 0.25
"""A piece counts as bead when its texture energy reaches this share of the 90th percentile piece."""
COLOUR_SIZE = 128
"""Long side (about: integer block averages) of the colour copy the colour measures are taken on."""
IMPULSE_SIZE = 800
"""Long side (at most) of the grey copy the impulse noise is counted on (the pipeline decodes JPEGs
at a reduced scale, usually below this, see ``inspection.image.prepare``)."""
IMPULSE_LEVEL = 30
"""Grey levels by which a pixel must exceed (or fall below) all 8 neighbours to be an impulse."""
MIN_ENERGY = 1e-2
"""Mean texture energy below which the frame is featureless (as in the seam search)."""

Check = tuple[str, str, Callable[[dict[str, float], DomainConfig], bool]]

CHECKS: tuple[Check, ...] = (
    ("seam_found", NOT_SEAM_CLOSEUP, lambda m, c: m["seam_found"] < 0.5),
    ("background_share", NOT_SEAM_CLOSEUP, lambda m, c: m["background_share"] > c.max_background_share),
    ("seam_span", NOT_SEAM_CLOSEUP, lambda m, c: m["seam_span"] < c.min_seam_span),
    ("texture_extent", NOT_SEAM_CLOSEUP, lambda m, c: m["texture_extent"] < c.min_texture_extent),
    (
        "texture_share",
        NOT_SEAM_CLOSEUP,
        lambda m, c: m["texture_share"] < c.min_texture_share and m["seam_contrast"] < c.min_seam_contrast,
    ),
    ("detail_share", NOT_SEAM_CLOSEUP, lambda m, c: m["detail_share"] < c.min_detail_share),
    ("colourfulness", UNFAMILIAR_APPEARANCE, lambda m, c: m["colourfulness"] < c.min_colourfulness),
    ("vivid_share", UNFAMILIAR_APPEARANCE, lambda m, c: m["vivid_share"] > c.max_vivid_share),
    ("impulse_share", UNFAMILIAR_APPEARANCE, lambda m, c: m["impulse_share"] > c.max_impulse_share),
)
"""``(name, reason, fails(measures, cfg))`` of every check, in report order."""

FloatArray = npt.NDArray[np.float64]


def _shrunk(image: npt.NDArray[np.uint8], long_side: int) -> npt.NDArray[np.uint8]:
    """``image`` area-resized so that its long side is at most ``long_side`` (never enlarged)."""
    h, w = image.shape[:2]
    k = long_side / max(h, w)
    if k >= 1.0:
        return image
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _block_mean(image: npt.NDArray[np.uint8], long_side: int) -> npt.NDArray[np.uint8]:
    """``image`` averaged over square blocks of the integer size that brings its long side nearest
    to ``long_side`` (never enlarged). Cropping to a multiple of the block (at most block - 1 pixels
    at the right and bottom) keeps OpenCV on its fast exact block-average path."""
    h, w = image.shape[:2]
    k = max(1, round(max(h, w) / long_side))
    if k == 1 or min(h, w) < k:
        return image
    hk, wk = h // k, w // k
    crop = image[: hk * k, : wk * k]
    return np.asarray(cv2.resize(crop, (wk, hk), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def colour_measures(image: Image) -> dict[str, float]:
    """``colourfulness`` and ``vivid_share`` of an RGB ``image`` (see the module docstring)."""
    small = _block_mean(check_image(image), COLOUR_SIZE)
    r, g, b = cv2.split(small)
    chroma = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))  # max - min channel
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    vivid = (hsv[..., 1] > 127) & (hsv[..., 2] > 127)
    return {"colourfulness": float(chroma.mean()), "vivid_share": float(np.count_nonzero(vivid) / vivid.size)}


def impulse_share(gray: npt.NDArray[np.uint8]) -> float:
    """Share of salt-and-pepper pixels of a grey image (see the module docstring)."""
    g = _shrunk(gray, IMPULSE_SIZE)
    if min(g.shape) < 3:
        return 0.0
    ring = np.ones((3, 3), np.uint8)
    ring[1, 1] = 0
    g16 = g.astype(np.int16)
    above = g16 - cv2.dilate(g, ring).astype(np.int16) > IMPULSE_LEVEL
    below = cv2.erode(g, ring).astype(np.int16) - g16 > IMPULSE_LEVEL
    return float(np.count_nonzero(above | below) / g.size)


def background_share(gray: npt.NDArray[np.uint8], work_size: int) -> float:
    """Share of featureless pixels of a grey image at long side ``work_size`` (module docstring)."""
    g = _shrunk(gray, work_size).astype(np.float32)
    mean = cv2.blur(g, (5, 5))
    var = cv2.blur(g * g, (5, 5)) - mean * mean
    return float(np.count_nonzero(var < BACKGROUND_STD**2) / var.size)


DETAIL_CELLS = 16
"""Cells per side of the grid on which fine detail is compared (``detail_share``)."""
DETAIL_LEVEL = 0.2
"""A cell has detail when its fine-scale energy reaches this share of the 95th percentile cell."""


def detail_share(gray: npt.NDArray[np.uint8], size: int) -> float:
    """Share of the frame with fine detail (sharp, in focus): the grey copy at long side ``size``
    is cut into about ``DETAIL_CELLS`` x ``DETAIL_CELLS`` cells; a cell has detail when its mean
    squared Laplacian reaches ``DETAIL_LEVEL`` of the 95th percentile cell."""
    g = _shrunk(gray, size).astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=1)
    h, w = g.shape
    cells = (max(1, round(w * DETAIL_CELLS / max(h, w))), max(1, round(h * DETAIL_CELLS / max(h, w))))
    energy = cv2.resize(lap * lap, cells, interpolation=cv2.INTER_AREA)
    top = float(np.percentile(energy, 95))
    return float(np.count_nonzero(energy >= DETAIL_LEVEL * top) / energy.size) if top > 0 else 0.0


def _cell_centres(shape: tuple[int, int], height: int, width: int) -> tuple[FloatArray, FloatArray]:
    gh, gw = shape
    xs = (np.arange(gw, dtype=np.float64) + 0.5) * (width / gw)
    ys = (np.arange(gh, dtype=np.float64) + 0.5) * (height / gh)
    xx, yy = np.meshgrid(xs, ys)
    return xx, yy


def _axis_extent(width: int, height: int, dx: float, dy: float) -> float:
    """Extent of the image rectangle along the unit direction ``(dx, dy)``."""
    return abs(dx) * width + abs(dy) * height


def texture_layout(energy: npt.NDArray[np.float32], height: int, width: int) -> dict[str, float]:
    """``texture_share`` and ``texture_extent`` of a texture-energy grid covering a ``height`` x
    ``width`` frame (see the module docstring); both 0 for a featureless frame."""
    e = np.asarray(energy, dtype=np.float64).ravel()
    total = float(e.sum())
    if e.size == 0 or total <= MIN_ENERGY * e.size:
        return {"texture_share": 0.0, "texture_extent": 0.0}
    ranked = np.sort(e)[::-1]
    n_half = int(np.searchsorted(np.cumsum(ranked), 0.5 * total)) + 1
    hot = e >= ranked[n_half - 1]  # ties at the cut join (measure-zero for real energies)
    xx, yy = _cell_centres(energy.shape, height, width)
    pts = np.stack([xx.ravel()[hot], yy.ravel()[hot]], axis=1)
    extent = 0.0
    if n_half >= 3:
        centred = pts - pts.mean(axis=0)
        _, vecs = np.linalg.eigh(centred.T @ centred)
        dx, dy = float(vecs[0, -1]), float(vecs[1, -1])
        proj = centred @ np.array([dx, dy])
        lo, hi = np.percentile(proj, (5.0, 95.0))
        spread = float(hi - lo)
        extent = spread / max(_axis_extent(width, height, dx, dy), 1e-9)
    return {"texture_share": n_half / e.size, "texture_extent": float(min(1.0, extent))}


def seam_layout(
    energy: npt.NDArray[np.float32], region: SeamRegion, height: int, width: int
) -> dict[str, float]:
    """``seam_span`` and ``seam_contrast`` of ``region`` over a texture-energy grid covering a
    ``height`` x ``width`` frame (see the module docstring)."""
    e = np.asarray(energy, dtype=np.float64)
    xx, yy = _cell_centres(e.shape, height, width)
    a = math.radians(region.angle_deg)
    c, s = math.cos(a), math.sin(a)
    dx, dy = xx - region.center[0], yy - region.center[1]
    u = dx * c + dy * s
    v = -dx * s + dy * c
    inside = (np.abs(v) <= region.width / 2.0) & (np.abs(u) <= region.length / 2.0)
    if not inside.any():
        return {"seam_span": 0.0, "seam_contrast": 0.0}
    band_mean = float(e[inside].mean())
    outside = ~inside
    out_mean = float(e[outside].mean()) if outside.any() else band_mean
    contrast = band_mean / out_mean if out_mean > 0 else (1.0 if band_mean <= 0 else math.inf)
    ub = u[inside]
    lo, hi = float(ub.min()), float(ub.max())
    bins = np.clip(((ub - lo) / max(hi - lo, 1e-9) * SPAN_BINS).astype(np.intp), 0, SPAN_BINS - 1)
    sums = np.bincount(bins, e[inside], SPAN_BINS)
    counts = np.bincount(bins, None, SPAN_BINS)
    pieces = sums[counts > 0] / counts[counts > 0]
    top = float(np.percentile(pieces, 90))
    span = float(np.count_nonzero(pieces >= SPAN_LEVEL * top) / pieces.size) if top > 0 else 0.0
    return {"seam_span": span, "seam_contrast": float(min(contrast, 1e6))}


def measure_domain(
    image: Image,
    region: SeamRegion | None,
    cfg: DomainConfig,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
    energy: npt.NDArray[np.float32] | None = None,
) -> dict[str, float]:
    """Every domain measure of ``image`` (RGB uint8 ``(H, W, 3)``, not modified) and its seam
    ``region`` (from :func:`inspection.image.preprocess.locate_seam`, source pixels; None = no seam).

    ``source_size`` ``(height, width)``: ``image`` is a downscaled copy of a source of that size (a
    reduced JPEG decode) and ``region`` is in source pixels; ``gray``: the image's luma when the
    caller already has it; ``energy``: :func:`inspection.image.preprocess.seam_energy` of the image
    when the caller already has it (the seam search's grid; otherwise computed at ``cfg.work_size``).
    """
    check_image(image)
    gray = luma(image) if gray is None else check_luma(gray, image)
    height, width = source_size if source_size is not None else image.shape[:2]
    m: dict[str, float] = {"seam_found": 0.0 if region is None else 1.0}
    m["background_share"] = background_share(gray, cfg.work_size)
    if energy is None:
        energy = seam_energy(image, cfg.work_size, (height, width), gray=gray)
    m.update(texture_layout(energy, height, width))
    if region is None:
        m.update(seam_span=0.0, seam_contrast=0.0)
    else:
        m.update(seam_layout(energy, region, height, width))
    m.update(colour_measures(image))
    m["impulse_share"] = impulse_share(gray)
    m["detail_share"] = detail_share(gray, 2 * cfg.work_size)
    return {k: round(v, 6) for k, v in m.items()}


def judge_domain(measures: dict[str, float], cfg: DomainConfig) -> DomainVerdict:
    """The verdict on ``measures`` (from :func:`measure_domain`) under ``cfg``'s thresholds.

    Without a seam the seam and texture layout checks are skipped (``seam_found`` already fails).
    """
    layout = {"seam_span", "texture_extent", "texture_share"}
    failed = [
        name
        for name, _, fails in CHECKS
        if not (measures["seam_found"] < 0.5 and name in layout) and fails(measures, cfg)
    ]
    by_name = {name: reason for name, reason, _ in CHECKS}
    reasons = tuple(r for r in REASONS if any(by_name[f] == r for f in failed))
    return DomainVerdict(ok=not reasons, reasons=reasons, failed=tuple(failed), measures=dict(measures))


def assess_domain(
    image: Image,
    region: SeamRegion | None,
    cfg: DomainConfig,
    source_size: tuple[int, int] | None = None,
    *,
    gray: npt.NDArray[np.uint8] | None = None,
    energy: npt.NDArray[np.float32] | None = None,
) -> DomainVerdict:
    """Decide whether ``image`` is a seam close-up the grader is competent for. Pure; no mutation.

    Arguments as for :func:`measure_domain`. Returns a :class:`inspection.types.DomainVerdict`
    whose ``reasons`` are in :data:`REASONS` order, ``failed`` names the checks in :data:`CHECKS`
    order and ``measures`` holds every measure.
    """
    return judge_domain(measure_domain(image, region, cfg, source_size, gray=gray, energy=energy), cfg)
