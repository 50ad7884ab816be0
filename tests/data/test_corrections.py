"""Label corrections: parsed strictly, applied as an overlay, every unmatched correction reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inspection.data.corrections import (
    CorrectionError,
    apply_corrections,
    iou,
    parse_correction,
    read_corrections,
)
from inspection.data.manifest import ManifestObject, ManifestRecord

SHA_A = "a" * 64
SHA_B = "b" * 64


def _good(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "image_sha256": SHA_A, "action": "add", "label": "porosity", "box": [10, 10, 20, 20],
        "reason": "unboxed cavity", "who": "jd",
    }  # fmt: skip
    row.update(over)
    return row


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"image_sha256": "abc"}, "image_sha256 must be 64"),
        ({"action": "move"}, "action must be one of add, remove"),
        ({"label": "pore"}, "not in our vocabulary"),
        ({"box": [10, 10, 5, 20]}, "x0 < x1"),
        ({"box": [1, 2, 3]}, "box must be [x0, y0, x1, y1]"),
        ({"reason": " "}, "reason must be a non-empty string"),
        ({"who": ""}, "who must be a non-empty string"),
    ],
)
def test_bad_corrections_name_the_place_and_the_field(over: dict[str, object], needle: str) -> None:
    with pytest.raises(CorrectionError, match=r"f\.jsonl:3") as err:
        parse_correction(_good(**over), "f.jsonl:3")
    assert needle in str(err.value)


def test_missing_fields_are_listed() -> None:
    row = _good()
    del row["who"], row["reason"]
    with pytest.raises(CorrectionError, match="missing field\\(s\\) reason, who"):
        parse_correction(row, "x:1")


def test_read_corrections_reads_folders_and_stops_at_the_first_bad_line(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(
        json.dumps(_good()) + "\n\n" + json.dumps(_good(action="remove")) + "\n"
    )
    got = read_corrections([tmp_path])
    assert [c.action for c in got] == ["add", "remove"]
    assert got[1].where.endswith("a.jsonl:3")
    (tmp_path / "b.jsonl").write_text("{not json\n")
    with pytest.raises(CorrectionError, match=r"b\.jsonl:1: not valid JSON"):
        read_corrections([tmp_path])
    with pytest.raises(FileNotFoundError, match="do not exist"):
        read_corrections([tmp_path / "nope"])


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
        ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),
    ],
)
def test_iou(a: tuple[float, ...], b: tuple[float, ...], want: float) -> None:
    assert iou(a, b) == pytest.approx(want)  # type: ignore[arg-type]


def test_apply_adds_removes_and_reports_what_matched_nothing() -> None:
    rec_a = ManifestRecord(
        "images/a.jpg", 100, 100, "weld01",
        (ManifestObject("porosity", (10, 10, 20, 20)), ManifestObject("crater", (50, 50, 60, 60))),
    )  # fmt: skip
    rec_b = ManifestRecord("images/b.jpg", 100, 100, "weld04", ())
    shas = {"images/a.jpg": SHA_A, "images/b.jpg": SHA_B}
    fixes = [
        parse_correction(_good(action="remove", box=[11, 11, 21, 21]), "c:1"),  # IoU 0.68 -> removed
        parse_correction(_good(action="remove", box=[50, 50, 60, 60]), "c:2"),  # crater, not porosity
        parse_correction(_good(image_sha256=SHA_B, box=[1, 1, 5, 5]), "c:3"),
        parse_correction(_good(image_sha256="c" * 64), "c:4"),  # image not in the manifest
    ]
    out, report = apply_corrections([rec_a, rec_b], fixes, lambda r: shas[r.image])
    assert [o.label for o in out[0].objects] == ["crater"]
    assert [o.box for o in out[1].objects] == [(1.0, 1.0, 5.0, 5.0)]
    assert (report.added, report.removed, report.images_changed, report.labels_changed) == (1, 1, 2, 2)
    assert [c.where for c in report.unmatched] == ["c:2", "c:4"]
    assert len(rec_a.objects) == 2, "the input records are never changed"
    assert "2 corrections matched nothing" in report.summary()
