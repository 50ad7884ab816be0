"""The HTTP contract beyond the routes: error bodies, status codes and the OpenAPI document.

:func:`problem` builds every error answer (a :class:`~inspection.service.schemas.Problem`);
:func:`build_openapi` is ``app.openapi()``: FastAPI's document plus what FastAPI cannot say from the
signatures (the image part must not be empty).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

RETRY_AFTER_S = 5
"""``Retry-After`` (seconds) of every 503: store unavailable, service starting or stopping."""

CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    500: "internal",
    503: "unavailable",
}
"""The default ``code`` of a Problem for each status."""

UPLOAD_BODY = "Body_create_inspection_v1_inspections_post"


def problem(
    status: int, detail: str, code: str | None = None, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSON Problem answer: ``{"detail": ..., "code": ...}`` (code defaults to :data:`CODES`)."""
    body = {"detail": detail, "code": code or CODES.get(status, "error")}
    return JSONResponse(body, status_code=status, headers=headers)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (FastAPI's, with the upload's image part documented as non-empty)."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    upload = doc.get("components", {}).get("schemas", {}).get(UPLOAD_BODY, {})
    image = upload.get("properties", {}).get("image")
    if image is not None:
        image["minLength"] = 1
    return doc
