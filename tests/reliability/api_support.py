"""Shared set-up of the HTTP reliability tests: a service (tiny model) on SQLite or a throwaway
PostgreSQL database, with keys for every role, and a reader of the Prometheus counters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.service.helpers import auth

PG_BASE = os.environ.get("WELDINSPECT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def metric(client: Any, key: str, sample: str) -> float:
    """The value of one Prometheus ``sample`` (name with labels, as rendered) from ``GET /metrics``;
    0 when the service has not counted it yet."""
    r = client.get("/metrics", headers=auth(key))
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def requests_total(method: str, route: str, status: int) -> str:
    """The ``weldinspect_http_requests_total`` sample of one method, route template and status."""
    return f'weldinspect_http_requests_total{{method="{method}",route="{route}",status="{status}"}}'


INFERENCES = "weldinspect_inference_seconds_count"


def pg_admin() -> Engine:
    """An AUTOCOMMIT engine on the test server's ``test`` database, or a LOUD skip."""
    if os.environ.get("WELDINSPECT_NO_POSTGRES") == "1":
        pytest.skip("!!! PostgreSQL reliability tests SKIPPED: WELDINSPECT_NO_POSTGRES=1 !!!")
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"!!! PostgreSQL reliability tests SKIPPED: {PG_BASE} unreachable ({exc}) !!!")
    return admin


@contextmanager
def throwaway_database() -> Iterator[tuple[str, str, Engine]]:
    """A new, empty PostgreSQL database (dropped afterwards): ``(url, name, admin engine)``.

    The service's OWN database, so a test may refuse connections to it without touching the
    server or any other database.
    """
    admin = pg_admin()
    name = f"wi_rel_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_BASE.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}", name, admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def refuse_connections(admin: Engine, name: str, refuse: bool) -> None:
    """Make the server refuse (or accept again) connections to database ``name``; refusing also
    ends the connections it has (as a database restart or failover does)."""
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
        if refuse:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )


def sqlite_path(db_url: str) -> Path:
    return Path(db_url.removeprefix("sqlite:///"))
