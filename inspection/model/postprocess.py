"""Post-processing of raw model outputs (pure numpy, no torch).

* :func:`decode_peaks`: centre-heatmap peaks (one class channel of one tile) -> :class:`Peak` list.
* :func:`combine_tile_probs`: per-tile grade probabilities -> one image-level distribution.
* :func:`decide`: grade, confidence and the abstain (needs-review) decision under an
  :class:`AbstainRule`.
* :class:`OodStats`: embedding statistics stored in the artifact and the out-of-distribution score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from inspection.types import GRADE_LEVELS, HeadResult, grade_from_count

FloatArray = npt.NDArray[np.floating]

_PROB_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Peak:
    """One heatmap peak in *tile* pixels (x = ``u`` along the tile, y = ``v`` across it).

    ``score`` is the heatmap value (sigmoid probability) at the peak cell; ``diameter_px`` is the
    predicted object diameter in tile pixels.
    """

    u: float
    v: float
    score: float
    diameter_px: float

    def __post_init__(self) -> None:
        for name in ("u", "v", "score", "diameter_px"):
            value = getattr(self, name)
            if not math.isfinite(value):
                msg = f"Peak.{name} must be finite, got {value!r}"
                raise ValueError(msg)
        if self.diameter_px < 0:
            msg = f"Peak.diameter_px must be >= 0, got {self.diameter_px}"
            raise ValueError(msg)


class AbstainRule(BaseModel):
    """When a head's decision goes to human review (stored per head in the model config).

    * ``min_confidence``: abstain when the chosen grade's probability is below this.
    * ``max_p_defect_for_zero``: abstain when the grade is 0 but ``P(grade >= 1)`` exceeds this
      (a "clean" call that is not clean enough to trust).
    * ``grade_by``: ``"argmax"`` (most probable grade) or ``"median"`` (ordinal median).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_p_defect_for_zero: float = Field(0.35, ge=0.0, le=1.0)
    grade_by: Literal["argmax", "median"] = "argmax"


def _local_max_mask(values: FloatArray, radius: int) -> npt.NDArray[np.bool_]:
    """True where a cell equals the maximum of its ``(2r+1) x (2r+1)`` neighbourhood (cells
    outside the map do not count)."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    # dilation = moving maximum; its default constant border is -inf for dilation
    neighbourhood_max = cv2.dilate(values, kernel, borderType=cv2.BORDER_CONSTANT)
    return np.asarray(values >= neighbourhood_max)


def _parabolic_offset(left: float, centre: float, right: float) -> float:
    """Sub-cell offset in [-0.5, 0.5] of the vertex of the parabola through three samples."""
    denom = left - 2.0 * centre + right
    if denom >= 0.0:  # not a strict maximum along this axis
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


def decode_peaks(
    heatmap: FloatArray,
    sizes: FloatArray | None,
    *,
    threshold: float,
    stride: int,
    min_distance: int = 1,
    max_peaks: int = 100,
) -> list[Peak]:
    """Peaks of one centre heatmap, strongest first.

    Args:
        heatmap: ``(h, w)`` heatmap values (sigmoid probabilities, one class, one tile).
        sizes: ``(h, w)`` predicted diameters in tile pixels, or None (each peak then gets
            ``diameter_px = stride``, one cell).
        threshold: keep peaks with value ``>= threshold``.
        stride: tile pixels per heatmap cell (8 for the shipped networks).
        min_distance: non-maximum suppression radius in cells: a peak must be the maximum of its
            ``(2 * min_distance + 1)`` square neighbourhood (1 = 3x3 max-pool NMS), and of equal
            values (plateaus) within that distance only the first in raster order is kept.
        max_peaks: keep at most this many (the highest scores).

    Positions are refined below the cell by a parabola through the neighbours along each axis and
    mapped to tile pixels as ``(cell + offset) * stride + stride / 2`` (cell centres).
    """
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.ndim != 2 or hm.size == 0:
        msg = f"heatmap must be a non-empty (h, w) array, got shape {hm.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(hm)):
        msg = "heatmap contains NaN or infinite values"
        raise ValueError(msg)
    sz = None
    if sizes is not None:
        sz = np.asarray(sizes, dtype=np.float64)
        if sz.shape != hm.shape:
            msg = f"sizes must have the heatmap's shape {hm.shape}, got {sz.shape}"
            raise ValueError(msg)
    if not math.isfinite(threshold):
        msg = f"threshold must be finite, got {threshold!r}"
        raise ValueError(msg)
    if stride < 1:
        msg = f"stride must be >= 1, got {stride}"
        raise ValueError(msg)
    if min_distance < 1:
        msg = f"min_distance must be >= 1 cell, got {min_distance}"
        raise ValueError(msg)
    if max_peaks < 0:
        msg = f"max_peaks must be >= 0, got {max_peaks}"
        raise ValueError(msg)

    if max_peaks == 0 or hm.max() < threshold:
        return []
    candidates = np.argwhere(_local_max_mask(hm, min_distance) & (hm >= threshold))
    if len(candidates) == 0:
        return []
    scores = hm[candidates[:, 0], candidates[:, 1]]
    order = np.argsort(-scores, kind="stable")  # ties keep raster order
    kept: list[tuple[int, int]] = []
    for idx in order:
        y, x = (int(c) for c in candidates[idx])
        if any(max(abs(y - ky), abs(x - kx)) <= min_distance for ky, kx in kept):
            continue  # a plateau twin of an accepted peak
        kept.append((y, x))
        if len(kept) == max_peaks:
            break

    h, w = hm.shape
    peaks = []
    for y, x in kept:
        c = hm[y, x]
        dx = _parabolic_offset(hm[y, x - 1], c, hm[y, x + 1]) if 0 < x < w - 1 else 0.0
        dy = _parabolic_offset(hm[y - 1, x], c, hm[y + 1, x]) if 0 < y < h - 1 else 0.0
        diameter = float(stride) if sz is None else max(float(sz[y, x]), 0.0)
        peaks.append(
            Peak(
                u=(x + dx) * stride + stride / 2.0,
                v=(y + dy) * stride + stride / 2.0,
                score=float(c),
                diameter_px=diameter,
            )
        )
    return peaks


def check_probs(probs: FloatArray, name: str = "probs") -> npt.NDArray[np.float64]:
    """``probs`` ``(..., 4)`` as float64 clipped to [0, 1], after checking that they are finite,
    non-negative and that every row sums to 1 (ValueError naming ``name`` otherwise)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[-1:] != (GRADE_LEVELS,):
        msg = f"{name} must have shape (..., {GRADE_LEVELS}), got {p.shape}"
        raise ValueError(msg)
    if not np.all(np.isfinite(p)) or np.any(p < -_PROB_TOLERANCE):
        msg = f"{name} must be finite and >= 0, got {p.tolist()}"
        raise ValueError(msg)
    if not np.allclose(p.sum(axis=-1), 1.0, atol=_PROB_TOLERANCE):
        msg = f"{name} rows must sum to 1, got sums {p.sum(axis=-1).tolist()}"
        raise ValueError(msg)
    return np.clip(p, 0.0, 1.0)


