"""HTTP endpoints. Blocking work (inference, database, zip export) runs in plain ``def`` endpoints,
which FastAPI runs in its thread pool."""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    UploadFile,
)
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.background import BackgroundTask

from inspection.evidence.ledger import IdempotencyConflictError, get_record
from inspection.image.ingest import SUPPORTED_FORMATS, IngestError, image_sha256, sniff_format
from inspection.service import schemas
from inspection.service.auth import Principal, authenticate, key_from_headers, require_role
from inspection.service.contract import RETRY_AFTER_S
from inspection.service.metrics import CONTENT_TYPE, Metrics
from inspection.service.queries import ping, trend_points
from inspection.service.state import ServiceState
from inspection.service.trend import trend
from inspection.service.validation import InputError, parse_metadata, text_problem
from inspection.store import InspectionFilter, InspectionRecord, Page, ReviewInfo

logger = logging.getLogger(__name__)

router = APIRouter()

ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/bmp", "image/x-ms-bmp", "image/tiff")
"""Upload content types accepted as declared; ``application/octet-stream`` is sniffed instead."""
SIZE_CODES = ("too_large", "too_many_pixels")
MAX_IDEMPOTENCY_KEY = 128
MAX_OFFSET = 1_000_000_000
"""Largest ``offset`` of ``GET /v1/inspections`` (a bound every database's OFFSET takes)."""
MAX_FILTER = 128
"""Longest text filter (serial, station, part id), as long as the stored columns."""

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": schemas.Problem,
        "description": "the store (database) is unavailable, or the service is starting or stopping: retry",
        "headers": {
            "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
        },
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.Problem, "description": "missing, wrong or revoked API key"},
    403: {"model": schemas.Problem, "description": "the key's role may not do this"},
    422: {"model": schemas.Problem, "description": "an invalid value: the detail names it and what is valid"},
    **UNAVAILABLE,
}
"""The errors every endpoint behind a key may answer (bodies: Problem)."""
UNPARSEABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": schemas.Problem, "description": "the body could not be parsed (not UTF-8, malformed)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": schemas.Problem, "description": "not found"}}


# ---- dependencies ---------------------------------------------------------------------------------


def get_state(request: Request) -> ServiceState:
    state = request.app.state.service
    if state is None:
        raise HTTPException(
            503, "service is starting or stopping; retry shortly", headers={"Retry-After": str(RETRY_AFTER_S)}
        )
    return state  # type: ignore[no-any-return]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics  # type: ignore[no-any-return]


