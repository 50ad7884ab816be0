"""The torch Dataset for the grader: cached seam strips -> model tiles with dense and ordinal targets.

A :class:`StripSample` is one photo after preprocessing (cached once, see ``inspection.train.cache``):
the seam strip at ``cache_scale`` times the model strip height with its pore boxes in strip pixels,
plus the exact inference tiles (``preprocess.make_tiles`` at the model scale) and their boxes.

:class:`TileDataset` yields, per index, a dict of tensors (``H = strip_height``, ``W = tile_length``,
``h, w = H / stride, W / stride``):

* ``image``: float32 ``(3, H, W)`` normalised with ``mean``/``std`` (RGB, values / 255);
* ``porosity_grade``: int64 ``()`` grade 0..3 from the pores whose centre lies in the tile;
* ``spatter_grade``: int64 ``()`` 0..3 from composited droplets, or -1 when no spatter was drawn;
* ``heatmap``: float32 ``(2, h, w)`` CenterNet gaussian centre targets (0 porosity, 1 spatter);
* ``size``: float32 ``(2, h, w)`` object diameter in input pixels at centre cells (0 elsewhere);
* ``size_mask``: float32 ``(2, h, w)`` 1 at centre cells;
* ``index``: int64 ``()`` the sample (train) or tile (eval) index.

Training items are random (augmentation, pore transplanting, spatter) but deterministic for a
given ``(seed, epoch, index)``. Evaluation items are the fixed inference tiles (with a
deterministic spatter composite when enabled). Transforms are injected (albumentations-style
callables), so this module does not import albumentations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import Dataset

from inspection.data.grades import grade_from_count
from inspection.types import GRADE_LEVELS, SeamRegion

log = logging.getLogger(__name__)

Transform = Callable[..., dict[str, Any]]
"""Albumentations-style: ``t(image=..., bboxes=..., labels=...) -> {"image", "bboxes", "labels"}``."""

BoxArray = npt.NDArray[np.float32]
"""``(n, 4)`` float32 boxes ``(x0, y0, x1, y1)`` in pixels."""

POROSITY, SPATTER = 0, 1
CHANNEL_OF = {"porosity": POROSITY, "spatter": SPATTER}


class SpatterFns(Protocol):
    """The data package's spatter helpers (injected so tests can use stand-ins)."""

    def composite(
        self, image: npt.NDArray[np.uint8], rng: np.random.Generator, n_droplets: int, seam: SeamRegion
    ) -> tuple[npt.NDArray[np.uint8], Sequence[Any]]: ...

    def sample_count(self, grade: int, rng: np.random.Generator) -> int: ...


def _boxes(arr: Any) -> BoxArray:
    a = np.asarray(arr, dtype=np.float32).reshape(-1, 4)
    return a


@dataclass(frozen=True)
class StripSample:
    """One photo after preprocessing.

    ``strip``: uint8 RGB ``(H_c, L_c, 3)`` at ``cache_scale`` x the model strip height.
    ``boxes``: pore boxes ``(n, 4)`` in ``strip`` pixels. ``grade``: the photo's reference porosity
    grade (all pores in the photo, also those outside the strip). ``tiles``: uint8
    ``(T, strip_height, tile_length, 3)`` exactly as inference sees them; ``tile_boxes``: per tile
    ``(m, 4)`` pore boxes in tile pixels. ``key`` identifies the photo, ``group`` the weld.
    """

    key: str
    group: str
    strip: npt.NDArray[np.uint8]
    boxes: BoxArray
    grade: int
    tiles: npt.NDArray[np.uint8]
    tile_boxes: tuple[BoxArray, ...] = field(default=())
    n_pores: int = 0

    def __post_init__(self) -> None:
        if self.strip.dtype != np.uint8 or self.strip.ndim != 3 or self.strip.shape[2] != 3:
            msg = f"StripSample.strip must be uint8 (H, L, 3), got {self.strip.dtype} {self.strip.shape}"
            raise ValueError(msg)
        if self.tiles.dtype != np.uint8 or self.tiles.ndim != 4 or self.tiles.shape[3] != 3:
            msg = f"StripSample.tiles must be uint8 (T, H, W, 3), got {self.tiles.dtype} {self.tiles.shape}"
            raise ValueError(msg)
        if len(self.tile_boxes) != self.tiles.shape[0]:
            n_tiles, n_boxes = self.tiles.shape[0], len(self.tile_boxes)
            msg = f"StripSample.tile_boxes needs one entry per tile ({n_tiles}), got {n_boxes}"
            raise ValueError(msg)
        if not 0 <= self.grade < GRADE_LEVELS:
            msg = f"StripSample.grade must be in 0..{GRADE_LEVELS - 1}, got {self.grade}"
            raise ValueError(msg)


