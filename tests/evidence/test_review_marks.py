"""Review records with marks, not-gradable flag and audit flag: signed, mirrored, verified."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from inspection.evidence.ledger import record_inspection, record_review
from inspection.evidence.verify import verify_store
from inspection.store.marks import MarkError
from inspection.store.models import ReviewRow
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, open_store, png_bytes


def test_marks_and_not_gradable_go_into_the_signed_record(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1, size=(40, 30))
    iid, _ = record_inspection(
        store, ledger, make_result(img, porosity=1, size=(40, 30)), img, config_sha256=CONFIG_SHA
    )
    plain_id, plain = record_review(
        store, ledger, inspection_id=iid, reviewer="q.lee", porosity_grade=1, spatter_grade=0
    )
    assert set(plain.data) == {  # a grades-only review reads as before
        "review_id", "inspection_id", "inspection_seq", "inspection_record_hash", "reviewer", "grades",
        "comment",
    }  # fmt: skip
    marks = [
        {"label": "porosity", "box": [2, 6, 6, 10], "origin": "model", "finding": 0},
        {"label": "spatter", "point": [30.5, 4]},
    ]
    _, rec = record_review(
        store, ledger, inspection_id=iid, reviewer="q.lee", porosity_grade=1, spatter_grade=1, marks=marks
    )
    assert rec.data["marks"] == [
        {"label": "porosity", "box": [2, 6, 6, 10], "origin": "model", "finding": 0},
        {"label": "spatter", "point": [30.5, 4], "origin": "reviewer"},
    ]
    assert "audit" not in rec.data and "not_gradable" not in rec.data
    _, flagged = record_review(
        store, ledger, inspection_id=iid, reviewer="q.lee", porosity_grade=None, spatter_grade=None,
        not_gradable_reason="glare over the seam",
    )  # fmt: skip
    assert flagged.data["not_gradable"] == "glare over the seam"
    assert flagged.data["grades"] == {"porosity": None, "spatter": None}
    head = ledger.head()
    with pytest.raises(MarkError, match=r"marks\[0\]\.label"):
        record_review(store, ledger, inspection_id=iid, reviewer="x", porosity_grade=1, spatter_grade=0,
                      marks=[{"label": "crack", "point": [1, 1]}])  # fmt: skip
    assert ledger.head() == head  # nothing appended for a bad mark
    assert verify_store(store).ok

    # a review row whose marks were edited in the database no longer matches its record
    with store.write() as s:
        s.execute(update(ReviewRow).where(ReviewRow.id != plain_id).values(marks=[], audit=True))
    codes = {p.code for p in verify_store(store).problems}
    assert codes == {"row_mismatch"}
    store.close()
