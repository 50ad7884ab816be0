"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inspection.train.metrics import auroc, confusion_matrix, head_report, macro_f1, quadratic_weighted_kappa


@pytest.mark.parametrize(
    ("y_true", "y_pred", "expected"),
    [
        ([0, 1, 2, 3], [0, 1, 2, 3], 1.0),
        # hand-computed: observed 1/9, expected 8/9 -> 1 - 1/8
        ([0, 1, 2, 3], [0, 1, 2, 2], 0.875),
        # complete reversal on the extremes: observed = expected weighted disagreement * 2 -> -1
        ([0, 3], [3, 0], -1.0),
    ],
)
def test_qwk_hand_computed(y_true: list[int], y_pred: list[int], expected: float) -> None:
    assert quadratic_weighted_kappa(y_true, y_pred) == pytest.approx(expected)


def test_qwk_undefined_when_single_constant_class() -> None:
    assert math.isnan(quadratic_weighted_kappa([0, 0, 0], [0, 0, 0]))


def test_qwk_undefined_when_the_truth_has_one_class_whatever_the_predictions() -> None:
    # a held-out weld without pores: kappa would be 0 for any predictions, so it is not reported
    assert math.isnan(quadratic_weighted_kappa([0, 0, 0, 0], [0, 1, 2, 0]))
    assert math.isnan(quadratic_weighted_kappa([0, 0, 0, 0], [0, 0, 0, 0]))
    assert quadratic_weighted_kappa([0, 0, 0, 1], [0, 1, 2, 0]) < 0.5  # two true classes: defined


def test_confusion_rows_are_truth() -> None:
    cm = confusion_matrix([0, 0, 1, 3], [0, 1, 1, 2])
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]


def test_macro_f1_hand_computed() -> None:
    # per-class F1: 1, 1, 2/3 (precision 1/2, recall 1), 0 -> mean 2/3
    assert macro_f1([0, 1, 2, 3], [0, 1, 2, 2]) == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)


def test_macro_f1_skips_absent_classes_unless_asked() -> None:
    assert macro_f1([0, 0, 1], [0, 0, 1]) == pytest.approx(1.0)
    assert macro_f1([0, 0, 1], [0, 0, 1], present_only=False) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y", "s", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
        # one tie between a positive and a negative counts 1/2: (1 + 0.5 + 1 + 1) / 4
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),
        ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 0.5),
    ],
)
def test_auroc_with_ties(y: list[int], s: list[float], expected: float) -> None:
    assert auroc(y, s) == pytest.approx(expected)


def test_auroc_undefined_with_one_class() -> None:
    assert math.isnan(auroc([0, 0, 0], [0.1, 0.2, 0.3]))


def test_auroc_matches_pairwise_definition(rng: np.random.Generator) -> None:
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert auroc(y, s) == pytest.approx(pairwise)


def test_head_report_reports_undefined_as_none() -> None:
    probs = np.array([[0.9, 0.05, 0.03, 0.02], [0.2, 0.7, 0.05, 0.05]])
    rep = head_report([0, 0], probs)
    assert rep["presence_auroc"] is None
    assert rep["false_alarm_rate"] == pytest.approx(0.5)
    assert rep["confusion"][0][1] == 1


@pytest.mark.parametrize(("y_true", "y_pred"), [([0, 4], [0, 1]), ([0, 1], [0, -1])])
def test_labels_out_of_range_are_rejected(y_true: list[int], y_pred: list[int]) -> None:
    with pytest.raises(ValueError, match=r"labels must be in 0\.\.3"):
        confusion_matrix(y_true, y_pred)
