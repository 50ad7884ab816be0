"""Weld grouping: ARI against hand-computed values, union-find, synthetic welds recovered."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from inspection.data.groups import (
    UnionFind,
    adjusted_rand_index,
    candidate_pairs,
    contact_sheet,
    group_images,
    match_inliers,
    orb_features,
)


@pytest.mark.parametrize(
    ("truth", "pred", "ari"),
    [
        # contingency [[2,1,0],[0,1,2]]: index 2, row pairs 6, column pairs 3, all pairs 15:
        # expected 6*3/15 = 1.2, max 4.5 -> (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3
        ([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2], 0.8 / 3.3),
        # every pair split: index 0, expected 2*2/6, max 2 -> -0.5
        ([0, 0, 1, 1], [0, 1, 0, 1], -0.5),
        (["a", "a", "b", "c"], [7, 7, 3, 1], 1.0),  # same partition, other names
        ([1, 1, 1], [2, 2, 2], 1.0),
    ],
)
def test_adjusted_rand_index_hand_computed(
    truth: Sequence[object], pred: Sequence[object], ari: float
) -> None:
    assert math.isclose(adjusted_rand_index(truth, pred), ari, abs_tol=1e-12)
    assert math.isclose(adjusted_rand_index(pred, truth), ari, abs_tol=1e-12)  # symmetric


def test_adjusted_rand_index_length_mismatch() -> None:
    with pytest.raises(ValueError, match="length"):
        adjusted_rand_index([1, 2], [1])


def test_union_find() -> None:
    uf = UnionFind(6)
    assert uf.union(0, 2) and uf.union(2, 4) and not uf.union(4, 0)
    uf.union(3, 5)
    assert uf.labels() == (0, 1, 0, 2, 0, 2)


def _weld_texture(seed: int, size: int = 420) -> np.ndarray:
    """A random 'weld surface': multi-scale noise plus random blobs and strokes."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for sigma, amp in ((12, 60), (4, 40), (1.5, 25)):
        img += (
            cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
            * amp
            * sigma
        )
    img = cv2.normalize(img, None, 30, 220, cv2.NORM_MINMAX)
    for _ in range(60):
        c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        cv2.circle(img, c, int(rng.integers(3, 14)), float(rng.uniform(0, 255)), -1)
        p2 = (c[0] + int(rng.integers(-40, 40)), c[1] + int(rng.integers(-40, 40)))
        cv2.line(img, c, p2, float(rng.uniform(0, 255)), int(rng.integers(1, 4)))
    gray = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _photo(texture: np.ndarray, rng: np.random.Generator, out: int = 300) -> np.ndarray:
    """The texture seen rotated, zoomed and shifted (a new 'shot' of the same weld)."""
    size = texture.shape[0]
    angle, scale = rng.uniform(-180, 180), rng.uniform(0.75, 1.35)
    center = (size / 2 + rng.uniform(-30, 30), size / 2 + rng.uniform(-30, 30))
    m = cv2.getRotationMatrix2D(center, angle, scale)
    m[:, 2] += (out / 2 - center[0], out / 2 - center[1])
    shot = cv2.warpAffine(texture, m, (out, out), borderMode=cv2.BORDER_REFLECT)
    gain = rng.uniform(0.8, 1.2)
    return np.clip(shot.astype(np.float32) * gain + rng.normal(0, 3, shot.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def synthetic_welds() -> tuple[list[np.ndarray], list[int]]:
    rng = np.random.default_rng(7)
    photos, truth = [], []
    for weld in range(3):
        tex = _weld_texture(100 + weld)
        for _ in range(4):
            photos.append(_photo(tex, rng))
            truth.append(weld)
    order = rng.permutation(len(photos))
    return [photos[i] for i in order], [truth[i] for i in order]


def test_synthetic_welds_are_recovered(synthetic_welds: tuple[list[np.ndarray], list[int]]) -> None:
    photos, truth = synthetic_welds
    feats = [orb_features(p) for p in photos]
    result = group_images(feats, min_inliers=20)
    assert result.n_groups == 3
    assert adjusted_rand_index(truth, result.labels) == 1.0
    assert result.pairs_checked == 12 * 11 // 2
    # the bag-of-words prefilter path (forced) finds the same groups
    prefiltered = group_images(feats, min_inliers=20, k=4, exhaustive_below=0)
    assert adjusted_rand_index(truth, prefiltered.labels) == 1.0
    assert prefiltered.pairs_checked < result.pairs_checked


def test_same_weld_matches_far_more_than_different_welds(
    synthetic_welds: tuple[list[np.ndarray], list[int]],
) -> None:
    photos, truth = synthetic_welds
    feats = [orb_features(p) for p in photos]
    same = [
        match_inliers(feats[i], feats[j]) for i in range(12) for j in range(i + 1, 12) if truth[i] == truth[j]
    ]
    diff = [
        match_inliers(feats[i], feats[j]) for i in range(12) for j in range(i + 1, 12) if truth[i] != truth[j]
    ]
    assert min(same) > 2 * max(diff)


def test_candidate_pairs_are_nearest_neighbours() -> None:
    vecs = np.array([[1, 0], [0.99, 0.14], [0, 1], [0.1, 0.99]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    assert candidate_pairs(vecs, k=1) == [(0, 1), (2, 3)]


def test_contact_sheet_shape() -> None:
    imgs = [
        np.full((30, 60, 3), 200, np.uint8),
        np.zeros((50, 20, 3), np.uint8),
        np.ones((10, 10, 3), np.uint8),
    ]
    sheet = contact_sheet(imgs, thumb=40, columns=2, titles=["a", "b", "c"])
    assert sheet.shape == (2 * 42, 2 * 42, 3) and sheet.dtype == np.uint8
