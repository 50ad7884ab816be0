"""Albumentations presets for training and evaluation (the only albumentations import).

Both presets take a cached seam strip (RGB uint8 ``(H_c, L_c, 3)``, stored at ``cache_scale`` times
the model strip height) with pascal-VOC boxes ``(x0, y0, x1, y1)`` in strip pixels and a parallel
``labels`` list, and return one model tile of exactly ``(strip_height, tile_length, 3)`` with the
boxes transformed into tile pixels (boxes cut off by the crop are clipped; those less than 30%
visible are dropped).

* ``train_preset``: random scale around the model scale, flips, small rotation, random tile crop
  (reflect padding when the strip is shorter), and heavy photometric changes (colour jitter, HSV,
  gamma, CLAHE, grey, blur, noise, JPEG, downscale).
* ``contrastive_preset``: the training geometry and photometry without boxes, for the two views of
  self-supervised pretraining (image only; usually called with stronger strengths).
* ``eval_preset``: deterministic rescale to the model scale and a left-aligned tile crop.

``cfg`` is any object with the :class:`AugmentParams` attributes (the training config's
``augment`` section satisfies it), so this module does not depend on the training package.
"""

from __future__ import annotations

from typing import Protocol

import albumentations as A
import cv2

BORDER = cv2.BORDER_REFLECT_101


class AugmentParams(Protocol):
    """Augmentation strengths: 0 disables a family, 1 is the default strength, 2 is extra heavy."""

    @property
    def photometric(self) -> float: ...

    @property
    def geometric(self) -> float: ...

    @property
    def scale_range(self) -> tuple[float, float]: ...

    @property
    def rotate_deg(self) -> float: ...


def _bbox_params() -> A.BboxParams:
    return A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.3, clip=True)


def _check_geometry(strip_height: int, tile_length: int, cache_scale: float) -> None:
    if strip_height < 8 or tile_length < 8:
        msg = f"strip_height and tile_length must be >= 8, got {strip_height} x {tile_length}"
        raise ValueError(msg)
    if cache_scale <= 0:
        msg = f"cache_scale must be > 0, got {cache_scale}"
        raise ValueError(msg)


def train_preset(cfg: AugmentParams, *, strip_height: int, tile_length: int, cache_scale: float) -> A.Compose:
    """The training augmentation pipeline (see module docstring); seed it with ``set_random_seed``.

    Equal to :func:`train_geometric` followed by :func:`train_photometric` (the Dataset runs them
    separately so synthetic spatter composited between them is also photometrically augmented).
    """
    geo = _geometric(cfg, strip_height=strip_height, tile_length=tile_length, cache_scale=cache_scale)
    return A.Compose(geo + _photometric(cfg), bbox_params=_bbox_params())


def train_geometric(
    cfg: AugmentParams, *, strip_height: int, tile_length: int, cache_scale: float
) -> A.Compose:
    """Geometric part of the training pipeline: cached strip -> one tile, boxes transformed."""
    geo = _geometric(cfg, strip_height=strip_height, tile_length=tile_length, cache_scale=cache_scale)
    return A.Compose(geo, bbox_params=_bbox_params())


def train_photometric(cfg: AugmentParams) -> A.Compose:
    """Photometric part of the training pipeline (pixel values only: call it with ``image=`` alone)."""
    return A.Compose(_photometric(cfg))


def contrastive_preset(
    cfg: AugmentParams, *, strip_height: int, tile_length: int, cache_scale: float
) -> A.Compose:
    """One view for contrastive pretraining: cached strip (window) -> one augmented tile.

    Same transforms as :func:`train_preset` (random scale, flips, rotation, random tile crop,
    photometric changes) but image-only (no boxes): call it as ``t(image=strip)["image"]``.
    """
    geo = _geometric(cfg, strip_height=strip_height, tile_length=tile_length, cache_scale=cache_scale)
    return A.Compose(geo + _photometric(cfg))


