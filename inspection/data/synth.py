"""Procedural photos of weld beads with labelled pores and spatter (pure, seeded).

:func:`generate_weld` renders one RGB uint8 ``(H, W, 3)`` image of a weld bead crossing a ground
steel plate, with porosity (dark holes with a bright rim, on the bead) and spatter (small bright
metal balls with a specular highlight and a contact shadow, mostly beside the bead), and returns
the true boxes and the true bead region. Everything is a function of the given
``numpy.random.Generator``: the same generator state gives identical arrays.

Rendering model: a height field (plate + domed bead with chevron ripples + pore craters +
spatter spheres) is shaded with one directional light (Lambert + Blinn-Phong), multiplied with an
albedo map (brushed steel with scratches, heat-tint bands beside the bead, darker oxidised bead),
then a lighting gradient, slight defocus, sensor noise and a JPEG round trip are applied.

Scale: ``mm_per_px`` (default ``40 mm / long side``, i.e. 0.05 mm/px at 800 px). Droplets are
0.2-1.5 mm across, pores 0.3-2.0 mm, the bead 4-9 mm wide, ripple pitch 0.8-2 mm.

:func:`write_dataset` writes such images as JPEGs plus ``annotations.jsonl`` in the format of
``weld-porosity/DATA_CARD.md``; it is the only function here that touches the disk.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from inspection.config import GradingConfig
from inspection.types import Box, Image, SeamRegion, check_image, grade_from_count

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

DEFAULT_FIELD_OF_VIEW_MM = 40.0
"""Default field of view of the long image side; sets ``mm_per_px`` when not given."""

MIN_SIZE_PX = 16
"""Smallest accepted width/height."""

# Heat-tint colours (RGB 0..1), from the bead edge outward: dark oxide, purple, blue, straw, base.
_TINT_STAINLESS = np.array(
    [[0.30, 0.25, 0.28], [0.42, 0.30, 0.45], [0.35, 0.42, 0.62], [0.78, 0.66, 0.40], [0.82, 0.74, 0.55]],
    dtype=np.float32,
)
_TINT_CARBON = np.array(
    [[0.22, 0.16, 0.12], [0.38, 0.24, 0.14], [0.50, 0.33, 0.18], [0.58, 0.45, 0.30], [0.65, 0.58, 0.48]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class SynthWeld:
    """One synthetic weld photo.

    ``image``: RGB uint8 ``(H, W, 3)``; ``boxes``: the pores (label ``porosity``) and droplets
    (label ``spatter``) in pixels; ``seam``: the true bead region (oriented rectangle);
    ``mm_per_px``: the scale the sizes were drawn at.
    """

    image: Image
    boxes: tuple[Box, ...]
    seam: SeamRegion
    mm_per_px: float

    def __post_init__(self) -> None:
        check_image(self.image, "SynthWeld.image")
        h, w = self.image.shape[:2]
        for b in self.boxes:
            if b.label not in ("porosity", "spatter"):
                msg = f"SynthWeld box label must be 'porosity' or 'spatter', got {b.label!r}"
                raise ValueError(msg)
            if b.x0 < 0 or b.y0 < 0 or b.x1 > w or b.y1 > h:
                msg = f"SynthWeld box {b.as_tuple()} lies outside the {w} x {h} image"
                raise ValueError(msg)
        if not (math.isfinite(self.mm_per_px) and self.mm_per_px > 0):
            msg = f"SynthWeld.mm_per_px must be a positive number, got {self.mm_per_px!r}"
            raise ValueError(msg)

    def count(self, label: str) -> int:
        """Number of boxes with ``label``."""
        return sum(1 for b in self.boxes if b.label == label)


def count_range_for_grade(grade: int, thresholds: tuple[int, int, int], top_extra: int) -> tuple[int, int]:
    """Inclusive (low, high) count range that gives ``grade``; grade 3 spans ``top_extra`` more."""
    if not 0 <= grade <= 3:
        msg = f"grade must be in 0..3, got {grade}"
        raise ValueError(msg)
    if grade == 0:
        return (0, max(0, thresholds[0] - 1))
    if grade == 3:
        return (thresholds[2], thresholds[2] + max(0, top_extra))
    return (thresholds[grade - 1], thresholds[grade] - 1)


# --------------------------------------------------------------------------------------------
# rendering helpers (all pure)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale_px: float) -> F32:
    """Zero-mean, unit-std smooth noise of shape (h, w) with feature size ~``scale_px``."""
    sh, sw = max(2, int(h / max(scale_px, 1.0)) + 2), max(2, int(w / max(scale_px, 1.0)) + 2)
    small = rng.standard_normal((sh, sw)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    std = float(big.std()) or 1.0
    return ((big - big.mean()) / std).astype(np.float32)


def _brushed(rng: np.random.Generator, h: int, w: int, angle_deg: float, streak_px: float) -> F32:
    """Unit-std anisotropic noise streaked along ``angle_deg`` (ground/brushed steel grain)."""
    n = math.ceil(math.hypot(h, w)) + 4
    noise = rng.standard_normal((n, n)).astype(np.float32)
    streaked = np.asarray(cv2.GaussianBlur(noise, (0, 0), sigmaX=streak_px, sigmaY=0.6), np.float32)
    rot = cv2.getRotationMatrix2D((n / 2.0, n / 2.0), -angle_deg, 1.0)
    rot[0, 2] -= (n - w) / 2.0
    rot[1, 2] -= (n - h) / 2.0
    out = cv2.warpAffine(streaked, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    std = float(out.std()) or 1.0
    return ((out - out.mean()) / std).astype(np.float32)


def _palette(stops: npt.NDArray[np.float32], t: F32) -> F32:
    """Interpolate RGB ``stops`` (k, 3) at ``t`` in [0, 1] -> (..., 3)."""
    k = stops.shape[0]
    x = np.clip(t, 0.0, 1.0) * (k - 1)
    i0 = np.clip(np.floor(x).astype(np.int32), 0, k - 2)
    f = (x - i0)[..., None]
    return (stops[i0] * (1.0 - f) + stops[i0 + 1] * f).astype(np.float32)


@dataclass(frozen=True)
class _Frame:
    """Seam coordinates: ``u`` along the seam, ``v`` across (signed, curved), both in px."""

    cx: float
    cy: float
    angle: float  # radians
    bend: float  # curvature coefficient: centre line v = bend * u**2

    def to_uv(self, x: F32, y: F32) -> tuple[F32, F32]:
        dx, dy = x - self.cx, y - self.cy
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        u = dx * ca + dy * sa
        v = -dx * sa + dy * ca
        return u.astype(np.float32), (v - self.bend * u * u).astype(np.float32)

    def to_xy(self, u: float, v: float) -> tuple[float, float]:
        vv = v + self.bend * u * u
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        return (self.cx + u * ca - vv * sa, self.cy + u * sa + vv * ca)


def _box_inside(x: float, y: float, rx: float, ry: float, w: int, h: int) -> bool:
    return x - rx >= 0 and y - ry >= 0 and x + rx <= w and y + ry <= h


def generate_weld(
    rng: np.random.Generator,
    *,
    width: int = 800,
    height: int = 800,
    n_pores: int,
    n_spatter: int,
    angle_deg: float | None = None,
    mm_per_px: float | None = None,
    bead_width_mm: float | None = None,
    curved: bool | None = None,
    jpeg_quality: int | None = None,
) -> SynthWeld:
    """Render one synthetic weld photo of ``width`` x ``height`` px.

    ``n_pores`` pores (on the bead) and ``n_spatter`` droplets (mostly beside it) are placed;
    their boxes are returned exactly (``len`` matches the requested counts). ``angle_deg`` is the
    seam direction from +x towards +y (random when None); ``mm_per_px`` the scale (default
    ``40 mm / max(width, height)``); ``bead_width_mm`` random in 4-9 mm when None; ``curved``
    random (25 % curved) when None; ``jpeg_quality`` random 72-92 when None (0 disables the JPEG
    round trip). Raises ValueError for invalid arguments.
    """
    if width < MIN_SIZE_PX or height < MIN_SIZE_PX:
        msg = f"width and height must be >= {MIN_SIZE_PX} px, got {width} x {height}"
        raise ValueError(msg)
    if n_pores < 0 or n_spatter < 0:
        msg = f"n_pores and n_spatter must be >= 0, got {n_pores} and {n_spatter}"
        raise ValueError(msg)
    if mm_per_px is not None and not (math.isfinite(mm_per_px) and mm_per_px > 0):
        msg = f"mm_per_px must be a positive number, got {mm_per_px!r}"
        raise ValueError(msg)
    if jpeg_quality is not None and not 0 <= jpeg_quality <= 100:
        msg = f"jpeg_quality must be in 0..100 (0 = no JPEG round trip), got {jpeg_quality}"
        raise ValueError(msg)

    h, w = int(height), int(width)
    mpp = float(mm_per_px) if mm_per_px is not None else DEFAULT_FIELD_OF_VIEW_MM / max(w, h)
    px = 1.0 / mpp  # pixels per mm

    # --- geometry ------------------------------------------------------------------------
    angle = float(rng.uniform(-90.0, 90.0)) if angle_deg is None else float(angle_deg)
    a = math.radians(angle)
    bead_w_mm = float(rng.uniform(4.0, 9.0)) if bead_width_mm is None else float(bead_width_mm)
    half_w = max(2.0, 0.5 * bead_w_mm * px)
    half_w = min(half_w, 0.3 * min(w, h))
    is_curved = bool(rng.random() < 0.25) if curved is None else curved
    diag = math.hypot(w, h)
    bend = float(rng.uniform(0.08, 0.25) * rng.choice([-1.0, 1.0]) / diag) if is_curved else 0.0
    off = rng.uniform(-0.12, 0.12, size=2) * np.array([w, h])
    frame = _Frame(w / 2.0 + float(off[0]), h / 2.0 + float(off[1]), a, bend)

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = frame.to_uv(xs, ys)
    # bead half-width wobbles slowly along the seam
    wob_n = 64
    wob = cv2.GaussianBlur(rng.standard_normal((1, wob_n)).astype(np.float32), (0, 0), 3.0).ravel()
    wob = wob / (np.abs(wob).max() + 1e-6)
    u_pos = np.clip(((u / diag) + 0.5) * (wob_n - 1), 0, wob_n - 1)
    hw_map = (half_w * (1.0 + 0.12 * np.interp(u_pos, np.arange(wob_n), wob))).astype(np.float32)
    vn = v / hw_map  # -1..1 across the bead
    on_bead = np.abs(vn) < 1.0

    # --- height field ----------------------------------------------------------------------
    bead_h = 0.35 * half_w
    dome = np.sqrt(np.clip(1.0 - vn * vn, 0.0, 1.0)) ** 0.8
    pitch = float(rng.uniform(1.0, 3.0)) * px
    chevron = float(rng.uniform(0.2, 1.0)) * (1.0 if rng.random() < 0.5 else -1.0)
    phase = (u + chevron * np.abs(v) * (1.0 + 0.3 * vn * vn)) * (2.0 * math.pi / max(pitch, 2.0))
    phase = phase + 1.2 * _smooth_noise(rng, h, w, max(2.0 * pitch, 4.0))
    ripple = np.sin(phase) + 0.35 * np.sin(2.0 * phase + 1.0)
    ripple_amp = float(rng.uniform(0.02, 0.07))
    lumps = _smooth_noise(rng, h, w, max(half_w, 4.0))
    jitter = _smooth_noise(rng, h, w, max(pitch * 0.7, 2.0))
    height_map = (bead_h * dome * (1.0 + ripple_amp * ripple + 0.04 * jitter + 0.12 * lumps)).astype(
        np.float32
    )
    height_map += (0.015 * bead_h * _smooth_noise(rng, h, w, 0.25 * px)).astype(np.float32) * on_bead
    height_map += (0.12 * _smooth_noise(rng, h, w, max(3.0, 0.3 * px))).astype(np.float32)  # plate roughness

    # --- albedo: plate ----------------------------------------------------------------------
    stainless = bool(rng.random() < 0.5)
    steel = float(rng.uniform(0.6, 0.82) if stainless else rng.uniform(0.38, 0.62))
    base_tint = [1.0, 0.99, 0.97] if stainless else [1.0, 0.96, 0.9]
    tint_rgb = np.array(base_tint, np.float32) + rng.uniform(-0.02, 0.02, 3).astype(np.float32)
    brush = _brushed(rng, h, w, float(rng.uniform(0, 180)), float(rng.uniform(8, 30)))
    blotch = _smooth_noise(rng, h, w, min(w, h) / 4.0)
    plate = steel * (1.0 + 0.07 * brush + 0.06 * blotch)
    albedo = plate[..., None] * tint_rgb[None, None, :]
    scratches = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(5, 30))):
        x0, y0 = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        ang = float(rng.uniform(0, math.pi))
        length = float(rng.uniform(0.05, 0.5)) * diag
        x1, y1 = x0 + length * math.cos(ang), y0 + length * math.sin(ang)
        val = float(rng.uniform(-0.18, 0.12))
        cv2.line(scratches, (int(x0), int(y0)), (int(x1), int(y1)), val, 1, cv2.LINE_AA)
    albedo = albedo + scratches[..., None]

    # --- heat tint beside the bead --------------------------------------------------------
    stops = _TINT_STAINLESS if stainless else _TINT_CARBON
    tint_w = float(rng.uniform(0.4, 1.3)) * half_w
    dist = (np.abs(v) - hw_map) / tint_w + 0.25 * _smooth_noise(rng, h, w, 0.5 * half_w)
    tint_alpha = np.clip(1.0 - dist, 0.0, 1.0) ** 0.7 * float(rng.uniform(0.5, 0.95))
    tint_alpha = cv2.GaussianBlur(tint_alpha.astype(np.float32), (0, 0), max(0.8, 0.06 * half_w))
    tint_col = _palette(stops, np.clip(dist, 0.0, 1.0))
    tint_col = tint_col * (1.0 + 0.08 * brush[..., None])
    albedo = albedo * (1.0 - tint_alpha[..., None]) + tint_col * tint_alpha[..., None]

    # --- albedo: bead ---------------------------------------------------------------------
    bead_base = float(rng.uniform(0.3, 0.55))
    bead_tint = np.array([0.95, 0.97, 1.04], np.float32) + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    oxide = np.clip(_smooth_noise(rng, h, w, max(0.6 * half_w, 3.0)), -1.0, 2.0)
    bead_tex = 1.0 + 0.12 * _smooth_noise(rng, h, w, max(2.0, 0.3 * px)) + 0.06 * ripple - 0.18 * oxide
    bead_alb = (bead_base * bead_tex)[..., None] * bead_tint[None, None, :]
    edge = np.clip((1.0 - np.abs(vn)) / 0.15, 0.0, 1.0)[..., None]  # soft bead toe
    albedo = albedo * (1.0 - edge) + bead_alb * edge

    # --- pores ------------------------------------------------------------------------------
    boxes: list[Box] = []
    pore_mask = np.zeros((h, w), np.float32)
    placed: list[tuple[float, float, float]] = []
    half_len = 0.5 * diag
    for _ in range(n_pores):
        d_px = max(3.0, float(rng.uniform(0.3, 2.0)) * px)
        d_px = min(d_px, 1.4 * half_w)
        rx = 0.5 * d_px * float(rng.uniform(0.8, 1.25))
        ry = 0.5 * d_px * float(rng.uniform(0.8, 1.25))
        rot = float(rng.uniform(0, 180))
        r_bound = max(rx, ry) + 1.5  # include the rim
        x = y = 0.0
        for attempt in range(400):
            uu = float(rng.uniform(-half_len, half_len))
            vv = float(rng.uniform(-0.65, 0.65)) * max(half_w - r_bound, 0.0)
            x, y = frame.to_xy(uu, vv)
            if not _box_inside(x, y, r_bound, r_bound, w, h):
                continue
            if attempt < 300 and any(math.hypot(x - px_, y - py_) < r_bound + pr for px_, py_, pr in placed):
                continue
            break
        else:
            x, y = min(max(frame.cx, r_bound), w - r_bound), min(max(frame.cy, r_bound), h - r_bound)
        placed.append((x, y, r_bound))
        # crater in the height field, dark interior, raised rim
        yy, xx = ys - y, xs - x
        cr, sr = math.cos(math.radians(rot)), math.sin(math.radians(rot))
        ex = (xx * cr + yy * sr) / rx
        ey = (-xx * sr + yy * cr) / ry
        rr = np.sqrt(ex * ex + ey * ey)
        inside = np.clip(1.0 - rr, 0.0, 1.0)
        height_map -= (0.9 * min(rx, ry) * np.sqrt(inside)).astype(np.float32)
        rim = np.exp(-((rr - 1.08) ** 2) / 0.02).astype(np.float32)
        height_map += (0.12 * min(rx, ry) * rim).astype(np.float32)
        pore_mask = np.maximum(pore_mask, np.clip((1.05 - rr) / 0.15, 0.0, 1.0).astype(np.float32))
        # tight axis-aligned box of the rotated ellipse (plus 1 px rim)
        ext_x = math.sqrt((rx * cr) ** 2 + (ry * sr) ** 2) + 1.0
        ext_y = math.sqrt((rx * sr) ** 2 + (ry * cr) ** 2) + 1.0
        bx0, by0 = max(0.0, x - ext_x), max(0.0, y - ext_y)
        bx1, by1 = min(float(w), x + ext_x), min(float(h), y + ext_y)
        boxes.append(Box(round(bx0, 2), round(by0, 2), round(bx1, 2), round(by1, 2), "porosity"))

    # --- spatter ----------------------------------------------------------------------------
    shadow = np.zeros((h, w), np.float32)
    ball_mask = np.zeros((h, w), np.float32)
    light_az = float(rng.uniform(0, 2 * math.pi))
    light_el = math.radians(float(rng.uniform(35, 65)))
    lx, ly = math.cos(light_az) * math.cos(light_el), math.sin(light_az) * math.cos(light_el)
    lz = math.sin(light_el)
    spread = float(rng.uniform(1.0, 3.0)) * half_w
    for _ in range(n_spatter):
        r = max(1.5, 0.5 * float(rng.lognormal(math.log(0.55), 0.45)) * px)
        r = min(r, 0.75 * px)  # <= 1.5 mm diameter
        x = y = 0.0
        for attempt in range(400):
            uu = float(rng.uniform(-half_len, half_len))
            if rng.random() < 0.12:
                vv = float(rng.uniform(-0.8, 0.8)) * half_w
            else:
                vv = float(rng.choice([-1.0, 1.0])) * (half_w + r + float(rng.exponential(spread)))
            x, y = frame.to_xy(uu, vv)
            if not _box_inside(x, y, r + 1.0, r + 1.0, w, h):
                continue
            if attempt < 300 and any(math.hypot(x - px_, y - py_) < r + pr + 1.0 for px_, py_, pr in placed):
                continue
            break
        else:
            x, y = (
                min(max(float(rng.uniform(0, w)), r + 1), w - r - 1),
                min(max(float(rng.uniform(0, h)), r + 1), h - r - 1),
            )
        placed.append((x, y, r + 1.0))
        x0i, x1i = max(0, int(x - 3 * r - 3)), min(w, int(x + 3 * r + 4))
        y0i, y1i = max(0, int(y - 3 * r - 3)), min(h, int(y + 3 * r + 4))
        sx, sy = xs[y0i:y1i, x0i:x1i] - x, ys[y0i:y1i, x0i:x1i] - y
        d2 = (sx * sx + sy * sy) / (r * r)
        sphere = np.sqrt(np.clip(1.0 - d2, 0.0, 1.0)) * r
        height_map[y0i:y1i, x0i:x1i] += sphere.astype(np.float32)
        ball_mask[y0i:y1i, x0i:x1i] = np.maximum(
            ball_mask[y0i:y1i, x0i:x1i], np.clip((1.0 - np.sqrt(d2)) * r, 0.0, 1.0).astype(np.float32)
        )
        # contact shadow, offset away from the light
        ox, oy = -lx / max(lz, 0.3) * 0.6 * r, -ly / max(lz, 0.3) * 0.6 * r
        s2 = ((sx - ox) ** 2 + (sy - oy) ** 2) / ((1.3 * r) ** 2)
        shadow[y0i:y1i, x0i:x1i] = np.maximum(shadow[y0i:y1i, x0i:x1i], np.exp(-s2 * 1.5).astype(np.float32))
        boxes.append(
            Box(
                round(max(0.0, x - r - 0.5), 2),
                round(max(0.0, y - r - 0.5), 2),
                round(min(float(w), x + r + 0.5), 2),
                round(min(float(h), y + r + 0.5), 2),
                "spatter",
            )
        )

    # ball albedo: dark grey/brown oxidised metal
    ball_col = np.array([0.45, 0.42, 0.40], np.float32) * float(rng.uniform(0.7, 1.2))
    albedo = albedo * (1.0 - ball_mask[..., None]) + ball_col * ball_mask[..., None]
    # pore interior: almost black
    albedo = albedo * (1.0 - 0.75 * pore_mask[..., None])

    # --- shading ------------------------------------------------------------------------------
    gy, gx = np.gradient(height_map)
    nz = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    nx, ny = -gx * nz, -gy * nz
    diffuse = np.clip(nx * lx + ny * ly + nz * lz, 0.0, 1.0)
    hx, hy, hz = lx, ly, lz + 1.0
    hn = math.sqrt(hx * hx + hy * hy + hz * hz)
    ndoth = np.clip((nx * hx + ny * hy + nz * hz) / hn, 0.0, 1.0)
    metal = np.clip(0.25 + 0.75 * np.maximum(edge[..., 0], ball_mask), 0.0, 1.0)
    spec = (ndoth**40.0) * (0.6 * metal) + (ndoth**8.0) * 0.08
    spec = spec * (1.0 - 0.9 * pore_mask)
    shade = 0.35 + 0.75 * diffuse
    shade = shade * (1.0 - 0.45 * shadow * (1.0 - ball_mask))
    rgb = albedo * shade[..., None] + spec[..., None] * np.array([1.0, 0.98, 0.95], np.float32)

    # --- camera: lighting gradient, vignette, defocus, noise, JPEG -----------------------
    g_ang = float(rng.uniform(0, 2 * math.pi))
    grad = (xs - w / 2.0) * math.cos(g_ang) + (ys - h / 2.0) * math.sin(g_ang)
    grad = 1.0 + float(rng.uniform(0.0, 0.35)) * grad / (0.5 * diag)
    r2 = ((xs - w / 2.0) ** 2 + (ys - h / 2.0) ** 2) / (0.5 * diag) ** 2
    vignette = 1.0 - float(rng.uniform(0.05, 0.3)) * r2
    exposure = float(rng.uniform(0.85, 1.15))
    rgb = rgb * (grad * vignette * exposure)[..., None]
    rgb = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), float(rng.uniform(0.4, 0.9)))
    rgb = rgb + rng.normal(0.0, float(rng.uniform(0.005, 0.015)), rgb.shape).astype(np.float32)
    out = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    quality = int(rng.integers(72, 93)) if jpeg_quality is None else int(jpeg_quality)
    if quality > 0:
        ok, enc = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(enc, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded[..., ::-1]
    image = np.ascontiguousarray(out, dtype=np.uint8)

    seam = _seam_region(frame, half_w, w, h, angle)
    return SynthWeld(image=image, boxes=tuple(boxes), seam=seam, mm_per_px=mpp)


def _seam_region(frame: _Frame, half_w: float, w: int, h: int, angle_deg: float) -> SeamRegion:
    """Oriented rectangle around the visible bead: chord of the centre line through the image."""
    us = np.linspace(-math.hypot(w, h), math.hypot(w, h), 801)
    pts = np.array([frame.to_xy(float(uu), 0.0) for uu in us])
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= w) & (pts[:, 1] >= 0) & (pts[:, 1] <= h)
    if not inside.any():  # cannot happen with the offsets used, but stay safe
        inside[len(us) // 2] = True
    u_in = us[inside]
    u0, u1 = float(u_in.min()), float(u_in.max())
    um = 0.5 * (u0 + u1)
    length = max(1.0, u1 - u0)
    sag = abs(frame.bend) * (0.5 * length) ** 2
    ca, sa = math.cos(frame.angle), math.sin(frame.angle)
    # centre on the chord, shifted halfway towards the curve's apex
    base_v = frame.bend * (um * um + (0.5 * length) ** 2) * 0.5
    cx = frame.cx + um * ca - base_v * sa
    cy = frame.cy + um * sa + base_v * ca
    ang = ((angle_deg + 90.0) % 180.0) - 90.0
    return SeamRegion(
        center=(cx, cy), length=length, width=2.0 * half_w * 1.12 + sag, angle_deg=ang, score=1.0
    )


# --------------------------------------------------------------------------------------------
# dataset writing (I/O edge)


def draw_counts(
    rng: np.random.Generator, porosity_grade: int, spatter_grade: int, grading: GradingConfig | None = None
) -> tuple[int, int]:
    """Random (n_pores, n_spatter) whose reference grades are the given ones."""
    g = grading or GradingConfig()
    p_lo, p_hi = count_range_for_grade(porosity_grade, g.porosity_thresholds, top_extra=4)
    s_lo, s_hi = count_range_for_grade(spatter_grade, g.spatter_thresholds, top_extra=24)
    return int(rng.integers(p_lo, p_hi + 1)), int(rng.integers(s_lo, s_hi + 1))


def _box_json(b: Box, w: int, h: int) -> list[int]:
    """Inclusive integer pixel corners, as in the real data's annotations."""
    return [
        max(0, math.floor(b.x0)),
        max(0, math.floor(b.y0)),
        min(w - 1, math.ceil(b.x1) - 1),
        min(h - 1, math.ceil(b.y1) - 1),
    ]


