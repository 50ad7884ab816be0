"""`weldinspect model info` and `weldinspect model export-onnx`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inspection.cli import app
from tests.model.conftest import TinyArtifact

runner = CliRunner()


def test_model_info_text_and_json(tiny_artifact: TinyArtifact) -> None:
    result = runner.invoke(app, ["model", "info", str(tiny_artifact.path)])
    assert result.exit_code == 0, result.output
    assert tiny_artifact.info.sha256 in result.output
    assert "weld-grader-test 0.0.1" in result.output
    assert "model.onnx: missing" in result.output
    result = runner.invoke(app, ["model", "info", str(tiny_artifact.path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["sha256"] == tiny_artifact.info.sha256
    assert doc["config"]["arch"] == "tiny"
    assert doc["ood_count"] == 32


@pytest.mark.parametrize("command", ["info", "export-onnx"])
def test_bad_directory_exits_2_naming_it(command: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["model", command, str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "nowhere" in result.output


def test_export_onnx_writes_and_checks(tiny_artifact: TinyArtifact, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    result = runner.invoke(app, ["model", "export-onnx", str(tiny_artifact.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "max |probability difference|" in result.output
    diff = float(result.output.rsplit("=", 1)[1])
    assert diff <= 1e-4


def test_quantize_calibrates_on_photos_and_reports_agreement(
    tiny_artifact: TinyArtifact, tmp_path: Path
) -> None:
    import shutil

    import cv2
    import numpy as np

    from inspection.data.synth import generate_weld

    art = tmp_path / "art"
    shutil.copytree(tiny_artifact.path, art)
    photos = tmp_path / "photos" / "sub"
    photos.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        img = generate_weld(rng, width=320, height=240, n_pores=2, n_spatter=4).image
        cv2.imwrite(str(photos / f"w{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    # quantizing needs model.onnx first
    result = runner.invoke(app, ["model", "quantize", str(art), "--calibration", str(photos.parent)])
    assert result.exit_code == 2 and "export-onnx" in result.output
    assert runner.invoke(app, ["model", "export-onnx", str(art)]).exit_code == 0
    result = runner.invoke(
        app, ["model", "quantize", str(art), "--calibration", str(photos.parent), "--check", str(photos)]
    )
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.output  # named and skipped
    assert (art / "model.int8.onnx").is_file()
    report = json.loads(result.output[result.output.index("{") :])
    assert report["images"] == 12
    assert 0.0 <= report["grade_agreement"]["porosity"] <= 1.0
    info = runner.invoke(app, ["model", "info", str(art), "--json"])
    assert json.loads(info.output)["onnx_int8"] == "up to date"


def test_quantize_without_photos_exits_2(tiny_artifact: TinyArtifact, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["model", "quantize", str(tiny_artifact.path), "--calibration", str(empty)])
    assert result.exit_code == 2
    assert "no gradable photos" in result.output
