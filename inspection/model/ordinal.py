"""Ordinal (CORAL) helpers for the 0..3 grade heads: probabilities, loss, expected grade.

Convention (shared by training and serving): a head emits ``K - 1 = 3`` *cumulative* logits
``l_k`` with ``sigmoid(l_k) = P(grade > k)`` for ``k = 0, 1, 2`` (CORAL, Cao et al. 2020). The
network's CORAL heads share one weight vector and have ordered biases, so the sigmoids are
normally non-increasing in ``k``; :func:`coral_probs` additionally clamps them with a cumulative
minimum so the class probabilities are always ``>= 0`` and sum to 1.

Every function accepts either a ``torch.Tensor`` or a ``numpy.ndarray`` (except
:func:`coral_loss`, which is torch-only) and returns the same kind.
"""

from __future__ import annotations

from typing import overload

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from inspection.types import GRADE_LEVELS

NUM_THRESHOLDS = GRADE_LEVELS - 1
"""Cumulative logits per head (3 for grades 0..3)."""


def _check_temperature(temperature: float) -> None:
    if not (np.isfinite(temperature) and temperature > 0):
        msg = f"temperature must be a finite number > 0, got {temperature!r}"
        raise ValueError(msg)


def _check_last_dim(shape: tuple[int, ...], expected: int, what: str) -> None:
    if len(shape) < 1 or shape[-1] != expected:
        msg = f"{what} must have shape (..., {expected}), got {tuple(shape)}"
        raise ValueError(msg)


@overload
def coral_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor: ...
@overload
def coral_probs(logits: npt.NDArray[np.floating], temperature: float = 1.0) -> npt.NDArray[np.float64]: ...
def coral_probs(
    logits: torch.Tensor | npt.NDArray[np.floating], temperature: float = 1.0
) -> torch.Tensor | npt.NDArray[np.float64]:
    """Class probabilities ``(..., 4)`` from cumulative logits ``(..., 3)``.

    ``temperature`` divides the logits before the sigmoid (calibration; 1.0 = uncalibrated).
    ``P(grade > k)`` is made non-increasing in ``k`` by a cumulative minimum, so the result is a
    valid distribution: every entry ``>= 0`` and each row sums to 1 (up to float rounding).
    numpy input gives float64 output; torch input keeps its dtype and stays differentiable.
    """
    _check_temperature(temperature)
    _check_last_dim(tuple(logits.shape), NUM_THRESHOLDS, "cumulative logits")
    if isinstance(logits, torch.Tensor):
        p_gt = torch.sigmoid(logits / temperature)
        p_gt = torch.cummin(p_gt, dim=-1).values
        first = 1.0 - p_gt[..., :1]
        middle = p_gt[..., :-1] - p_gt[..., 1:]
        return torch.cat([first, middle, p_gt[..., -1:]], dim=-1)
    x = np.asarray(logits, dtype=np.float64) / temperature
    p = 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))
    p = np.minimum.accumulate(p, axis=-1)
    return np.concatenate([1.0 - p[..., :1], p[..., :-1] - p[..., 1:], p[..., -1:]], axis=-1)


def coral_targets(grades: torch.Tensor) -> torch.Tensor:
    """Binary targets ``(N, 3)`` float: column ``k`` is ``1.0`` where ``grade > k``."""
    ks = torch.arange(NUM_THRESHOLDS, device=grades.device)
    return (grades.long().unsqueeze(-1) > ks).to(torch.float32)


def coral_loss(
    logits: torch.Tensor,
    grades: torch.Tensor,
    *,
    sample_weights: torch.Tensor | None = None,
    ignore_index: int = -1,
    reduction: str = "mean",
) -> torch.Tensor:
    """CORAL loss: the sum over thresholds of binary cross-entropy on ``P(grade > k)``.

    Args:
        logits: ``(N, 3)`` cumulative logits.
        grades: ``(N,)`` integer grades in ``0..3``; entries equal to ``ignore_index`` (an
            unknown label, e.g. spatter on a porosity-only image) contribute nothing.
        sample_weights: optional ``(N,)`` non-negative per-sample weights.
        reduction: ``"mean"`` (over labelled samples, weighted), ``"sum"`` or ``"none"``
            (``(N,)`` per-sample losses, 0 for ignored samples).

    Returns a scalar (or ``(N,)`` for ``"none"``). With no labelled sample the mean is 0 (still
    attached to the graph so ``backward()`` works).
    """
    if logits.ndim != 2 or logits.shape[1] != NUM_THRESHOLDS:
        msg = f"logits must have shape (N, {NUM_THRESHOLDS}), got {tuple(logits.shape)}"
        raise ValueError(msg)
    if grades.shape != logits.shape[:1]:
        msg = f"grades must have shape ({logits.shape[0]},) to match logits, got {tuple(grades.shape)}"
        raise ValueError(msg)
    if reduction not in ("mean", "sum", "none"):
        msg = f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}"
        raise ValueError(msg)
    grades = grades.long()
    labelled = grades != ignore_index
    bad = labelled & ((grades < 0) | (grades >= GRADE_LEVELS))
    if bool(bad.any()):
        msg = (
            f"grades must be in 0..{GRADE_LEVELS - 1} (or {ignore_index} = unknown), "
            f"got {sorted(set(grades[bad].tolist()))}"
        )
        raise ValueError(msg)
    targets = coral_targets(grades.clamp(min=0))
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(dim=1)
    weights = labelled.to(per_sample.dtype)
    if sample_weights is not None:
        if sample_weights.shape != grades.shape:
            msg = f"sample_weights must have shape {tuple(grades.shape)}, got {tuple(sample_weights.shape)}"
            raise ValueError(msg)
        weights = weights * sample_weights.to(per_sample.dtype)
    per_sample = per_sample * weights
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.sum() / weights.sum().clamp(min=1e-12) if bool(labelled.any()) else per_sample.sum()


@overload
def expected_grade(probs: torch.Tensor) -> torch.Tensor: ...
@overload
def expected_grade(probs: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]: ...
def expected_grade(
    probs: torch.Tensor | npt.NDArray[np.floating],
) -> torch.Tensor | npt.NDArray[np.float64]:
    """Expected grade ``sum_k k * p_k``: ``(..., 4)`` class probabilities -> ``(...)`` in [0, 3]."""
    _check_last_dim(tuple(probs.shape), GRADE_LEVELS, "class probabilities")
    if isinstance(probs, torch.Tensor):
        ks = torch.arange(GRADE_LEVELS, dtype=probs.dtype, device=probs.device)
        return (probs * ks).sum(dim=-1)
    return np.asarray(probs, dtype=np.float64) @ np.arange(GRADE_LEVELS, dtype=np.float64)


@overload
def median_grade(probs: torch.Tensor) -> torch.Tensor: ...
@overload
def median_grade(probs: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]: ...
def median_grade(
    probs: torch.Tensor | npt.NDArray[np.floating],
) -> torch.Tensor | npt.NDArray[np.int64]:
    """Ordinal median: the smallest grade ``k`` with ``P(grade <= k) >= 0.5``; ``(..., 4)`` -> ``(...)``."""
    _check_last_dim(tuple(probs.shape), GRADE_LEVELS, "class probabilities")
    if isinstance(probs, torch.Tensor):
        below = torch.cumsum(probs, dim=-1)[..., :-1] < 0.5
        return below.sum(dim=-1)
    cum = np.cumsum(np.asarray(probs, dtype=np.float64), axis=-1)[..., :-1]
    return (cum < 0.5).sum(axis=-1).astype(np.int64)
