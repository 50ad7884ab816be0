"""PostgreSQL fixture: a fresh schema per test (dropped afterwards), or a loud skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_BASE = os.environ.get("WELDINSPECT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose ``search_path`` is a new, empty schema (dropped after the test)."""
    if os.environ.get("WELDINSPECT_NO_POSTGRES") == "1":
        pytest.skip("!!! PostgreSQL tests SKIPPED: WELDINSPECT_NO_POSTGRES=1 !!!")
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_BASE, connect_args={"connect_timeout": 3})
    schema = f"wi_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"!!! PostgreSQL tests SKIPPED: {PG_BASE} unreachable ({str(exc).splitlines()[0]}) !!!")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