def combine_tile_probs(probs: FloatArray, *, checked: bool = False) -> npt.NDArray[np.float64]:
    """One image-level distribution ``(4,)`` from per-tile distributions ``(T, 4)``, ``T >= 1``.

    The image is as bad as its worst tile: the exceedance probabilities ``P(grade >= k)``
    (k = 1..3) are combined by their maximum over tiles and turned back into class probabilities.
    ``checked``: ``probs`` came from :func:`check_probs` (a batch checks all its tiles at once).
    """
    p = np.asarray(probs, dtype=np.float64) if checked else check_probs(probs, "tile probabilities")
    if p.ndim != 2 or p.shape[0] < 1:
        msg = f"tile probabilities must have shape (T, {GRADE_LEVELS}) with T >= 1, got {p.shape}"
        raise ValueError(msg)
    exceed = np.cumsum(p[:, ::-1], axis=1)[:, ::-1][:, 1:]  # (T, 3): P(grade >= k), k = 1..3
    worst = exceed.max(axis=0)
    out = np.concatenate([[1.0 - worst[0]], worst[:-1] - worst[1:], worst[-1:]])
    return np.clip(out, 0.0, 1.0)


def decide(probs: FloatArray, rule: AbstainRule) -> tuple[HeadResult, bool]:
    """The head's grade and whether it abstains (goes to review).

    ``probs`` is one ``(4,)`` distribution. The grade is the argmax or the ordinal median (per
    ``rule.grade_by``); the confidence is the probability of that grade (with the default
    ``argmax`` rule this is the maximum probability). Abstains when the confidence is below
    ``rule.min_confidence`` or when the grade is 0 while ``P(grade >= 1) >
    rule.max_p_defect_for_zero``.
    """
    return _decide(check_probs(probs, "probs"), rule)


def decide_tiles(
    tile_probs: FloatArray, rule: AbstainRule, *, checked: bool = False
) -> tuple[HeadResult, bool]:
    """:func:`decide` on :func:`combine_tile_probs` of ``tile_probs`` ``(T, 4)`` (the combined
    distribution is valid by construction, so it is not checked a second time)."""
    return _decide(combine_tile_probs(tile_probs, checked=checked), rule)


