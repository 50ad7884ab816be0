"""Hostile and out-of-range inputs get a 4xx naming the field and what is valid, rejected at the API
boundary before the model runs; never a 500. Unexpected errors are still counted in the metrics.

Each row once crashed a request with 500 (issue 20): non-finite or huge numbers and NUL characters
failed while the evidence record was written (after the model had run), deep metadata raised
RecursionError, a huge ``offset`` overflowed the database driver, NUL characters were a PostgreSQL
``DataError``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inspection.service.app import create_app
from inspection.service.schemas import PROCESSES
from inspection.service.validation import MAX_METADATA_BYTES
from inspection.standards import load_tables
from tests.reliability.api_support import INFERENCES, metric, requests_total, throwaway_database
from tests.service.helpers import STATION_META, Keys, auth, make_keys, make_settings, seam_jpeg

DEEP = 30_000  # 60 kB of brackets: under the size limit, far over Python's recursion limit


def _post_raw(client: TestClient, key: str, metadata: str) -> Any:
    return client.post(
        "/v1/inspections",
        headers=auth(key),
        files={"image": ("seam.jpg", seam_jpeg(3), "image/jpeg")},
        data={"metadata": metadata},
    )


def _meta(**changes: Any) -> str:
    return json.dumps({**STATION_META, **changes})


# (case, metadata text, status, words the detail must contain)
BAD_METADATA: list[tuple[str, str, int, tuple[str, ...]]] = [
    ("NaN param", '{"params": {"power_w": NaN}}', 422, ("NaN",)),
    ("Infinity param", '{"params": {"power_w": Infinity}}', 422, ("Infinity",)),
    ("-Infinity thickness", '{"thickness_mm": -Infinity}', 422, ("Infinity",)),
    ("1e400 overflows to inf", '{"params": {"power_w": 1e400}}', 422, ("params.power_w", "finite")),
    ("thickness 1e308", _meta(thickness_mm=1e308), 422, ("thickness_mm", "300")),
    ("thickness 0", _meta(thickness_mm=0), 422, ("thickness_mm", "greater than 0")),
    ("scale 1e308", _meta(mm_per_px=1e308), 422, ("mm_per_px", "10")),
    ("integer 2**70 in params", f'{{"params": {{"n": {2**70}}}}}', 422, ("params.n", "2**53")),
    ("float 1e300 in params", '{"params": {"n": 1e300}}', 422, ("params.n", "2**53")),
    ("nested 30,000 deep", '{"params": {"a": ' + "[" * DEEP + "]" * DEEP + "}}", 422, ("levels deep",)),
    ("nested 100,000 deep (200 kB)", "[" * 100_000 + "]" * 100_000, 413, ("65536",)),
    ("nested 17 deep", '{"params": {"a": ' + "[" * 15 + "]" * 15 + "}}", 422, ("16",)),
    ("NUL in part_id", _meta(part_id="P\x00-1"), 422, ("part_id", "NUL")),
    ("NUL in a params key", _meta(params={"power\x00_w": 1}), 422, ("params", "NUL")),
    ("NUL in a params value", _meta(params={"gas": "argon\x00"}), 422, ("params.gas", "NUL")),
    ("NUL in material", _meta(material="steel\x00"), 422, ("material", "NUL")),
    ("lone surrogate", '{"operator_id": "\\ud800"}', 422, ("operator_id", "surrogate")),
    ("process plasma", _meta(process="plasma"), 422, ("process", "laser", "electron_beam", "tig")),
    ("duplicate key", '{"part_id": "a", "part_id": "b"}', 422, ("duplicate",)),
    ("not an object", "[1, 2]", 422, ("object",)),
    ("not JSON", "{part_id:", 422, ("JSON",)),
    ("unknown field", _meta(colour="red"), 422, ("colour", "Extra inputs")),
    ("empty params key", _meta(params={"": 1}), 422, ("params", "1-128")),
    (
        "metadata over 64 KiB",
        _meta(params={"note": "x" * 1000, **{f"k{i}": i for i in range(8000)}}),
        413,
        ("65536",),
    ),
    ("metadata over 1 MiB", _meta(firmware="x" * (1024 * 1024 + 10)), 413, (str(MAX_METADATA_BYTES),)),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[tuple[TestClient, Keys]]:
    settings = make_settings(tmp_path_factory.mktemp("inputs"), tiny_model_dir)
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as client:
        yield client, keys


@pytest.mark.parametrize(
    ("case", "metadata", "status", "words"), BAD_METADATA, ids=[r[0] for r in BAD_METADATA]
)
def test_bad_metadata_is_4xx_before_the_model_runs(
    api: tuple[TestClient, Keys], case: str, metadata: str, status: int, words: tuple[str, ...]
) -> None:
    client, keys = api
    inferences = metric(client, keys.admin, INFERENCES)
    r = _post_raw(client, keys.s1, metadata)
    assert r.status_code == status, f"{case}: {r.status_code} {r.text[:300]}"
    body = r.json()
    assert set(body) == {"detail", "code"} and isinstance(body["detail"], str)
    for word in words:
        assert word in body["detail"], f"{case}: {word!r} not in {body['detail'][:300]!r}"
    assert metric(client, keys.admin, INFERENCES) == inferences, f"{case}: the model ran"
    assert metric(client, keys.admin, requests_total("POST", "/v1/inspections", status)) >= 1


def test_boundary_values_are_accepted(api: tuple[TestClient, Keys]) -> None:
    client, keys = api
    edge = {"n": 2**53 - 1, "m": -(2**53) + 1, "f": 1.5e15, "s": "é" * 1024, "nested": [[{"a": None}]]}
    r = _post_raw(client, keys.s1, _meta(thickness_mm=300, mm_per_px=10, params=edge))
    assert r.status_code == 201, r.text
    assert r.json()["result"]["context"]["params"]["n"] == 2**53 - 1


@pytest.mark.parametrize("process", PROCESSES)
def test_every_documented_process_is_accepted(api: tuple[TestClient, Keys], process: str) -> None:
    client, keys = api
    r = _post_raw(client, keys.s1, _meta(process=process))
    assert r.status_code == 201, r.text
    assert r.json()["result"]["context"]["process"] == process


def test_processes_are_those_the_standards_tables_know() -> None:
    assert sorted(PROCESSES) == sorted(load_tables().process_aliases)


# (case, method, url, json body or None, words the detail must contain)
BAD_REQUESTS: list[tuple[str, str, str, Any, tuple[str, ...]]] = [
    ("offset 10**30", "GET", f"/v1/inspections?offset={10**30}", None, ("offset", "1000000000")),
    ("offset -1", "GET", "/v1/inspections?offset=-1", None, ("offset",)),
    ("limit 10**30", "GET", f"/v1/inspections?limit={10**30}", None, ("limit", "1000")),
    ("NUL in serial", "GET", "/v1/inspections?serial=M%00", None, ("serial", "NUL")),
    ("NUL in part_id", "GET", "/v1/inspections?part_id=%00", None, ("part_id", "NUL")),
    ("NUL in an id", "GET", "/v1/inspections/abc%00def", None, ("NUL",)),
    ("serial too long", "GET", "/v1/inspections?serial=" + "x" * 129, None, ("serial", "128")),
    ("since beyond UTC", "GET", "/v1/inspections?since=9999-12-31T23:59:59-23:00", None, ("since",)),
    ("until before year 1", "GET", "/v1/inspections?until=0001-01-01T00:00:00%2B23:00", None, ("until",)),
    ("grade 7", "GET", "/v1/inspections?grade=7", None, ("grade", "3")),
    ("trend size 10**30", "GET", f"/v1/machines/M-1/trend?size={10**30}", None, ("size",)),
    ("NUL in trend serial", "GET", "/v1/machines/M%00/trend", None, ("NUL",)),
    (
        "trend since beyond UTC",
        "GET",
        "/v1/machines/M-1/trend?since=9999-12-31T23:59:59-23:00",
        None,
        ("since",),
    ),
    ("export NUL serial", "POST", "/v1/evidence/export", {"serial": "M\x00"}, ("serial", "NUL")),
    (
        "export since beyond UTC",
        "POST",
        "/v1/evidence/export",
        {"serial": "M-1", "since": "9999-12-31T23:59:59-23:00"},
        ("since",),
    ),
    ("key name with NUL", "POST", "/v1/keys", {"name": "a\x00", "role": "admin"}, ("name",)),
    ("key name with newline", "POST", "/v1/keys", {"name": "abc\n", "role": "admin"}, ("name",)),
    (
        "key station with NUL",
        "POST",
        "/v1/keys",
        {"name": "s9", "role": "station", "station_id": "S\x00"},
        ("station_id", "NUL"),
    ),
    ("key role", "POST", "/v1/keys", {"name": "x1", "role": "root"}, ("role", "admin")),
    ("revoke NUL name", "DELETE", "/v1/keys/a%00b", None, ("NUL",)),
]


@pytest.mark.parametrize(
    ("case", "method", "url", "body", "words"), BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS]
)
def test_bad_parameters_are_422_naming_the_field(
    api: tuple[TestClient, Keys], case: str, method: str, url: str, body: Any, words: tuple[str, ...]
) -> None:
    client, keys = api
    r = client.request(method, url, headers=auth(keys.admin), json=body)
    assert r.status_code == 422, f"{case}: {r.status_code} {r.text[:300]}"
    detail = r.json()["detail"]
    assert isinstance(detail, str) and r.json()["code"] == "invalid"
    for word in words:
        assert word in detail, f"{case}: {word!r} not in {detail[:300]!r}"


def test_an_unexpected_error_is_a_counted_500(
    api: tuple[TestClient, Keys], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, keys = api
    store = client.app.state.service.store  # type: ignore[attr-defined]

    def broken(_inspection_id: str) -> None:
        msg = "a bug"
        raise RuntimeError(msg)

    sample = requests_total("GET", "/v1/inspections/{inspection_id}", 500)
    before = metric(client, keys.admin, sample)
    monkeypatch.setattr(store, "get_inspection", broken)
    r = client.get("/v1/inspections/x", headers=auth(keys.auditor))
    monkeypatch.undo()
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error; the service log has the cause", "code": "internal"}
    assert metric(client, keys.admin, sample) == before + 1


# ---- PostgreSQL: NUL characters used to be a psycopg DataError (500) --------------------------------


@pytest.fixture(scope="module")
def pg_api(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[tuple[TestClient, Keys]]:
    with throwaway_database() as (url, _name, _admin):
        settings = make_settings(tmp_path_factory.mktemp("pg-inputs"), tiny_model_dir, db_url=url)
        keys = make_keys(settings)
        with TestClient(create_app(settings)) as client:
            yield client, keys


PG_NUL = [row for row in BAD_METADATA if "NUL" in row[0]]


@pytest.mark.postgres
@pytest.mark.parametrize(("case", "metadata", "status", "words"), PG_NUL, ids=[r[0] for r in PG_NUL])
def test_nul_metadata_on_postgresql_is_422(
    pg_api: tuple[TestClient, Keys], case: str, metadata: str, status: int, words: tuple[str, ...]
) -> None:
    client, keys = pg_api
    r = _post_raw(client, keys.s1, metadata)
    assert r.status_code == status, f"{case}: {r.status_code} {r.text[:300]}"


@pytest.mark.postgres
@pytest.mark.parametrize(
    "url", ["/v1/inspections?serial=M%00", "/v1/inspections/a%00", "/v1/machines/M%00/trend"]
)
def test_nul_parameters_on_postgresql_are_422(pg_api: tuple[TestClient, Keys], url: str) -> None:
    client, keys = pg_api
    r = client.get(url, headers=auth(keys.auditor))
    assert r.status_code == 422, r.text