def caller(
    state: Annotated[ServiceState, Depends(get_state)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_api_key: Annotated[str | None, Depends(_api_key)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Principal:
    """The authenticated caller (401 when the key is missing, malformed, unknown or revoked)."""
    if bearer is not None:
        authorization = f"{bearer.scheme} {bearer.credentials}"
    return authenticate(state.store, key_from_headers(authorization, x_api_key))


State = Annotated[ServiceState, Depends(get_state)]
Caller = Annotated[Principal, Depends(caller)]


# ---- helpers --------------------------------------------------------------------------------------


def _readable(state: ServiceState, principal: Principal, inspection_id: str) -> InspectionRecord:
    """The inspection if it exists and the caller may read it; 404 otherwise (existence not leaked)."""
    record = state.store.get_inspection(inspection_id)
    if record is None or not principal.can_read(record.station_id):
        raise HTTPException(404, f"no inspection {inspection_id!r} visible to key {principal.name!r}")
    return record


def inspection_out(state: ServiceState, record: InspectionRecord) -> schemas.InspectionOut:
    """The full response body of one stored inspection (the same for a create and a replay)."""
    evidence = None
    recommendation = None
    if record.evidence_seq is not None:
        with state.store.session() as s:
            rec = get_record(s, record.evidence_seq)
        if rec is not None:
            evidence = schemas.EvidenceRef(
                seq=rec.seq,
                record_id=rec.record_id,
                record_hash=rec.record_hash,
                prev_hash=rec.prev_hash,
                signature=rec.signature,
                key_id=rec.key_id,
                created_at=rec.created_at,
            )
            recommendation = rec.data.get("recommendation")
    return schemas.InspectionOut(
        id=record.id,
        created_at=record.created_at,
        station_id=record.station_id,
        machine_serial=record.machine_serial,
        part_id=record.part_id,
        seam_id=record.seam_id,
        image_sha256=record.image_sha256,
        porosity_grade=record.porosity_grade,
        spatter_grade=record.spatter_grade,
        needs_review=record.needs_review,
        result=dict(record.result),
        recommendation=recommendation,
        evidence=evidence,
        overlay_url=f"/v1/inspections/{record.id}/overlay.png",
    )


def _check_media(declared: str | None, data: bytes) -> None:
    """415 unless the upload is declared as a supported image type (or octet-stream that sniffs as one)."""
    valid = ", ".join(ACCEPTED_TYPES)
    declared = (declared or "").split(";")[0].strip().lower()
    sniffed = sniff_format(data)
    if declared not in (*ACCEPTED_TYPES, "application/octet-stream"):
        raise HTTPException(415, f"image part has content type {declared or '(none)'!r}; valid: {valid}")
    if sniffed is not None and sniffed not in SUPPORTED_FORMATS:
        raise HTTPException(
            415, f"{sniffed} images are not supported; valid formats: {', '.join(SUPPORTED_FORMATS)}"
        )
    if declared == "application/octet-stream" and sniffed is None:
        raise HTTPException(415, f"image part is not a recognisable image; valid types: {valid}")


def _metadata(text: str, principal: Principal) -> schemas.InspectionMetadata:
    """Parse the metadata JSON (413/422 naming the problem) and bind it to the calling station (403)."""
    try:
        raw = parse_metadata(text)
    except InputError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    try:
        meta = schemas.InspectionMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        valid = ", ".join(schemas.InspectionMetadata.model_fields)
        raise HTTPException(422, f"invalid metadata: {problems} (fields: {valid})") from exc
    if principal.role == "station":
        if meta.station_id is not None and meta.station_id != principal.station_id:
            raise HTTPException(
                403,
                f"key {principal.name!r} submits for station {principal.station_id!r}, "
                f"not {meta.station_id!r}",
            )
        meta = meta.model_copy(update={"station_id": principal.station_id})
    return meta


def _utc(value: datetime | None, name: str) -> datetime | None:
    """``value`` in UTC (naive = UTC); 422 naming ``name`` when it cannot be (out of range)."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        msg = f"{name} {value.isoformat()} is out of range in UTC; valid: years 0001-9999 after conversion"
        raise HTTPException(422, msg) from exc


# ---- health and metrics ---------------------------------------------------------------------------


@router.get("/healthz", response_model=schemas.Health, tags=["health"])
def healthz() -> schemas.Health:
    """Liveness: the process answers (no key needed)."""
    return schemas.Health(status="ok")


@router.get(
    "/readyz", response_model=schemas.Health, tags=["health"], responses={503: {"model": schemas.Health}}
)
def readyz(request: Request) -> Response:
    """Readiness: the model is loaded and the database answers (503 with the failing check otherwise)."""
    state: ServiceState | None = request.app.state.service
    checks = {"model": "ok" if state is not None else "not loaded", "database": "unknown"}
    if state is not None:
        try:
            ping(state.store)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    model = None if state is None else model_status(state)
    body = schemas.Health(status="ready" if ok else "not ready", checks=checks, model=model)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def model_status(state: ServiceState) -> schemas.ModelStatus:
    """The model new requests use (name, version, weights sha256) and its promotion status."""
    info = state.recorder.inspector.grader.info
    follower = state.recorder.follower
    return schemas.ModelStatus(
        name=info.name,
        version=info.version,
        sha256=info.sha256,
        runtime=info.runtime,
        promotion="" if follower is None else follower.status,
    )


@router.post("/v1/model/check", response_model=schemas.ModelStatus, tags=["model"], responses=ERRORS)
def check_model(state: State, principal: Caller) -> schemas.ModelStatus:
    """Look for a new promotion/rollback record now (admin) and switch to its model without downtime
    (requests in flight finish on the old model); answers the model new requests use."""
    require_role(principal, "admin")
    if state.recorder.follower is not None:
        state.recorder.follower.check()
    return model_status(state)


@router.get(
    "/metrics",
    response_class=Response,
    tags=["health"],
    responses={
        200: {
            "description": "Prometheus text format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
)
def metrics(principal: Caller, registry: Annotated[Metrics, Depends(get_metrics)]) -> Response:
    """Prometheus text format: requests by route/status, inference latency, inspections by status."""
    return Response(registry.render(), media_type=CONTENT_TYPE)


# ---- inspections ----------------------------------------------------------------------------------


@router.post(
    "/v1/inspections",
    status_code=201,
    response_model=schemas.InspectionOut,
    tags=["inspections"],
    responses={
        **ERRORS,
        **UNPARSEABLE,
        200: {"model": schemas.InspectionOut, "description": "idempotent replay: the earlier record"},
        409: {"model": schemas.Problem, "description": "Idempotency-Key already used for another image"},
        413: {
            "model": schemas.Problem,
            "description": "image over max_upload_bytes or max_pixels, or metadata over 64 KiB",
        },
        415: {"model": schemas.Problem, "description": "not a supported image type"},
        422: {
            "model": schemas.Problem,
            "description": "empty or unreadable image, or invalid metadata (the detail names the field)",
        },
    },
)
def create_inspection(
    state: State,
    principal: Caller,
    registry: Annotated[Metrics, Depends(get_metrics)],
    response: Response,
    image: Annotated[UploadFile, File(description="the seam photo (JPEG, PNG, BMP or TIFF)")],
    metadata: Annotated[
        str, Form(description="JSON object (at most 64 KiB, 16 levels deep), see InspectionMetadata")
    ] = "{}",
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY)
    ] = None,
) -> schemas.InspectionOut:
    """Inspect one photo and commit it with its evidence record before answering 201.

    A retry with the same ``Idempotency-Key`` (per station) returns the same body with 200 and
    creates nothing new.
    """
    require_role(principal, "station")
    try:
        out, created = _submit(state, principal, image, metadata, idempotency_key)
    except HTTPException as exc:
        registry.inspection("rejected" if exc.status_code < 500 else "failed")
        raise
    except Exception:
        registry.inspection("failed")
        raise
    registry.inspection("created" if created else "replayed")
    response.status_code = 201 if created else 200
    return out


def _submit(
    state: ServiceState, principal: Principal, image: UploadFile, metadata: str, idempotency_key: str | None
) -> tuple[schemas.InspectionOut, bool]:
    limit = state.settings.max_upload_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"image is larger than {limit} bytes (max_upload_bytes)")
    if not data:
        raise HTTPException(422, "image part is empty (0 bytes); send the photo's bytes")
    name = image.filename or "<upload>"
    if text_problem(name) is not None:
        raise HTTPException(422, f"image filename {name!r} {text_problem(name)}")
    _check_media(image.content_type, data)
    meta = _metadata(metadata, principal)
    try:
        context = meta.to_context()
    except ValueError as exc:
        raise HTTPException(422, f"invalid metadata: {exc}") from exc
    scoped_key = None
    if idempotency_key is not None:
        if not idempotency_key.strip():
            raise HTTPException(422, "Idempotency-Key must not be blank")
        if text_problem(idempotency_key) is not None:
            raise HTTPException(422, f"Idempotency-Key {text_problem(idempotency_key)}")
        scope = principal.station_id or f"key:{principal.name}"
        scoped_key = f"{scope}/{idempotency_key.strip()}"
    try:
        sub = state.recorder.submit(
            data, context, idempotency_key=scoped_key, name=name, image_sha256=image_sha256(data)
        )
    except IngestError as exc:
        status = 413 if exc.code in SIZE_CODES else 422
        raise HTTPException(status, f"{name}: {exc.reason} (code {exc.code})") from exc
    except IdempotencyConflictError as exc:
        raise HTTPException(409, str(exc)) from exc
    record = state.store.get_inspection(sub.inspection_id)
    if record is None:  # committed a moment ago: only a concurrent deletion could cause this
        raise HTTPException(500, f"inspection {sub.inspection_id} was recorded but cannot be read back")
    return inspection_out(state, record), sub.created


@router.get(
    "/v1/inspections/{inspection_id}",
    response_model=schemas.InspectionOut,
    tags=["inspections"],
    responses={**ERRORS, **NOT_FOUND},
)
def get_inspection(inspection_id: str, state: State, principal: Caller) -> schemas.InspectionOut:
    """One inspection (stations see only their own; others' are 404)."""
    return inspection_out(state, _readable(state, principal, inspection_id))


@router.get("/v1/inspections", response_model=schemas.InspectionPage, tags=["inspections"], responses=ERRORS)
def list_inspections(
    state: State,
    principal: Caller,
    serial: Annotated[str | None, Query(max_length=MAX_FILTER, description="machine serial")] = None,
    station: Annotated[
        str | None, Query(max_length=MAX_FILTER, description="station id (stations: only their own)")
    ] = None,
    part_id: Annotated[str | None, Query(max_length=MAX_FILTER)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    grade: Annotated[int | None, Query(ge=0, le=3, description="porosity grade >= this")] = None,
    spatter_grade: Annotated[int | None, Query(ge=0, le=3, description="spatter grade >= this")] = None,
    needs_review: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> schemas.InspectionPage:
    """Inspections, newest first, filtered; ``total`` counts every match, ``next_offset`` pages on."""
    if principal.role == "station":
        if station is not None and station != principal.station_id:
            raise HTTPException(403, f"key {principal.name!r} may only list station {principal.station_id!r}")
        station = principal.station_id
    try:
        filters = InspectionFilter(
            machine_serial=serial,
            station_id=station,
            part_id=part_id,
            needs_review=needs_review,
            since=_utc(since, "since"),
            until=_utc(until, "until"),
            min_porosity_grade=grade,
            min_spatter_grade=spatter_grade,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    page = state.store.list_inspections(filters, Page(limit=limit, offset=offset))
    items = [
        schemas.InspectionSummary(
            id=r.id,
            created_at=r.created_at,
            station_id=r.station_id,
            machine_serial=r.machine_serial,
            part_id=r.part_id,
            seam_id=r.seam_id,
            image_sha256=r.image_sha256,
            porosity_grade=r.porosity_grade,
            spatter_grade=r.spatter_grade,
            needs_review=r.needs_review,
            evidence_seq=r.evidence_seq,
        )
        for r in page.items
    ]
    nxt = offset + len(items)
    return schemas.InspectionPage(
        items=items,
        total=page.total,
        limit=limit,
        offset=offset,
        next_offset=nxt if nxt < page.total else None,
    )


@router.get(
    "/v1/inspections/{inspection_id}/overlay.png",
    tags=["inspections"],
    response_class=Response,
    responses={**ERRORS, 200: {"content": {"image/png": {}}}, **NOT_FOUND},
)
def get_overlay(inspection_id: str, state: State, principal: Caller) -> Response:
    """The stored photo with seam, findings (and heatmaps when the current model made them) drawn on."""
    record = _readable(state, principal, inspection_id)
    try:
        png = state.recorder.overlay_png(record)
    except FileNotFoundError as exc:
        raise HTTPException(404, str(exc)) from exc
    return Response(png, media_type="image/png")


# ---- reviews ----------------------------------------------------------------------------------------


def review_out(info: ReviewInfo) -> schemas.ReviewOut:
    return schemas.ReviewOut(
        id=info.id,
        inspection_id=info.inspection_id,
        reviewer=info.reviewer,
        created_at=info.created_at,
        porosity_grade=info.porosity_grade,
        spatter_grade=info.spatter_grade,
        comment=info.comment,
        marks=None if info.marks is None else [dict(m) for m in info.marks],
        not_gradable_reason=info.not_gradable_reason,
        audit=info.audit,
        evidence_seq=info.evidence_seq,
    )


@router.post(
    "/v1/inspections/{inspection_id}/reviews",
    status_code=201,
    response_model=schemas.ReviewOut,
    tags=["reviews"],
    responses={
        **ERRORS,
        **UNPARSEABLE,
        **NOT_FOUND,
        422: {
            "model": schemas.Problem,
            "description": (
                "an invalid grade, mark or flag: the detail names the field (e.g. `marks[3].box: x1 = 700.0 "
                "is outside the image (width 640)`); nothing is stored or signed"
            ),
        },
    },
)
def create_review(
    inspection_id: str, body: schemas.ReviewCreate, state: State, principal: Caller
) -> schemas.ReviewOut:
    """Sign a human review of one inspection (auditor, admin; stations never review their own output):
    final grades, marks, or the not-gradable flag, as in the dashboard's review form. The reviewer is
    the key's name; the review and its signed evidence record are committed before the 201."""
    from inspection.service.web.reviews import sign_review

    require_role(principal, "auditor")
    record = _readable(state, principal, inspection_id)
    try:
        info, _ = sign_review(
            state,
            record,
            reviewer=principal.name,
            porosity_grade=body.porosity_grade,
            spatter_grade=body.spatter_grade,
            comment=body.comment,
            marks=body.marks,
            not_gradable_reason=body.not_gradable_reason,
        )
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:  # MarkError too: the message names the field
        raise HTTPException(422, str(exc)) from exc
    return review_out(info)


@router.get(
    "/v1/inspections/{inspection_id}/reviews",
    response_model=list[schemas.ReviewOut],
    tags=["reviews"],
    responses={**ERRORS, **NOT_FOUND},
)
def list_reviews(inspection_id: str, state: State, principal: Caller) -> list[schemas.ReviewOut]:
    """The reviews of one inspection with their marks, oldest first: the last one counts
    (stations: their own inspections)."""
    record = _readable(state, principal, inspection_id)
    return [review_out(r) for r in state.store.list_reviews(record.id)]


# ---- machines and evidence ------------------------------------------------------------------------


@router.get(
    "/v1/machines/{serial}/trend",
    response_model=schemas.TrendOut,
    tags=["machines"],
    responses={**ERRORS, **NOT_FOUND},
)
def machine_trend(
    serial: str,
    state: State,
    principal: Caller,
    bucket: Annotated[
        str, Query(pattern="^(day|count)$", description="per UTC day or per `size` inspections")
    ] = "day",
    size: Annotated[int, Query(ge=1, le=10000, description="inspections per bucket (bucket=count)")] = 50,
    since: datetime | None = None,
    until: datetime | None = None,
) -> schemas.TrendOut:
    """Porosity/spatter defect rates (grade >= 1) and mean grades over time (stations: their own)."""
    if state.store.get_machine(serial) is None:
        raise HTTPException(404, f"no machine with serial {serial!r}")
    station = None if principal.sees_all else principal.station_id
    since, until = _utc(since, "since"), _utc(until, "until")
    points = trend_points(state.store, serial, station_id=station, since=since, until=until)
    buckets = trend(points, bucket=bucket, size=size)
    return schemas.TrendOut(
        serial=serial,
        bucket=bucket,  # type: ignore[arg-type]
        size=size if bucket == "count" else None,
        buckets=[schemas.TrendBucketOut(**b.__dict__) for b in buckets],
    )


@router.post(
    "/v1/evidence/export",
    tags=["evidence"],
    response_class=FileResponse,
    responses={
        **ERRORS,
        **UNPARSEABLE,
        **NOT_FOUND,
        200: {"content": {"application/zip": {}}},
        409: {"model": schemas.Problem, "description": "the records cannot be bundled"},
    },
)
def export_evidence(body: schemas.ExportRequest, state: State, principal: Caller) -> FileResponse:
    """A claim bundle (zip) of one machine's records in ``[since, until)`` (auditors)."""
    from inspection.evidence.bundle import BundleError, export_bundle

    require_role(principal, "auditor")
    body = body.model_copy(update={"since": _utc(body.since, "since"), "until": _utc(body.until, "until")})
    if body.since is not None and body.until is not None and body.until <= body.since:
        raise HTTPException(
            422, f"until ({body.until.isoformat()}) must be after since ({body.since.isoformat()})"
        )
    tmp = Path(tempfile.mkdtemp(prefix="weldinspect-export-"))
    out = tmp / f"claim-{body.serial}.zip"
    try:
        export_bundle(
            state.store,
            out,
            serial=body.serial,
            since=body.since,
            until=body.until,
            overlay=_bundle_overlay,
            signer=state.recorder.ledger.signer,
            full_chain=body.full_chain,
        )
    except BundleError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        status = 404 if str(exc).startswith("no evidence records") else 409
        raise HTTPException(status, str(exc)) from exc
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("key %s exported the claim bundle of %s", principal.name, body.serial)
    return FileResponse(
        out,
        media_type="application/zip",
        filename=out.name,
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


def _bundle_overlay(image_bytes: bytes, result: Any) -> bytes | None:
    """Findings drawn on the image (no heatmaps: the bundle must not need the model)."""
    import cv2
    import numpy as np

    from inspection.image.ingest import decode_image
    from inspection.image.overlay import draw_overlay

    drawn = draw_overlay(decode_image(image_bytes), result)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(drawn[..., ::-1]))
    return png.tobytes() if ok else None


# ---- API keys (admin) -----------------------------------------------------------------------------


def _key_out(info: Any, key: str | None = None) -> schemas.ApiKeyOut:
    return schemas.ApiKeyOut(
        name=info.name,
        role=info.role,
        station_id=info.station_id,
        created_at=info.created_at,
        revoked_at=info.revoked_at,
        key=key,
    )


@router.get("/v1/keys", response_model=list[schemas.ApiKeyOut], tags=["keys"], responses=ERRORS)
def list_keys(state: State, principal: Caller) -> list[schemas.ApiKeyOut]:
    """Every API key's metadata (never the keys themselves)."""
    require_role(principal, "admin")
    return [_key_out(k) for k in state.store.list_api_keys()]


@router.post(
    "/v1/keys",
    response_model=schemas.ApiKeyOut,
    status_code=201,
    tags=["keys"],
    responses={
        **ERRORS,
        **UNPARSEABLE,
        409: {"model": schemas.Problem, "description": "an active key has this name"},
    },
)
def create_key(body: schemas.ApiKeyCreate, state: State, principal: Caller) -> schemas.ApiKeyOut:
    """Create a key; the plain key is in this response only."""
    from inspection.service.auth import add_key

    require_role(principal, "admin")
    try:
        key, info = add_key(state.store, body.name, body.role, body.station_id)
    except ValueError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
    return _key_out(info, key)


@router.delete(
    "/v1/keys/{name}",
    response_model=schemas.ApiKeyOut,
    tags=["keys"],
    responses={**ERRORS, **NOT_FOUND},
)
def revoke_key(name: str, state: State, principal: Caller) -> schemas.ApiKeyOut:
    """Revoke the active key called ``name``."""
    from inspection.service.auth import revoke_key as revoke

    require_role(principal, "admin")
    try:
        info = revoke(state.store, name)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from exc
    refreshed = next((k for k in state.store.list_api_keys() if k.id == info.id), info)
    return _key_out(refreshed)
