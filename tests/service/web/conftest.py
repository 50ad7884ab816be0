"""Fixtures: one service with the dashboard per test module (tiny model, tmp SQLite), seeded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from tests.service.helpers import Keys, make_keys, make_settings
from tests.service.web.helpers import seed


@pytest.fixture(scope="module")
def web_settings(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ServiceSettings:
    return make_settings(tmp_path_factory.mktemp("web"), tiny_model_dir)


@pytest.fixture(scope="module")
def web_keys(web_settings: ServiceSettings) -> Keys:
    return make_keys(web_settings)


@pytest.fixture(scope="module")
def web_app_client(web_settings: ServiceSettings, web_keys: Keys) -> Iterator[TestClient]:
    """A started app (no session cookie: use ``client`` for a fresh cookie jar per test)."""
    with TestClient(create_app(web_settings)) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(web_app_client: TestClient, web_keys: Keys) -> list[str]:
    """Ids of six uploaded inspections (S1/S2, machines M-1/M-2)."""
    return seed(web_app_client, web_keys)


@pytest.fixture
def client(web_app_client: TestClient, seeded: list[str]) -> Iterator[TestClient]:
    """The module's app with an empty cookie jar (each test logs in itself)."""
    web_app_client.cookies.clear()
    yield web_app_client
    web_app_client.cookies.clear()
