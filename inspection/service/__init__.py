"""The station service: FastAPI app (``create_app``), API-key auth, hot-folder watcher, metrics.

``from inspection.service import create_app, ServiceSettings`` (imported lazily, so that the hot
folder does not pull in FastAPI).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from inspection.service.app import create_app

        return create_app
    if name == "ServiceSettings":
        from inspection.service.settings import ServiceSettings

        return ServiceSettings
    msg = f"module 'inspection.service' has no attribute {name!r}"
    raise AttributeError(msg)
