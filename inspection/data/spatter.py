"""Physically plausible weld spatter composited onto real photos (pure, seeded, fast).

Spatter droplets are small solidified metal spheres thrown out of the weld pool. Here each
droplet is rendered as a shaded ellipsoid with

* a realistic size: diameter mostly 0.2-1.5 mm (log-normal, median 0.45 mm), ~4 % larger ones
  (1.5-2.4 mm), converted to pixels with ``mm_per_px``; at least ``MIN_DIAMETER_PX`` (2.5 px) across so
  every counted droplet is visible (a camera cannot resolve smaller ones anyway);
* oxide colours (grey, blue-grey, brown, straw, near-black, a few bright metallic ones) as
  tints of the photo's local surface colour where the droplet lands (so exposure and white
  balance match), mostly darker than the surface;
* diffuse shading plus a specular highlight from one light direction per image, and a soft
  contact shadow on the side away from the light;
* density falling off exponentially with distance from the bead edge (both sides); ~15 % of
  droplets fused to the bead toe (their bead-side half merges into the band edge), a few
  lying on the bead itself;
* blur matched to the photo's sharpness (re-blur edge-width estimate) and sensor noise matched
  to the photo's noise level (Immerkaer's estimator).

The seam region is a :class:`~inspection.types.SeamRegion`; when None a horizontal bead through
the image centre is assumed, with a width of 45 % of the image height (the convention of the
preprocessed seam strips). All randomness comes from the ``rng`` argument: same seed, same
output. The input image is never modified.

Realism check (``docs/spatter_realism.jpg``): ``weldinspect data spatter-sheet
../shared/data/weld-porosity --seed 3 --out docs/spatter_realism.jpg --real PATH:x,y,size ...``
shows real photos without / with composited spatter (zoomed beside the bead, and as model
strips), next to crops of real spatter from ``weld-photos-unlabelled``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspection.types import Box, Image, SeamRegion, check_image

SPATTER_LABEL = "spatter"
MIN_DIAMETER_PX = 2.5
"""Smallest rendered droplet diameter in pixels (smaller ones would be counted but invisible)."""
DEFAULT_BAND_FRACTION = 0.45
"""Bead width as a fraction of the image height when no seam region is given."""

# Oxide colours as tints relative to the local surface colour (mean ~1), with the range of
# droplet brightness relative to that surface: grey, blue-grey temper oxide, brown oxide, straw,
# near-black, bright metallic.
_TINTS = np.array(
    [
        [1.00, 1.00, 1.00],
        [0.90, 0.97, 1.14],
        [1.14, 0.97, 0.84],
        [1.10, 1.03, 0.82],
        [1.00, 0.98, 0.96],
        [1.00, 1.00, 1.02],
    ],
    dtype=np.float32,
)
_BRIGHTNESS = np.array([[0.45, 0.85], [0.45, 0.8], [0.45, 0.8], [0.75, 1.05], [0.2, 0.38], [0.95, 1.25]])
_TINT_P = np.array([0.30, 0.15, 0.18, 0.09, 0.16, 0.12])

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PhotoLook:
    """Measured look of a photo that composited content must match.

    ``blur_sigma``: Gaussian sigma (px) of the photo's edges; ``noise_sigma``: sensor noise std
    (grey levels); ``mean_rgb``: mean colour (0..255), used as white balance.
    """

    blur_sigma: float
    noise_sigma: float
    mean_rgb: tuple[float, float, float]


def estimate_look(image: Image, *, max_side: int = 384) -> PhotoLook:
    """Estimate blur and noise of ``image`` on a central crop of at most ``max_side`` square.

    Blur: the strongest gradients of an edge blurred by sigma ``s`` drop by the factor
    ``r = s / sqrt(s^2 + b^2)`` after an extra blur ``b``, so ``s = b r / sqrt(1 - r^2)``.
    """
    img = check_image(image)
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - max_side) // 2), max(0, (w - max_side) // 2)
    crop = img[y0 : y0 + max_side, x0 : x0 + max_side]
    gray: FloatArray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    m = cv2.mean(np.ascontiguousarray(crop))
    mean_rgb = (float(m[0]), float(m[1]), float(m[2]))
    if gray.shape[0] < 8 or gray.shape[1] < 8:
        return PhotoLook(0.8, 1.0, (mean_rgb[0], mean_rgb[1], mean_rgb[2]))
    b = 4.0  # a wide re-blur is robust to JPEG/sensor noise and consistent on sharp edges

    def strong_grad(g: FloatArray) -> float:
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.abs(gx) + np.abs(gy)
        flat = mag.ravel()
        k = max(1, flat.size // 200)  # top 0.5 %
        return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())

    m1 = strong_grad(gray)
    m2 = strong_grad(np.asarray(cv2.GaussianBlur(gray, (0, 0), b), np.float32))
    if m1 <= 1e-3:
        sigma = 1.0
    else:
        r = min(m2 / m1, 0.995)
        sigma = b * r / math.sqrt(1.0 - r * r)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    resp = np.abs(cv2.filter2D(gray, cv2.CV_32F, kernel))[1:-1, 1:-1]
    noise = math.sqrt(math.pi / 2.0) / 6.0 * float(resp.mean())
    return PhotoLook(
        # minus the estimator's own spread on an ideal pixel-sampled step (~0.8 px, calibrated)
        blur_sigma=float(np.clip(math.sqrt(max(sigma * sigma - 0.64, 0.0)), 0.0, 6.0)),
        noise_sigma=float(np.clip(noise, 0.0, 12.0)),
        mean_rgb=(mean_rgb[0], mean_rgb[1], mean_rgb[2]),
    )


def sample_droplet_diameters_mm(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """``n`` droplet diameters in mm: mostly 0.2-1.5 (log-normal, median 0.45), ~4 % in 1.5-2.4."""
    small = np.clip(rng.lognormal(mean=math.log(0.45), sigma=0.5, size=n), 0.15, 1.6)
    large = rng.uniform(1.5, 2.4, size=n)
    return np.where(rng.random(n) < 0.04, large, small)


def sample_spatter_count(
    grade: int, rng: np.random.Generator, thresholds: tuple[int, int, int] = (1, 6, 21)
) -> int:
    """A droplet count drawn uniformly from ``grade``'s count range (grade 3: ``t3 .. ~3 t3``).

    With the default thresholds: grade 0 -> 0, 1 -> 1..5, 2 -> 6..20, 3 -> 21..60.
    """
    if isinstance(grade, bool) or not isinstance(grade, int | np.integer) or not 0 <= grade <= 3:
        msg = f"grade must be an int in 0..3, got {grade!r}"
        raise ValueError(msg)
    if not (len(thresholds) == 3 and 0 < thresholds[0] < thresholds[1] < thresholds[2]):
        msg = f"thresholds must be 3 strictly increasing positive counts, got {thresholds!r}"
        raise ValueError(msg)
    if grade == 0:
        return 0
    lo = thresholds[grade - 1]
    hi = thresholds[grade] - 1 if grade < 3 else max(3 * thresholds[2] - 3, thresholds[2])
    return int(rng.integers(lo, hi + 1))


def _default_seam(h: int, w: int) -> SeamRegion:
    return SeamRegion(
        center=(w / 2.0, h / 2.0), length=float(w), width=max(1.0, DEFAULT_BAND_FRACTION * h), angle_deg=0.0
    )


@dataclass(frozen=True)
class _Droplet:
    cx: float
    cy: float
    rx: float  # semi-axes in px
    ry: float
    theta: float  # ellipse rotation (rad)
    albedo: tuple[float, float, float]
    profile: float  # 1 = sphere, < 1 = flattened splat
    fused: bool
    across: tuple[float, float]  # unit vector pointing away from the bead
    gloss: float = 0.5  # specular strength 0..1 (oxidised droplets are duller)
    wobble: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # outline harmonics (c2, s2, c3, s3)


def _place(
    rng: np.random.Generator, seam: SeamRegion, h: int, w: int, radius: float
) -> tuple[float, float, bool, tuple[float, float]]:
    """Centre (x, y), fused flag and the away-from-bead unit vector for one droplet."""
    a = math.radians(seam.angle_deg)
    ux, uy = math.cos(a), math.sin(a)
    vx, vy = -uy, ux
    half_w = seam.width / 2.0
    falloff = max(0.45 * seam.width, 4.0 * radius)
    cx0, cy0 = seam.center
    kind = rng.random()
    fused = False
    for _ in range(25):
        s = rng.uniform(-seam.length / 2.0, seam.length / 2.0)
        side = 1.0 if rng.random() < 0.5 else -1.0
        if kind < 0.15:  # fused to the bead toe
            t = half_w + rng.uniform(-0.35, 0.25) * radius
            fused = True
        elif kind < 0.20:  # lying on the bead
            t = rng.uniform(0.0, max(half_w - radius, 0.0))
        else:  # thrown clear of the bead, density falling off with distance
            t = half_w + radius * 0.6 + rng.exponential(falloff)
        x = cx0 + ux * s + vx * side * t
        y = cy0 + uy * s + vy * side * t
        if radius <= x <= w - radius and radius <= y <= h - radius:
            return x, y, fused, (vx * side, vy * side)
    # fallback: clamp the last draw into the image
    x = float(np.clip(x, min(radius, w / 2.0), max(w - radius, w / 2.0)))
    y = float(np.clip(y, min(radius, h / 2.0), max(h - radius, h / 2.0)))
    return x, y, fused, (vx * side, vy * side)


def _sample_droplets(
    rng: np.random.Generator, n: int, seam: SeamRegion, h: int, w: int, mm_per_px: float
) -> list[_Droplet]:
    diam = sample_droplet_diameters_mm(rng, n) / mm_per_px
    max_d = max(MIN_DIAMETER_PX, 0.25 * min(h, w))
    diam = np.clip(diam, MIN_DIAMETER_PX, max_d)
    aspect = np.sqrt(1.0 + rng.exponential(0.12, size=n))
    kinds = rng.choice(len(_TINTS), size=n, p=_TINT_P)
    rel = rng.uniform(_BRIGHTNESS[kinds, 0], _BRIGHTNESS[kinds, 1])[:, None]
    albedo = _TINTS[kinds] * rel * rng.uniform(0.95, 1.05, size=(n, 3))
    profile = np.where(rng.random(n) < 0.75, 1.0, rng.uniform(0.35, 0.7, size=n))
    theta = rng.uniform(0.0, math.pi, size=n)
    gloss = np.where(kinds == 5, rng.uniform(0.5, 0.9, size=n), rng.uniform(0.15, 0.55, size=n))
    wobble = rng.normal(0.0, 0.05, size=(n, 4)) * np.where(profile < 1.0, 2.0, 1.0)[:, None]
    out = []
    for i in range(n):
        rx, ry = float(diam[i] / 2.0 * aspect[i]), float(diam[i] / 2.0 / aspect[i])
        cx, cy, fused, across = _place(rng, seam, h, w, max(rx, ry))
        a = albedo[i]
        out.append(
            _Droplet(
                cx=cx,
                cy=cy,
                rx=rx,
                ry=ry,
                theta=float(theta[i]),
                albedo=(float(a[0]), float(a[1]), float(a[2])),
                profile=float(profile[i]),
                fused=fused,
                across=across,
                gloss=float(gloss[i]),
                wobble=(float(wobble[i, 0]), float(wobble[i, 1]), float(wobble[i, 2]), float(wobble[i, 3])),
            )
        )
    return out


def _droplet_box(d: _Droplet, h: int, w: int) -> Box:
    c, s = math.cos(d.theta), math.sin(d.theta)
    ex = math.sqrt((d.rx * c) ** 2 + (d.ry * s) ** 2)
    ey = math.sqrt((d.rx * s) ** 2 + (d.ry * c) ** 2)
    x0, x1 = max(0.0, d.cx - ex), min(float(w), d.cx + ex)
    y0, y1 = max(0.0, d.cy - ey), min(float(h), d.cy + ey)
    return Box(x0, y0, max(x0, x1), max(y0, y1), label=SPATTER_LABEL)


@dataclass(frozen=True)
class _Patches:
    """Rendered droplets of one size bucket: (N, P, P) layers at integer origins (x0, y0)."""

    x0: npt.NDArray[np.int64]
    y0: npt.NDArray[np.int64]
    alpha: FloatArray  # body coverage 0..1
    rgb: FloatArray  # (N, P, P, 3) colour 0..255 (not premultiplied)
    shadow: FloatArray  # contact-shadow strength 0..1
    extent: npt.NDArray[np.float64]  # (N, 4) visible body extent (x0, y0, x1, y1), NaN if none


def _render_batch(
    drops: Sequence[_Droplet],
    local_rgb: FloatArray,
    light: tuple[float, float, float],
    rng: np.random.Generator,
    size: int,
) -> _Patches:
    """Render droplets (all with patch size ``size``) at once; ``local_rgb`` (N, 3) surface colours.

    Vectorised over droplets: every array is (N, P, P) so a handful of numpy calls render all of
    them (the per-droplet Python cost dominates otherwise).
    """
    n = len(drops)
    f32 = np.float32

    def col(values: Iterable[float]) -> FloatArray:
        return np.fromiter(values, dtype=np.float32, count=n)[:, None, None]

    cx, cy = col(d.cx for d in drops), col(d.cy for d in drops)
    half = size // 2
    x0 = np.floor(cx[:, 0, 0]).astype(np.int64) - half
    y0 = np.floor(cy[:, 0, 0]).astype(np.int64) - half
    grid = np.arange(size, dtype=np.float32) + f32(0.5)
    xs = (x0[:, None, None].astype(np.float32) + grid[None, None, :]) - cx  # (N, 1, P)
    ys = (y0[:, None, None].astype(np.float32) + grid[None, :, None]) - cy  # (N, P, 1)
    rx, ry = col(d.rx for d in drops), col(d.ry for d in drops)
    theta = col(d.theta for d in drops)
    c, s = np.cos(theta), np.sin(theta)
    ex = (xs * c + ys * s) / rx
    ey = (ys * c - xs * s) / ry
    rho2 = ex * ex + ey * ey
    rho = np.sqrt(rho2)
    # irregular outline: low-order angular harmonics of the radius
    wob = np.array([d.wobble for d in drops], np.float32)[:, :, None, None]
    inv = 1.0 / (rho + f32(1e-3))
    ux, uy = ex * inv, ey * inv
    edge = 1.0 + (ux * ux - uy * uy) * wob[:, 0] + (2.0 * ux * uy) * wob[:, 1]
    edge += ux * (ux * ux - 3.0 * uy * uy) * wob[:, 2] + uy * (3.0 * ux * ux - uy * uy) * wob[:, 3]
    a_body = np.clip((edge - rho) * np.minimum(rx, ry) + f32(0.5), 0.0, 1.0)
    r = np.maximum(rx, ry)
    lx, ly, lz = light
    fused = col(1.0 if d.fused else 0.0 for d in drops)
    # contact shadow: a soft disc offset away from the light
    sx, sy = xs + f32(lx * 0.45) * r, ys + f32(ly * 0.45) * r
    t = np.maximum(1.0 - np.sqrt(sx * sx + sy * sy) / (1.25 * r + f32(0.8)), 0.0)
    shadow = t * (2.0 - t) * (0.55 - 0.3 * fused)
    if fused.any():  # the bead-side half merges into the bead toe
        ax, ay = col(d.across[0] for d in drops), col(d.across[1] for d in drops)
        fade = np.clip(((xs * ax + ys * ay) / r + 0.9) / 1.1, 0.0, 1.0)
        fade = fade * fade * (3.0 - 2.0 * fade)
        a_body = a_body * np.where(fused > 0, fade, f32(1.0))
    # shading: surface normal of a (possibly flattened) ellipsoid, light in the droplet frame
    nz2 = np.maximum(1.0 - rho2, 0.0)
    nz = np.sqrt(nz2)
    prof = col(d.profile for d in drops)
    inv_norm = 1.0 / (np.sqrt(prof * prof * rho2 + nz2) + f32(1e-6))
    lxr, lyr = c * f32(lx) + s * f32(ly), c * f32(ly) - s * f32(lx)
    ndotl = np.maximum((ex * prof * lxr + ey * prof * lyr + nz * f32(lz)) * inv_norm, 0.0)
    hn = math.sqrt(lx * lx + ly * ly + (lz + 1.0) ** 2)
    ndoth = np.maximum((ex * prof * lxr + ey * prof * lyr + nz * f32(lz + 1.0)) * inv_norm / f32(hn), 0.0)
    sphere = prof >= 0.9
    n2 = ndoth * ndoth
    n8 = n2 * n2
    n8 = n8 * n8
    sharp = np.where(sphere, n8 * n8 * n8, n8)  # ~ndoth^24 (small sharp highlight) or ^8 (splat)
    lum = local_rgb.mean(axis=1)[:, None, None]
    gloss = col(d.gloss for d in drops) * np.where(sphere, f32(1.0), f32(0.5))
    spec = sharp * gloss * np.clip(1.6 * lum, 170.0, 255.0)
    albedo = np.array([d.albedo for d in drops], np.float32) * local_rgb  # (N, 3)
    diffuse = 0.35 + 0.8 * ndotl
    rgb = diffuse[..., None] * albedo[:, None, None, :]
    big = r[:, 0, 0] > 3.0
    if big.any():  # oxide mottling on the larger droplets
        noise = rng.standard_normal((int(big.sum()) * size, size), dtype=np.float32)
        mottle = cv2.GaussianBlur(noise, (0, 0), 0.8).reshape(-1, size, size)
        rgb[big] *= (1.0 + 0.35 * mottle)[..., None]
    rgb = np.clip(rgb + spec[..., None], 0.0, 255.0)
    visible = a_body >= 0.5
    rows, cols = visible.any(axis=2), visible.any(axis=1)
    has = rows.any(axis=1)
    first_r, last_r = rows.argmax(axis=1), size - 1 - rows[:, ::-1].argmax(axis=1)
    first_c, last_c = cols.argmax(axis=1), size - 1 - cols[:, ::-1].argmax(axis=1)
    extent = np.stack([x0 + first_c, y0 + first_r, x0 + last_c + 1, y0 + last_r + 1], axis=1).astype(
        np.float64
    )
    extent[~has] = np.nan
    return _Patches(x0, y0, a_body, rgb.astype(np.float32), shadow, extent)


def _blur_stack(stack: FloatArray, sigma: float) -> FloatArray:
    """Gaussian blur of each (P, P[, 3]) patch in an (N, P, P[, 3]) stack, in one OpenCV call."""
    n, size = stack.shape[0], stack.shape[1]
    flat = stack.reshape(n * size, *stack.shape[2:])
    return np.asarray(cv2.GaussianBlur(flat, (0, 0), sigma), np.float32).reshape(stack.shape)


def _bucket(radius: float) -> int:
    """Odd patch size covering a droplet and its shadow, rounded up to a few fixed sizes."""
    need = 2 * math.ceil(1.6 * radius + 2.0) + 1
    for size in (9, 13, 17, 25, 33, 49, 65, 97, 129):
        if need <= size:
            return size
    return need | 1


def composite_spatter(
    image: Image,
    rng: np.random.Generator,
    *,
    n_droplets: int,
    seam: SeamRegion | None = None,
    mm_per_px: float,
    look: PhotoLook | None = None,
) -> tuple[Image, tuple[Box, ...]]:
    """Composite ``n_droplets`` spatter droplets onto a copy of ``image``.

    Args:
        image: RGB uint8 ``(H, W, 3)``; never modified.
        rng: the only source of randomness (same state, same result).
        n_droplets: number of droplets (>= 0); exactly this many boxes are returned.
        seam: the bead region; None = horizontal bead through the centre, 45 % of H wide.
        mm_per_px: image scale in mm per pixel (> 0); sets droplet sizes in pixels.
        look: the photo's measured blur/noise/white balance (:func:`estimate_look`); measured
            here when None (pass it to save ~1 ms when compositing the same photo repeatedly).

    Returns:
        ``(new_image, boxes)``: boxes ``(x0, y0, x1, y1)`` in pixels, label ``spatter``, one per
        droplet, each inside the image (the droplet body, not its shadow).
    """
    img = check_image(image)
    if isinstance(n_droplets, bool) or not isinstance(n_droplets, int | np.integer) or n_droplets < 0:
        msg = f"n_droplets must be a non-negative int, got {n_droplets!r}"
        raise ValueError(msg)
    if not (isinstance(mm_per_px, int | float) and math.isfinite(mm_per_px) and mm_per_px > 0):
        msg = f"mm_per_px must be a positive number, got {mm_per_px!r}"
        raise ValueError(msg)
    h, w = img.shape[:2]
    if n_droplets == 0:
        return img.copy(), ()
    seam = seam if seam is not None else _default_seam(h, w)
    look = look if look is not None else estimate_look(img)
    droplets = _sample_droplets(rng, int(n_droplets), seam, h, w, float(mm_per_px))
    az = rng.uniform(0, 2 * math.pi)
    elev = rng.uniform(math.radians(35), math.radians(70))
    light = (math.cos(az) * math.cos(elev), math.sin(az) * math.cos(elev), math.sin(elev))

    sigma = look.blur_sigma if look.blur_sigma > 0.25 else 0.0
    pad = math.ceil(3.0 * sigma) + 1
    # local surface colour where each droplet lands (mean of a window ~3 diameters wide)
    local = np.empty((len(droplets), 3), np.float32)
    for i, d in enumerate(droplets):
        k = int(3.0 * max(d.rx, d.ry)) + 3
        win = img[max(0, int(d.cy) - k) : int(d.cy) + k + 1, max(0, int(d.cx) - k) : int(d.cx) + k + 1]
        local[i] = cv2.mean(np.ascontiguousarray(win))[:3]
    np.clip(local, 25.0, 235.0, out=local)
    # render per patch-size bucket (vectorised), blur and add noise per bucket
    sizes = [_bucket(max(d.rx, d.ry)) + 2 * pad for d in droplets]
    rendered: dict[int, tuple[_Patches, FloatArray, int]] = {}  # index -> (patches, premult rgb, row)
    for size in sorted(set(sizes)):
        idx = [i for i, sz in enumerate(sizes) if sz == size]
        pt = _render_batch([droplets[i] for i in idx], local[idx], light, rng, size)
        premult = pt.rgb * pt.alpha[..., None]
        a, sh = pt.alpha, pt.shadow
        if sigma > 0:  # blur matched to the photo; patches stacked vertically share one call
            a, sh, premult = (_blur_stack(x, sigma) for x in (a, sh, premult))
        if look.noise_sigma > 0.2:
            noise = rng.standard_normal(a.shape, dtype=np.float32) * np.float32(look.noise_sigma)
            premult = premult + (noise * a)[..., None]
        pt = dataclasses.replace(pt, alpha=a, shadow=sh)
        rendered.update({i: (pt, premult, row) for row, i in enumerate(idx)})
    # composite in sampling order ("over": later droplets on top), touching only each patch
    out = img.copy()
    boxes = []
    for i, d in enumerate(droplets):
        pt, premult, row = rendered[i]
        size = pt.alpha.shape[1]
        px, py = int(pt.x0[row]), int(pt.y0[row])
        ax0, ay0, ax1, ay1 = max(px, 0), max(py, 0), min(px + size, w), min(py + size, h)
        if ax1 > ax0 and ay1 > ay0:
            psl = (row, slice(ay0 - py, ay1 - py), slice(ax0 - px, ax1 - px))
            a = pt.alpha[psl]
            bg = out[ay0:ay1, ax0:ax1].astype(np.float32)
            bg *= ((1.0 - pt.shadow[psl]) * (1.0 - a))[:, :, None]
            bg += premult[psl]
            out[ay0:ay1, ax0:ax1] = np.clip(bg + 0.5, 0.0, 255.0).astype(np.uint8)
        ext = pt.extent[row]
        if np.isnan(ext[0]):
            boxes.append(_droplet_box(d, h, w))
        else:
            bx0, by0 = max(0.0, float(ext[0])), max(0.0, float(ext[1]))
            bx1, by1 = min(float(w), float(ext[2])), min(float(h), float(ext[3]))
            boxes.append(Box(bx0, by0, max(bx0, bx1), max(by0, by1), label=SPATTER_LABEL))
    return out, tuple(boxes)
