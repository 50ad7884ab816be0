"""The service on PostgreSQL (several stations share one database): submit, replay, concurrency, export."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inspection.evidence.verify import verify_store
from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from tests.service.helpers import STATION_META, Keys, auth, make_keys, make_settings, seam_jpeg, upload

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_settings(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, pg_url: str
) -> ServiceSettings:
    return make_settings(tmp_path_factory.mktemp("pg-service"), tiny_model_dir, db_url=pg_url)


@pytest.fixture(scope="module")
def pg_keys(pg_settings: ServiceSettings) -> Keys:
    return make_keys(pg_settings)


@pytest.fixture(scope="module")
def pg_client(pg_settings: ServiceSettings, pg_keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(pg_settings)) as c:
        yield c


def test_ready_on_postgresql(pg_client: TestClient, pg_settings: ServiceSettings) -> None:
    assert pg_client.get("/readyz").json()["checks"] == {"model": "ok", "database": "ok"}
    with Store.open(pg_settings.db_url, pg_settings.images_dir) as store:
        assert store.dialect == "postgresql"


def test_submit_replay_and_read_back(pg_client: TestClient, pg_keys: Keys) -> None:
    data = seam_jpeg(1)
    first = upload(pg_client, pg_keys.s1, data, idempotency_key="pg-1")
    second = upload(pg_client, pg_keys.s1, data, idempotency_key="pg-1")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    got = pg_client.get(f"/v1/inspections/{first.json()['id']}", headers=auth(pg_keys.auditor))
    assert got.json() == first.json()
    assert pg_client.get(f"/v1/inspections/{first.json()['id']}", headers=auth(pg_keys.s2)).status_code == 404


def test_concurrent_stations_share_one_valid_chain(
    pg_client: TestClient, pg_keys: Keys, pg_settings: ServiceSettings
) -> None:
    serial = "PG-CONC"
    before = pg_client.get("/v1/inspections", headers=auth(pg_keys.auditor)).json()["total"]
    jobs = [(pg_keys.s1 if i % 2 else pg_keys.s2, seam_jpeg(100 + i)) for i in range(8)]

    def send(job: tuple[str, bytes]) -> int:
        return int(upload(pg_client, job[0], job[1], {**STATION_META, "machine_serial": serial}).status_code)

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(send, jobs))
    assert codes == [201] * 8
    listed = pg_client.get("/v1/inspections", headers=auth(pg_keys.auditor), params={"limit": 1000}).json()
    assert listed["total"] == before + 8
    seqs = [i["evidence_seq"] for i in listed["items"]]
    assert len(set(seqs)) == len(seqs)
    with Store.open(pg_settings.db_url, pg_settings.images_dir) as store:
        report = verify_store(store)
        assert report.ok, report.first_problem
        assert report.records == listed["total"]


def test_auditor_export_on_postgresql(pg_client: TestClient, pg_keys: Keys) -> None:
    upload(pg_client, pg_keys.s1, seam_jpeg(300), {**STATION_META, "machine_serial": "PG-EXP"})
    r = pg_client.post("/v1/evidence/export", headers=auth(pg_keys.auditor), json={"serial": "PG-EXP"})
    assert r.status_code == 200 and r.content[:2] == b"PK"
