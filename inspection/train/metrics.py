"""Evaluation metrics for the ordinal grading heads (pure numpy; no sklearn).

All functions take integer class labels in ``0..n_classes-1`` (ordinal grades) or scores, and
return plain Python floats / numpy arrays so they serialise to JSON directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _as_labels(values: Sequence[int] | npt.NDArray[Any], n_classes: int, name: str) -> IntArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        msg = f"{name} must be a 1-D array of class labels, got shape {arr.shape}"
        raise ValueError(msg)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) and not np.all(np.mod(arr, 1) == 0)):
        msg = f"{name} must hold integer class labels, got dtype {arr.dtype}"
        raise ValueError(msg)
    out = arr.astype(np.int64)
    if out.size and (out.min() < 0 or out.max() >= n_classes):
        msg = f"{name} labels must be in 0..{n_classes - 1}, got range {out.min()}..{out.max()}"
        raise ValueError(msg)
    return out


def confusion_matrix(
    y_true: Sequence[int] | npt.NDArray[Any], y_pred: Sequence[int] | npt.NDArray[Any], n_classes: int = 4
) -> IntArray:
    """Confusion matrix ``(n_classes, n_classes)``: rows = true class, columns = predicted class."""
    t = _as_labels(y_true, n_classes, "y_true")
    p = _as_labels(y_pred, n_classes, "y_pred")
    if t.shape != p.shape:
        msg = f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}"
        raise ValueError(msg)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def quadratic_weighted_kappa(
    y_true: Sequence[int] | npt.NDArray[Any], y_pred: Sequence[int] | npt.NDArray[Any], n_classes: int = 4
) -> float:
    """Cohen's kappa with quadratic weights ``w_ij = (i - j)^2 / (K - 1)^2``.

    Returns 1.0 for perfect agreement, 0.0 for chance-level agreement; ``nan`` when undefined:
    empty input, or a single true class (then the observed and the expected disagreement are equal
    whatever the predictions, so kappa is 0 by construction and says nothing; e.g. a held-out weld
    with no pores at all; report its false-alarm rate instead).
    """
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    n = cm.sum()
    if n == 0 or np.count_nonzero(cm.sum(axis=1)) < 2:
        return math.nan
    idx = np.arange(n_classes, dtype=np.float64)
    weights = (idx[:, None] - idx[None, :]) ** 2 / float((n_classes - 1) ** 2)
    expected = np.outer(cm.sum(axis=1), cm.sum(axis=0)) / n
    denom = float((weights * expected).sum())
    if denom == 0.0:
        return math.nan
    return float(1.0 - (weights * cm).sum() / denom)


def macro_f1(
    y_true: Sequence[int] | npt.NDArray[Any],
    y_pred: Sequence[int] | npt.NDArray[Any],
    n_classes: int = 4,
    *,
    present_only: bool = True,
) -> float:
    """Unweighted mean of per-class F1.

    With ``present_only`` (default) the mean runs over classes that occur in ``y_true`` or
    ``y_pred`` (a class absent from both has undefined F1 and is skipped); otherwise over all
    ``n_classes`` with undefined F1 counted as 0. ``nan`` for empty input.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    if cm.sum() == 0:
        return math.nan
    tp = np.diag(cm)
    support_true = cm.sum(axis=1)
    support_pred = cm.sum(axis=0)
    denom = support_true + support_pred
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    if present_only:
        mask = denom > 0
        return float(f1[mask].mean())
    return float(f1.mean())


def auroc(y_true: Sequence[int] | npt.NDArray[Any], scores: Sequence[float] | npt.NDArray[Any]) -> float:
    """Area under the ROC curve for binary labels (1 = positive), ties counted as 1/2.

    Computed as the Mann-Whitney U statistic with average ranks. ``nan`` when only one class is
    present (undefined), which callers must report as such.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or y.shape != s.shape:
        msg = f"y_true and scores must be 1-D of equal length, got {y.shape} and {s.shape}"
        raise ValueError(msg)
    if not np.all(np.isin(y, (0, 1))):
        msg = "y_true must be binary (0/1) for AUROC"
        raise ValueError(msg)
    if not np.all(np.isfinite(s)):
        msg = "scores must be finite for AUROC"
        raise ValueError(msg)
    n_pos = int((y == 1).sum())
    n_neg = int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks with ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(values.shape[0], dtype=np.float64)
    i = 0
    n = values.shape[0]
    while i < n:
        j = i
        while j + 1 < n and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def rate(mask: npt.NDArray[Any]) -> float:
    """Fraction of True in ``mask`` (``nan`` when empty)."""
    m = np.asarray(mask, dtype=bool)
    return float(m.mean()) if m.size else math.nan


def head_report(
    y_true: Sequence[int] | npt.NDArray[Any],
    probs: npt.NDArray[Any],
    n_classes: int = 4,
) -> dict[str, Any]:
    """Summary metrics for one ordinal head from class probabilities ``(N, n_classes)``.

    Grade = argmax. Presence = grade >= 1; the presence score is ``P(grade >= 1) = 1 - p0``.
    Keys: ``n``, ``qwk``, ``macro_f1``, ``presence_auroc`` (nan when undefined), ``false_alarm_rate``
    (predicted >= 1 among true 0), ``miss_rate`` (predicted 0 among true >= 1), ``accuracy``,
    ``confusion`` (nested lists), ``class_counts``.
    """
    p = np.asarray(probs, dtype=np.float64)
    t = _as_labels(y_true, n_classes, "y_true")
    if p.ndim != 2 or p.shape != (t.shape[0], n_classes):
        msg = f"probs must have shape ({t.shape[0]}, {n_classes}), got {p.shape}"
        raise ValueError(msg)
    pred = p.argmax(axis=1)
    presence = (t >= 1).astype(np.int64)
    cm = confusion_matrix(t, pred, n_classes)
    return {
        "n": int(t.shape[0]),
        "qwk": _finite_or_none(quadratic_weighted_kappa(t, pred, n_classes)),
        "macro_f1": _finite_or_none(macro_f1(t, pred, n_classes)),
        "presence_auroc": _finite_or_none(auroc(presence, 1.0 - p[:, 0])) if t.size else None,
        "false_alarm_rate": _finite_or_none(rate(pred[t == 0] >= 1)),
        "miss_rate": _finite_or_none(rate(pred[t >= 1] == 0)),
        "accuracy": _finite_or_none(rate(pred == t)),
        "confusion": cm.tolist(),
        "class_counts": np.bincount(t, minlength=n_classes).tolist(),
    }


def _finite_or_none(value: float) -> float | None:
    """JSON-friendly: undefined metrics become ``None`` (serialised as null)."""
    return None if not math.isfinite(value) else float(value)
