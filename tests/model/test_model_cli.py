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
