"""The claim report's "Reviews and audit" section: the miss-rate sentence and the model approvals table,
in bundles that carry them and in reports without them (HTML and PDF)."""

from __future__ import annotations

import dataclasses
import html as html_lib
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from inspection.evidence.audit import audit_key
from inspection.evidence.bundle import MISS_RATE, export_bundle, verify_bundle
from inspection.evidence.keys import Signer
from inspection.evidence.ledger import Ledger, record_inspection, record_review
from inspection.evidence.promotion import ModelIdentity, ReportRef, record_promotion, record_rollback
from inspection.evidence.report import build_claim_report, render_html, render_pdf, trend_png
from inspection.evidence.report_audit import MissRateSummary, miss_rate_summaries, model_approvals
from inspection.service.web.queue import refresh_candidates
from inspection.store import Store
from inspection.types import ModelInfo
from tests.evidence.factories import StepClock, make_result, open_store, png_bytes

A = ModelIdentity("weldnet", "1.0.0", "ab" * 32, "cd" * 32, "weldnet/1.0.0")
B = ModelIdentity("weldnet", "1.1.0", "ef" * 32, "12" * 32, "weldnet/1.1.0")
REPORT = ReportRef("compare.json", "34" * 32, 1234)
REASON = "B misses pores on weld 7"


def _inspect(store: Store, ledger: Ledger, seed: int, model: ModelIdentity) -> str:
    img = png_bytes(seed)
    result = dataclasses.replace(
        make_result(img, serial="M-1"), model=ModelInfo(model.name, model.version, model.sha256)
    )
    return record_inspection(store, ledger, result, img, config_sha256=model.config_sha256)[0]


