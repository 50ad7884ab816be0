"""The FastAPI application: ``create_app(settings)``; the model is loaded once, in the lifespan.

Nothing heavy happens at import or in :func:`create_app`: the lifespan handler opens the store
(migrating it), loads the evidence signing key and the model, and closes the store at shutdown,
after uvicorn has finished the requests in flight (SIGTERM: stop accepting, drain, then exit).

Every error is a JSON :class:`~inspection.service.schemas.Problem` (``detail`` names the field and
what is valid, ``code`` classifies it); a database error anywhere in a request is 503 with
``Retry-After`` (the store is unavailable; it recovers by itself), never 500. Every answered
request, 500s included, is counted in ``weldinspect_http_requests_total``. See docs/reliability.md.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from inspection import __version__
from inspection.service import routes
from inspection.service.auth import AuthError, ForbiddenError
from inspection.service.contract import RETRY_AFTER_S, build_openapi, problem
from inspection.service.metrics import Metrics
from inspection.service.settings import ServiceSettings
from inspection.service.state import start_state
from inspection.service.validation import MAX_METADATA_BYTES, text_problem
from inspection.store.db import StoreError

logger = logging.getLogger(__name__)

UPLOAD_PATH = "/v1/inspections"
CHECKED_PREFIXES = ("/v1/", "/ui")
"""Paths whose path and query text must be storable (no NUL): they reach the database."""
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes allowed on top of ``max_upload_bytes`` for the multipart envelope and the metadata field."""

DESCRIPTION = """\
Weld-seam inspection station service: upload a photo of a seam with its metadata, get porosity and
spatter grades, standards verdicts, parameter advice and the signed evidence record it was committed
with. Every endpoint except `/healthz` and `/readyz` needs an API key (`Authorization: Bearer <key>`
or `X-API-Key: <key>`): missing or wrong -> 401, wrong role -> 403. Roles: `station` (submit and
read its own inspections), `auditor` (read all, trends, reviews, claim-bundle export), `admin`
(everything, keys). Every error body is a `Problem` (`detail`, `code`); invalid values are 422
naming the field; when the database is unavailable every endpoint answers 503 with `Retry-After`.
See docs/service.md and docs/reliability.md.
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
        openapi_url=None,  # served below: behind a key unless settings.api_docs
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.service = None
    app.include_router(routes.router)
    if settings.dashboard:
        from inspection.service.web import create_ui_router  # the dashboard under /ui (only when enabled)

        app.include_router(create_ui_router())

        @app.get("/", include_in_schema=False)
        def _root() -> Response:
            return RedirectResponse("/ui/", status_code=307)

    def _openapi() -> dict[str, object]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = _openapi  # type: ignore[method-assign]
    _add_docs(app, public=settings.api_docs)

    @app.exception_handler(AuthError)
    async def _auth_error(_request: Request, exc: AuthError) -> Response:
        return problem(401, str(exc), "unauthorized", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_request: Request, exc: ForbiddenError) -> Response:
        return problem(403, str(exc), "forbidden")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code < 400:  # the dashboard's 303 to the login page
            return await http_exception_handler(request, exc)
        status, detail, headers = exc.status_code, str(exc.detail), dict(exc.headers or {})
        if status == 400 and detail.startswith("Part exceeded maximum size"):  # multipart parser
            status = 413
            detail = (
                f"a form field is over its size limit ({detail}); "
                f"metadata may have at most {MAX_METADATA_BYTES} bytes"
            )
        if status == 503:
            headers.setdefault("Retry-After", str(RETRY_AFTER_S))
        return problem(status, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'request'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        )
        return problem(422, f"invalid request: {problems}", "invalid")

    @app.exception_handler(SQLAlchemyError)
    @app.exception_handler(StoreError)
    async def _store_unavailable(request: Request, exc: Exception) -> Response:
        where = f"{request.method} {request.url.path}"
        logger.warning("store unavailable during %s: %s: %s", where, type(exc).__name__, exc)
        detail = f"the store (database) is unavailable ({type(exc).__name__}); retry in {RETRY_AFTER_S} s"
        return problem(503, detail, "store_unavailable", headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.middleware("http")
    async def _limit_and_count(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            response = (
                _too_large(request, settings.max_upload_bytes)
                or _unstorable_text(request)
                or await call_next(request)
            )
        except Exception:
            logger.exception("unhandled error answering %s %s", request.method, request.url.path)
            response = problem(500, "internal server error; the service log has the cause", "internal")
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        metrics.request(request.method, template, response.status_code)
        return response

    return app


def _add_docs(app: FastAPI, *, public: bool) -> None:
    """``/openapi.json`` behind a key (any role); with ``public``, it and ``/docs``, ``/redoc`` open."""
    if public:

        @app.get("/openapi.json", include_in_schema=False)
        def _public_schema() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False)
        def _swagger() -> Response:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

        @app.get("/redoc", include_in_schema=False)
        def _redoc() -> Response:
            return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

        return

    @app.get("/openapi.json", include_in_schema=False)
    def _schema(_principal: routes.Caller) -> JSONResponse:
        return JSONResponse(app.openapi())


def _unstorable_text(request: Request) -> Response | None:
    """422 when the path or a query parameter of a database-backed route holds a NUL character."""
    path = request.url.path
    if not path.startswith(CHECKED_PREFIXES):
        return None
    if text_problem(path) is not None:
        return problem(422, f"the path {path!r} must not contain the NUL character (U+0000)", "invalid")
    for name, value in request.query_params.multi_items():
        problem_text = text_problem(name) or text_problem(value)
        if problem_text is not None:
            return problem(422, f"query parameter {name!r} {problem_text}", "invalid")
    return None


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
        return problem(413, detail, "too_large")
    return None
