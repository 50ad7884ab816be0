"""CORAL helpers: valid distributions, monotone behaviour, loss and summary statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspection.model.ordinal import coral_loss, coral_probs, coral_targets, expected_grade, median_grade


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_coral_probs_are_distributions_even_for_non_monotone_logits(temperature: float) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 3, generator=gen) * 5  # many rows violate l0 >= l1 >= l2
    probs = coral_probs(logits, temperature=temperature)
    assert probs.shape == (200, 4)
    assert bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(200))
    np_probs = coral_probs(logits.numpy(), temperature=temperature)
    np.testing.assert_allclose(np_probs, probs.numpy(), atol=1e-6)


def test_coral_probs_known_values() -> None:
    # sigmoid(0) = 0.5 = P(g>0); sigmoid(-inf-ish) = 0 for higher thresholds
    probs = coral_probs(np.array([[0.0, -50.0, -50.0]]))
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0, 0.0]], atol=1e-12)
    # a non-monotone row is clamped: P(g>1) cannot exceed P(g>0)
    probs = coral_probs(np.array([[-50.0, 50.0, -50.0]]))
    np.testing.assert_allclose(probs, [[1.0, 0.0, 0.0, 0.0]], atol=1e-12)


def test_raising_logits_shifts_mass_to_higher_grades() -> None:
    base = torch.tensor([[1.0, 0.0, -1.0]])
    grades = [float(expected_grade(coral_probs(base + shift))) for shift in (-4.0, -1.0, 0.0, 1.0, 4.0)]
    assert grades == sorted(grades)
    assert grades[0] < 0.2
    assert grades[-1] > 2.8


def test_temperature_flattens_the_distribution() -> None:
    logits = np.array([[4.0, 3.0, -3.0]])
    sharp = coral_probs(logits, temperature=1.0)
    soft = coral_probs(logits, temperature=4.0)
    assert soft.max() < sharp.max()
    with pytest.raises(ValueError, match="temperature"):
        coral_probs(logits, temperature=0.0)


def test_coral_probs_rejects_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        coral_probs(np.zeros((2, 4)))


def test_coral_targets() -> None:
    t = coral_targets(torch.tensor([0, 1, 2, 3]))
    torch.testing.assert_close(
        t, torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.float32)
    )


def test_coral_loss_prefers_correct_logits_and_backpropagates() -> None:
    grades = torch.tensor([0, 3, 2, -1])  # -1 = unknown label, ignored
    good = torch.tensor([[-5.0, -6, -7], [7, 6, 5], [6, 5, -5], [0, 0, 0]], requires_grad=True)
    bad = torch.tensor([[5.0, 6, 7], [-7, -6, -5], [-6, -5, 5], [0, 0, 0]])
    loss_good = coral_loss(good, grades)
    assert float(loss_good.detach()) < float(coral_loss(bad, grades))
    loss_good.backward()
    assert good.grad is not None
    assert float(good.grad[3].abs().sum()) == 0.0, "ignored samples must not get gradient"
    per_sample = coral_loss(good.detach(), grades, reduction="none")
    assert per_sample.shape == (4,)
    assert float(per_sample[3]) == 0.0


def test_coral_loss_all_ignored_is_zero_and_differentiable() -> None:
    logits = torch.zeros(2, 3, requires_grad=True)
    loss = coral_loss(logits, torch.tensor([-1, -1]))
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_coral_loss_sample_weights() -> None:
    logits = torch.tensor([[5.0, 0, -5], [-5.0, -5, -5]])
    grades = torch.tensor([3, 3])
    only_first = coral_loss(logits, grades, sample_weights=torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(only_first, coral_loss(logits[:1], grades[:1]))


@pytest.mark.parametrize(
    ("grades", "needle"), [(torch.tensor([0, 4]), r"0\.\.3"), (torch.tensor([0, 1, 2]), "shape")]
)
def test_coral_loss_rejects_bad_grades(grades: torch.Tensor, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        coral_loss(torch.zeros(2, 3), grades)


@pytest.mark.parametrize(
    ("probs", "expected", "median"),
    [
        ([1.0, 0.0, 0.0, 0.0], 0.0, 0),
        ([0.0, 0.0, 0.0, 1.0], 3.0, 3),
        ([0.25, 0.25, 0.25, 0.25], 1.5, 1),
        ([0.4, 0.0, 0.0, 0.6], 1.8, 3),
        ([0.1, 0.3, 0.4, 0.2], 1.7, 2),
    ],
)
def test_expected_and_median_grade(probs: list[float], expected: float, median: int) -> None:
    arr = np.array([probs])
    assert expected_grade(arr)[0] == pytest.approx(expected)
    assert int(median_grade(arr)[0]) == median
    assert float(expected_grade(torch.tensor(arr))[0]) == pytest.approx(expected)
    assert int(median_grade(torch.tensor(arr))[0]) == median
