"""The committed OpenAPI document ``docs/openapi.json`` (a test checks it equals ``app.openapi()``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inspection.service.settings import ServiceSettings

DOC_PATH = Path("docs") / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI schema (independent of settings: no store or model is opened)."""
    from inspection.service.app import create_app

    placeholder = ServiceSettings(
        db_url="sqlite:///unused.db", images_dir=Path("unused"), keys_dir=Path("unused")
    )
    return create_app(placeholder).openapi()


def openapi_text() -> str:
    """The document as committed: 2-space indented JSON, keys in schema order, trailing newline."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


def write_openapi(path: Path) -> Path:
    """Write the document to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openapi_text(), encoding="utf-8")
    return path