def annotation_record(
    weld: SynthWeld, image_rel: str, group: str, source: str, grading: GradingConfig | None = None
) -> dict[str, Any]:
    """The ``annotations.jsonl`` record for one synthetic weld (see weld-porosity DATA_CARD)."""
    g = grading or GradingConfig()
    h, w = weld.image.shape[:2]
    s = weld.seam
    return {
        "image": image_rel,
        "width": int(w),
        "height": int(h),
        "group": group,
        "objects": [{"label": b.label, "box": _box_json(b, w, h)} for b in weld.boxes],
        "source": source,
        "grades": {
            "porosity": grade_from_count(weld.count("porosity"), g.porosity_thresholds),
            "spatter": grade_from_count(weld.count("spatter"), g.spatter_thresholds),
        },
        "mm_per_px": round(weld.mm_per_px, 6),
        "seam": {
            "center": [round(s.center[0], 2), round(s.center[1], 2)],
            "length": round(s.length, 2),
            "width": round(s.width, 2),
            "angle_deg": round(s.angle_deg, 3),
        },
    }


def write_dataset(
    out: Path,
    n: int,
    seed: int,
    *,
    width: int = 800,
    height: int = 800,
    jpeg_quality: int = 90,
    grading: GradingConfig | None = None,
) -> Path:
    """Write ``n`` synthetic welds to ``out/images/synthNNNN.jpg`` and ``out/annotations.jsonl``.

    Image ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` (so it does not depend on
    ``n``); its grades cycle through all 16 (porosity, spatter) grade pairs, so the grades are
    balanced. Each weld is its own ``group`` (``synthNNNN``). Returns the annotations path.
    """
    if n < 1:
        msg = f"n must be >= 1, got {n}"
        raise ValueError(msg)
    from PIL import Image as PILImage

    g = grading or GradingConfig()
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    ann_path = out / "annotations.jsonl"
    lines: list[str] = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        pg, sg = i % 4, (i + i // 4) % 4
        n_pores, n_spatter = draw_counts(rng, pg, sg, g)
        weld = generate_weld(rng, width=width, height=height, n_pores=n_pores, n_spatter=n_spatter)
        name = f"synth{i:04d}"
        rel = f"images/{name}.jpg"
        PILImage.fromarray(weld.image).save(out / rel, format="JPEG", quality=jpeg_quality, optimize=True)
        rec = annotation_record(weld, rel, name, f"synth:seed={seed}:index={i}", g)
        lines.append(json.dumps(rec, separators=(", ", ": ")))
        log.info("wrote %s (%d pores, %d spatter)", rel, n_pores, n_spatter)
    ann_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ann_path


# --------------------------------------------------------------------------------------------
# contact sheet (pure)

_BOX_COLOURS: dict[str, tuple[int, int, int]] = {"porosity": (255, 40, 40), "spatter": (0, 230, 255)}


def contact_sheet(
    items: Sequence[tuple[Image, Sequence[Box]]], *, cols: int = 4, thumb: int = 300, gap: int = 4
) -> Image:
    """Tile images (each with its boxes drawn: porosity red, spatter cyan) into one RGB image.

    Each image is resized to ``thumb`` x ``thumb`` px (aspect ignored; boxes scaled to match).
    Returns an RGB uint8 ``(rows * (thumb + gap) - gap, cols * (thumb + gap) - gap, 3)`` array.
    """
    if not items:
        msg = "contact_sheet needs at least one image"
        raise ValueError(msg)
    if cols < 1 or thumb < 8 or gap < 0:
        msg = f"need cols >= 1, thumb >= 8, gap >= 0; got cols={cols}, thumb={thumb}, gap={gap}"
        raise ValueError(msg)
    rows = math.ceil(len(items) / cols)
    sheet = np.full((rows * (thumb + gap) - gap, cols * (thumb + gap) - gap, 3), 255, np.uint8)
    for k, (image, boxes) in enumerate(items):
        check_image(image, f"contact_sheet item {k}")
        h, w = image.shape[:2]
        tile = np.ascontiguousarray(cv2.resize(image, (thumb, thumb), interpolation=cv2.INTER_AREA))
        sx, sy = thumb / w, thumb / h
        for b in boxes:
            colour = _BOX_COLOURS.get(b.label, (255, 255, 0))
            p0 = (round(b.x0 * sx) - 1, round(b.y0 * sy) - 1)
            p1 = (round(b.x1 * sx) + 1, round(b.y1 * sy) + 1)
            cv2.rectangle(tile, p0, p1, colour, 1, cv2.LINE_AA)
        r, c = divmod(k, cols)
        y0, x0 = r * (thumb + gap), c * (thumb + gap)
        sheet[y0 : y0 + thumb, x0 : x0 + thumb] = tile
    return sheet
