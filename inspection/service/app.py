"""The FastAPI application: ``create_app(settings)``; the model is loaded once, in the lifespan.

Nothing heavy happens at import or in :func:`create_app`: the lifespan handler opens the store
(migrating it), loads the evidence signing key and the model, and closes the store at shutdown,
after uvicorn has finished the requests in flight (SIGTERM: stop accepting, drain, then exit).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from inspection import __version__
from inspection.service import routes
from inspection.service.auth import AuthError, ForbiddenError
from inspection.service.metrics import Metrics
from inspection.service.settings import ServiceSettings
from inspection.service.state import start_state

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/v1/inspections"
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes allowed on top of ``max_upload_bytes`` for the multipart envelope and the metadata field."""

DESCRIPTION = """\
Weld-seam inspection station service: upload a photo of a seam with its metadata, get porosity and
spatter grades, standards verdicts, parameter advice and the signed evidence record it was committed
with. Every endpoint except `/healthz` and `/readyz` needs an API key (`Authorization: Bearer <key>`
or `X-API-Key: <key>`): missing or wrong -> 401, wrong role -> 403. Roles: `station` (submit and
read its own inspections), `auditor` (read all, trends, claim-bundle export), `admin` (everything,
keys). See docs/service.md.
"""


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service application for ``settings`` (the model loads when the app starts)."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(start_state, settings, metrics)
        app.state.service = state
        try:
            yield
        finally:
            app.state.service = None
            state.close()
            logger.info("service stopped; store closed")

    app = FastAPI(
        title="weldinspect station service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.include_router(routes.router)
    if settings.dashboard:
        from inspection.service.web import create_ui_router  # the dashboard under /ui (only when enabled)

        app.include_router(create_ui_router())

    @app.exception_handler(AuthError)
    async def _auth_error(_request: Request, exc: AuthError) -> Response:
        return JSONResponse(
            {"detail": str(exc), "code": "unauthorized"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_request: Request, exc: ForbiddenError) -> Response:
        return JSONResponse({"detail": str(exc), "code": "forbidden"}, status_code=403)

    @app.middleware("http")
    async def _limit_and_count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = _too_large(request, settings.max_upload_bytes) or await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        metrics.request(request.method, template, response.status_code)
        return response

    return app


def _too_large(request: Request, max_upload_bytes: int) -> Response | None:
    """A 413 answer when an upload's declared Content-Length is over the limit (before parsing it)."""
    if request.method != "POST" or request.url.path != UPLOAD_PATH:
        return None
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        return None
    if int(declared) > max_upload_bytes + MULTIPART_OVERHEAD:
        detail = (
            f"request body of {int(declared)} bytes is too large; images may have at most "
            f"{max_upload_bytes} bytes (max_upload_bytes)"
        )
        return JSONResponse({"detail": detail, "code": "too_large"}, status_code=413)
    return None
