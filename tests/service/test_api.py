"""The HTTP API end to end: TestClient, the tiny random model and a tmp SQLite store."""

from __future__ import annotations

import io
import json
import zipfile

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from inspection.evidence.verify import verify_store
from inspection.pipeline import recommendation_for
from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from inspection.types import InspectionResult
from tests.helpers.images import encode, gradient_rgb, png_declaring, png_with_corrupt_pixels, truncated
from tests.service.helpers import STATION_META, Keys, auth, seam_jpeg, upload


def _total(client: TestClient, key: str, **params: str) -> int:
    r = client.get("/v1/inspections", headers=auth(key), params={"limit": "1", **params})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


# ---- health ---------------------------------------------------------------------------------------


def test_healthz_needs_no_key(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_readyz_reports_model_and_database(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"model": "ok", "database": "ok"}


def test_not_started_app_is_not_ready(service_settings: ServiceSettings, keys: Keys) -> None:
    client = TestClient(create_app(service_settings))  # no `with`: the lifespan never ran
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["model"] == "not loaded"
    assert client.get("/v1/inspections", headers=auth(keys.auditor)).status_code == 503


# ---- submit and read ------------------------------------------------------------------------------


def test_submit_commits_record_before_201(
    client: TestClient, keys: Keys, service_settings: ServiceSettings
) -> None:
    data = seam_jpeg(1)
    r = upload(client, keys.s1, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["station_id"] == "S1"  # taken from the key
    assert body["machine_serial"] == STATION_META["machine_serial"]
    assert body["result"]["context"]["params"] == STATION_META["params"]
    result = InspectionResult.from_dict(body["result"])
    assert body["recommendation"] == recommendation_for(result)
    assert body["evidence"]["seq"] >= 1 and len(body["evidence"]["record_hash"]) == 64
    # A separate connection sees the committed image, inspection and a valid chain.
    with Store.open(service_settings.db_url, service_settings.images_dir) as store:
        stored = store.get_inspection(body["id"])
        assert stored is not None and stored.evidence_seq == body["evidence"]["seq"]
        assert store.images.read(stored.image_sha256) == data
        assert verify_store(store).ok


def test_get_inspection_returns_the_created_body(client: TestClient, keys: Keys) -> None:
    created = upload(client, keys.s1, seam_jpeg(2)).json()
    for key in (keys.s1, keys.auditor, keys.admin):
        r = client.get(f"/v1/inspections/{created['id']}", headers=auth(key))
        assert r.status_code == 200
        assert r.json() == created


def test_unknown_inspection_is_404(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/inspections/does-not-exist", headers=auth(keys.auditor)).status_code == 404


def test_list_filters_and_pages(client: TestClient, keys: Keys) -> None:
    serial = "M-LIST"
    meta = {**STATION_META, "machine_serial": serial}
    ids = [upload(client, keys.s2, seam_jpeg(100 + i), meta).json()["id"] for i in range(3)]
    page1 = client.get("/v1/inspections", headers=auth(keys.auditor), params={"serial": serial, "limit": 2})
    body = page1.json()
    assert body["total"] == 3 and len(body["items"]) == 2 and body["next_offset"] == 2
    page2 = client.get(
        "/v1/inspections", headers=auth(keys.auditor), params={"serial": serial, "limit": 2, "offset": 2}
    ).json()
    assert page2["next_offset"] is None
    assert sorted(i["id"] for i in body["items"] + page2["items"]) == sorted(ids)
    assert all(i["machine_serial"] == serial and i["station_id"] == "S2" for i in body["items"])


@pytest.mark.parametrize("grade", [0, 1, 2, 3])
def test_list_grade_filter_is_at_least(client: TestClient, keys: Keys, grade: int) -> None:
    upload(client, keys.s1, seam_jpeg(200 + grade))
    items = client.get(
        "/v1/inspections", headers=auth(keys.auditor), params={"grade": grade, "limit": 1000}
    ).json()["items"]
    everything = client.get("/v1/inspections", headers=auth(keys.auditor), params={"limit": 1000}).json()[
        "items"
    ]
    expected = {
        i["id"] for i in everything if i["porosity_grade"] is not None and i["porosity_grade"] >= grade
    }
    assert {i["id"] for i in items} == expected


def test_list_needs_review_and_since(client: TestClient, keys: Keys) -> None:
    created = upload(client, keys.s1, seam_jpeg(300)).json()
    flagged = client.get(
        "/v1/inspections",
        headers=auth(keys.auditor),
        params={"needs_review": str(created["needs_review"]).lower(), "since": created["created_at"]},
    ).json()
    assert created["id"] in {i["id"] for i in flagged["items"]}
    assert all(i["needs_review"] == created["needs_review"] for i in flagged["items"])
    later = client.get(
        "/v1/inspections", headers=auth(keys.auditor), params={"since": "2999-01-01T00:00:00Z"}
    ).json()
    assert later["total"] == 0


def test_overlay_png_has_image_size(client: TestClient, keys: Keys) -> None:
    created = upload(client, keys.s1, seam_jpeg(400, size=120)).json()
    r = client.get(created["overlay_url"], headers=auth(keys.s1))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "overlay is not a decodable PNG"
    assert img.shape[1] == created["result"]["width"]  # the header band adds rows above the photo
    assert img.shape[0] >= created["result"]["height"]


def test_machine_trend_matches_list(client: TestClient, keys: Keys) -> None:
    serial = "M-TREND"
    for i in range(5):
        upload(client, keys.s1, seam_jpeg(500 + i), {**STATION_META, "machine_serial": serial})
    r = client.get(
        f"/v1/machines/{serial}/trend", headers=auth(keys.auditor), params={"bucket": "count", "size": 2}
    )
    assert r.status_code == 200, r.text
    buckets = r.json()["buckets"]
    assert [b["inspections"] for b in buckets] == [2, 2, 1]
    listed = client.get("/v1/inspections", headers=auth(keys.auditor), params={"serial": serial}).json()[
        "items"
    ]
    grades = [i["porosity_grade"] for i in listed if i["porosity_grade"] is not None]
    graded = sum(b["graded"] for b in buckets)
    assert graded == len(grades)
    if grades:
        weighted = sum(b["mean_porosity_grade"] * b["graded"] for b in buckets if b["graded"])
        assert weighted / graded == pytest.approx(sum(grades) / len(grades), abs=1e-3)
    day = client.get(f"/v1/machines/{serial}/trend", headers=auth(keys.auditor)).json()
    assert sum(b["inspections"] for b in day["buckets"]) == 5


def test_trend_of_unknown_machine_is_404(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/machines/NOPE/trend", headers=auth(keys.auditor)).status_code == 404


# ---- auth -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wik_not-a-real-key"},
        {"X-API-Key": "wik_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "wrong-bearer", "wrong-x-api-key", "wrong-scheme"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/inspections"),
        ("GET", "/v1/inspections/x"),
        ("GET", "/metrics"),
        ("POST", "/v1/evidence/export"),
    ],
)
def test_missing_or_wrong_key_is_401(
    client: TestClient, headers: dict[str, str], method: str, path: str
) -> None:
    r = client.request(method, path, headers=headers, json={"serial": "M-1"} if method == "POST" else None)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"


def test_submit_without_key_is_401_and_records_nothing(client: TestClient, keys: Keys) -> None:
    before = _total(client, keys.auditor)
    r = client.post("/v1/inspections", files={"image": ("a.jpg", seam_jpeg(600), "image/jpeg")})
    assert r.status_code == 401
    assert _total(client, keys.auditor) == before


def test_x_api_key_header_works(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/inspections", headers={"X-API-Key": keys.auditor}).status_code == 200


def test_station_cannot_read_another_stations_inspection(client: TestClient, keys: Keys) -> None:
    created = upload(client, keys.s1, seam_jpeg(700)).json()
    assert client.get(f"/v1/inspections/{created['id']}", headers=auth(keys.s2)).status_code == 404
    assert client.get(created["overlay_url"], headers=auth(keys.s2)).status_code == 404
    listed = client.get("/v1/inspections", headers=auth(keys.s2), params={"limit": 1000}).json()["items"]
    assert created["id"] not in {i["id"] for i in listed}
    assert {i["station_id"] for i in listed} <= {"S2"}


def test_station_cannot_list_or_submit_for_another_station(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/inspections", headers=auth(keys.s1), params={"station": "S2"}).status_code == 403
    r = upload(client, keys.s1, seam_jpeg(701), {**STATION_META, "station_id": "S2"})
    assert r.status_code == 403
    assert "S2" in r.json()["detail"]


def test_auditor_cannot_submit(client: TestClient, keys: Keys) -> None:
    assert upload(client, keys.auditor, seam_jpeg(702)).status_code == 403


def test_station_export_is_403_auditor_export_is_a_zip(client: TestClient, keys: Keys) -> None:
    serial = "M-EXPORT"
    created = upload(client, keys.s1, seam_jpeg(800), {**STATION_META, "machine_serial": serial}).json()
    body = {"serial": serial}
    assert client.post("/v1/evidence/export", headers=auth(keys.s1), json=body).status_code == 403
    r = client.post("/v1/evidence/export", headers=auth(keys.auditor), json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = zf.namelist()
    assert manifest["serial"] == serial
    assert [created["evidence"]["seq"], created["evidence"]["record_hash"]] in manifest["subject_records"]
    assert f"images/{created['image_sha256']}.jpg" in names
    assert "manifest.sig" in names


def test_export_of_machine_without_records_is_404(client: TestClient, keys: Keys) -> None:
    r = client.post("/v1/evidence/export", headers=auth(keys.auditor), json={"serial": "M-NONE"})
    assert r.status_code == 404


def test_admin_manages_keys_and_revoked_key_is_401(client: TestClient, keys: Keys) -> None:
    assert client.get("/v1/keys", headers=auth(keys.s1)).status_code == 403
    r = client.post("/v1/keys", headers=auth(keys.admin), json={"name": "temp", "role": "auditor"})
    assert r.status_code == 201
    temp = r.json()["key"]
    assert client.get("/v1/inspections", headers=auth(temp)).status_code == 200
    listed = client.get("/v1/keys", headers=auth(keys.admin)).json()
    assert "temp" in {k["name"] for k in listed} and all(k["key"] is None for k in listed)
    assert client.delete("/v1/keys/temp", headers=auth(keys.admin)).json()["revoked_at"] is not None
    assert client.get("/v1/inspections", headers=auth(temp)).status_code == 401


# ---- limits ---------------------------------------------------------------------------------------


def test_too_many_bytes_is_413(client: TestClient, keys: Keys, service_settings: ServiceSettings) -> None:
    for size in (service_settings.max_upload_bytes + 10, service_settings.max_upload_bytes * 2):
        data = b"\xff\xd8\xff" + b"\x00" * size  # checked before any decoding
        r = upload(client, keys.s1, data)
        assert r.status_code == 413, (size, r.text)
        assert str(service_settings.max_upload_bytes) in r.json()["detail"]


def test_too_many_pixels_is_413(client: TestClient, keys: Keys, service_settings: ServiceSettings) -> None:
    r = upload(client, keys.s1, png_declaring(1000, 1000), content_type="image/png")
    assert r.status_code == 413, r.text
    assert "max_pixels" in r.json()["detail"]


@pytest.mark.parametrize(
    ("content_type", "data"),
    [
        ("text/plain", b"hello, not an image"),
        ("application/pdf", b"%PDF-1.4 ..."),
        ("image/gif", b"GIF89a" + b"\x00" * 40),
        ("application/octet-stream", b"\x00\x01\x02 garbage"),
    ],
)
def test_non_image_upload_is_415(client: TestClient, keys: Keys, content_type: str, data: bytes) -> None:
    r = upload(client, keys.s1, data, content_type=content_type)
    assert r.status_code == 415, r.text
    assert "valid" in r.json()["detail"]


@pytest.mark.parametrize(
    ("content_type", "data", "code"),
    [
        ("image/jpeg", truncated(encode(gradient_rgb(64, 64), "JPEG")), "truncated"),
        ("image/png", png_with_corrupt_pixels(gradient_rgb(64, 64)), "corrupt"),
        ("image/jpeg", b"definitely not a jpeg", "not_an_image"),
    ],
)
def test_unreadable_image_is_422_naming_the_problem(
    client: TestClient, keys: Keys, content_type: str, data: bytes, code: str
) -> None:
    before = _total(client, keys.auditor)
    r = upload(client, keys.s1, data, content_type=content_type, filename="broken.img")
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "broken.img" in detail and code in detail
    assert _total(client, keys.auditor) == before


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"colour": "red"}), "colour"),
        (json.dumps({"thickness_mm": -1}), "thickness_mm"),
        (json.dumps({"quality_level": "A"}), "quality_level"),
    ],
)
def test_invalid_metadata_is_422(client: TestClient, keys: Keys, metadata: str, fragment: str) -> None:
    r = client.post(
        "/v1/inspections",
        headers=auth(keys.s1),
        files={"image": ("a.jpg", seam_jpeg(900), "image/jpeg")},
        data={"metadata": metadata},
    )
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"]


