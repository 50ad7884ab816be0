"""Weld grouping: find photos of the same physical weld (other angles, rotations, distances).

Perceptual hashes miss these (a rotated close-up hashes nothing like the full view), so the
grouping verifies geometry: ORB keypoints (rotation invariant, 8-level scale pyramid), brute-force
Hamming matching with Lowe's ratio test, and a RANSAC homography whose inlier count says whether
two photos show the same surface. Pairs with at least ``min_inliers`` inliers are joined with a
union-find, so a close-up joins its weld through any view it shares.

Speed (all-pairs would be ~190k geometric checks for 613 photos): images are downscaled to
``max_side`` (400 px) and capped at ``n_features`` (500) keypoints; descriptors are computed once.
A bag-of-visual-words prefilter (k-means vocabulary over the binary descriptors, tf-idf cosine
similarity) proposes each photo's ``k`` most similar photos, and only those pairs are verified.
Small sets (<= ``exhaustive_below`` photos) are verified exhaustively.

Also here: :func:`adjusted_rand_index` (numpy, no sklearn) to score a grouping against known
groups, and :func:`contact_sheet` to eyeball a group.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from inspection.types import Image, check_image

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Features:
    """ORB features of one photo: ``keypoints`` (N, 2) float32 (x, y) in the downscaled image,
    ``descriptors`` (N, 32) uint8; ``scale`` = downscaled size / original size."""

    keypoints: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.uint8]
    scale: float

    def __post_init__(self) -> None:
        if self.keypoints.ndim != 2 or self.keypoints.shape[1] != 2:
            msg = f"Features.keypoints must be (N, 2), got {self.keypoints.shape}"
            raise ValueError(msg)
        if self.descriptors.shape != (self.keypoints.shape[0], 32):
            n = self.keypoints.shape[0]
            msg = f"Features.descriptors must be (N, 32) for N={n}, got {self.descriptors.shape}"
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


@dataclass(frozen=True)
class GroupingResult:
    """``labels[i]``: group id of photo i (0..n_groups-1, numbered by first appearance);
    ``edges``: verified pairs ``(i, j, inliers)`` with inliers >= the threshold;
    ``pairs_checked``: number of geometric verifications run."""

    labels: tuple[int, ...]
    edges: tuple[tuple[int, int, int], ...]
    pairs_checked: int

    @property
    def n_groups(self) -> int:
        return len(set(self.labels))

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i, g in enumerate(self.labels):
            out.setdefault(g, []).append(i)
        return out


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True

    def labels(self) -> tuple[int, ...]:
        """Component id per element, numbered 0.. by first appearance."""
        ids: dict[int, int] = {}
        return tuple(ids.setdefault(self.find(i), len(ids)) for i in range(len(self.parent)))


def to_gray_small(image: Image, max_side: int = 400) -> tuple[npt.NDArray[np.uint8], float]:
    """Grayscale copy with the long side at most ``max_side`` px; returns (gray, scale)."""
    img = check_image(image)
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(gray, dtype=np.uint8), scale


def orb_features(image: Image, *, max_side: int = 400, n_features: int = 500) -> Features:
    """ORB keypoints and descriptors of ``image`` (RGB uint8) downscaled to ``max_side``."""
    small, scale = to_gray_small(image, max_side)
    gray = cv2.equalizeHist(small)  # exposure differs between shots of one weld
    orb = cv2.ORB.create(nfeatures=n_features, scaleFactor=1.2, nlevels=8, edgeThreshold=15, patchSize=31)
    kps, desc = orb.detectAndCompute(gray, None)
    if desc is None or not kps:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), scale)
    pts = np.array([k.pt for k in kps], dtype=np.float32)
    return Features(pts, np.ascontiguousarray(desc, dtype=np.uint8), scale)


_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=False)


def match_inliers(a: Features, b: Features, *, ratio: float = 0.8, ransac_px: float = 4.0) -> int:
    """Number of RANSAC homography inliers among ratio-test matches from ``a`` to ``b`` (0 if < 8).

    A degenerate homography (a near-singular or mirror-flipping linear part) counts as 0.
    """
    if len(a) < 8 or len(b) < 8:
        return 0
    knn = _MATCHER.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    if len(good) < 8:
        return 0
    src = a.keypoints[[m.queryIdx for m in good]]
    dst = b.keypoints[[m.trainIdx for m in good]]
    hom, mask = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px, maxIters=1000, confidence=0.99)
    if hom is None or mask is None:
        return 0
    det = float(np.linalg.det(hom[:2, :2]))
    if not (1.0 / 30.0 < det < 30.0):  # photos differ by at most ~5x zoom; det < 0 = mirror
        return 0
    # count each keypoint of b once (several a-points matching one b-point are not evidence)
    inl = mask.ravel().astype(bool)
    return len({m.trainIdx for m, ok in zip(good, inl, strict=True) if ok})


def bow_vectors(
    features: Sequence[Features], *, n_words: int = 256, seed: int = 0
) -> npt.NDArray[np.float32]:
    """Bag-of-visual-words tf-idf vectors (n_images, n_words), L2-normalised.

    The vocabulary is a k-means (on unpacked bits) of up to 60k descriptors sampled from all
    images, binarised back to 32-byte words; each descriptor votes for its nearest word in
    Hamming distance.
    """
    descs = [f.descriptors for f in features if len(f)]
    out = np.zeros((len(features), n_words), np.float32)
    if not descs:
        return out
    rng = np.random.default_rng(seed)
    pool = np.concatenate(descs)
    if len(pool) > 60_000:
        pool = pool[rng.choice(len(pool), 60_000, replace=False)]
    k = min(n_words, max(8, len(pool) // 200))  # ~200 descriptors per word at least
    bits = np.unpackbits(pool, axis=1).astype(np.float32)
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 15, 0.5)
    no_labels: Any = None
    _, _, centers = cv2.kmeans(bits, k, no_labels, criteria, 1, cv2.KMEANS_PP_CENTERS)
    words = np.packbits((centers > 0.5).astype(np.uint8), axis=1)
    for i, f in enumerate(features):
        if not len(f):
            continue
        matches = _MATCHER.match(f.descriptors, words)
        idx = np.fromiter((m.trainIdx for m in matches), dtype=np.int64, count=len(matches))
        out[i, :k] = np.bincount(idx, minlength=k)[:k]
    df = (out > 0).sum(axis=0)
    idf = np.log((len(features) + 1.0) / (df + 1.0)).astype(np.float32)
    out = out / np.maximum(out.sum(axis=1, keepdims=True), 1.0) * idf
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return out


def candidate_pairs(vectors: npt.NDArray[np.float32], *, k: int = 10) -> list[tuple[int, int]]:
    """Each row's ``k`` most cosine-similar other rows, as unique sorted pairs (i < j)."""
    n = vectors.shape[0]
    if n < 2:
        return []
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, n - 1)
    nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    pairs = {(min(i, int(j)), max(i, int(j))) for i in range(n) for j in nearest[i]}
    return sorted(pairs)


