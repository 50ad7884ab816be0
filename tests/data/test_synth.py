"""Synthetic welds: determinism, exact labels, boxes on the image, grades, dataset files, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.cli import app
from inspection.config import GradingConfig
from inspection.data.synth import (
    SynthWeld,
    count_range_for_grade,
    draw_counts,
    generate_weld,
    grade_from_count,
    write_dataset,
)
from inspection.image.ingest import read_image
from inspection.types import Box, check_image

SIZE = 128  # small images keep the tests fast


def _weld(seed: int, n_pores: int = 3, n_spatter: int = 7, angle_deg: float | None = None) -> SynthWeld:
    return generate_weld(
        np.random.default_rng(seed),
        width=SIZE,
        height=SIZE,
        n_pores=n_pores,
        n_spatter=n_spatter,
        angle_deg=angle_deg,
    )


def test_same_seed_gives_identical_output() -> None:
    a, b = _weld(7), _weld(7)
    assert np.array_equal(a.image, b.image)
    assert a.boxes == b.boxes and a.seam == b.seam


def test_different_seeds_differ() -> None:
    assert not np.array_equal(_weld(1).image, _weld(2).image)


@pytest.mark.parametrize(
    ("n_pores", "n_spatter", "width", "height"),
    [(0, 0, SIZE, SIZE), (1, 0, SIZE, SIZE), (0, 5, SIZE, SIZE), (3, 21, 160, 96), (8, 45, 96, 160)],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_labels_and_boxes_inside_image(
    n_pores: int, n_spatter: int, width: int, height: int, seed: int
) -> None:
    weld = generate_weld(
        np.random.default_rng(seed), width=width, height=height, n_pores=n_pores, n_spatter=n_spatter
    )
    check_image(weld.image)
    assert weld.image.shape == (height, width, 3)
    assert weld.count("porosity") == n_pores
    assert weld.count("spatter") == n_spatter
    assert len(weld.boxes) == n_pores + n_spatter
    for box in weld.boxes:
        assert box.label in ("porosity", "spatter")
        assert 0 <= box.x0 < box.x1 <= width and 0 <= box.y0 < box.y1 <= height


def test_pores_lie_on_the_bead_and_are_darker_than_it() -> None:
    weld = generate_weld(
        np.random.default_rng(3), width=256, height=256, n_pores=4, n_spatter=0, angle_deg=20.0
    )
    seam = weld.seam
    a = np.radians(seam.angle_deg)
    across = np.array([-np.sin(a), np.cos(a)])
    gray = weld.image.mean(axis=2)
    for box in weld.boxes:
        cx, cy = box.center
        # distance of the pore centre from the bead centre line, across the seam
        dist = abs(float(np.dot(np.array([cx, cy]) - np.array(seam.center), across)))
        assert dist <= seam.width / 2.0
        core = gray[int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2].mean()
        assert core < np.median(gray)


def test_angle_is_respected_and_normalised() -> None:
    assert _weld(0, angle_deg=30.0).seam.angle_deg == pytest.approx(30.0)
    assert _weld(0, angle_deg=120.0).seam.angle_deg == pytest.approx(-60.0)


def test_scale_sets_droplet_sizes() -> None:
    weld = generate_weld(np.random.default_rng(5), width=400, height=400, n_pores=0, n_spatter=40)
    diam_mm = np.array([b.width for b in weld.boxes]) * weld.mm_per_px
    assert weld.mm_per_px == pytest.approx(0.1)  # 40 mm field of view / 400 px
    assert np.median(diam_mm) > 0.2 and diam_mm.max() <= 1.5 + 2 * weld.mm_per_px


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 8}, "width and height"),
        ({"n_pores": -1}, "n_pores"),
        ({"mm_per_px": 0.0}, "mm_per_px"),
        ({"jpeg_quality": 101}, "jpeg_quality"),
    ],
)
def test_invalid_arguments_are_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"width": SIZE, "height": SIZE, "n_pores": 1, "n_spatter": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_weld(np.random.default_rng(0), **args)  # type: ignore[arg-type]


def test_synthweld_validates_boxes() -> None:
    image = np.zeros((10, 10, 3), np.uint8)
    seam = _weld(0).seam
    with pytest.raises(ValueError, match="outside"):
        SynthWeld(image, (Box(0, 0, 11, 5, "spatter"),), seam, 0.05)
    with pytest.raises(ValueError, match="label"):
        SynthWeld(image, (Box(0, 0, 5, 5, "crack"),), seam, 0.05)


@pytest.mark.parametrize(("count", "grade"), [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (40, 3)])
def test_porosity_grade_from_count(count: int, grade: int) -> None:
    assert grade_from_count(count, GradingConfig().porosity_thresholds) == grade


@pytest.mark.parametrize(("count", "grade"), [(0, 0), (1, 1), (5, 1), (6, 2), (20, 2), (21, 3)])
def test_spatter_grade_from_count(count: int, grade: int) -> None:
    assert grade_from_count(count, GradingConfig().spatter_thresholds) == grade


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_drawn_counts_reach_the_requested_grades(grade: int) -> None:
    g = GradingConfig()
    rng = np.random.default_rng(grade)
    for _ in range(20):
        n_p, n_s = draw_counts(rng, grade, 3 - grade, g)
        assert grade_from_count(n_p, g.porosity_thresholds) == grade
        assert grade_from_count(n_s, g.spatter_thresholds) == 3 - grade
    lo, hi = count_range_for_grade(grade, g.spatter_thresholds, top_extra=10)
    assert grade_from_count(lo, g.spatter_thresholds) == grade == grade_from_count(hi, g.spatter_thresholds)


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_write_dataset_annotations_match_images(tmp_path: Path) -> None:
    ann = write_dataset(tmp_path / "ds", 8, seed=3, width=96, height=80)
    records = _read_jsonl(ann)
    assert len(records) == 8
    g = GradingConfig()
    grades = set()
    for i, rec in enumerate(records):
        image = read_image(ann.parent / rec["image"])
        assert image.shape == (80, 96, 3) and (rec["width"], rec["height"]) == (96, 80)
        assert rec["group"] == f"synth{i:04d}"
        assert rec["source"] == f"synth:seed=3:index={i}"
        n_p = sum(o["label"] == "porosity" for o in rec["objects"])
        n_s = sum(o["label"] == "spatter" for o in rec["objects"])
        assert n_p + n_s == len(rec["objects"])
        assert rec["grades"] == {
            "porosity": grade_from_count(n_p, g.porosity_thresholds),
            "spatter": grade_from_count(n_s, g.spatter_thresholds),
        }
        for o in rec["objects"]:
            x0, y0, x1, y1 = o["box"]
            assert all(isinstance(v, int) for v in o["box"])
            assert 0 <= x0 <= x1 <= 95 and 0 <= y0 <= y1 <= 79
        assert rec["mm_per_px"] > 0
        grades.add((rec["grades"]["porosity"], rec["grades"]["spatter"]))
    assert {p for p, _ in grades} == {0, 1, 2, 3}
    assert {s for _, s in grades} == {0, 1, 2, 3}


def test_write_dataset_is_deterministic_and_independent_of_n(tmp_path: Path) -> None:
    a = _read_jsonl(write_dataset(tmp_path / "a", 3, seed=9, width=64, height=64))
    b = _read_jsonl(write_dataset(tmp_path / "b", 2, seed=9, width=64, height=64))
    assert a[:2] == b
    for rec in b:
        assert (tmp_path / "a" / rec["image"]).read_bytes() == (tmp_path / "b" / rec["image"]).read_bytes()


def test_cli_synth_writes_dataset(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["synth", str(out), "--n", "2", "--seed", "1", "--width", "64", "--height", "48"]
    )
    assert result.exit_code == 0, result.output
    records = _read_jsonl(out / "annotations.jsonl")
    assert len(records) == 2 and all((out / r["image"]).is_file() for r in records)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--n", "0"], "--n"), (["--width", "4"], "--width"), (["--quality", "0"], "--quality")],
)
def test_cli_synth_bad_usage_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    result = CliRunner().invoke(app, ["synth", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert needle in result.output
