"""How close two backends of one artifact are: on random tiles (export check) and on real photos.

Orchestration on top of the runtime and the ONNX export (it imports both; neither imports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inspection.model.artifact import read_artifact_meta
from inspection.model.onnx import OnnxRunner
from inspection.model.runtime import Grader


@dataclass(frozen=True)
class BackendAgreement:
    """How a backend's outputs compare with a reference backend's on the same tiles/images.

    ``grade_agreement``: share of images whose grade is identical, per head; ``review_agreement``:
    share whose needs-review decision is identical; ``max_prob_diff`` / ``mean_prob_diff``: the
    largest and mean absolute difference of any grade probability (per head).
    """

    images: int
    grade_agreement: dict[str, float]
    review_agreement: float
    max_prob_diff: dict[str, float]
    mean_prob_diff: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {
            "images": self.images,
            "grade_agreement": self.grade_agreement,
            "review_agreement": self.review_agreement,
            "max_prob_diff": self.max_prob_diff,
            "mean_prob_diff": self.mean_prob_diff,
        }


def agreement(
    reference: Sequence[tuple[Sequence[int], Sequence[Sequence[float]], bool]],
    other: Sequence[tuple[Sequence[int], Sequence[Sequence[float]], bool]],
    heads: Sequence[str] = ("porosity", "spatter"),
) -> BackendAgreement:
    """Compare per-image ``(grades per head, probs per head, needs_review)`` of two backends."""
    if len(reference) != len(other) or not reference:
        msg = f"need the same, non-zero number of images on both sides, got {len(reference)} and {len(other)}"
        raise ValueError(msg)
    n = len(reference)
    grades_eq = {h: 0 for h in heads}
    max_d = {h: 0.0 for h in heads}
    sum_d = {h: 0.0 for h in heads}
    review_eq = 0
    for (g_a, p_a, r_a), (g_b, p_b, r_b) in zip(reference, other, strict=True):
        review_eq += int(r_a == r_b)
        for k, h in enumerate(heads):
            grades_eq[h] += int(g_a[k] == g_b[k])
            d = np.abs(np.asarray(p_a[k], float) - np.asarray(p_b[k], float))
            max_d[h] = max(max_d[h], float(d.max()))
            sum_d[h] += float(d.mean())
    return BackendAgreement(
        images=n,
        grade_agreement={h: grades_eq[h] / n for h in heads},
        review_agreement=review_eq / n,
        max_prob_diff=max_d,
        mean_prob_diff={h: sum_d[h] / n for h in heads},
    )


def check_onnx_agreement(artifact_dir: Path, onnx_path: Path, n_tiles: int = 4, seed: int = 0) -> float:
    """Max absolute difference of the grade probabilities, onnxruntime vs torch, on random tiles."""
    config, info, ood = read_artifact_meta(Path(artifact_dir))
    onnx_grader = Grader(config, info, ood, OnnxRunner(Path(onnx_path), info.sha256), "onnx")
    torch_grader = Grader.load(Path(artifact_dir), backend="torch")
    shape = (n_tiles, config.input.strip_height, config.input.tile_length, 3)
    tiles = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    a, b = torch_grader.predict(tiles), onnx_grader.predict(tiles)
    return float(
        max(
            np.abs(a.porosity_probs - b.porosity_probs).max(), np.abs(a.spatter_probs - b.spatter_probs).max()
        )
    )