def group_images(
    features: Sequence[Features],
    *,
    min_inliers: int = 20,
    k: int = 12,
    exhaustive_below: int = 60,
    ratio: float = 0.8,
    progress: Callable[[int, int], None] | None = None,
) -> GroupingResult:
    """Group photos of the same weld: verified pairs (>= ``min_inliers``) joined by union-find.

    Sets of at most ``exhaustive_below`` photos check every pair; larger ones check each photo's
    ``k`` nearest neighbours by bag-of-words similarity (both directions).
    """
    n = len(features)
    if n <= exhaustive_below:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        pairs = candidate_pairs(bow_vectors(features), k=k)
    uf = UnionFind(n)
    edges = []
    for done, (i, j) in enumerate(pairs, start=1):
        inl = max(match_inliers(features[i], features[j], ratio=ratio), 0)
        if inl >= min_inliers:
            edges.append((i, j, inl))
            uf.union(i, j)
        if progress is not None and (done % 500 == 0 or done == len(pairs)):
            progress(done, len(pairs))
    return GroupingResult(labels=uf.labels(), edges=tuple(edges), pairs_checked=len(pairs))


def adjusted_rand_index(labels_true: Sequence[object], labels_pred: Sequence[object]) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same items.

    1.0 = identical partitions (up to renaming), ~0 = chance agreement. Two trivial partitions
    that agree (e.g. all items in one cluster in both) score 1.0.
    """
    if len(labels_true) != len(labels_pred):
        msg = f"labelings differ in length: {len(labels_true)} vs {len(labels_pred)}"
        raise ValueError(msg)
    n = len(labels_true)
    if n < 2:
        return 1.0
    _, a = np.unique(np.asarray([str(x) for x in labels_true]), return_inverse=True)
    _, b = np.unique(np.asarray([str(x) for x in labels_pred]), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1), np.int64)
    np.add.at(table, (a, b), 1)

    def comb2(x: npt.NDArray[np.int64]) -> float:
        return float(np.sum(x * (x - 1)) / 2.0)

    index = comb2(table)
    sum_a = comb2(table.sum(axis=1))
    sum_b = comb2(table.sum(axis=0))
    expected = sum_a * sum_b / (n * (n - 1) / 2.0)
    max_index = (sum_a + sum_b) / 2.0
    if math.isclose(max_index, expected):
        return 1.0
    return (index - expected) / (max_index - expected)


def contact_sheet(
    images: Sequence[Image], *, thumb: int = 96, columns: int = 8, titles: Sequence[str] | None = None
) -> Image:
    """A grid of square thumbnails (``thumb`` px, letterboxed) with optional small titles."""
    if not images:
        msg = "contact_sheet needs at least one image"
        raise ValueError(msg)
    cols = min(columns, len(images))
    rows = math.ceil(len(images) / cols)
    sheet = np.full((rows * (thumb + 2), cols * (thumb + 2), 3), 24, np.uint8)
    for n, image in enumerate(images):
        img = check_image(image, f"images[{n}]")
        h, w = img.shape[:2]
        s = thumb / max(h, w)
        th, tw = max(1, round(h * s)), max(1, round(w * s))
        small = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
        r, c = divmod(n, cols)
        y, x = r * (thumb + 2) + 1 + (thumb - th) // 2, c * (thumb + 2) + 1 + (thumb - tw) // 2
        sheet[y : y + th, x : x + tw] = small
        if titles is not None and n < len(titles):
            cv2.putText(
                sheet,
                titles[n][:14],
                (c * (thumb + 2) + 3, r * (thumb + 2) + thumb - 4),
                cv2.FONT_HERSHEY_PLAIN,
                0.8,
                (255, 255, 0),
                1,
                cv2.LINE_AA,
            )
    return sheet
