"""Real data (../shared/data): skipped cleanly when absent."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from inspection.data.grades import reference_grades
from inspection.data.importers import import_yolo
from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
from inspection.data.spatter import composite_spatter
from inspection.data.splits import group_split, leave_one_group_out
from inspection.data.stats import compute_stats

pytestmark = pytest.mark.realdata


def test_real_manifest_imports_with_data_card_grade_counts(porosity_data: Path) -> None:
    records, report = read_manifest(porosity_data / "annotations.jsonl", label_map=REAL_POROSITY_LABEL_MAP)
    assert len(records) == 613
    assert report.ok, report.summary()
    grades = Counter(reference_grades(r, defects=("porosity",))["porosity"] for r in records)
    assert dict(grades) == {0: 264, 1: 141, 2: 193, 3: 15}
    stats = compute_stats(records)
    assert stats.graded_defects == ("porosity",)  # the data has no spatter labels
    assert stats.grades["porosity"] == [264, 141, 193, 15]
    assert stats.objects_per_raw_label["Surface_pores"] == stats.objects_per_label["porosity"]


def test_real_leave_one_weld_out(porosity_data: Path) -> None:
    records, _ = read_manifest(porosity_data, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    folds = leave_one_group_out(records)
    assert [f.held_out for f in folds] == ["weld00", "weld01", "weld04"]
    assert [len(f.val) for f in folds] == [231, 198, 174]
    one_offs = {i for i, r in enumerate(records) if r.group not in {"weld00", "weld01", "weld04"}}
    assert len(one_offs) == 10
    for f in folds:
        assert one_offs <= set(f.train)
    train, val = group_split(records, val_fraction=0.25, seed=0)
    assert not {records[i].group for i in train} & {records[i].group for i in val}


def test_spatter_on_a_real_photo(porosity_data: Path) -> None:
    from inspection.image.ingest import read_image

    records, _ = read_manifest(porosity_data, check_images=False)
    image = read_image(records[0].path())
    before = image.copy()
    out, boxes = composite_spatter(image, np.random.default_rng(0), n_droplets=30, mm_per_px=0.06)
    assert np.array_equal(image, before) and len(boxes) == 30
    assert all(0 <= b.x0 < b.x1 <= image.shape[1] and 0 <= b.y0 < b.y1 <= image.shape[0] for b in boxes)
    assert not np.array_equal(out, image)


def test_unlabelled_yolo_set_imports_with_roboflow_groups(unlabelled_data: Path) -> None:
    records, report = import_yolo(unlabelled_data)
    assert len(records) + len(report.by_code("duplicate_image")) == 835
    assert not report.by_code("unreadable_image")
    assert {o.raw_label for r in records for o in r.objects} <= {"Bad Weld", "Good Weld", "Defect"}
    groups = Counter(r.group for r in records)
    assert None not in groups and len(groups) < len(records)  # augmented copies share their source
