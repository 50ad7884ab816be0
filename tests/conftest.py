"""Shared test fixtures. Area-specific fixtures live in ``tests/helpers/`` or beside their tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WELDINSPECT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def porosity_data() -> Path:
    """``../shared/data/weld-porosity`` (skips the test cleanly when absent)."""
    path = SHARED_DATA / "weld-porosity"
    if not (path / "annotations.jsonl").is_file():
        pytest.skip(f"real data not present at {path}")
    return path


@pytest.fixture(scope="session")
def unlabelled_data() -> Path:
    """``../shared/data/weld-photos-unlabelled`` (skips the test cleanly when absent)."""
    path = SHARED_DATA / "weld-photos-unlabelled"
    if not (path / "images").is_dir():
        pytest.skip(f"real data not present at {path}")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model artifact (built once per test session)."""
    from tests.helpers.artifacts import make_tiny_artifact

    return make_tiny_artifact(tmp_path_factory.mktemp("tiny-model"))
