"""Importers: VOC / YOLO / COCO round trips, folder-per-class, label maps, the YOLO acceptance case."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from inspection.cli import app
from inspection.data.grades import reference_grades
from inspection.data.importers import (
    export_coco,
    export_voc,
    export_yolo,
    import_coco,
    import_folders,
    import_voc,
    import_yolo,
    parse_label_map,
    roboflow_group,
)
from inspection.data.manifest import ManifestObject, ManifestRecord, read_manifest


def _jpeg(path: Path, w: int, h: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    PILImage.fromarray(arr).save(path, quality=85)


@pytest.fixture
def dataset(tmp_path: Path) -> list[ManifestRecord]:
    """Three small images with boxes of a few labels (original names kept in raw_label)."""
    root = tmp_path / "orig"
    specs = [
        (
            "a.jpg",
            64,
            48,
            [("pore", (2, 3, 10, 12)), ("pore", (20.5, 4, 30, 16.25)), ("deposit", (40, 30, 63, 47))],
        ),
        ("b.jpg", 50, 40, [("crack", (0, 0, 49, 39))]),
        ("c.jpg", 32, 32, []),
    ]
    records = []
    for i, (name, w, h, objs) in enumerate(specs):
        _jpeg(root / name, w, h, i)
        mo = tuple(ManifestObject("other", box, raw_label=lab) for lab, box in objs)
        records.append(ManifestRecord(name, w, h, objects=mo, root=root))
    return records


def _by_name(records: list[ManifestRecord]) -> dict[str, list[tuple[str, tuple[float, ...]]]]:
    return {Path(r.image).name: [(o.raw_label or o.label, o.box) for o in r.objects] for r in records}


def _assert_same_boxes(records: list[ManifestRecord], expected: list[ManifestRecord], tol: float) -> None:
    got, want = _by_name(records), _by_name(expected)
    assert set(got) == set(want)
    for name, objs in want.items():
        assert len(got[name]) == len(objs), name
        for (gl, gb), (wl, wb) in zip(sorted(got[name]), sorted(objs), strict=True):
            assert gl == wl
            assert np.allclose(gb, wb, atol=tol), (name, gb, wb)


MAP = {"pore": "porosity", "crack": "crack"}


@pytest.mark.parametrize(
    ("export", "importer", "tol", "sub"),
    [
        (export_voc, import_voc, 1e-9, ""),
        (export_yolo, import_yolo, 1e-5, ""),
        (export_coco, import_coco, 1e-9, ""),
        (export_coco, import_coco, 1e-9, "annotations.json"),
    ],
)
def test_export_then_import_gives_same_boxes_and_labels(
    tmp_path: Path, dataset: list[ManifestRecord], export: object, importer: object, tol: float, sub: str
) -> None:
    out = tmp_path / "exported"
    export(dataset, out)  # type: ignore[operator]
    records, report = importer(out / sub if sub else out, label_map=MAP)  # type: ignore[operator]
    _assert_same_boxes(records, dataset, tol)
    labels = {Path(r.image).name: [o.label for o in r.objects] for r in records}
    assert sorted(labels["a.jpg"]) == ["other", "porosity", "porosity"]
    assert labels["b.jpg"] == ["crack"]
    assert [p.code for p in report.problems] == ["unmapped_label"]
    assert "'deposit' (1 object(s))" in report.problems[0].message


def test_yolo_reads_data_yaml_and_polygons(tmp_path: Path) -> None:
    _jpeg(tmp_path / "images" / "x.rf.abc.jpg", 100, 50, 1)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.rf.abc.txt").write_text(
        "1 0.5 0.5 0.2 0.4\n0 0.1 0.2 0.3 0.2 0.2 0.6\nbad line\n7 .5 .5 .1 .1\n"
    )
    (tmp_path / "data.yaml").write_text("names: {0: spatter, 1: pore}\n")
    records, report = import_yolo(tmp_path, label_map={"pore": "porosity"})
    (rec,) = records
    assert rec.group == "x"
    assert [o.label for o in rec.objects] == ["porosity", "spatter", "other"]
    assert np.allclose(rec.objects[0].box, (40, 15, 60, 35))
    assert np.allclose(rec.objects[1].box, (10, 10, 30, 30))
    assert {p.code for p in report.problems} == {"bad_line", "unknown_class", "unmapped_label"}


def test_voc_reports_missing_images_and_clips(tmp_path: Path) -> None:
    (tmp_path / "Annotations").mkdir()
    _jpeg(tmp_path / "JPEGImages" / "ok.jpg", 40, 30, 0)
    voc = """<annotation><filename>{f}</filename><size><width>40</width><height>30</height></size>
      <object><name>pore</name><bndbox><xmin>-3</xmin><ymin>2</ymin><xmax>12</xmax><ymax>35</ymax></bndbox></object>
    </annotation>"""
    (tmp_path / "Annotations" / "ok.xml").write_text(voc.format(f="ok.jpg"))
    (tmp_path / "Annotations" / "gone.xml").write_text(voc.format(f="gone.jpg"))
    (tmp_path / "Annotations" / "broken.xml").write_text("<annotation><filename>")
    records, report = import_voc(tmp_path, label_map={"pore": "porosity"})
    assert [r.image for r in records] == ["JPEGImages/ok.jpg"]
    assert records[0].objects[0].box == (0.0, 2.0, 12.0, 30.0)
    assert {p.code for p in report.problems} == {"missing_image", "bad_record", "box_clipped"}


def test_folders_give_image_level_labels(tmp_path: Path) -> None:
    _jpeg(tmp_path / "porous" / "1.jpg", 20, 20, 1)
    _jpeg(tmp_path / "porous" / "2.png", 20, 20, 2)
    _jpeg(tmp_path / "fine" / "3.jpg", 20, 20, 3)
    (tmp_path / "fine" / "4.jpg").write_bytes((tmp_path / "fine" / "3.jpg").read_bytes())  # duplicate
    records, report = import_folders(tmp_path, label_map={"porous": "porosity"})
    assert {r.image: r.labels for r in records} == {
        "fine/3.jpg": ("other",),
        "porous/1.jpg": ("porosity",),
        "porous/2.png": ("porosity",),
    }
    assert all(r.objects == () for r in records)
    assert sorted(p.code for p in report.problems) == ["duplicate_image", "unmapped_label"]


@pytest.mark.parametrize(
    ("items", "ok"),
    [
        (["pore=porosity", " deposit = other "], True),
        (["pore"], False),
        (["pore=pores"], False),
        (["=other"], False),
    ],
)
def test_parse_label_map(items: list[str], ok: bool) -> None:
    if ok:
        assert parse_label_map(items) == {"pore": "porosity", "deposit": "other"}
    else:
        with pytest.raises(ValueError, match=r"pore|SOURCE=TARGET"):
            parse_label_map(items)


@pytest.mark.parametrize(
    ("name", "group"), [("abc_jpg.rf.0123.jpg", "abc_jpg"), ("sub/x.rf.y.png", "x"), ("plain.jpg", None)]
)
def test_roboflow_group(name: str, group: str | None) -> None:
    assert roboflow_group(name) == group


# ---------------------------------------------------------------- YOLO acceptance case via the CLI

CLASSES = ["pore", "deposit", "discontinuity", "stain"]


def _yolo_folder(
    root: Path, rng: np.random.Generator, n_images: int = 8
) -> dict[str, list[tuple[int, list[float]]]]:
    """YOLO folder with classes.txt; returns image name -> [(class id, pixel box)]."""
    (root / "labels").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    truth: dict[str, list[tuple[int, list[float]]]] = {}
    for i in range(n_images):
        w, h = int(rng.integers(40, 90)), int(rng.integers(30, 70))
        name = f"img{i:02d}.jpg"
        _jpeg(root / "images" / name, w, h, 100 + i)
        n_pores = [0, 1, 2, 3, 4, 6, 1, 0][i % 8]
        objs = [(0, 0)] * n_pores + [(int(rng.integers(1, 4)), 0) for _ in range(int(rng.integers(0, 3)))]
        lines, boxes = [], []
        for cls, _ in objs:
            bw, bh = rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
            cx, cy = rng.uniform(bw / 2, 1 - bw / 2), rng.uniform(bh / 2, 1 - bh / 2)
            lines.append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            boxes.append((cls, [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]))
        (root / "labels" / f"img{i:02d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
        truth[name] = boxes
    return truth


def test_yolo_acceptance_through_the_cli(tmp_path: Path) -> None:
    src, dst = tmp_path / "yolo", tmp_path / "imported"
    truth = _yolo_folder(src, np.random.default_rng(42))
    result = CliRunner().invoke(
        app, ["data", "import", "--format", "yolo", str(src), "--out", str(dst), "--map", "pore=porosity"]
    )
    assert result.exit_code == 0, result.output
    for name in ("deposit", "discontinuity", "stain"):
        assert f"'{name}'" in result.output, f"unmapped label {name} not reported"
    records, report = read_manifest(dst / "annotations.jsonl")
    assert report.ok, report.summary()
    assert len(records) == len(truth)
    for rec in records:
        assert rec.path().is_file() and rec.path().parent == dst / "images"
        want = truth[Path(rec.image).name]
        pores_want = sorted(tuple(b) for c, b in want if c == 0)
        pores_got = sorted(o.box for o in rec.objects if o.label == "porosity")
        assert np.allclose(pores_got, pores_want, atol=1e-3) if pores_want else not pores_got
        others = sorted((o.raw_label, o.label) for o in rec.objects if o.label != "porosity")
        assert others == sorted((CLASSES[c], "other") for c, _ in want if c != 0)
        n = len(pores_want)
        expected_grade = 0 if n == 0 else 1 if n == 1 else 2 if n < 4 else 3
        assert rec.grades["porosity"] == expected_grade
        assert reference_grades(rec, prefer_explicit=False)["porosity"] == expected_grade


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "yolo", "{src}", "--out", "{dst}", "--map", "pore=porous"], "not a known label"),
        (["--format", "pascal", "{src}", "--out", "{dst}"], "unknown --format"),
        (["--format", "yolo", "{missing}", "--out", "{dst}"], "does not exist"),
        (["--format", "coco", "{src}", "--out", "{dst}"], "COCO"),
    ],
)
def test_import_cli_bad_usage_exits_2(tmp_path: Path, args: list[str], needle: str) -> None:
    src = tmp_path / "yolo"
    _yolo_folder(src, np.random.default_rng(0), n_images=1)
    paths = {"src": str(src), "dst": str(tmp_path / "out"), "missing": str(tmp_path / "nope")}
    result = CliRunner().invoke(app, ["data", "import", *[a.format(**paths) for a in args]])
    assert result.exit_code == 2
    assert needle in result.output


def test_import_refuses_to_overwrite(tmp_path: Path) -> None:
    src, dst = tmp_path / "yolo", tmp_path / "out"
    _yolo_folder(src, np.random.default_rng(0), n_images=2)
    argv = ["data", "import", "--format", "yolo", str(src), "--out", str(dst)]
    assert CliRunner().invoke(app, argv).exit_code == 0
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 2 and "--force" in again.output
    assert CliRunner().invoke(app, [*argv, "--force"]).exit_code == 0
    assert len(json.loads((dst / "annotations.jsonl").read_text().splitlines()[0])["objects"]) >= 0
