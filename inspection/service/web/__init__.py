"""The dashboard for quality engineers and auditors: server-rendered pages under ``/ui``.

``from inspection.service.web import create_ui_router``; the service includes it in its app. See
docs/dashboard.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import APIRouter

__all__ = ["create_ui_router"]


def create_ui_router(**kwargs: Any) -> APIRouter:
    """The ``/ui`` APIRouter (see :func:`inspection.service.web.router.create_ui_router`)."""
    from inspection.service.web.router import create_ui_router as create

    return create(**kwargs)