def _html_text(html: str) -> str:
    """The page's text: line breaks as spaces, other tags removed, whitespace collapsed, entities decoded."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", " ", html))).split())


def _table_rows(html: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert table is not None, f"no table {table_id}"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
    return [[_html_text(c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows]


def _pdf_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        return " ".join(" ".join(page.get_textpage().get_text_range().split()) for page in doc)
    finally:
        doc.close()


@pytest.fixture
def bundle(tmp_path: Path) -> dict[str, Any]:
    """Machine M-1: seq 1 inspection (A, unpromoted then), 2 promotion of B by alice on a report,
    3-4 inspections (B), 5 rollback to A by bob, 6 inspection (A); every inspection an audit sample
    (rate 1); seq 1 reviewed right, seq 3 reviewed wrong (porosity 1 against the model's 0)."""
    store = open_store(tmp_path)
    signer = Signer.generate("st-1")
    ledger = Ledger(store, signer, clock=StepClock())
    first = _inspect(store, ledger, 1, A)
    record_promotion(store, ledger, B, approved_by="alice", report=REPORT, metrics={"pore_recall": 0.81},
                     metrics_source="report compare.json")  # fmt: skip
    wrong = _inspect(store, ledger, 2, B)
    _inspect(store, ledger, 3, B)
    record_rollback(store, ledger, A, approved_by="bob", reason=REASON)
    _inspect(store, ledger, 4, A)
    assert refresh_candidates(store, key=audit_key(signer), audit_rate=1.0) == 4
    record_review(store, ledger, inspection_id=first, reviewer="qa", porosity_grade=0, spatter_grade=0)
    record_review(store, ledger, inspection_id=wrong, reviewer="qa", porosity_grade=1, spatter_grade=0)
    out = tmp_path / "claim.zip"
    export_bundle(store, out, serial="M-1", signer=signer)
    assert verify_bundle(out, {signer.key_id: signer.public_key}).ok
    with zipfile.ZipFile(out) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    store.close()
    return files


def test_bundle_report_states_the_miss_rate_of_its_audit_file(bundle: dict[str, Any]) -> None:
    html = bundle["report/claim_report.html"].decode("utf-8")
    text = _html_text(html)
    body = json.loads(bundle[MISS_RATE])
    machine = body["this_machine"]
    assert (machine["audited"], machine["wrong"], machine["drawn"]) == (2, 1, 4)
    # 1 wrong of 2: the 95 % Clopper-Pearson upper end is sqrt(0.975) = 98.7 %
    assert machine["high"] == pytest.approx(0.975**0.5)
    assert "Reviews and audit" in text
    assert (
        "Of the welds accepted without review (this machine M-1), at most 98.7 % were wrong "
        "(95 % upper bound, 2 audited)." in text
    )
    assert "Of the welds accepted without review (all machines), at most 98.7 % were wrong" in text
    assert "1 of 2 reviewed audit samples were wrong; 95 % Clopper-Pearson interval 1.3-98.7 %" in text
    assert "4 drawn, 2 not reviewed yet" in text
    assert "2 of 4 inspections in this report were reviewed by a person" in text
    pdf = _pdf_text(bundle["report/claim_report.pdf"])
    assert "Reviews and audit" in pdf and "at most 98.7 % were wrong (95 % upper bound, 2 audited)" in pdf


def test_bundle_report_lists_the_model_approvals(bundle: dict[str, Any]) -> None:
    html = bundle["report/claim_report.html"].decode("utf-8")
    header, *rows = _table_rows(html, "model-approvals")
    assert header == [
        "Model version", "Weights sha256", "Approved by", "When (UTC)", "Record", "Comparison report sha256",
        "Rollback",
    ]  # fmt: skip
    by_version = {r[0]: r for r in rows}
    assert set(by_version) == {"weldnet 1.0.0", "weldnet 1.1.0"}
    b = by_version["weldnet 1.1.0"]
    assert b[1] == "ef" * 6 and b[2] == "alice" and b[4] == "promote seq 2" and b[5] == "34" * 6
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", b[3])
    assert re.fullmatch(rf"rolled back to weldnet 1\.0\.0 at seq 5 \([0-9: -]+\) by bob: {REASON}", b[6])
    a = by_version["weldnet 1.0.0"]
    assert a[1] == "ab" * 6 and a[2] == "bob" and a[4] == "rollback seq 5"
    assert a[5].startswith("- ") and "never promoted before" in a[5]  # the shipped model: no report
    assert a[6] == f"rollback to this model (seq 5): {REASON}"
    pdf = _pdf_text(bundle["report/claim_report.pdf"])
    assert "Model approvals" in pdf and "alice" in pdf and "promote seq 2" in pdf and "34" * 6 in pdf
    assert "rolled back to weldnet 1.0.0 at seq 5" in pdf


def test_report_without_audit_file_or_models_section_says_so(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = Ledger(store, Signer.generate("st-1"), clock=StepClock())
    _inspect(store, ledger, 1, A)
    with store.session() as s:
        from inspection.evidence.ledger import iter_records

        records = list(iter_records(s))
    store.close()
    report = build_claim_report(records, serial="M-1", generated_at="now")  # an old bundle's inputs
    assert report.miss_rate == () and report.models is None
    text = _html_text(render_html(report, trend_png(report)))
    assert "Reviews and audit" in text and "0 of 1 inspections in this report were reviewed" in text
    assert "This bundle carries no miss-rate estimate (audit/miss_rate.json)" in text
    assert "This bundle carries no model approvals" in text
    assert 'id="model-approvals"' not in render_html(report, trend_png(report))
    pdf = _pdf_text(render_pdf(report, trend_png(report)))
    assert "This bundle carries no miss-rate estimate" in pdf and "carries no model approvals" in pdf

    # an unpromoted model and no reviewed audit sample yet
    used = [{"sha256": A.sha256, "name": A.name, "version": A.version, "promotion": None}]
    models = {"ledger_records": 0, "first_seq": None, "used": used}
    unaudited = {"this_machine": {"serial": "M-1", "audited": 0, "wrong": 0, "drawn": 3, "low": 0.0,
                                  "high": 1.0, "confidence": 0.95, "method": "clopper-pearson"}}  # fmt: skip
    report = build_claim_report(records, serial="M-1", generated_at="now", miss_rate=unaudited, models=models)
    html = render_html(report, trend_png(report))
    _, row = _table_rows(html, "model-approvals")
    assert row[:5] == ["weldnet 1.0.0", "ab" * 6, "not promoted", "-", "-"]
    assert "no promotion record names these weights" in row[5]
    assert "No audit sample has been reviewed yet (this machine M-1, 3 drawn)" in _html_text(html)


@pytest.mark.parametrize(
    ("body", "scopes"),
    [
        (None, []),
        ({}, []),
        ({"this_machine": {"audited": -1, "wrong": 0, "low": 0, "high": 1}}, []),  # unreadable: left out
        ({"all_machines": {"audited": 10, "wrong": 1, "low": 0.002, "high": 0.44}}, ["all machines"]),
        ({"all_machines": {"audited": 1, "wrong": 0, "low": 0, "high": 0.97},
          "this_machine": {"serial": "X", "audited": 1, "wrong": 0, "low": 0, "high": 0.97}},
         ["this machine X", "all machines"]),
    ],
)  # fmt: skip
def test_miss_rate_summaries_read_what_is_there(body: Any, scopes: list[str]) -> None:
    assert [m.scope for m in miss_rate_summaries(body)] == scopes


def test_sentence_is_the_upper_bound_in_percent() -> None:
    m = MissRateSummary("all machines", audited=100, wrong=2, drawn=120, low=0.0024, high=0.0704)
    assert m.sentence() == (
        "Of the welds accepted without review (all machines), at most 7.0 % were wrong "
        "(95 % upper bound, 100 audited)."
    )
    assert m.detail() == (
        "2 of 100 reviewed audit samples were wrong; 95 % Clopper-Pearson interval 0.2-7.0 %; "
        "120 drawn, 20 not reviewed yet."
    )


def test_model_approvals_without_a_models_section_is_none() -> None:
    assert model_approvals(None, []) is None
    assert model_approvals({"used": "nope"}, []) is None
    assert model_approvals({"used": []}, []) == ()
