"""The store: SQLAlchemy models, Alembic migrations, content-addressed images and repositories.

``Store.open(url, images_dir)`` connects (SQLite file or PostgreSQL URL), migrates to head and
returns the handle; :mod:`inspection.store.repo` holds the repository functions and DTOs.
"""

from __future__ import annotations

from inspection.store.db import LEDGER_LOCK_KEY, Store, StoreError, create_store_engine, migrate
from inspection.store.images import ImageFiles, PutResult, sha256_hex, sniff_media_type
from inspection.store.repo import (
    ApiKeyInfo,
    InspectionFilter,
    InspectionRecord,
    MachineInfo,
    Page,
    PageResult,
    RecommendationInfo,
    ReviewInfo,
)

__all__ = [
    "LEDGER_LOCK_KEY",
    "ApiKeyInfo",
    "ImageFiles",
    "InspectionFilter",
    "InspectionRecord",
    "MachineInfo",
    "Page",
    "PageResult",
    "PutResult",
    "RecommendationInfo",
    "ReviewInfo",
    "Store",
    "StoreError",
    "create_store_engine",
    "migrate",
    "sha256_hex",
    "sniff_media_type",
]
