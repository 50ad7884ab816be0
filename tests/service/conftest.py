"""Fixtures: one service (tiny model, tmp SQLite store) per test module, with keys for each role."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from tests.service.helpers import Keys, make_keys, make_settings


@pytest.fixture(scope="module")
def service_settings(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ServiceSettings:
    return make_settings(
        tmp_path_factory.mktemp("service"), tiny_model_dir, max_upload_bytes=200_000, max_pixels=400 * 400
    )


@pytest.fixture(scope="module")
def keys(service_settings: ServiceSettings) -> Keys:
    return make_keys(service_settings)


@pytest.fixture(scope="module")
def client(service_settings: ServiceSettings, keys: Keys) -> Iterator[TestClient]:
    with TestClient(create_app(service_settings)) as c:
        yield c


PG_BASE = os.environ.get("WELDINSPECT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a new, empty schema (dropped afterwards), or a LOUD skip.

    Same approach as ``tests/store/conftest.py`` (module-scoped here: one service per module).
    """
    if os.environ.get("WELDINSPECT_NO_POSTGRES") == "1":
        pytest.skip("!!! PostgreSQL service tests SKIPPED: WELDINSPECT_NO_POSTGRES=1 !!!")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
    schema = f"wi_service_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        reason = str(exc).splitlines()[0]
        pytest.skip(f"!!! PostgreSQL service tests SKIPPED: {PG_BASE} unreachable ({reason}) !!!")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
