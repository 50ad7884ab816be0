"""``weldinspect inspect IMAGE [--context ctx.json] [--overlay out.png]`` (tiny random model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.cli import app
from inspection.data.synth import generate_weld

runner = CliRunner()

WIDTH, HEIGHT = 400, 260
CONTEXT = {"process": "laser", "material": "stainless", "thickness_mm": 2.0, "mm_per_px": 0.05,
           "quality_level": "C"}  # fmt: skip
LEVELS = {"B", "C", "D", "below D"}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A synthetic seam photo, a context JSON and some broken inputs."""
    folder = tmp_path_factory.mktemp("inspect-cli")
    weld = generate_weld(np.random.default_rng(21), width=WIDTH, height=HEIGHT, n_pores=3, n_spatter=4)
    seam = folder / "seam.jpg"
    cv2.imwrite(str(seam), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    ctx = folder / "ctx.json"
    ctx.write_text(json.dumps(CONTEXT))
    (folder / "notes.jpg").write_text("a text file with an image extension\n")
    data = seam.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "ctx-broken.json").write_text("{not json")
    (folder / "ctx-list.json").write_text("[1, 2]")
    return {"seam": seam, "ctx": ctx, "folder": folder}


def _inspect(model: Path, *args: str | Path) -> tuple[int, str, str]:
    res = runner.invoke(app, ["inspect", *map(str, args), "--model", str(model)])
    return res.exit_code, res.stdout, res.stderr


