"""int8 quantization (model.int8.onnx, backend onnx-int8) and the backend agreement measure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inspection.model.agreement import agreement
from inspection.model.artifact import ArtifactError
from inspection.model.files import CALIBRATION_KEY, INT8_FILE, read_calibration
from inspection.model.onnx import export_onnx
from inspection.model.quantize import MIN_CALIBRATION_TILES, quantize_artifact
from inspection.model.runtime import Grader
from tests.model.conftest import TINY_H, TINY_W, TinyArtifact


def _tiles(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random tiles (a random net's activations on them are well spread)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, size=(n, 1, 1, 3))
    noise = rng.normal(0, 25, size=(n, TINY_H, TINY_W, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def quantized(tiny_artifact: TinyArtifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    art = tmp_path_factory.mktemp("int8") / "art"
    shutil.copytree(tiny_artifact.path, art)
    export_onnx(art)
    quantize_artifact(art, _tiles(64), sources=["synthetic test tiles"])
    return art


def test_int8_backend_loads_and_tracks_float32(quantized: Path) -> None:
    tiles = _tiles(12, seed=1)
    ref = Grader.load(quantized, backend="onnx").predict(tiles)
    grader = Grader.load(quantized, backend="onnx-int8", threads=1)
    assert grader.backend == "onnx-int8"
    assert grader.info.runtime == "onnx-int8"
    pred = grader.predict(tiles)
    assert pred.porosity_probs.shape == (12, 4)
    np.testing.assert_allclose(pred.porosity_probs.sum(axis=1), 1.0, atol=1e-6)
    # quantization perturbs, it must not scramble: close to float32 on the same tiles
    for name in ("porosity_probs", "spatter_probs"):
        diff = np.abs(getattr(pred, name) - getattr(ref, name))
        assert diff.mean() < 0.05, (name, diff.mean())
    assert not np.array_equal(pred.porosity_probs, ref.porosity_probs), "int8 should not be bit-identical"


def test_int8_file_records_weights_and_calibration(quantized: Path, tiny_artifact: TinyArtifact) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(quantized / INT8_FILE)).metadata_props}
    assert meta["weldinspect.weights_sha256"] == tiny_artifact.info.sha256
    cal = read_calibration(quantized / INT8_FILE)
    assert cal["tiles"] == 64
    assert cal["sources"] == ["synthetic test tiles"]
    assert len(str(cal["tiles_sha256"])) == 64
    assert json.loads(meta[CALIBRATION_KEY]) == cal


def test_stale_int8_file_is_refused(quantized: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(quantized, art)
    weights = art / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="other weights"):
        Grader.load(art, backend="onnx-int8")


def test_missing_int8_file_names_the_command(tiny_artifact: TinyArtifact) -> None:
    with pytest.raises(ArtifactError, match="weldinspect model quantize"):
        Grader.load(tiny_artifact.path, backend="onnx-int8")


def test_quantize_needs_an_up_to_date_onnx_export(tiny_artifact: TinyArtifact, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact.path, art)
    with pytest.raises(ArtifactError, match="export-onnx"):
        quantize_artifact(art, _tiles(32))
    assert not (art / INT8_FILE).exists()


@pytest.mark.parametrize(
    ("tiles", "match"),
    [
        (np.zeros((MIN_CALIBRATION_TILES - 1, TINY_H, TINY_W, 3), np.uint8), "at least"),
        (np.zeros((32, TINY_H + 1, TINY_W, 3), np.uint8), "shape"),
        (np.zeros((32, TINY_H, TINY_W, 3), np.float32), "uint8"),
    ],
)
def test_bad_calibration_tiles_are_refused(quantized: Path, tiles: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        quantize_artifact(quantized, tiles, out_path=quantized / "unused.onnx")
    assert not (quantized / "unused.onnx").exists()


def test_agreement_counts_grades_reviews_and_probability_differences() -> None:
    a = [
        ([0, 1], [[1.0, 0, 0, 0], [0, 1.0, 0, 0]], False),
        ([2, 1], [[0, 0, 1.0, 0], [0, 1.0, 0, 0]], True),
    ]
    b = [
        ([0, 2], [[0.9, 0.1, 0, 0], [0, 0.4, 0.6, 0]], False),
        ([2, 1], [[0, 0, 1.0, 0], [0, 1.0, 0, 0]], False),
    ]
    got = agreement(a, b)
    assert got.images == 2
    assert got.grade_agreement == {"porosity": 1.0, "spatter": 0.5}
    assert got.review_agreement == 0.5
    assert got.max_prob_diff["porosity"] == pytest.approx(0.1)
    assert got.max_prob_diff["spatter"] == pytest.approx(0.6)
    assert got.mean_prob_diff["porosity"] == pytest.approx((0.05 + 0.0) / 2)
    assert got.to_dict()["grade_agreement"]["spatter"] == 0.5


def test_agreement_needs_matching_non_empty_sides() -> None:
    row = ([0, 0], [[1.0, 0, 0, 0], [1.0, 0, 0, 0]], False)
    with pytest.raises(ValueError, match="same, non-zero"):
        agreement([row], [])
    with pytest.raises(ValueError, match="same, non-zero"):
        agreement([], [])
