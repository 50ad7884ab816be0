"""The committed docs/openapi.json must equal the app's schema (regenerate: scripts/write_openapi.py)."""

from __future__ import annotations

import json
from pathlib import Path

from inspection.service.openapi import DOC_PATH, openapi_document, openapi_text, write_openapi


def test_committed_openapi_is_up_to_date(repo_root: Path) -> None:
    committed = repo_root / DOC_PATH
    assert committed.is_file(), f"{committed} is missing: run .venv/bin/python scripts/write_openapi.py"
    assert json.loads(committed.read_text(encoding="utf-8")) == openapi_document(), (
        f"{committed} is stale: run .venv/bin/python scripts/write_openapi.py"
    )


def test_openapi_lists_every_endpoint_with_key_security() -> None:
    doc = openapi_document()
    expected = {
        ("post", "/v1/inspections"),
        ("get", "/v1/inspections"),
        ("get", "/v1/inspections/{inspection_id}"),
        ("get", "/v1/inspections/{inspection_id}/overlay.png"),
        ("post", "/v1/inspections/{inspection_id}/reviews"),
        ("get", "/v1/inspections/{inspection_id}/reviews"),
        ("get", "/v1/machines/{serial}/trend"),
        ("post", "/v1/evidence/export"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    present = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert expected <= present
    for method, path in expected - {("get", "/healthz"), ("get", "/readyz")}:
        assert doc["paths"][path][method].get("security"), f"{method} {path} documents no API key"
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_write_openapi_round_trips(tmp_path: Path) -> None:
    out = write_openapi(tmp_path / "sub" / "openapi.json")
    assert out.read_text(encoding="utf-8") == openapi_text()
