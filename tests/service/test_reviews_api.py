"""Reviews through the JSON API (``/v1/inspections/{id}/reviews``): the same rules and the same signed
record as the dashboard's review form (tests/service/web/test_review_marks.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inspection.config import AppConfig, GradingConfig, ServiceConfig
from inspection.evidence.keys import load_signer
from inspection.evidence.ledger import Ledger, get_record
from inspection.evidence.verify import verify_store
from inspection.service.app import create_app
from inspection.store import Store
from tests.service.helpers import PHOTO_W, auth, make_keys, make_settings, photo_with_findings


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[Any, ...]]:
    """A service at audit rate 1 with ten recorded photos (two pores and one spatter found, porosity
    grade 2, spatter 0): 0-7 of station st-1, 8-9 of station S1 (the station key's)."""
    config = AppConfig(service=ServiceConfig(audit_rate=1.0))
    settings = make_settings(tmp_path_factory.mktemp("reviews-api"), tiny_model_dir, app_config=config)
    keys = make_keys(settings)
    with Store.open(settings.db_url, settings.images_dir) as store:
        ledger = Ledger(store, load_signer(settings.keys_dir))
        ids = [photo_with_findings(store, ledger, seed) for seed in range(1, 9)]
        ids += [photo_with_findings(store, ledger, seed, station="S1") for seed in (9, 10)]
    with TestClient(create_app(settings)) as client:
        yield client, keys, settings, ids


def _post(client: TestClient, key: str, iid: str, **body: Any) -> Any:
    return client.post(f"/v1/inspections/{iid}/reviews", headers=auth(key), json=body)


def test_review_with_marks_is_stored_signed_and_listed(api: tuple[Any, ...]) -> None:
    client, keys, settings, ids = api
    marks = [
        {"label": "porosity", "box": [75, 55, 95, 75], "origin": "model", "finding": 0},  # moved
        {"label": "porosity", "point": [140.04, 40]},
        {"label": "spatter", "point": [10, 150]},
    ]
    r = _post(
        client, keys.auditor, ids[0], porosity_grade=2, spatter_grade=1, comment=" two pores ", marks=marks
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["reviewer"] == "auditor"  # the key's name, never a field of the body
    assert (body["porosity_grade"], body["spatter_grade"], body["comment"]) == (2, 1, "two pores")
    assert body["audit"] is True  # not flagged, audit rate 1: an audit sample
    assert body["marks"][1] == {"label": "porosity", "point": [140.0, 40.0], "origin": "reviewer"}
    with Store.open(settings.db_url, settings.images_dir) as store:
        (stored,) = store.list_reviews(ids[0])
        with store.session() as s:
            record = get_record(s, body["evidence_seq"])
        assert verify_store(store).ok
    assert stored.id == body["id"] and stored.evidence_seq == body["evidence_seq"]
    assert record is not None and record.kind == "review"
    assert record.data["review_id"] == body["id"] and record.data["reviewer"] == "auditor"
    assert record.data["marks"] == body["marks"] and record.data["audit"] is True
    assert record.data["grades"] == {"porosity": 2, "spatter": 1}

    listed = client.get(f"/v1/inspections/{ids[0]}/reviews", headers=auth(keys.admin))
    assert listed.status_code == 200 and listed.json() == [body]


def test_reviews_are_listed_oldest_first_and_the_form_shares_the_list(api: tuple[Any, ...]) -> None:
    client, keys, _, ids = api
    first = _post(client, keys.auditor, ids[1], porosity_grade=2, spatter_grade=0).json()
    second = _post(client, keys.admin, ids[1], not_gradable_reason="glare over the seam").json()
    assert second["reviewer"] == "admin" and second["marks"] is None
    assert (second["porosity_grade"], second["spatter_grade"]) == (None, None)
    assert second["evidence_seq"] > first["evidence_seq"]
    listed = client.get(f"/v1/inspections/{ids[1]}/reviews", headers=auth(keys.auditor)).json()
    assert [x["id"] for x in listed] == [first["id"], second["id"]]
    assert listed[1]["not_gradable_reason"] == "glare over the seam"
    assert client.get(f"/v1/inspections/{ids[2]}/reviews", headers=auth(keys.auditor)).json() == []


PORE = {"label": "porosity", "point": [1, 1]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"porosity_grade": 2, "marks": [{"label": "porosity", "box": [10, 10, PHOTO_W + 5, 20]}]},
         "marks[0].box: x1 = 325.0 is outside the image (width 320)"),
        ({"porosity_grade": 2, "marks": [{**PORE, "label": "slag"}]}, "marks[0].label: unknown kind"),
        ({"porosity_grade": 2, "marks": [PORE] * 501}, "marks: has 501 marks"),
        ({"porosity_grade": 2, "marks": [{**PORE, "origin": "model", "finding": 7}]}, "marks[0].finding"),
        ({"porosity_grade": 2, "marks": ["porosity"]}, "marks[0]: must be an object"),
        ({"porosity_grade": 4}, "porosity_grade"),
        ({"spatter_grade": -1}, "spatter_grade"),
        ({"porosity_grade": "two"}, "porosity_grade"),
        ({"marks": "[]"}, "marks"),
        ({"porosity_grade": 1, "reviewer": "someone else"}, "reviewer"),
        ({"porosity_grade": 1, "not_gradable_reason": "glare"}, "not_gradable has no grades"),
        ({"not_gradable_reason": "glare", "marks": [PORE]}, "has no marks"),
        ({"not_gradable_reason": ""}, "not_gradable_reason"),
        ({"comment": "nothing else"}, "at least one final grade"),
        ({}, "at least one final grade"),
    ],
)  # fmt: skip
def test_bad_reviews_are_422_naming_the_field_and_sign_nothing(
    api: tuple[Any, ...], body: dict[str, Any], fragment: str
) -> None:
    client, keys, settings, ids = api
    with Store.open(settings.db_url, settings.images_dir) as store:
        head = Ledger(store, load_signer(settings.keys_dir)).head()
    r = _post(client, keys.auditor, ids[3], **body)
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    with Store.open(settings.db_url, settings.images_dir) as store:
        assert store.list_reviews(ids[3]) == []  # nothing stored ...
        assert Ledger(store, load_signer(settings.keys_dir)).head() == head  # ... nothing signed


