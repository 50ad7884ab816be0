"""Post-hoc calibration: per-head temperature scaling and the abstain (review) threshold.

Both are fitted on out-of-fold (leave-one-weld-out) predictions, never on training data.
Pure numpy; the class-probability function for ordinal logits is passed in (by default the model
package's :func:`inspection.model.ordinal.coral_probs`, so fitting and serving use the same maths).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

ProbsFn = Callable[[npt.NDArray[np.float64], float], npt.NDArray[np.float64]]
"""``(logits (N, K-1), temperature) -> class probabilities (N, K)``."""

_EPS = 1e-12


def default_probs_fn() -> ProbsFn:
    """The serving path's CORAL probabilities (imported lazily from the model package)."""
    import torch

    from inspection.model.ordinal import coral_probs

    def fn(logits: npt.NDArray[np.float64], temperature: float) -> npt.NDArray[np.float64]:
        out = coral_probs(torch.as_tensor(logits, dtype=torch.float32), temperature=temperature)
        arr = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        return arr.astype(np.float64)

    return fn


def nll(probs: npt.NDArray[Any], labels: npt.NDArray[Any]) -> float:
    """Mean negative log-likelihood of integer ``labels (N,)`` under ``probs (N, K)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        msg = f"probs must be (N, K) and labels (N,), got {p.shape} and {y.shape}"
        raise ValueError(msg)
    if y.size == 0:
        return math.nan
    picked = p[np.arange(y.size), y]
    return float(-np.log(np.clip(picked, _EPS, 1.0)).mean())


def fit_temperature(
    logits: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    probs_fn: ProbsFn,
    *,
    t_min: float = 0.05,
    t_max: float = 20.0,
    steps: int = 200,
) -> float:
    """The temperature ``T`` in ``[t_min, t_max]`` minimising NLL of ``probs_fn(logits, T)``.

    A log-spaced grid search followed by a local refinement (robust, no gradients needed; the
    objective is 1-D). Returns 1.0 when there are no samples.
    """
    x = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if x.shape[0] != y.shape[0]:
        msg = f"logits and labels must have the same length, got {x.shape[0]} and {y.shape[0]}"
        raise ValueError(msg)
    if not (0 < t_min < t_max):
        msg = f"need 0 < t_min < t_max, got {t_min}, {t_max}"
        raise ValueError(msg)
    if y.size == 0:
        return 1.0
    grid = np.geomspace(t_min, t_max, steps)
    losses = np.array([nll(probs_fn(x, float(t)), y) for t in grid])
    best = int(np.nanargmin(losses))
    lo = grid[max(best - 1, 0)]
    hi = grid[min(best + 1, steps - 1)]
    fine = np.geomspace(lo, hi, 41)
    fine_losses = np.array([nll(probs_fn(x, float(t)), y) for t in fine])
    return float(fine[int(np.nanargmin(fine_losses))])


@dataclass(frozen=True)
class AbstainChoice:
    """The chosen zero-grade review threshold and what it does on the validation set.

    ``max_p_defect_for_zero``: a grade-0 prediction with ``P(grade >= 1)`` above this goes to review.
    ``min_confidence``: predictions whose top probability is below this go to review.
    ``severe_missed_rate``: fraction of true grade >= ``severe_grade`` images output as grade 0
    without review; ``review_rate``: fraction of all images routed to review.
    """

    max_p_defect_for_zero: float
    min_confidence: float
    severe_missed_rate: float
    review_rate: float
    n_severe: int
    n: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_p_defect_for_zero <= 1.0:
            msg = f"max_p_defect_for_zero must be in [0, 1], got {self.max_p_defect_for_zero}"
            raise ValueError(msg)
        if not 0.0 <= self.min_confidence <= 1.0:
            msg = f"min_confidence must be in [0, 1], got {self.min_confidence}"
            raise ValueError(msg)


def review_mask(
    probs: npt.NDArray[Any], max_p_defect_for_zero: float, min_confidence: float
) -> npt.NDArray[np.bool_]:
    """Which images the abstain rule routes to review, given class probabilities ``(N, K)``.

    Rule (same as the serving ``decide``): grade = argmax; review when the grade is 0 but
    ``P(grade >= 1) = 1 - p0`` exceeds ``max_p_defect_for_zero``, or when ``max(p) < min_confidence``.
    """
    p = np.asarray(probs, dtype=np.float64)
    pred = p.argmax(axis=1)
    p_defect = 1.0 - p[:, 0]
    return ((pred == 0) & (p_defect > max_p_defect_for_zero)) | (p.max(axis=1) < min_confidence)


def select_abstain_threshold(
    probs: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    *,
    max_severe_missed: float = 0.02,
    severe_grade: int = 2,
    min_confidence: float = 0.0,
) -> AbstainChoice:
    """The largest ``max_p_defect_for_zero`` keeping severe misses at or below ``max_severe_missed``.

    A severe miss is an image with true grade ``>= severe_grade`` that is output as grade 0 and
    not routed to review. Larger thresholds review fewer images, so the largest feasible one
    gives the lowest review rate under the constraint. With no severe images the threshold is 1.0.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        msg = f"probs must be (N, K) and labels (N,), got {p.shape} and {y.shape}"
        raise ValueError(msg)
    if not 0.0 <= max_severe_missed < 1.0:
        msg = f"max_severe_missed must be in [0, 1), got {max_severe_missed}"
        raise ValueError(msg)
    severe = y >= severe_grade
    n_severe = int(severe.sum())
    pred = p.argmax(axis=1)
    p_defect = 1.0 - p[:, 0]
    low_conf = p.max(axis=1) < min_confidence
    candidates = np.unique(np.concatenate([[0.0, 1.0], np.clip(p_defect[pred == 0], 0.0, 1.0)]))
    best = 0.0
    for t in candidates[::-1]:  # largest first
        passed_zero = (pred == 0) & (p_defect <= t) & ~low_conf
        missed = int((passed_zero & severe).sum())
        if n_severe == 0 or missed <= max_severe_missed * n_severe:
            best = float(t)
            break
    reviewed = review_mask(p, best, min_confidence)
    missed_final = (pred == 0) & ~reviewed & severe
    return AbstainChoice(
        max_p_defect_for_zero=best,
        min_confidence=float(min_confidence),
        severe_missed_rate=float(missed_final.sum() / n_severe) if n_severe else 0.0,
        review_rate=float(reviewed.mean()) if y.size else 0.0,
        n_severe=n_severe,
        n=int(y.size),
    )


