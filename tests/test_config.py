"""Typed configuration: YAML + environment, precise errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspection.config import AppConfig, ConfigError, load_config


def test_defaults() -> None:
    cfg = load_config(environ={})
    assert cfg == AppConfig()
    assert cfg.ingest.max_pixels == 50_000_000
    assert cfg.grading.porosity_thresholds == (1, 2, 4)
    assert cfg.grading.spatter_thresholds == (1, 6, 21)


def test_yaml_and_env_override(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("ingest:\n  max_pixels: 1000\nservice:\n  port: 9000\n")
    cfg = load_config(path, environ={"WELDINSPECT_SERVICE__PORT": "9100"})
    assert cfg.ingest.max_pixels == 1000
    assert cfg.service.port == 9100


def test_store_url_defaults_to_sqlite_in_home(tmp_path: Path) -> None:
    cfg = load_config(environ={"WELDINSPECT_STORE__HOME": str(tmp_path)})
    assert cfg.store.db_url == f"sqlite:///{tmp_path / 'weldinspect.db'}"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ingest:\n  max_pixelz: 3\n", "ingest.max_pixelz"),
        ("nonsense: {}\n", "sections: ingest"),
        ("grading:\n  porosity_thresholds: [3, 2, 1]\n", "strictly increasing"),
        ("- a list\n", "must hold a mapping"),
        ("ingest: [\n", "not valid YAML"),
    ],
)
def test_invalid_config_names_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"bad\.yaml") as info:
        load_config(path, environ={})
    assert fragment in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", environ={})