def test_unparseable_body_is_400_or_422(api: tuple[Any, ...]) -> None:
    client, keys, _, ids = api
    r = client.post(
        f"/v1/inspections/{ids[3]}/reviews",
        headers={**auth(keys.auditor), "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code in (400, 422) and r.json()["detail"]


@pytest.mark.parametrize(
    ("key", "method", "target", "status"),
    [
        ("s1", "post", 8, 403),  # a station never reviews, not even its own inspection
        ("s1", "get", 8, 200),  # but reads the reviews of its own inspections
        ("s1", "get", 4, 404),  # not another station's (existence not revealed)
        ("s2", "post", 4, 403),
        ("auditor", "post", "nope", 404),
        ("auditor", "get", "nope", 404),
        ("admin", "post", 5, 201),
    ],
)
def test_roles_and_unknown_inspections(
    api: tuple[Any, ...], key: str, method: str, target: int | str, status: int
) -> None:
    client, keys, _, ids = api
    iid = ids[target] if isinstance(target, int) else target
    url = f"/v1/inspections/{iid}/reviews"
    headers = auth(getattr(keys, key))
    if method == "post":
        r = client.post(url, headers=headers, json={"porosity_grade": 2, "spatter_grade": 0})
    else:
        r = client.get(url, headers=headers)
    assert r.status_code == status, r.text


def test_missing_key_is_401(api: tuple[Any, ...]) -> None:
    client, _, _, ids = api
    assert client.post(f"/v1/inspections/{ids[6]}/reviews", json={"porosity_grade": 0}).status_code == 401
    assert client.get(f"/v1/inspections/{ids[6]}/reviews").status_code == 401


# ---- final grades against the marks (the same rule as the form: tests/store/test_marks.py) --------

TWO_PORES = [
    {"label": "porosity", "box": [75, 55, 95, 75], "origin": "model", "finding": 0},
    {"label": "porosity", "point": [140, 40]},
]
SPATTER = {"label": "spatter", "point": [10, 150]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"porosity_grade": 1, "spatter_grade": 0, "marks": TWO_PORES},
         "porosity_grade: is 1, but the review's porosity marks (2) give porosity grade 2"),
        ({"porosity_grade": 3, "marks": TWO_PORES}, "porosity_grade: is 3, but"),
        ({"porosity_grade": 2, "spatter_grade": 0, "marks": [*TWO_PORES, SPATTER]},
         "spatter_grade: is 0, but the review's spatter marks (1) give at least spatter grade 1"),
        ({"spatter_grade": 1, "marks": [SPATTER] * 6}, "give at least spatter grade 2"),
    ],
)  # fmt: skip
def test_grades_that_contradict_the_marks_are_422(
    api: tuple[Any, ...], body: dict[str, Any], fragment: str
) -> None:
    client, keys, settings, ids = api
    r = _post(client, keys.auditor, ids[6], **body)
    assert r.status_code == 422 and fragment in r.json()["detail"], r.text
    with Store.open(settings.db_url, settings.images_dir) as store:
        assert store.list_reviews(ids[6]) == []


def test_marks_without_a_porosity_grade_give_it_and_the_record_signs_it(api: tuple[Any, ...]) -> None:
    client, keys, settings, ids = api
    r = _post(client, keys.auditor, ids[7], marks=[*TWO_PORES, SPATTER, SPATTER])
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["porosity_grade"], body["spatter_grade"]) == (2, None)  # spatter marks are a lower bound
    with Store.open(settings.db_url, settings.images_dir) as store, store.session() as s:
        record = get_record(s, body["evidence_seq"])
    assert record is not None and record.data["grades"] == {"porosity": 2, "spatter": None}


@pytest.fixture(scope="module")
def wide(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[Any, ...]]:
    """A service that grades with other count thresholds (porosity 1, 3, 5) and one recorded photo."""
    config = AppConfig(grading=GradingConfig(porosity_thresholds=(1, 3, 5)))
    settings = make_settings(tmp_path_factory.mktemp("reviews-wide"), tiny_model_dir, app_config=config)
    keys = make_keys(settings)
    with Store.open(settings.db_url, settings.images_dir) as store:
        iid = photo_with_findings(store, Ledger(store, load_signer(settings.keys_dir)), 1)
    with TestClient(create_app(settings)) as client:
        yield client, keys, iid


def test_the_check_uses_the_services_grading_thresholds(wide: tuple[Any, ...]) -> None:
    client, keys, iid = wide
    r = _post(client, keys.auditor, iid, porosity_grade=2, marks=TWO_PORES)  # 2 by the defaults
    assert (
        r.status_code == 422 and "give porosity grade 1 (grade 1 from 1, 2 from 3, 3 from 5 pores)" in r.text
    )
    r = _post(client, keys.auditor, iid, porosity_grade=1, marks=TWO_PORES)
    assert r.status_code == 201 and r.json()["porosity_grade"] == 1