# ---- idempotency ----------------------------------------------------------------------------------


def test_same_idempotency_key_twice_gives_one_record(client: TestClient, keys: Keys) -> None:
    data = seam_jpeg(1000)
    before = _total(client, keys.auditor)
    first = upload(client, keys.s1, data, idempotency_key="retry-1")
    second = upload(client, keys.s1, data, idempotency_key="retry-1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == first.json()
    assert _total(client, keys.auditor) == before + 1


def test_idempotency_key_reused_for_other_image_is_409(client: TestClient, keys: Keys) -> None:
    assert upload(client, keys.s1, seam_jpeg(1100), idempotency_key="retry-2").status_code == 201
    r = upload(client, keys.s1, seam_jpeg(1101), idempotency_key="retry-2")
    assert r.status_code == 409
    assert "retry-2" in r.json()["detail"]


def test_idempotency_keys_are_per_station(client: TestClient, keys: Keys) -> None:
    data = seam_jpeg(1200)
    a = upload(client, keys.s1, data, idempotency_key="shared")
    b = upload(client, keys.s2, data, idempotency_key="shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


# ---- metrics --------------------------------------------------------------------------------------


def _metric(text: str, line_prefix: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_inspections_and_latency(client: TestClient, keys: Keys) -> None:
    created_line = 'weldinspect_inspections_total{status="created"}'
    rejected_line = 'weldinspect_inspections_total{status="rejected"}'
    route_line = (
        'weldinspect_http_requests_total{method="GET",route="/v1/inspections/{inspection_id}",status="200"}'
    )
    before = client.get("/metrics", headers=auth(keys.auditor)).text
    created = upload(client, keys.s1, seam_jpeg(1300)).json()
    upload(client, keys.s1, b"not an image", content_type="text/plain")
    client.get(f"/v1/inspections/{created['id']}", headers=auth(keys.s1))
    r = client.get("/metrics", headers=auth(keys.auditor))
    assert r.headers["content-type"].startswith("text/plain")
    after = r.text
    assert _metric(after, created_line) == _metric(before, created_line) + 1
    assert _metric(after, rejected_line) == _metric(before, rejected_line) + 1
    assert _metric(after, route_line) == _metric(before, route_line) + 1
    count = "weldinspect_inference_seconds_count"
    assert _metric(after, count) == _metric(before, count) + 1
    assert _metric(after, 'weldinspect_inference_seconds_bucket{le="+Inf"}') == _metric(after, count)
