"""Fixtures: one service (tiny model, tmp SQLite store) per test module, with keys for each role."""

from __future__ import annotations

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
