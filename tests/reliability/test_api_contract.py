"""The contract around the endpoints: API docs behind a key, ``/`` -> dashboard, every error body a
Problem (``detail`` string + ``code``), the upload's documented limits (issue 20)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inspection.service.app import create_app
from inspection.service.openapi import openapi_document
from inspection.service.settings import ServiceSettings
from tests.service.helpers import Keys, auth, make_keys, make_settings, seam_jpeg


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ServiceSettings:
    return make_settings(tmp_path_factory.mktemp("contract"), tiny_model_dir)


@pytest.fixture(scope="module")
def keys(settings: ServiceSettings) -> Keys:
    return make_keys(settings)


@pytest.fixture(scope="module")
def client(settings: ServiceSettings, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def test_openapi_json_needs_a_key_of_any_role(client: TestClient, keys: Keys) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    for key in (keys.s1, keys.auditor, keys.admin):
        r = client.get("/openapi.json", headers=auth(key))
        assert r.status_code == 200
        assert r.json() == openapi_document()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_interactive_docs_are_off_by_default(client: TestClient, keys: Keys, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.get(path, headers=auth(keys.admin)).status_code == 404


def test_api_docs_setting_serves_them_openly(settings: ServiceSettings, keys: Keys) -> None:
    from dataclasses import replace

    with TestClient(create_app(replace(settings, api_docs=True))) as c:
        for path in ("/docs", "/redoc"):
            r = c.get(path)
            assert r.status_code == 200 and "text/html" in r.headers["content-type"]
            assert "/openapi.json" in r.text
        assert c.get("/openapi.json").json() == openapi_document()


def test_root_redirects_to_the_dashboard(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/"


def test_root_without_the_dashboard_is_404(settings: ServiceSettings) -> None:
    from dataclasses import replace

    with TestClient(create_app(replace(settings, dashboard=False))) as c:
        assert c.get("/", follow_redirects=False).status_code == 404


def test_metrics_401_is_a_json_problem_as_documented(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    responses = openapi_document()["paths"]["/metrics"]["get"]["responses"]
    assert "application/json" in responses["401"]["content"]
    assert "text/plain" in responses["200"]["content"]


def test_validation_errors_are_problems_not_lists(client: TestClient, keys: Keys) -> None:
    r = client.post("/v1/keys", headers=auth(keys.admin), json={"name": "", "role": "admin"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid" and "body.name" in r.json()["detail"]
    doc = openapi_document()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and "content" in response:
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith(("/Problem", "/Health")), f"{method} {path} {status}: {ref}"


def test_every_keyed_endpoint_documents_503_with_retry_after() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path in ("/healthz",):
                continue
            assert "503" in op["responses"], f"{method} {path} does not document 503"
            if path != "/readyz":
                assert "Retry-After" in op["responses"]["503"]["headers"], f"{method} {path}"


def test_empty_image_part_is_documented_and_rejected(client: TestClient, keys: Keys) -> None:
    body = openapi_document()["components"]["schemas"]["Body_create_inspection_v1_inspections_post"]
    assert body["properties"]["image"]["minLength"] == 1
    r = client.post("/v1/inspections", headers=auth(keys.s1), files={"image": ("e.jpg", b"", "image/jpeg")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]


def test_metadata_over_the_multipart_part_limit_is_413(client: TestClient, keys: Keys) -> None:
    """Over 1 MiB the multipart parser stops reading the part (it answered 400 before)."""
    r = client.post(
        "/v1/inspections",
        headers=auth(keys.s1),
        files={"image": ("s.jpg", seam_jpeg(1), "image/jpeg")},
        data={"metadata": '{"firmware": "' + "x" * (2 * 1024 * 1024) + '"}'},
    )
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    assert "metadata may have at most 65536 bytes" in r.json()["detail"]


def test_malformed_json_body_is_a_documented_4xx(client: TestClient, keys: Keys) -> None:
    headers = {**auth(keys.admin), "Content-Type": "application/json"}
    for body in (b"\xff\xfe not utf-8", b"[" * 100_000 + b"]" * 100_000, b"{"):
        r = client.post("/v1/keys", headers=headers, content=body)
        assert r.status_code in (400, 422), r.text
        assert isinstance(r.json()["detail"], str)
    assert "400" in openapi_document()["paths"]["/v1/keys"]["post"]["responses"]


def test_service_starting_is_503_with_retry_after(settings: ServiceSettings, keys: Keys) -> None:
    c = TestClient(create_app(settings))  # no `with`: the lifespan never ran
    r = c.get("/v1/inspections", headers=auth(keys.auditor))
    assert r.status_code == 503 and "Retry-After" in r.headers