def _decide(p: npt.NDArray[np.float64], rule: AbstainRule) -> tuple[HeadResult, bool]:
    if p.shape != (GRADE_LEVELS,):
        msg = f"probs must have shape ({GRADE_LEVELS},), got {p.shape}"
        raise ValueError(msg)
    if rule.grade_by == "argmax":
        grade = int(np.argmax(p))
    else:
        grade = int((np.cumsum(p)[:-1] < 0.5).sum())
    values = p.tolist()
    confidence = values[grade]
    p_defect = float(p[1:].sum())
    abstained = confidence < rule.min_confidence or (grade == 0 and p_defect > rule.max_p_defect_for_zero)
    return HeadResult(grade=grade, probs=tuple(values), confidence=confidence), abstained


def grade_from_findings(
    head: HeadResult, n_findings: int, thresholds: tuple[int, int, int], min_prob: float
) -> tuple[HeadResult, bool]:
    """The head result re-graded by the count of its findings, and whether the two views disagree.

    The grade becomes the binned count (``thresholds``, e.g. 0 / 1 / 2-3 / 4+ pores); ``probs``
    stay the head's calibrated distribution and ``confidence`` is the probability the head gives
    that grade. They disagree when that probability is below ``min_prob``: beyond what the
    calibrated head admits, so the photo must go to a person rather than print two stories.
    """
    if not 0.0 <= min_prob <= 1.0:
        msg = f"min_prob must be in [0, 1], got {min_prob!r}"
        raise ValueError(msg)
    grade = grade_from_count(n_findings, thresholds)
    p = head.probs[grade]
    return HeadResult(grade=grade, probs=head.probs, confidence=p), p < min_prob


@dataclass(frozen=True, eq=False)
class OodStats:
    """Embedding statistics of the training data for out-of-distribution scoring.

    ``mean`` ``(D,)`` and ``precision`` ``(D, D)`` (inverse of a shrunk covariance) of the
    network's embeddings; ``count`` is the number of embeddings they were fitted on (0 = not
    fitted: identity statistics, scores are then uncalibrated).
    """

    mean: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]
    count: int = 0

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.precision.shape != (self.mean.shape[0],) * 2:
            shapes = f"{self.mean.shape} and {self.precision.shape}"
            msg = f"OodStats needs mean (D,) and precision (D, D), got {shapes}"
            raise ValueError(msg)
        if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.precision))):
            msg = "OodStats mean and precision must be finite"
            raise ValueError(msg)
        if self.count < 0:
            msg = f"OodStats.count must be >= 0, got {self.count}"
            raise ValueError(msg)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def identity(cls, dim: int) -> OodStats:
        """Unfitted statistics: zero mean, identity precision, ``count = 0``."""
        return cls(np.zeros(dim), np.eye(dim), 0)

    @classmethod
    def fit(cls, embeddings: FloatArray, shrinkage: float = 0.1) -> OodStats:
        """Fit on ``(N, D)`` embeddings (N >= 2), shrinking the covariance towards a scaled identity.

        ``shrinkage`` in [0, 1]: ``cov = (1 - s) * sample_cov + s * (trace / D) * I``, which keeps the
        precision well conditioned when N is not much larger than D.
        """
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            msg = f"embeddings must have shape (N, D) with N >= 2, got {x.shape}"
            raise ValueError(msg)
        if not 0.0 <= shrinkage <= 1.0:
            msg = f"shrinkage must be in [0, 1], got {shrinkage}"
            raise ValueError(msg)
        mean = x.mean(axis=0)
        cov = np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])
        scale = max(float(np.trace(cov)) / x.shape[1], 1e-12)
        cov = (1.0 - shrinkage) * cov + shrinkage * scale * np.eye(x.shape[1])
        cov += 1e-9 * scale * np.eye(x.shape[1])
        return cls(mean, np.linalg.inv(cov), int(x.shape[0]))

    def score(self, embeddings: FloatArray) -> npt.NDArray[np.float64]:
        """OOD scores ``(N,)`` for ``(N, D)`` embeddings: ``sqrt(d^T P d / D)`` with ``d = e - mean``.

        About 1 for typical training embeddings; larger means more unusual.
        """
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            msg = f"embeddings must have shape (N, {self.dim}), got {x.shape}"
            raise ValueError(msg)
        d = x - self.mean
        m2 = np.einsum("nd,de,ne->n", d, self.precision, d)
        return np.sqrt(np.maximum(m2, 0.0) / self.dim)
