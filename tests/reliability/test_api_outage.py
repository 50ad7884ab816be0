"""An outage of the service's OWN database: every request is 503 with ``Retry-After`` (never 500),
counted in the metrics, and the service recovers by itself when the database comes back.

SQLite: the database file disappears (a directory takes its place) and the pooled connections are
dropped, as after a restart. PostgreSQL: a throwaway database created for the test refuses
connections (``ALLOW_CONNECTIONS false``) and its backends are terminated; the server and every
other database keep running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from inspection.evidence.verify import verify_store
from inspection.service.app import create_app
from inspection.service.contract import RETRY_AFTER_S
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from tests.reliability.api_support import (
    metric,
    refuse_connections,
    requests_total,
    sqlite_path,
    throwaway_database,
)
from tests.service.helpers import STATION_META, Keys, auth, make_keys, make_settings, seam_jpeg, upload


@dataclass
class Service:
    client: TestClient
    keys: Keys
    settings: ServiceSettings
    outage: Callable[[bool], None]
    """``outage(True)`` starts the outage, ``outage(False)`` ends it."""


def _sqlite_outage(client: TestClient, settings: ServiceSettings) -> Callable[[bool], None]:
    db = sqlite_path(settings.db_url)
    away = db.with_name(db.name + ".away")

    def outage(on: bool) -> None:
        if on:
            db.rename(away)
            db.mkdir()  # opening the database now fails: "unable to open database file"
            client.app.state.service.store.engine.dispose()  # type: ignore[attr-defined]
        else:
            db.rmdir()
            away.rename(db)

    return outage


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path, tiny_model_dir: Path) -> Iterator[Service]:
    if request.param == "sqlite":
        settings = make_settings(tmp_path, tiny_model_dir)
        keys = make_keys(settings)
        with TestClient(create_app(settings)) as client:
            yield Service(client, keys, settings, _sqlite_outage(client, settings))
        return
    with throwaway_database() as (url, name, admin):
        settings = make_settings(tmp_path, tiny_model_dir, db_url=url)
        keys = make_keys(settings)
        with TestClient(create_app(settings)) as client:
            yield Service(client, keys, settings, lambda on: refuse_connections(admin, name, on))


def _requests(svc: Service, inspection_id: str) -> list[tuple[str, str, Callable[[], Any]]]:
    """(method, route template, call) of every kind of database-backed request."""
    c, k = svc.client, svc.keys
    return [
        ("POST", "/v1/inspections", lambda: upload(c, k.s1, seam_jpeg(7))),
        ("GET", "/v1/inspections", lambda: c.get("/v1/inspections", headers=auth(k.auditor))),
        (
            "GET",
            "/v1/inspections/{inspection_id}",
            lambda: c.get(f"/v1/inspections/{inspection_id}", headers=auth(k.s1)),
        ),
        (
            "GET",
            "/v1/machines/{serial}/trend",
            lambda: c.get(f"/v1/machines/{STATION_META['machine_serial']}/trend", headers=auth(k.auditor)),
        ),
        (
            "POST",
            "/v1/evidence/export",
            lambda: c.post("/v1/evidence/export", headers=auth(k.auditor), json={"serial": "M-1"}),
        ),
        ("GET", "/v1/keys", lambda: c.get("/v1/keys", headers=auth(k.admin))),
        ("GET", "/metrics", lambda: c.get("/metrics", headers=auth(k.admin))),
    ]


def test_outage_is_503_with_retry_after_then_recovers(service: Service) -> None:
    c, k = service.client, service.keys
    first = upload(c, k.s1, seam_jpeg(1))
    assert first.status_code == 201, first.text
    calls = _requests(service, first.json()["id"])

    service.outage(True)
    try:
        for method, route, call in calls:
            r = call()
            assert r.status_code == 503, f"{method} {route}: {r.status_code} {r.text}"
            assert r.headers["Retry-After"] == str(RETRY_AFTER_S), f"{method} {route}"
            assert r.json()["code"] == "store_unavailable", f"{method} {route}: {r.text}"
            assert "store" in r.json()["detail"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("unreachable")
        assert c.get("/healthz").status_code == 200  # the process itself is alive
    finally:
        service.outage(False)

    # Recovered by itself: the same requests succeed, and every 503 was counted.
    for method, route, call in calls:
        r = call()
        assert r.status_code in (200, 201), f"{method} {route} after the outage: {r.status_code} {r.text}"
        assert metric(c, k.admin, requests_total(method, route, 503)) >= 1, (
            f"{method} {route} 503 not counted"
        )
    listed = c.get("/v1/inspections", headers=auth(k.auditor)).json()
    assert listed["total"] == 2  # the first upload and the one retried after the outage
    with Store.open(service.settings.db_url, service.settings.images_dir) as store:
        assert verify_store(store).ok


def test_outage_while_the_model_runs_writes_nothing_and_the_retry_succeeds(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key lookup succeeds, the outage starts during inference, the insert fails: 503, no record;
    a retry with the same Idempotency-Key after the outage creates the record once."""
    c, k = service.client, service.keys
    recorder = c.app.state.service.recorder  # type: ignore[attr-defined]
    inspect = recorder.inspect

    def inspect_then_fail(*args: Any, **kwargs: Any) -> Any:
        result = inspect(*args, **kwargs)
        service.outage(True)
        return result

    monkeypatch.setattr(recorder, "inspect", inspect_then_fail)
    try:
        r = upload(c, k.s1, seam_jpeg(2), idempotency_key="during-outage")
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == str(RETRY_AFTER_S)
    finally:
        service.outage(False)
    monkeypatch.undo()
    retry = upload(c, k.s1, seam_jpeg(2), idempotency_key="during-outage")
    assert retry.status_code == 201, retry.text  # created now: nothing was committed during the outage
    again = upload(c, k.s1, seam_jpeg(2), idempotency_key="during-outage")
    assert again.status_code == 200 and again.json()["id"] == retry.json()["id"]
    assert c.get("/v1/inspections", headers=auth(k.auditor)).json()["total"] == 1
    assert metric(c, k.admin, 'weldinspect_inspections_total{status="failed"}') == 1
    with Store.open(service.settings.db_url, service.settings.images_dir) as store:
        report = verify_store(store)
        assert report.ok and report.records == 1