def _assert_overlay_fits(drawn: np.ndarray, width: int, height: int) -> None:
    """The overlay is the photo at full size (pixel for pixel, so findings line up) under a dark
    header band with the grades (see :func:`inspection.image.overlay.draw_overlay`)."""
    assert drawn.ndim == 3 and drawn.shape[2] == 3
    band = drawn.shape[0] - height
    assert drawn.shape[1] == width
    assert 0 < band < max(120, height // 4), drawn.shape
    assert tuple(drawn[0, 0]) == (30, 30, 30)  # band background (BGR = RGB here)


def _json(stdout: str) -> dict[str, Any]:
    out = json.loads(stdout)
    assert isinstance(out, dict)
    return out


def test_inspect_with_context_prints_grades_and_standards(
    tiny_model_dir: Path, files: dict[str, Path]
) -> None:
    code, stdout, stderr = _inspect(tiny_model_dir, files["seam"], "--context", files["ctx"])
    assert code == 0, stderr
    out = _json(stdout)
    assert out["schema_version"]
    assert (out["width"], out["height"]) == (WIDTH, HEIGHT)
    for head in ("porosity", "spatter"):
        assert out[head]["grade"] in (0, 1, 2, 3)
        assert len(out[head]["probs"]) == 4
        assert sum(out[head]["probs"]) == pytest.approx(1.0, abs=1e-6)
    std = out["standards"]
    assert std["assessable"] is True, std
    assert std["standard"].startswith("ISO 13919-1")  # laser process
    assert std["target_level"] == "C"
    assert std["level_reached"] in LEVELS
    assert std["missing"] == []
    assert std["verdicts"], std
    for verdict in std["verdicts"]:
        assert verdict["clause"].strip()
        assert verdict["level_reached"] in LEVELS | {"not assessable"}
    assert out["context"]["thickness_mm"] == 2.0 and out["context"]["mm_per_px"] == 0.05
    for finding in out["findings"]:  # the scale is known, so every finding is also in mm
        assert finding["diameter_mm"] == pytest.approx(finding["diameter_px"] * 0.05)
    assert "recommendation" in out
    assert "overlay" not in out


def test_overlay_writes_a_png_of_the_image_size(tiny_model_dir: Path, files: dict[str, Path]) -> None:
    target = files["folder"] / "sub" / "overlay.png"
    code, stdout, stderr = _inspect(
        tiny_model_dir, files["seam"], "--context", files["ctx"], "--overlay", target
    )
    assert code == 0, stderr
    assert _json(stdout)["overlay"] == str(target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = cv2.imread(str(target), cv2.IMREAD_UNCHANGED)
    assert drawn is not None
    _assert_overlay_fits(drawn, WIDTH, HEIGHT)
    original = cv2.imread(str(files["seam"]))
    assert original is not None and not np.array_equal(drawn[-HEIGHT:], original)  # something was drawn


def test_without_context_the_standards_part_says_what_is_missing(
    tiny_model_dir: Path, files: dict[str, Path]
) -> None:
    code, stdout, stderr = _inspect(tiny_model_dir, files["seam"])
    assert code == 0, stderr
    std = _json(stdout)["standards"]
    assert std["assessable"] is False
    assert std["level_reached"] is None and std["verdicts"] == []
    assert {"thickness_mm", "mm_per_px", "process", "material"} <= set(std["missing"])
    assert any("missing" in note and "thickness_mm" in note for note in std["notes"])


@pytest.mark.parametrize(
    ("name", "exit_code", "fragment"),
    [
        ("notes.jpg", 1, "not a recognised image"),
        ("truncated.jpg", 1, "truncated.jpg"),
        ("empty.png", 1, "0 bytes"),
        ("missing.jpg", 2, "does not exist"),
    ],
)
def test_bad_image_is_a_clear_error_naming_the_file(
    tiny_model_dir: Path, files: dict[str, Path], name: str, exit_code: int, fragment: str
) -> None:
    path = files["folder"] / name
    code, stdout, stderr = _inspect(tiny_model_dir, path, "--context", files["ctx"])
    assert code == exit_code, stderr
    assert stdout == ""
    assert stderr.startswith("error:") and len(stderr.strip().splitlines()) == 1, stderr
    assert str(path) in stderr and fragment in stderr


@pytest.mark.parametrize(
    ("name", "fragment"), [("ctx-broken.json", "could not be read"), ("ctx-list.json", "JSON object")]
)
def test_bad_context_file_is_usage_error(
    tiny_model_dir: Path, files: dict[str, Path], name: str, fragment: str
) -> None:
    path = files["folder"] / name
    code, stdout, stderr = _inspect(tiny_model_dir, files["seam"], "--context", path)
    assert code == 2
    assert stdout == ""
    assert str(path) in stderr and fragment in stderr


def test_bad_model_folder_is_usage_error(tmp_path: Path, files: dict[str, Path]) -> None:
    code, stdout, stderr = _inspect(tmp_path, files["seam"])
    assert code == 2
    assert stdout == ""
    assert f"model {tmp_path}" in stderr and "config.json is missing" in stderr


@pytest.mark.realdata
def test_inspect_real_photo_with_context(tiny_model_dir: Path, porosity_data: Path, tmp_path: Path) -> None:
    first = json.loads((porosity_data / "annotations.jsonl").read_text().splitlines()[0])
    photo = porosity_data / first["image"]
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps({**CONTEXT, "thickness_mm": 3.0, "mm_per_px": 0.1}))
    code, stdout, stderr = _inspect(tiny_model_dir, photo, "--context", ctx, "--overlay", tmp_path / "o.png")
    assert code == 0, stderr
    out = _json(stdout)
    assert (out["width"], out["height"]) == (first["width"], first["height"])
    std = out["standards"]
    assert std["assessable"] is True, std
    assert std["level_reached"] in LEVELS
    assert std["verdicts"] and all(v["clause"].strip() for v in std["verdicts"])
    for finding in out["findings"]:  # the tiny random model may find nothing
        assert finding["diameter_mm"] == pytest.approx(finding["diameter_px"] * 0.1)
        assert finding["x_mm"] is not None and finding["y_mm"] is not None
    drawn = cv2.imread(str(tmp_path / "o.png"))
    assert drawn is not None
    _assert_overlay_fits(drawn, first["width"], first["height"])
