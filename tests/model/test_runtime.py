"""Grader runtime (torch and onnxruntime backends) and ONNX export."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from inspection.model.agreement import check_onnx_agreement
from inspection.model.artifact import ArtifactError, ModelConfig, default_model_dir, save_artifact
from inspection.model.files import ONNX_FILE
from inspection.model.net import build_model, normalize_tiles
from inspection.model.onnx import OUTPUT_NAMES, export_onnx
from inspection.model.ordinal import coral_probs
from inspection.model.runtime import Grader, RawPrediction
from tests.model.conftest import TinyArtifact


@pytest.fixture(scope="module")
def exported(tiny_artifact: TinyArtifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(tiny_artifact.path, tmp_path_factory.mktemp("onnx") / ONNX_FILE)


def _check_prediction(pred: RawPrediction, n: int) -> None:
    assert len(pred) == n
    for probs in (pred.porosity_probs, pred.spatter_probs):
        assert probs.shape == (n, 4)
        assert np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert pred.heatmaps.shape == (n, 2, 4, 8)
    assert np.all((pred.heatmaps >= 0) & (pred.heatmaps <= 1))
    assert pred.sizes.shape == (n, 2, 4, 8)
    assert np.all(pred.sizes > 0)
    assert pred.ood_scores.shape == (n,)
    assert np.all(np.isfinite(pred.ood_scores))


def test_torch_predict_shapes_and_ranges(tiny_artifact: TinyArtifact, tiny_tiles: np.ndarray) -> None:
    grader = Grader.load(tiny_artifact.path)
    assert grader.info == dataclasses.replace(tiny_artifact.info, runtime="torch")
    assert grader.config == tiny_artifact.config
    pred = grader.predict(tiny_tiles)
    _check_prediction(pred, 3)
    # batching is the caller's choice: tile by tile gives the same answer
    single = grader.predict(tiny_tiles[1:2])
    np.testing.assert_allclose(single.porosity_probs[0], pred.porosity_probs[1], atol=1e-5)
    _check_prediction(grader.predict(tiny_tiles[:0]), 0)


def test_predict_in_chunks_equals_one_batch(tiny_artifact: TinyArtifact, tiny_tiles: np.ndarray) -> None:
    grader = Grader.load(tiny_artifact.path)
    tiles = np.concatenate([tiny_tiles] * 7)  # 21 tiles
    whole = grader.predict(tiles)
    grader.chunk = 4  # 4 + 4 + ... + 1
    calls: list[int] = []
    run = grader._run
    grader._run = lambda x: (calls.append(len(x)), run(x))[1]  # type: ignore[assignment]
    chunked = grader.predict(tiles)
    assert calls == [4, 4, 4, 4, 4, 1]
    for name in ("porosity_probs", "spatter_probs", "heatmaps", "sizes", "ood_scores"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), atol=1e-5, err_msg=name)


def test_temperature_is_applied(tiny_artifact: TinyArtifact, tiny_tiles: np.ndarray) -> None:
    grader = Grader.load(tiny_artifact.path)
    pred = grader.predict(tiny_tiles)
    model_out = grader._run(normalize_tiles(tiny_tiles, grader.config.mean, grader.config.std))
    np.testing.assert_allclose(pred.porosity_probs, coral_probs(model_out[0], temperature=1.5), atol=1e-9)
    assert not np.allclose(pred.porosity_probs, coral_probs(model_out[0], temperature=1.0), atol=1e-6)


@pytest.mark.parametrize(
    ("tiles", "needle"),
    [
        (np.zeros((2, 32, 64, 3), np.float32), "uint8"),
        (np.zeros((2, 64, 64, 3), np.uint8), r"\(N, 32, 64, 3\)"),
        (np.zeros((32, 64, 3), np.uint8), "shape"),
    ],
)
def test_predict_rejects_bad_tiles(tiny_artifact: TinyArtifact, tiles: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        Grader.load(tiny_artifact.path).predict(tiles)


def test_load_rejects_bad_arguments(tiny_artifact: TinyArtifact) -> None:
    with pytest.raises(ValueError, match="available: torch, onnx"):
        Grader.load(tiny_artifact.path, backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        Grader.load(tiny_artifact.path, threads=0)


def test_onnx_export_has_named_outputs_and_dynamic_batch(exported: Path) -> None:
    import onnx

    proto = onnx.load(str(exported))
    assert tuple(o.name for o in proto.graph.output) == OUTPUT_NAMES
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.opset_import[0].version >= 17


def test_onnx_backend_agrees_with_torch(
    tiny_artifact: TinyArtifact, tiny_tiles: np.ndarray, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact.path, art)
    written = export_onnx(art)
    assert written == art / ONNX_FILE
    torch_pred = Grader.load(art, backend="torch").predict(tiny_tiles)
    onnx_grader = Grader.load(art, backend="onnx", threads=1)
    assert onnx_grader.info == dataclasses.replace(tiny_artifact.info, runtime="onnx")
    onnx_pred = onnx_grader.predict(tiny_tiles)
    _check_prediction(onnx_pred, 3)
    for name in ("porosity_probs", "spatter_probs", "heatmaps", "ood_scores"):
        np.testing.assert_allclose(
            getattr(onnx_pred, name), getattr(torch_pred, name), atol=1e-4, err_msg=name
        )
    np.testing.assert_allclose(onnx_pred.sizes, torch_pred.sizes, rtol=1e-4, atol=1e-3)


def test_onnx_backend_exports_on_the_fly_when_missing(
    tiny_artifact: TinyArtifact, tiny_tiles: np.ndarray
) -> None:
    assert not (tiny_artifact.path / ONNX_FILE).exists()
    pred = Grader.load(tiny_artifact.path, backend="onnx").predict(tiny_tiles)
    _check_prediction(pred, 3)
    assert not (tiny_artifact.path / ONNX_FILE).exists(), "the temporary export must not land in the artifact"


def test_stale_onnx_export_is_refused(tiny_artifact: TinyArtifact, exported: Path, tmp_path: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_artifact.path, art)
    shutil.copy(exported, art / ONNX_FILE)  # fine: same weights
    Grader.load(art, backend="onnx")
    weights = art / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # change one weight byte: new sha256, old ONNX
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="exported from other weights"):
        Grader.load(art, backend="onnx")


def test_shipped_model_torch_and_onnx_agree_on_samples(repo_root: Path) -> None:
    """The shipped model on the bundled samples: both backends within 1e-4 (skips until shipped)."""
    try:
        model_dir = default_model_dir()
    except ArtifactError as exc:
        pytest.skip(f"no shipped model: {exc}")
    from inspection.image.ingest import read_image
    from inspection.image.preprocess import preprocess

    exts = {".jpg", ".jpeg", ".png"}
    folder = repo_root / "data" / "samples" / "images"
    samples = sorted(p for p in folder.glob("*") if p.suffix.lower() in exts)[:8]
    assert len(samples) == 8, f"expected the bundled sample photos in {folder}"

    torch_grader = Grader.load(model_dir, backend="torch")
    cfg = torch_grader.config.preprocess_config()
    tiles = np.stack([t.image for p in samples for t in preprocess(read_image(p), cfg).tiles])
    a = torch_grader.predict(tiles)
    b = Grader.load(model_dir, backend="onnx").predict(tiles)
    np.testing.assert_allclose(b.porosity_probs, a.porosity_probs, atol=1e-4)
    np.testing.assert_allclose(b.spatter_probs, a.spatter_probs, atol=1e-4)


@pytest.mark.parametrize("arch", ["mobilenet_v3_large", "efficientnet_b0"])
def test_onnx_agrees_with_torch_for_torchvision_backbones(
    arch: str, tmp_path: Path, make_tiny_config: Callable[..., ModelConfig], tiny_tiles: np.ndarray
) -> None:
    """Hardswish, squeeze-excitation and SiLU blocks export faithfully (not only the tiny CNN)."""
    torch.manual_seed(1)
    model = build_model(arch, embed_dim=16)
    with torch.no_grad():  # non-trivial batch-norm statistics
        model(torch.randn(4, 3, 32, 64))
    config = make_tiny_config(arch=arch, name="onnx-check")
    save_artifact(tmp_path / arch, model.eval(), config, "", {})
    diff = check_onnx_agreement(tmp_path / arch, export_onnx(tmp_path / arch))
    assert diff < 1e-4
