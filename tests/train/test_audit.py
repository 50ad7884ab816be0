"""Label audit: stray confident findings and boxes without a finding, and their contact sheets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspection.data.manifest import ManifestObject, ManifestRecord
from inspection.train.audit import AuditError, Prediction, audit, contact_sheet, read_predictions
from inspection.types import Defect, Finding


def _f(x: float, y: float, score: float) -> Finding:
    return Finding(Defect.POROSITY, x, y, 8.0, score, 0.5)


REC = ManifestRecord(
    "images/a.jpg", 200, 100, "weld01",
    (ManifestObject("porosity", (40, 40, 60, 60)), ManifestObject("porosity", (140, 40, 160, 60)),
     ManifestObject("crater", (0, 0, 10, 10))),
)  # fmt: skip


@pytest.mark.parametrize(
    ("findings", "outside", "unfound"),
    [
        ([], 0, 2),
        ([_f(50, 50, 0.9), _f(150, 50, 0.8)], 0, 0),
        ([_f(50, 50, 0.9), _f(150, 50, 0.3)], 0, 1),  # below threshold: the box is not found
        ([_f(36, 50, 0.9)], 0, 1),  # inside the box grown by 25 % (5 px): found
        ([_f(34, 50, 0.9)], 1, 2),  # just outside the grown box
        ([_f(100, 90, 0.95), _f(100, 10, 0.2)], 1, 2),  # only confident strays count
    ],
)
def test_audit_counts(findings: list[Finding], outside: int, unfound: int) -> None:
    report = audit([REC], [Prediction(REC.image, tuple(findings))], threshold=0.5)
    assert len(report.of("finding_outside_boxes")) == outside
    assert len(report.of("box_without_finding")) == unfound
    assert report.boxes == 2, "only porosity boxes are audited"


def test_most_suspicious_first() -> None:
    pred = Prediction(REC.image, (_f(100, 90, 0.6), _f(100, 10, 0.95), _f(150, 50, 0.4)))
    report = audit([REC], [pred], threshold=0.5)
    assert [i.score for i in report.of("finding_outside_boxes")] == [0.95, 0.6]
    assert [i.score for i in report.of("box_without_finding")] == [0.0, 0.4]


def test_unknown_image_is_an_error_not_a_clean_audit() -> None:
    with pytest.raises(AuditError, match="no record in the manifest"):
        audit([REC], [Prediction("images/other.jpg", ())], threshold=0.5)


def test_read_predictions_keeps_porosity_and_names_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "p.jsonl"
    findings = [
        {"kind": "porosity", "x": 1, "y": 2, "score": 0.7},
        {"kind": "spatter", "x": 3, "y": 4, "score": 0.9},
    ]
    row = {"image": "images/a.jpg", "fold": "weld01", "findings": findings}
    good.write_text(json.dumps(row) + "\n")
    (pred,) = read_predictions(good)
    assert pred.fold == "weld01" and [(f.x, f.score) for f in pred.findings] == [(1.0, 0.7)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"image": "a", "findings": [{"x": 1}]}) + "\n")
    with pytest.raises(AuditError, match=r"bad\.jsonl:1: a finding needs"):
        read_predictions(bad)


def test_contact_sheet_draws_each_item_in_its_cell() -> None:
    img = np.zeros((100, 200, 3), np.uint8)
    report = audit([REC], [Prediction(REC.image, (_f(100, 90, 0.9),))], threshold=0.5)
    sheet = contact_sheet(report.items, lambda _: img, cell=64, columns=2)
    assert sheet.shape == (2 * (64 + 18), 128, 3)
    first = sheet[:64, :64]
    assert (first[..., 0] > 200).any() and (first[..., 1] < 60).any(), "a red finding box in cell 1"
    second = sheet[:64, 64:128]
    assert ((second[..., 1] > 150) & (second[..., 0] < 60)).any(), "a green labelled box in cell 2"