# ----------------------------------------------------------------------------------------------
# Targets


def gaussian_radius(diameter_cells: float, min_overlap: float = 0.7) -> float:
    """CenterNet-style gaussian sigma (cells) for an object ``diameter_cells`` wide (>= 0.5)."""
    return max(0.5, diameter_cells * (1.0 - min_overlap) / 1.5 + 0.25)


def render_targets(
    boxes: BoxArray,
    channels: Sequence[int],
    height: int,
    width: int,
    stride: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Heatmap, size and size-mask targets ``(2, height // stride, width // stride)`` from boxes.

    Each box (tile pixels) puts a gaussian peak of 1.0 at its centre cell in its channel (max where
    peaks overlap); size = ``sqrt(w * h)`` in input pixels at the centre cell. Boxes whose centre
    lies outside the tile are ignored.
    """
    h, w = height // stride, width // stride
    heat = np.zeros((2, h, w), np.float32)
    size = np.zeros((2, h, w), np.float32)
    mask = np.zeros((2, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for box, ch in zip(boxes, channels, strict=True):
        cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
        if not (0 <= cx < width and 0 <= cy < height):
            continue
        diam = float(math.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0)))
        # the cell containing the centre (decoders map cell c back to c * stride + stride / 2)
        ix, iy = min(int(cx // stride), w - 1), min(int(cy // stride), h - 1)
        sigma = gaussian_radius(diam / stride)
        g = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma**2))
        np.maximum(heat[ch], g, out=heat[ch])
        heat[ch, iy, ix] = 1.0
        size[ch, iy, ix] = diam
        mask[ch, iy, ix] = 1.0
    return heat, size, mask


def count_in_tile(boxes: BoxArray, height: int, width: int) -> int:
    """Number of boxes whose centre lies inside a ``height x width`` tile."""
    if boxes.shape[0] == 0:
        return 0
    cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
    cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
    return int(((cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)).sum())


# ----------------------------------------------------------------------------------------------
# Pore transplanting


@dataclass(frozen=True)
class PorePatch:
    """A pore cut out of a strip with a context border: ``image`` uint8 ``(h, w, 3)``, the pore box
    inside the patch ``box`` (patch pixels), and the weld it came from."""

    image: npt.NDArray[np.uint8]
    box: tuple[float, float, float, float]
    group: str


def cut_pore_patches(
    samples: Sequence[StripSample], border: float = 0.35, max_side: int = 200
) -> list[PorePatch]:
    """All pore patches (box grown by ``border`` x its size on each side) from ``samples``' strips."""
    out: list[PorePatch] = []
    for s in samples:
        hs, ls = s.strip.shape[:2]
        for b in s.boxes:
            bw, bh = b[2] - b[0], b[3] - b[1]
            if bw < 2 or bh < 2 or max(bw, bh) > max_side:
                continue
            x0 = int(max(0, math.floor(b[0] - border * bw)))
            y0 = int(max(0, math.floor(b[1] - border * bh)))
            x1 = int(min(ls, math.ceil(b[2] + border * bw)))
            y1 = int(min(hs, math.ceil(b[3] + border * bh)))
            if x1 - x0 < 4 or y1 - y0 < 4:
                continue
            patch = s.strip[y0:y1, x0:x1].copy()
            out.append(PorePatch(patch, (b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0), s.group))
    return out


def _feather_mask(h: int, w: int) -> npt.NDArray[np.float32]:
    """Elliptical alpha ``(h, w, 1)``: 1 in the middle, fading to 0 at the patch edge."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ry, rx = max(h / 2.0, 1.0), max(w / 2.0, 1.0)
    d = np.sqrt(((ys + 0.5 - h / 2.0) / ry) ** 2 + ((xs + 0.5 - w / 2.0) / rx) ** 2)
    alpha = np.clip((1.0 - d) / 0.35, 0.0, 1.0)
    return alpha[..., None]


def transplant_pores(
    strip: npt.NDArray[np.uint8],
    boxes: BoxArray,
    bank: Sequence[PorePatch],
    rng: np.random.Generator,
    n: int,
    *,
    band: tuple[float, float] = (0.3, 0.7),
    scale: float = 1.0,
) -> tuple[npt.NDArray[np.uint8], BoxArray]:
    """Paste ``n`` random pore patches from ``bank`` into ``strip`` (a copy), on the bead band.

    Patches are resized by ``scale`` x U(0.8, 1.2), colour-matched to the destination (per-channel
    gain, clipped to [0.7, 1.4]), blended with a feathered elliptical mask, and placed with their
    centre in the vertical ``band`` (fractions of the strip height: the bead) where they do not
    overlap existing boxes. Returns the new strip and the boxes with the pasted pores appended.
    """
    out = strip.copy()
    all_boxes = [tuple(map(float, b)) for b in boxes]
    if n <= 0 or not bank:
        return out, _boxes(all_boxes)
    hs, ls = out.shape[:2]
    for _ in range(n):
        p = bank[int(rng.integers(len(bank)))]
        f = scale * float(rng.uniform(0.8, 1.2))
        ph, pw = p.image.shape[:2]
        nh, nw = max(4, round(ph * f)), max(4, round(pw * f))
        if nh >= hs or nw >= ls:
            continue
        img = cv2.resize(p.image, (nw, nh), interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            img = img[:, ::-1]
            bx = (pw - p.box[2], p.box[1], pw - p.box[0], p.box[3])
        else:
            bx = p.box
        sx, sy = nw / pw, nh / ph
        for _try in range(8):
            cy = rng.uniform(band[0], band[1]) * hs
            cx = rng.uniform(0.05, 0.95) * ls
            x0, y0 = round(cx - nw / 2), round(cy - nh / 2)
            x0 = min(max(x0, 0), ls - nw)
            y0 = min(max(y0, 0), hs - nh)
            new = (x0 + bx[0] * sx, y0 + bx[1] * sy, x0 + bx[2] * sx, y0 + bx[3] * sy)
            if not any(_overlaps(new, b) for b in all_boxes):
                break
        else:
            continue
        dest = out[y0 : y0 + nh, x0 : x0 + nw].astype(np.float32)
        src = img.astype(np.float32)
        gain = np.clip((dest.mean(axis=(0, 1)) + 1.0) / (src.mean(axis=(0, 1)) + 1.0), 0.7, 1.4)
        src = np.clip(src * gain, 0, 255)
        alpha = _feather_mask(nh, nw)
        out[y0 : y0 + nh, x0 : x0 + nw] = (alpha * src + (1 - alpha) * dest).astype(np.uint8)
        all_boxes.append(new)
    return out, _boxes(all_boxes)


def _overlaps(a: Sequence[float], b: Sequence[float]) -> bool:
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


# ----------------------------------------------------------------------------------------------
# Dataset


@dataclass(frozen=True)
class DatasetOptions:
    """Knobs for :class:`TileDataset` (all sizes in model pixels)."""

    strip_height: int
    tile_length: int
    stride: int = 8
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    porosity_thresholds: tuple[int, int, int] = (1, 2, 4)
    spatter_thresholds: tuple[int, int, int] = (1, 6, 21)
    spatter_grade_probs: tuple[float, float, float, float] | None = (0.25, 0.25, 0.25, 0.25)
    seam_width_fraction: float = 0.45
    transplant_prob: float = 0.0
    transplant_max: int = 0
    cache_scale: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strip_height % self.stride or self.tile_length % self.stride:
            msg = (
                f"strip_height ({self.strip_height}) and tile_length ({self.tile_length}) must be "
                f"multiples of the heatmap stride ({self.stride})"
            )
            raise ValueError(msg)
        if self.spatter_grade_probs is not None and not math.isclose(sum(self.spatter_grade_probs), 1.0):
            msg = f"spatter_grade_probs must sum to 1, got {self.spatter_grade_probs}"
            raise ValueError(msg)


class TileDataset(Dataset[dict[str, torch.Tensor]]):
    """Training (``train=True``: one random augmented tile per photo) or evaluation (one item per
    inference tile of every photo) dataset; see the module docstring for the yielded tensors."""

    def __init__(
        self,
        samples: Sequence[StripSample],
        options: DatasetOptions,
        *,
        train: bool,
        geometric: Transform | None = None,
        photometric: Transform | None = None,
        spatter: SpatterFns | None = None,
        pore_bank: Sequence[PorePatch] = (),
    ) -> None:
        if train and geometric is None:
            msg = "a training TileDataset needs a geometric transform (augment.train_geometric)"
            raise ValueError(msg)
        self.samples = list(samples)
        self.opt = options
        self.train = train
        self.geometric = geometric
        self.photometric = photometric
        self.spatter = spatter
        self.pore_bank = list(pore_bank)
        self.epoch = 0
        # eval: one item per (sample, tile)
        self.tile_index: list[tuple[int, int]] = [
            (i, t) for i, s in enumerate(self.samples) for t in range(s.tiles.shape[0])
        ]
        self._mean = np.asarray(options.mean, np.float32).reshape(3, 1, 1)
        self._std = np.asarray(options.std, np.float32).reshape(3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Change the random stream of training items (deterministic per ``(seed, epoch, index)``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples) if self.train else len(self.tile_index)

    def sample_weights(self, *, by_group: bool = False) -> npt.NDArray[np.float64]:
        """Per-sample weights (sum 1) for class-balanced sampling on the photo's porosity grade.

        With ``by_group`` the sampling is also group-aware: every group (physical weld) gets the
        same total weight, and within a group each porosity grade present gets the same share, so
        a weld photographed 230 times is drawn no more often than one photographed 20 times.
        """
        grades = np.array([s.grade for s in self.samples], np.int64)
        if not by_group:
            counts = np.bincount(grades, minlength=GRADE_LEVELS).astype(np.float64)
            w = 1.0 / counts[grades]
            return w / w.sum()
        groups = [s.group for s in self.samples]
        cell: dict[tuple[str, int], int] = {}
        for g, k in zip(groups, grades.tolist(), strict=True):
            cell[(g, k)] = cell.get((g, k), 0) + 1
        grades_in: dict[str, int] = {}
        for g, _ in cell:
            grades_in[g] = grades_in.get(g, 0) + 1
        w = np.array(
            [1.0 / (grades_in[g] * cell[(g, k)]) for g, k in zip(groups, grades.tolist(), strict=True)],
            np.float64,
        )
        return w / w.sum()

    def normalise(self, tile: npt.NDArray[np.uint8]) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` normalised tensor."""
        x = tile.astype(np.float32).transpose(2, 0, 1) / 255.0
        return torch.from_numpy(np.ascontiguousarray((x - self._mean) / self._std))

    def _spatter(
        self, tile: npt.NDArray[np.uint8], rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.uint8], BoxArray, int]:
        probs = self.opt.spatter_grade_probs
        if self.spatter is None or probs is None:
            return tile, _boxes([]), -1
        grade = int(rng.choice(GRADE_LEVELS, p=np.asarray(probs)))
        n = int(self.spatter.sample_count(grade, rng))
        h, w = tile.shape[:2]
        seam = SeamRegion(
            center=(w / 2.0, h / 2.0), length=float(w), width=h * self.opt.seam_width_fraction, angle_deg=0.0
        )
        if n == 0:
            return tile, _boxes([]), 0
        new, boxes = self.spatter.composite(tile, rng, n, seam)
        arr = _boxes([_box_tuple(b) for b in boxes])
        return (
            np.ascontiguousarray(new, dtype=np.uint8),
            arr,
            grade_from_count(count_in_tile(arr, h, w), self.opt.spatter_thresholds),
        )

    def _item(
        self, tile: npt.NDArray[np.uint8], pores: BoxArray, spatter: BoxArray, spatter_grade: int, index: int
    ) -> dict[str, torch.Tensor]:
        o = self.opt
        boxes = np.concatenate([pores, spatter], axis=0) if spatter.size else pores
        channels = [POROSITY] * len(pores) + [SPATTER] * len(spatter)
        heat, size, mask = render_targets(boxes, channels, o.strip_height, o.tile_length, o.stride)
        return {
            "image": self.normalise(tile),
            "porosity_grade": torch.tensor(
                grade_from_count(count_in_tile(pores, o.strip_height, o.tile_length), o.porosity_thresholds)
            ),
            "spatter_grade": torch.tensor(spatter_grade),
            "heatmap": torch.from_numpy(heat),
            "size": torch.from_numpy(size),
            "size_mask": torch.from_numpy(mask),
            "index": torch.tensor(index),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        o = self.opt
        if not self.train:
            i, t = self.tile_index[index]
            s = self.samples[i]
            rng = np.random.default_rng([o.seed, 10_000_019, i, t])
            tile, sp_boxes, sp_grade = self._spatter(s.tiles[t], rng)
            return self._item(tile, s.tile_boxes[t], sp_boxes, sp_grade, index)
        s = self.samples[index]
        rng = np.random.default_rng([o.seed, self.epoch, index])
        strip, boxes = s.strip, s.boxes
        if self.pore_bank and o.transplant_max > 0 and rng.random() < o.transplant_prob:
            bank = [p for p in self.pore_bank if p.group != s.group] or self.pore_bank
            n = int(rng.integers(1, o.transplant_max + 1))
            strip, boxes = transplant_pores(strip, boxes, bank, rng, n)
        seed = int(rng.integers(2**31 - 1))
        geo = self._apply(self.geometric, strip, boxes, seed)
        tile, pores = geo
        tile, sp_boxes, sp_grade = self._spatter(tile, rng)
        if self.photometric is not None:
            setter = getattr(self.photometric, "set_random_seed", None)
            if setter is not None:
                setter(seed + 1)
            tile = np.ascontiguousarray(self.photometric(image=tile)["image"], dtype=np.uint8)
        if tile.shape != (o.strip_height, o.tile_length, 3):
            want = (o.strip_height, o.tile_length, 3)
            msg = f"transform produced a tile of shape {tile.shape}, expected {want}"
            raise ValueError(msg)
        return self._item(tile, pores, sp_boxes, sp_grade, index)

    @staticmethod
    def _apply(
        transform: Transform | None, image: npt.NDArray[np.uint8], boxes: BoxArray, seed: int
    ) -> tuple[npt.NDArray[np.uint8], BoxArray]:
        if transform is None:
            return image, boxes
        setter = getattr(transform, "set_random_seed", None)
        if setter is not None:
            setter(seed)
        h, w = image.shape[:2]
        clipped = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32) if boxes.size else boxes
        if clipped.size:
            keep = (clipped[:, 2] - clipped[:, 0] >= 1) & (clipped[:, 3] - clipped[:, 1] >= 1)
            clipped = clipped[keep]
        out = transform(image=image, bboxes=clipped.tolist(), labels=["porosity"] * len(clipped))
        return np.ascontiguousarray(out["image"], dtype=np.uint8), _boxes(np.asarray(out["bboxes"]))


def _box_tuple(b: Any) -> tuple[float, float, float, float]:
    """A box from a Box-like object (``x0..y1`` attributes / ``as_tuple``) or a 4-sequence."""
    if hasattr(b, "as_tuple"):
        t = b.as_tuple()
        return (float(t[0]), float(t[1]), float(t[2]), float(t[3]))
    if hasattr(b, "box"):
        return _box_tuple(b.box)
    seq = list(b)
    return (float(seq[0]), float(seq[1]), float(seq[2]), float(seq[3]))


def collate(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of items into a batch (every key gains a leading batch dimension)."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}
