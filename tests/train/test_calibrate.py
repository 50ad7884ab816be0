"""Temperature scaling and abstain-threshold selection on toy sets."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.model.ordinal import coral_probs
from inspection.train.calibrate import (
    default_probs_fn,
    fit_temperature,
    nll,
    review_mask,
    select_abstain_threshold,
    select_peak_threshold,
    select_pore_free_floor,
)


def _toy_ordinal(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """True cumulative logits and grades sampled from them."""
    centre = rng.normal(0.0, 2.0, size=(n, 1))
    logits = centre + np.array([[1.5, 0.0, -1.5]])
    probs = coral_probs(logits)
    grades = np.array([rng.choice(4, p=p / p.sum()) for p in probs])
    return logits, grades


@pytest.mark.parametrize("overconfidence", [3.0, 0.4])
def test_temperature_scaling_lowers_nll(rng: np.random.Generator, overconfidence: float) -> None:
    logits, grades = _toy_ordinal(rng)
    miscalibrated = logits * overconfidence
    fn = default_probs_fn()
    t = fit_temperature(miscalibrated, grades, fn)
    before = nll(fn(miscalibrated, 1.0), grades)
    after = nll(fn(miscalibrated, t), grades)
    assert after < before - 0.01
    assert t == pytest.approx(overconfidence, rel=0.35)


def test_fit_temperature_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="same length"):
        fit_temperature(np.zeros((3, 3)), np.zeros(2, int), default_probs_fn())


def _toy_probs(rng: np.random.Generator, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1.0, (n, 4))
    logits[np.arange(n), labels] += 1.2  # informative but noisy
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


@pytest.mark.parametrize("budget", [0.0, 0.02, 0.1])
def test_abstain_threshold_meets_budget_and_is_maximal(rng: np.random.Generator, budget: float) -> None:
    probs, labels = _toy_probs(rng)
    choice = select_abstain_threshold(probs, labels, max_severe_missed=budget, min_confidence=0.0)
    severe = labels >= 2
    passed_zero = (probs.argmax(1) == 0) & ~review_mask(probs, choice.max_p_defect_for_zero, 0.0)
    missed = (passed_zero & severe).sum() / severe.sum()
    assert missed <= budget + 1e-12
    assert choice.severe_missed_rate == pytest.approx(missed)
    # the next larger candidate threshold would break the budget (or there is none)
    p_def = 1.0 - probs[:, 0]
    larger = np.sort(p_def[(probs.argmax(1) == 0) & (p_def > choice.max_p_defect_for_zero)])
    if larger.size:
        t_next = larger[0]
        passed = (probs.argmax(1) == 0) & (p_def <= t_next)
        assert (passed & severe).sum() / severe.sum() > budget


def test_review_rate_grows_as_budget_shrinks(rng: np.random.Generator) -> None:
    probs, labels = _toy_probs(rng)
    loose = select_abstain_threshold(probs, labels, max_severe_missed=0.2)
    strict = select_abstain_threshold(probs, labels, max_severe_missed=0.0)
    assert strict.max_p_defect_for_zero <= loose.max_p_defect_for_zero
    assert strict.review_rate >= loose.review_rate


def test_no_severe_images_means_no_zero_review() -> None:
    probs = np.array([[0.6, 0.4, 0.0, 0.0], [0.2, 0.8, 0.0, 0.0]])
    choice = select_abstain_threshold(probs, np.array([0, 1]))
    assert choice.max_p_defect_for_zero == 1.0
    assert choice.n_severe == 0


def test_peak_threshold_separates_present_from_absent() -> None:
    scores = np.array([0.1, 0.15, 0.2, 0.6, 0.7, 0.9])
    present = np.array([False, False, False, True, True, True])
    t = select_peak_threshold(scores, present)
    assert 0.2 < t <= 0.6
    assert select_peak_threshold(scores, np.zeros(6, bool)) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("peaks", "limit", "expected"),
    [
        # 10 pore-free photos, peaks 0.1 .. 1.0; at most 10 % flagged: only the 1.0 photo may reach t
        (np.linspace(0.1, 1.0, 10), 0.1, 0.91),
        (np.linspace(0.1, 1.0, 10), 0.5, 0.51),  # above 0.5: 0.6 .. 1.0 are 5 of 10
        (np.full(4, 0.02), 0.1, 0.05),  # every peak below the grid: the lowest threshold already holds
        (np.full(4, 0.99), 0.1, 0.95),  # nothing on the grid holds: the highest one
        (np.zeros(0), 0.1, None),  # no pore-free photo: no floor
    ],
)
def test_pore_free_floor_bounds_the_flagged_share(
    peaks: np.ndarray, limit: float, expected: float | None
) -> None:
    got = select_pore_free_floor(peaks, limit)
    if expected is None:
        assert got is None
        return
    assert got == pytest.approx(expected)
    if 0.05 < expected < 0.95:
        assert np.mean(peaks >= got) <= limit  # the bound holds at the floor
        assert np.mean(peaks >= got - 0.01) > limit  # and the next lower grid step breaks it


@pytest.mark.parametrize("limit", [0.0, 1.0, -0.1])
def test_pore_free_floor_refuses_a_limit_outside_0_1(limit: float) -> None:
    with pytest.raises(ValueError, match="share in"):
        select_pore_free_floor(np.array([0.5]), limit)
