"""Review marks, not-gradable flags, the value-ordered queue with audit samples and the miss-rate
panel, through the dashboard's TestClient (no browser) and the queue functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inspection.config import AppConfig, ServiceConfig
from inspection.evidence.keys import load_signer
from inspection.evidence.ledger import Ledger, get_record
from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from inspection.service.web.queue import refresh_candidates, review_queue, review_value
from inspection.service.web.router import _finding_marks
from inspection.store import Store
from inspection.types import HeadResult
from tests.evidence.factories import make_ledger, open_store
from tests.service.helpers import PHOTO_H as H
from tests.service.helpers import PHOTO_W as W
from tests.service.helpers import make_keys, make_settings, photo_with_findings
from tests.service.web.helpers import csrf, login


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[Any, ...]]:
    """A service whose audit rate is 1 (every unflagged result is an audit sample), with three
    recorded photos: two unflagged (audit samples), one flagged."""
    config = AppConfig(service=ServiceConfig(audit_rate=1.0))
    settings: ServiceSettings = make_settings(
        tmp_path_factory.mktemp("marks"), tiny_model_dir, app_config=config
    )
    keys = make_keys(settings)
    with Store.open(settings.db_url, settings.images_dir) as store:
        ledger = Ledger(store, load_signer(settings.keys_dir))
        ids = [
            photo_with_findings(store, ledger, 1),
            photo_with_findings(store, ledger, 2),
            photo_with_findings(store, ledger, 3, needs_review=True, reasons=("grade_findings_disagree",)),
        ]
    with TestClient(create_app(settings)) as client:
        yield client, keys, settings, ids


def _post(client: TestClient, iid: str, **data: str) -> Any:
    token = csrf(client, f"/ui/inspections/{iid}")
    return client.post(
        f"/ui/inspections/{iid}/review", data={"csrf_token": token, **data}, follow_redirects=False
    )


def test_review_with_marks_is_stored_and_signed(audited: tuple[Any, ...]) -> None:
    client, keys, settings, ids = audited
    client.cookies.clear()
    login(client, keys.auditor)
    page = client.get(f"/ui/inspections/{ids[0]}").text
    assert 'id="marks-layer"' in page and f'viewBox="0 0 {W} {H}"' in page
    # the editor shows the grades the marks give, with the service's grading thresholds
    assert 'data-porosity-thresholds="1,2,4"' in page and 'data-spatter-thresholds="1,6,21"' in page
    assert 'data-implied="porosity"' in page and 'data-implied="spatter"' in page
    marks = [
        {"label": "porosity", "box": [75, 55, 95, 75], "origin": "model", "finding": 0},  # moved
        {"label": "spatter", "point": [10.04, 150]},
        {"label": "porosity", "box": [140, 40, 160, 52]},
    ]
    r = _post(client, ids[0], porosity_grade="2", spatter_grade="1", marks=json.dumps(marks), back="queue")
    assert r.status_code == 303, r.text
    with Store.open(settings.db_url, settings.images_dir) as store:
        (review,) = store.list_reviews(ids[0])
        assert review.reviewer == "auditor" and review.created_at is not None
        assert review.audit  # the inspection was not flagged: an audit sample at rate 1
        assert [m["label"] for m in review.marks or ()] == ["porosity", "spatter", "porosity"]
        assert review.marks is not None and review.marks[1] == {
            "label": "spatter", "point": [10.0, 150.0], "origin": "reviewer",
        }  # fmt: skip
        with store.session() as s:
            record = get_record(s, review.evidence_seq or 0)
    assert record is not None and record.kind == "review"
    assert record.data["marks"][0] == {
        "label": "porosity",
        "box": [75, 55, 95, 75],
        "origin": "model",
        "finding": 0,
    }
    assert record.data["reviewer"] == "auditor" and record.data["audit"] is True
    detail = client.get(f"/ui/inspections/{ids[0]}").text
    assert "2 pore / 1 spatter marks" in detail
    lines = [json.loads(x) for x in client.get("/ui/reviews/export.jsonl").text.splitlines()]
    line = next(x for x in lines if x["inspection_id"] == ids[0])
    assert line["objects"] == [
        {"label": "porosity", "box": [75.0, 55.0, 95.0, 75.0]},
        {"label": "porosity", "box": [140.0, 40.0, 160.0, 52.0]},
    ]
    assert len(line["marks"]) == 3 and line["audit"] is True


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"marks": json.dumps([{"label": "porosity", "box": [10, 10, W + 5, 20]}])},
         "marks[0].box: x1 = 325.0"),
        ({"marks": json.dumps([{"label": "porosity", "point": [-1, 3]}])}, "marks[0].point: x = -1.0"),
        ({"marks": json.dumps([{"label": "slag", "point": [1, 3]}])}, "marks[0].label: unknown kind"),
        ({"marks": json.dumps([{"label": "porosity", "point": [1, 1]}] * 501)}, "marks: has 501 marks"),
        ({"marks": "[{"}, "marks: is not valid JSON"),
        ({"marks": json.dumps({"label": "porosity"})}, "marks: must be a JSON list"),
        ({"marks": json.dumps([{"label": "porosity", "point": [1, 1], "origin": "model", "finding": 7}])},
         "marks[0].finding"),
        ({"marks": json.dumps([{"label": "porosity", "point": [1, 1], "colour": "red"}])},
         "marks[0]: unknown keys"),
        ({"marks": json.dumps([{"label": "porosity", "point": [1, 1]}] * 2)},  # porosity_grade 1 posted
         "porosity_grade: is 1, but the review&#39;s porosity marks (2) give porosity grade 2"),
        ({"marks": json.dumps([{"label": "porosity", "point": [1, 1]},
                               {"label": "spatter", "point": [2, 2]}])},
         "spatter_grade: is 0, but the review&#39;s spatter marks (1) give at least spatter grade 1"),
        ({"not_gradable": "1"}, "not_gradable_reason"),
        ({"not_gradable": "maybe", "not_gradable_reason": "x"}, "not_gradable must be 1"),
    ],
)  # fmt: skip
def test_bad_marks_and_flags_are_refused_naming_the_field(
    audited: tuple[Any, ...], data: dict[str, str], field: str
) -> None:
    client, keys, settings, ids = audited
    client.cookies.clear()
    login(client, keys.admin)
    r = _post(client, ids[1], porosity_grade="1", spatter_grade="0", **data)
    assert r.status_code == 422 and field in r.text, r.text
    with Store.open(settings.db_url, settings.images_dir) as store:
        assert store.list_reviews(ids[1]) == []  # nothing stored, nothing signed


def test_not_gradable_and_grades_only_reviews(audited: tuple[Any, ...]) -> None:
    client, keys, settings, ids = audited
    client.cookies.clear()
    login(client, keys.auditor)
    # without JavaScript the form sends no marks: a grades-only review
    assert _post(client, ids[2], porosity_grade="3", spatter_grade="0").status_code == 303
    # a not-gradable flag ignores the grade selects (still set without JavaScript) and needs a reason
    r = _post(client, ids[2], porosity_grade="1", spatter_grade="1", not_gradable="1",
              not_gradable_reason="glare over the seam", marks="[]")  # fmt: skip
    assert r.status_code == 303
    with Store.open(settings.db_url, settings.images_dir) as store:
        first, second = store.list_reviews(ids[2])
    assert first.marks is None and not first.not_gradable and not first.audit  # flagged: no audit sample
    assert second.not_gradable_reason == "glare over the seam"
    assert (second.porosity_grade, second.spatter_grade, second.marks) == (None, None, None)
    assert "not gradable" in client.get(f"/ui/inspections/{ids[2]}").text


def test_queue_lists_audit_samples_and_shows_the_miss_rate(audited: tuple[Any, ...]) -> None:
    client, keys, settings, ids = audited
    client.cookies.clear()
    login(client, keys.auditor)
    with Store.open(settings.db_url, settings.images_dir) as store:
        ledger = Ledger(store, load_signer(settings.keys_dir))
        extra = photo_with_findings(store, ledger, 9)
    page = client.get("/ui/reviews").text
    queued = re.findall(r'<section class="card queueitem( audit)?" data-inspection="([^"]+)"', page)
    assert queued == [(" audit", ids[1]), (" audit", extra)]  # unreviewed audit samples, oldest first
    assert page.count('class="tag tag-audit"') == 2
    # review the new audit sample with the model's grades (right) ...
    assert _post(client, extra, porosity_grade="2", spatter_grade="0").status_code == 303
    evidence = client.get("/ui/evidence").text
    assert 'id="miss-rate"' in evidence
    page = client.get("/ui/reviews").text
    # ... ids[0] was reviewed with spatter 1 against the model's 0 (wrong); extra right: 1 of 2
    assert 'id="miss-rate-wrong">1<' in page and 'id="miss-rate-audited">2<' in page
    assert "at most" in page and "were wrong" in page


def test_station_keys_cannot_post_marks(audited: tuple[Any, ...]) -> None:
    client, keys, _, ids = audited
    client.cookies.clear()
    login(client, keys.s1)
    r = client.post(f"/ui/inspections/{ids[1]}/review", data={"csrf_token": csrf(client), "marks": "[]"})
    assert r.status_code in (403, 404)


# ---- the queue order (pure value, store order) --------------------------------------------------


def _result(
    porosity_probs: list[float] | None, reasons: list[str], ood: float | None = 0.1
) -> dict[str, Any]:
    head = None if porosity_probs is None else {
        "grade": max(range(4), key=lambda i: porosity_probs[i]), "probs": porosity_probs,
        "confidence": max(porosity_probs),
    }  # fmt: skip
    sure = {"grade": 0, "probs": [0.97, 0.01, 0.01, 0.01], "confidence": 0.97}
    return {"porosity": head, "spatter": sure, "review_reasons": reasons, "ood_score": ood}


def test_review_value_formula() -> None:
    # U = (1 - 0.97) / 0.75 = 0.04, B = 1 - |2 * 0.03 - 1| = 0.06: a sure zero is worth little
    assert review_value(_result([0.97, 0.01, 0.01, 0.01], [])) == pytest.approx(0.1)
    # near the threshold: P(>=1) = 0.5 -> B = 1; confidence 0.5 -> U = 2/3
    assert review_value(_result([0.5, 0.5, 0.0, 0.0], [])) == pytest.approx(1 + 2 / 3)
    assert review_value(_result([0.97, 0.01, 0.01, 0.01], ["grade_findings_disagree"])) == pytest.approx(1.6)
    assert review_value(
        _result([0.97, 0.01, 0.01, 0.01], ["unfamiliar_appearance", "out_of_distribution"])
    ) == pytest.approx(1.1)
    # a head that was not graded adds nothing: only the spatter head counts
    assert review_value(_result(None, ["quality:blurred"])) == pytest.approx(0.1)
    assert review_value({}) == 0.0


def test_queue_order_audit_first_then_value_not_date(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    sure = HeadResult(0, (0.97, 0.01, 0.01, 0.01), 0.97)
    unsure = HeadResult(1, (0.45, 0.55, 0.0, 0.0), 0.55)
    # spatter head of the factory: grade 0 at 0.85 -> U 0.2, B 0.3; + 1.5 for the abstention = 2.0
    split = photo_with_findings(
        store, ledger, 1, needs_review=True, reasons=("abstain:spatter",), porosity=sure
    )
    plain = photo_with_findings(store, ledger, 2)  # unflagged
    novel = photo_with_findings(store, ledger, 3, needs_review=True, porosity=unsure,
                                reasons=("unfamiliar_appearance", "grade_findings_disagree"))  # fmt: skip
    mid = photo_with_findings(store, ledger, 4, needs_review=True, reasons=(), porosity=unsure)  # 0.6 + 0.9
    from inspection.evidence.audit import audit_key

    assert refresh_candidates(store, key=audit_key(ledger.signer), audit_rate=1.0) == 4
    items, total = review_queue(store)
    assert total == 4
    assert [i.record.id for i in items] == [plain, novel, split, mid]  # not by date
    assert items[0].audit and not any(i.audit for i in items[1:])
    assert [i.value for i in items[1:]] == sorted((i.value for i in items[1:]), reverse=True)
    page, _ = review_queue(store, limit=2, offset=2)
    assert [i.record.id for i in page] == [split, mid]
    assert [i.value for i in items[1:]] == pytest.approx([4.0, 2.0, 1.5])
    assert review_queue(store, station_id="elsewhere") == ([], 0)
    store.close()


def test_findings_become_box_marks() -> None:
    result = {
        "width": 100, "height": 50,
        "findings": [
            {"kind": "porosity", "x": 10.0, "y": 10.0, "diameter_px": 8.0},
            {"kind": "spatter", "x": 99.0, "y": 1.0, "diameter_px": 1.0},  # 2 px minimum, clipped
            {"kind": "other", "x": 5.0, "y": 5.0, "diameter_px": 3.0},
        ],
    }  # fmt: skip
    assert _finding_marks(result) == [
        {"label": "porosity", "box": [6.0, 6.0, 14.0, 14.0], "origin": "model", "finding": 0},
        {"label": "spatter", "box": [97.0, 0.0, 100.0, 3.0], "origin": "model", "finding": 1},
    ]
    assert _finding_marks({"findings": result["findings"]}) == []  # no size: no marks
