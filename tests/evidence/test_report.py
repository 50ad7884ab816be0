"""The claim report: assessment rule, report building, compliance adapter, HTML escaping, PDF rendering."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from inspection.evidence.ledger import EvidenceRecord, record_inspection, record_review
from inspection.evidence.report import (
    Compliance,
    ReportLine,
    _interpret,
    assess,
    build_claim_report,
    expert_db_compliance,
    pdf_page_png,
    render_html,
    render_pdf,
    trend_png,
)
from inspection.store import Store
from tests.evidence.factories import (
    CONFIG_SHA,
    make_ledger,
    make_result,
    open_store,
    png_bytes,
    window_compliance,
)


def _line(defective: bool, status: str, seq: int = 1) -> ReportLine:
    return ReportLine(
        seq=seq, record_id=f"r{seq}", record_hash="h", inspection_id=f"i{seq}",
        created_at="2025-01-01T00:00:00.000000Z", part_id=None, seam_id=None, station_id=None, firmware=None,
        porosity=2 if defective else 0, spatter=0, reviewed=False, reviewer=None,
        porosity_effective=2 if defective else 0, spatter_effective=0, standards_level=None,
        standards_passed=None, compliance=Compliance(status), params={}, image_sha256="", defective=defective,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("groups", "points_to"),
    [
        ([], "no defects"),
        ([(False, "inside")] * 5, "no defects"),
        ([(True, "unknown")] * 3, "undetermined"),
        ([(True, "inside")] * 2 + [(True, "outside")], "equipment"),  # exactly two thirds
        ([(True, "inside")] + [(True, "outside")] * 2, "settings"),
        ([(True, "inside")] * 3 + [(True, "outside")] * 2, "mixed"),
        ([(True, "inside")] * 4 + [(True, "unknown")] * 9 + [(False, "outside")] * 9, "equipment"),
    ],
)
def test_assessment_two_thirds_rule(groups: list[tuple[bool, str]], points_to: str) -> None:
    lines = [_line(d, s, i) for i, (d, s) in enumerate(groups, start=1)]
    a = assess(lines)
    assert a.points_to == points_to
    assert a.defective == sum(d for d, _ in groups)
    assert [ln.seq for ln in a.inside] == [
        ln.seq for ln in lines if ln.defective and ln.compliance.status == "inside"
    ]
    assert len(a.inside) + len(a.outside) + len(a.unknown) == a.defective


@dataclass(frozen=True)
class Issue:
    parameter: str
    kind: str
    message: str


@pytest.mark.parametrize(
    ("result", "status", "detail"),
    [
        (True, "inside", ""),
        (False, "outside", ""),
        ([], "inside", ""),
        ([Issue("gas", "missing", "gas not given")], "inside", "1 param(s) not recorded"),
        (
            [Issue("p", "above", "p 9 is above 1-2"), Issue("g", "missing", "-")],
            "outside",
            "p 9 is above 1-2",
        ),
        ([Issue("t", "not_allowed", "t 'x' is not one of a")], "outside", "t 'x' is not one of a"),
        (Compliance("unknown", "why"), "unknown", "why"),
        (object(), "unknown", "unrecognised compliance result object"),
    ],
)
def test_interpret_compliance_results(result: Any, status: str, detail: str) -> None:
    assert _interpret(result) == Compliance(status, detail)


def test_compliance_status_is_validated() -> None:
    with pytest.raises(ValueError, match="valid: inside, outside, unknown"):
        Compliance("maybe")


def test_expert_db_adapter_against_the_recommend_module() -> None:
    pytest.importorskip("inspection.recommend")
    fn, source = expert_db_compliance()
    assert fn is not None, source
    ctx: dict[str, Any] = {"process": "laser", "material": "stainless", "thickness_mm": 2.0}
    assert fn({**ctx, "params": {"laser_power_w": 1500, "speed_mm_s": 25}}).status == "inside"
    outside = fn({**ctx, "params": {"laser_power_w": 99_999}})
    assert outside.status == "outside" and "laser_power_w" in outside.detail
    assert fn({**ctx, "params": {}}).status == "unknown"
    assert fn({**ctx, "params": {"unrelated": 1}}).status == "unknown"
    assert fn({**ctx, "material": "unobtainium", "params": {"x": 1}}).status == "unknown"


def _records(store: Store, part: str = "P-1") -> list[EvidenceRecord]:
    ledger = make_ledger(store)
    out = []
    specs = [  # (porosity, params outside the window?, standards passed)
        (0, False, True),
        (3, False, False),
        (2, True, True),
        (1, False, True),
    ]
    ids = []
    for i, (grade, outside, passed) in enumerate(specs):
        img = png_bytes(i)
        params = {"laser_power_w": 2500.0 if outside else 1500.0, "speed_mm_s": 25.0}
        result = make_result(img, porosity=grade, params=params, passed=passed, part=part)
        iid, rec = record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
        ids.append(iid)
        out.append(rec)
    out.append(ledger.append("note", {"unrelated": True}))
    # a reviewer downgrades the grade-3 weld and upgrades the grade-1 weld
    out.append(
        record_review(store, ledger, inspection_id=ids[1], reviewer="q", porosity_grade=1, spatter_grade=0)[1]
    )
    out.append(
        record_review(
            store, ledger, inspection_id=ids[3], reviewer="q", porosity_grade=2, spatter_grade=None
        )[1]
    )
    return out


def test_build_report_uses_reviews_standards_and_compliance(tmp_path: Path) -> None:
    records = _records(open_store(tmp_path))
    report = build_claim_report(records, serial="M-100", generated_at="now", compliance=window_compliance,
                                compliance_source="test", head=(7, "f" * 64))  # fmt: skip
    assert [ln.seq for ln in report.lines] == [1, 2, 3, 4]  # the note and reviews are not lines
    by_seq = {ln.seq: ln for ln in report.lines}
    assert not by_seq[1].defective
    # grade 3 reviewed down to 1, but the standards verdict failed: still defective
    assert by_seq[2].reviewed and by_seq[2].porosity_effective == 1 and by_seq[2].defective
    assert by_seq[3].defective and by_seq[3].compliance.status == "outside"
    assert by_seq[4].porosity == 1 and by_seq[4].porosity_effective == 2 and by_seq[4].defective
    a = report.assessment
    assert ([ln.seq for ln in a.inside], [ln.seq for ln in a.outside]) == ([2, 4], [3])
    assert a.points_to == "equipment"
    assert report.firmwares == ("fw-2.3.1",) and len(report.key_ids) == 1
    no_db = build_claim_report(records, serial="M-100", generated_at="now")
    assert no_db.assessment.points_to == "undetermined"


def test_failing_compliance_function_degrades_to_unknown(tmp_path: Path) -> None:
    def broken(ctx: Mapping[str, Any]) -> Compliance:
        raise KeyError("window table missing")

    report = build_claim_report(
        _records(open_store(tmp_path)), serial="M", generated_at="now", compliance=broken
    )
    assert {ln.compliance.status for ln in report.lines} == {"unknown"}
    assert "window table missing" in report.lines[0].compliance.detail


def test_html_escapes_everything_and_links_records(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    records = _records(open_store(tmp_path), part=evil)
    report = build_claim_report(records, serial="M&<b>", generated_at="now", compliance=window_compliance,
                                verify_steps=("run <verify>",))  # fmt: skip
    html = render_html(report, trend_png(report))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "M&amp;&lt;b&gt;" in html and "run &lt;verify&gt;" in html
    for ln in report.assessment.inside:
        assert f'href="#rec-{ln.record_id}"' in html and f'id="rec-{ln.record_id}"' in html
    assert "data:image/png;base64," in html


def test_pdf_renders_and_page_one_is_not_blank(tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    records = _records(open_store(tmp_path), part="<&> ünïcödé")
    report = build_claim_report(records, serial="M-100", generated_at="now", compliance=window_compliance,
                                verify_steps=("step one", "step two"))  # fmt: skip
    pdf = render_pdf(report, trend_png(report))
    assert pdf.startswith(b"%PDF")
    doc = pdfium.PdfDocument(pdf)
    text = doc[0].get_textpage().get_text_range()
    doc.close()
    assert "Warranty claim evidence: machine M-100" in text and "ünïcödé" in text
    page = np.asarray(PILImage.open(io.BytesIO(pdf_page_png(pdf, 0, scale=0.5))).convert("L"))
    assert page.shape[0] > page.shape[1] > 200  # portrait A4
    assert (page < 128).mean() > 0.01  # there is ink on the page
    with pytest.raises(ValueError, match="out of range"):
        pdf_page_png(pdf, 99)


def test_trend_without_lines() -> None:
    report = build_claim_report([], serial="EMPTY", generated_at="now")
    png = trend_png(report)
    assert PILImage.open(io.BytesIO(png)).size[0] > 400
    assert report.assessment.points_to == "no defects"