def _geometric(
    cfg: AugmentParams, *, strip_height: int, tile_length: int, cache_scale: float
) -> list[A.BasicTransform]:
    _check_geometry(strip_height, tile_length, cache_scale)
    lo, hi = cfg.scale_range
    if not 0 < lo <= hi:
        msg = f"scale_range must satisfy 0 < lo <= hi, got {cfg.scale_range}"
        raise ValueError(msg)
    g = float(cfg.geometric)
    # RandomScale samples a factor 1 + U(limit); relative to the cache, the model scale is 1 / cache_scale.
    s_lo = lo / cache_scale if g > 0 else 1.0 / cache_scale
    s_hi = hi / cache_scale if g > 0 else 1.0 / cache_scale
    geometric: list[A.BasicTransform] = [
        A.RandomScale(scale_limit=(s_lo - 1.0, s_hi - 1.0), interpolation=cv2.INTER_AREA, p=1.0),
    ]
    if g > 0:
        geometric += [
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.Affine(
                rotate=(-cfg.rotate_deg * g, cfg.rotate_deg * g),
                translate_percent={"x": (0.0, 0.0), "y": (-0.06 * g, 0.06 * g)},
                border_mode=BORDER,
                p=0.7,
            ),
        ]
    geometric += [
        # replicate padding, as preprocess.make_tiles pads short strips
        A.PadIfNeeded(
            min_height=strip_height,
            min_width=tile_length,
            border_mode=cv2.BORDER_REPLICATE,
            position="random",
        ),
        A.RandomCrop(height=strip_height, width=tile_length),
    ]
    return geometric


def _photometric(cfg: AugmentParams) -> list[A.BasicTransform]:
    ph = float(cfg.photometric)
    photometric: list[A.BasicTransform] = []
    if ph > 0:
        q = min(ph, 2.0)
        photometric = [
            A.ColorJitter(
                brightness=(1 - 0.3 * q, 1 + 0.3 * q),
                contrast=(1 - 0.3 * q, 1 + 0.3 * q),
                saturation=(1 - 0.4 * q, 1 + 0.4 * q),
                hue=(-0.05 * q, 0.05 * q),
                p=0.8,
            ),
            A.HueSaturationValue(
                hue_shift_limit=(-10 * q, 10 * q),
                sat_shift_limit=(-30 * q, 30 * q),
                val_shift_limit=(-15 * q, 15 * q),
                p=0.5,
            ),
            A.RandomGamma(gamma_limit=(100 - 30 * q, 100 + 30 * q), p=0.4),
            A.CLAHE(clip_limit=(1.0, 4.0), p=0.25),
            A.ToGray(p=0.1 * q),
            A.OneOf(
                [
                    A.GaussianBlur(sigma_limit=(0.3, 1.2 * q), p=1.0),
                    A.MotionBlur(blur_limit=(3, 5), p=1.0),
                    A.Downscale(scale_range=(0.5, 0.9), p=1.0),
                ],
                p=0.35,
            ),
            A.GaussNoise(std_range=(0.01, 0.05 * q), p=0.35),
            A.ImageCompression(quality_range=(max(10, int(90 - 35 * q)), 95), p=0.5),
        ]
    return photometric


def eval_preset(cfg: AugmentParams, *, strip_height: int, tile_length: int, cache_scale: float) -> A.Compose:
    """Deterministic: rescale the cached strip to the model scale, pad/crop to one tile at ``u = 0``."""
    _check_geometry(strip_height, tile_length, cache_scale)
    s = 1.0 / cache_scale
    return A.Compose(
        [
            A.RandomScale(scale_limit=(s - 1.0, s - 1.0), interpolation=cv2.INTER_AREA, p=1.0),
            A.PadIfNeeded(
                min_height=strip_height,
                min_width=tile_length,
                border_mode=cv2.BORDER_REPLICATE,
                position="top_left",
            ),
            A.Crop(x_min=0, y_min=0, x_max=tile_length, y_max=strip_height),
        ],
        bbox_params=_bbox_params(),
    )