def select_peak_threshold(
    peak_scores: npt.NDArray[Any], present: npt.NDArray[Any], *, lo: float = 0.05, hi: float = 0.95
) -> float:
    """The heatmap peak threshold in ``[lo, hi]`` maximising presence F1 on validation tiles.

    ``peak_scores`` ``(N,)``: each tile's maximum heatmap value; ``present`` ``(N,)``: whether the
    tile holds at least one object. Ties go to the higher threshold (fewer false findings). Returns
    ``(lo + hi) / 2`` when no tile holds an object.
    """
    s = np.asarray(peak_scores, dtype=np.float64)
    y = np.asarray(present, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        msg = f"peak_scores and present must be 1-D of equal length, got {s.shape} and {y.shape}"
        raise ValueError(msg)
    if not y.any():
        return (lo + hi) / 2.0
    best_t, best_f1 = (lo + hi) / 2.0, -1.0
    for t in np.linspace(lo, hi, 91):
        pred = s >= t
        tp = float((pred & y).sum())
        f1 = 2 * tp / (pred.sum() + y.sum())
        if f1 >= best_f1:
            best_t, best_f1 = float(t), f1
    return best_t


def select_pore_free_floor(
    photo_peaks: npt.NDArray[Any], limit: float, *, lo: float = 0.05, hi: float = 0.95
) -> float | None:
    """The lowest peak threshold in ``[lo, hi]`` (the grid of :func:`select_peak_threshold`) at which
    at most ``limit`` of the pore-free photos have a peak at or above it.

    ``photo_peaks`` ``(M,)``: the highest porosity heatmap value of each photo labelled pore-free
    (its worst tile). A peak at or above the threshold becomes a finding and grades the photo >= 1,
    so this bounds the pore-free photos flagged (the decoder's seam mask and peak spacing can only
    remove findings). Returns None without pore-free photos, ``hi`` when even ``hi`` flags more.
    """
    s = np.asarray(photo_peaks, dtype=np.float64)
    if s.ndim != 1:
        msg = f"photo_peaks must be 1-D, got shape {s.shape}"
        raise ValueError(msg)
    if not 0 < limit < 1:
        msg = f"limit must be a share in (0, 1), got {limit}"
        raise ValueError(msg)
    if s.size == 0:
        return None
    for t in np.linspace(lo, hi, 91):
        if float(np.mean(s >= t)) <= limit:
            return float(t)
    return float(hi)
