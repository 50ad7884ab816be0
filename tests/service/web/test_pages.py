"""Dashboard pages through the TestClient: filters, detail, review, export, machines, evidence."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inspection.service.settings import ServiceSettings
from inspection.store import Store
from inspection.store.images import relative_path
from tests.service.helpers import Keys
from tests.service.web.helpers import csrf, login

ROW_RE = re.compile(r'<a href="/ui/inspections/([0-9a-f-]{36})">')


def _ids(html: str) -> list[str]:
    return ROW_RE.findall(html)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {0, 1, 2, 3, 4, 5}),
        ({"serial": "M-1"}, {0, 2, 4}),
        ({"station": "S2"}, {0, 3}),
        ({"station": "S1", "serial": "M-2"}, {1, 5}),
        ({"serial": "nope"}, set()),
    ],
)
def test_inspection_filters(
    client: TestClient, web_keys: Keys, seeded: list[str], params: dict[str, str], expected: set[int]
) -> None:
    login(client, web_keys.auditor)
    r = client.get("/ui/inspections", params=params)
    assert r.status_code == 200
    assert set(_ids(r.text)) == {seeded[i] for i in expected}


def test_date_grade_and_review_filters_agree_with_the_store(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings
) -> None:
    login(client, web_keys.auditor)
    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        records = [store.get_inspection(i) for i in seeded]
    day = records[0].created_at.date()  # type: ignore[union-attr]
    same_day = client.get("/ui/inspections", params={"since": day.isoformat(), "until": day.isoformat()})
    assert set(_ids(same_day.text)) == set(seeded)
    later = client.get("/ui/inspections", params={"since": (day.replace(year=day.year + 1)).isoformat()})
    assert _ids(later.text) == []
    flagged = client.get("/ui/inspections", params={"needs_review": "yes"})
    assert set(_ids(flagged.text)) == {r.id for r in records if r and r.needs_review}
    g1 = client.get("/ui/inspections", params={"grade": "1"})
    assert set(_ids(g1.text)) == {r.id for r in records if r and (r.porosity_grade or 0) >= 1}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "YYYY-MM-DD"),
        ({"grade": "7"}, "0, 1, 2, 3"),
        ({"needs_review": "maybe"}, "yes, no"),
    ],
)
def test_bad_filters_are_explained(
    client: TestClient, web_keys: Keys, params: dict[str, str], message: str
) -> None:
    login(client, web_keys.auditor)
    r = client.get("/ui/inspections", params=params)
    assert r.status_code == 422
    assert message in r.text


def test_pagination(
    client: TestClient, web_keys: Keys, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspection.service.web import router

    monkeypatch.setattr(router, "PAGE_SIZE", 4)
    login(client, web_keys.auditor)
    p1 = client.get("/ui/inspections", params={"page": 1}).text
    p2 = client.get("/ui/inspections", params={"page": 2}).text
    assert len(_ids(p1)) == 4 and len(_ids(p2)) == 2
    assert set(_ids(p1)) | set(_ids(p2)) == set(seeded)
    assert "Page 1 of 2" in p1 and 'rel="next"' in p1 and 'rel="next"' not in p2


def test_detail_page_shows_grades_standards_and_verified_evidence(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings
) -> None:
    login(client, web_keys.auditor)
    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        record = store.get_inspection(seeded[2])
    assert record is not None
    html = client.get(f"/ui/inspections/{record.id}").text
    probs = record.result["porosity"]["probs"]
    assert f"{probs[0]:.2f}" in html
    assert 'id="evidence-status">verified' in html
    assert f"#{record.evidence_seq}" in html
    standards = record.result["standards"]
    assert standards["verdicts"][0]["clause"] in html
    if standards["unconfirmed"]:
        assert "unconfirmed" in html
    assert f'src="/ui/inspections/{record.id}/image"' in html
    assert f'data-src="/ui/inspections/{record.id}/overlay.png"' in html
    image = client.get(f"/ui/inspections/{record.id}/image")
    assert image.headers["content-type"] == "image/jpeg"
    import hashlib

    assert hashlib.sha256(image.content).hexdigest() == record.image_sha256
    overlay = client.get(f"/ui/inspections/{record.id}/overlay.png")
    assert overlay.status_code == 200 and overlay.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_detail_page_reports_a_tampered_record(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings
) -> None:
    from sqlalchemy import update

    from inspection.store.models import EvidenceRecordRow

    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        record = store.get_inspection(seeded[4])
        assert record is not None and record.evidence_seq is not None
        with store.session() as s:
            original = s.get(EvidenceRecordRow, record.evidence_seq).payload  # type: ignore[union-attr]
        with store.write() as s:
            s.execute(
                update(EvidenceRecordRow)
                .where(EvidenceRecordRow.seq == record.evidence_seq)
                .values(payload=original.replace('"porosity"', '"porosity" ', 1))
            )
        try:
            login(client, web_keys.auditor)
            html = client.get(f"/ui/inspections/{record.id}").text
            assert "verification failed" in html and "hash_mismatch" in html
        finally:
            with store.write() as s:
                s.execute(
                    update(EvidenceRecordRow)
                    .where(EvidenceRecordRow.seq == record.evidence_seq)
                    .values(payload=original)
                )
    assert "verification failed" not in client.get(f"/ui/inspections/{record.id}").text


def test_review_queue_review_and_manifest_export(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings
) -> None:
    login(client, web_keys.auditor)
    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        # make sure one inspection is in the queue, whatever the random tiny model decided
        from sqlalchemy import delete, update

        from inspection.store.models import InspectionRow, ReviewQueueStateRow

        with store.write() as s:
            s.execute(update(InspectionRow).where(InspectionRow.id == seeded[3]).values(needs_review=True))
            s.execute(delete(ReviewQueueStateRow))  # rescan: the queue may have seen it unflagged
    queue = client.get("/ui/reviews").text
    assert seeded[3] in queue
    token = csrf(client, "/ui/reviews")
    r = client.post(
        f"/ui/inspections/{seeded[3]}/review",
        data={"csrf_token": token, "porosity_grade": "3", "spatter_grade": "", "comment": "pores at start",
              "back": "queue"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/reviews?done=")
    assert seeded[3] not in client.get("/ui/reviews").text.split('role="status"')[-1]  # left the queue
    listed = client.get("/ui/inspections", params={"station": "S2"}).text
    assert "reviewed 3/–" in listed  # the final grades (spatter left not gradable) show in the list
    detail = client.get(f"/ui/inspections/{seeded[3]}").text
    assert "pores at start" in detail and "auditor" in detail

    export = client.get("/ui/reviews/export.jsonl")
    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"]
    lines = [json.loads(x) for x in export.text.splitlines()]
    line = next(x for x in lines if x["inspection_id"] == seeded[3])
    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        record = store.get_inspection(seeded[3])
        (review,) = store.list_reviews(seeded[3])
    assert record is not None
    assert line["grades"] == {"porosity": 3}  # spatter left "not gradable": omitted
    assert line["sha256"] == record.image_sha256
    assert line["image"] == relative_path(record.image_sha256)
    assert line["review_id"] == review.id and review.evidence_seq is not None
    assert (web_settings.images_dir / line["image"]).is_file()


def test_manifest_lines_read_back_with_the_manifest_reader(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings, tmp_path: Path
) -> None:
    from inspection.data.manifest import read_manifest
    from inspection.evidence.keys import load_signer
    from inspection.evidence.ledger import Ledger, record_review
    from inspection.service.web.queries import review_manifest

    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        ledger = Ledger(store, load_signer(web_settings.keys_dir))
        record_review(
            store, ledger, inspection_id=seeded[5], reviewer="qa", porosity_grade=1, spatter_grade=2
        )
        record_review(
            store, ledger, inspection_id=seeded[5], reviewer="qa2", porosity_grade=0, spatter_grade=2
        )
        lines = review_manifest(store)
    mine = [x for x in lines if x["inspection_id"] == seeded[5]]
    assert len(mine) == 1 and mine[0]["grades"] == {"porosity": 0, "spatter": 2}  # the latest review wins
    manifest = web_settings.images_dir / "annotations.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    try:
        records, report = read_manifest(manifest)
        assert not [p for p in report.problems if p.code in ("bad_record", "missing_image")]
    finally:
        manifest.unlink()
    assert len(records) == len(lines)
    by_sha = {r.image.rsplit("/", 1)[-1]: r for r in records}
    assert dict(by_sha[mine[0]["sha256"]].grades) == {"porosity": 0, "spatter": 2}


def test_review_form_refuses_bad_grades(client: TestClient, web_keys: Keys, seeded: list[str]) -> None:
    login(client, web_keys.admin)
    token = csrf(client)
    for data, message in (({"porosity_grade": "5"}, "0, 1, 2, 3"), ({}, "at least one final grade")):
        r = client.post(f"/ui/inspections/{seeded[0]}/review", data={"csrf_token": token, **data})
        assert r.status_code == 422 and message in r.text


def test_machine_page_draws_charts_and_parameter_history(client: TestClient, web_keys: Keys) -> None:
    login(client, web_keys.auditor)
    html = client.get("/ui/machines/M-1", params={"bucket": "count", "size": 2}).text
    assert html.count("<svg") == 4
    assert "p-chart" in html and "EWMA" in html
    assert 'data-kind="p"' in html and 'data-kind="ewma"' in html
    assert "power_w" in html and "speed_mm_s" in html
    assert client.get("/ui/machines/none-such").status_code == 404
    assert client.get("/ui/machines/M-1", params={"bucket": "week"}).status_code == 422
    machines = client.get("/ui/machines").text
    assert "M-1" in machines and "M-2" in machines


def test_recompute_outcomes_backfills_and_lists_recommendations(client: TestClient, web_keys: Keys) -> None:
    login(client, web_keys.auditor)
    r = client.post("/ui/machines/M-1/outcomes", data={"csrf_token": csrf(client)}, follow_redirects=False)
    assert r.status_code == 303 and "recomputed=" in r.headers["location"]
    assert client.get(r.headers["location"]).status_code == 200


def test_evidence_page_verifies_and_exports_a_bundle(client: TestClient, web_keys: Keys) -> None:
    login(client, web_keys.auditor)
    html = client.get("/ui/evidence").text
    assert 'id="ledger-status">chain verified' in html
    m = re.search(r"Head hash</dt><dd class=\"mono wrap\">([0-9a-f]{64})", html)
    assert m is not None
    token = csrf(client, "/ui/evidence")
    r = client.post("/ui/evidence/export", data={"csrf_token": token, "serial": "M-2"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert "manifest.json" in names and any(n.startswith("images/") for n in names)
    missing = client.post(
        "/ui/evidence/export", data={"csrf_token": token, "serial": "M-2", "since": "2099-01-01"}
    )
    assert missing.status_code == 404 and "no evidence records" in missing.text
    backwards = client.post(
        "/ui/evidence/export",
        data={"csrf_token": token, "serial": "M-2", "since": "2026-02-02", "until": "2026-02-01"},
    )
    assert backwards.status_code == 422
    assert client.post("/ui/evidence/export", data={"serial": "M-2"}).status_code == 403  # no CSRF token


def test_verify_now_rechecks_even_when_the_head_did_not_move(
    client: TestClient, web_keys: Keys, seeded: list[str], web_settings: ServiceSettings
) -> None:
    from sqlalchemy import update

    from inspection.store.models import EvidenceRecordRow

    login(client, web_keys.auditor)
    assert 'id="ledger-status">chain verified' in client.get("/ui/evidence").text  # cached from now on
    with Store.open(web_settings.db_url, web_settings.images_dir) as store:
        with store.session() as s:
            original = s.get(EvidenceRecordRow, 1).payload  # type: ignore[union-attr]
        with store.write() as s:
            s.execute(
                update(EvidenceRecordRow).where(EvidenceRecordRow.seq == 1).values(payload=original + " ")
            )
        try:
            assert "chain verified" in client.get("/ui/evidence").text  # same head: the cached result
            html = client.post("/ui/evidence/verify", data={"csrf_token": csrf(client, "/ui/evidence")}).text
            assert "chain verified" not in html
            assert "First bad record" in html and "#1" in html and "hash_mismatch" in html
        finally:
            with store.write() as s:
                s.execute(
                    update(EvidenceRecordRow).where(EvidenceRecordRow.seq == 1).values(payload=original)
                )
