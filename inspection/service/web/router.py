"""The dashboard: server-rendered pages under ``/ui`` for quality engineers and auditors.

Mounted by :func:`inspection.service.app.create_app` with ``app.include_router(create_ui_router())``;
it uses the service's store, ledger and recorder (``app.state.service``) and its API keys.

Roles (see docs/dashboard.md):

* every role may log in and browse inspections (stations: only their own station's), open the
  detail page and the machine charts (stations: computed over their own inspections);
* **reviews** (the queue, the review form, the retraining export), recomputing outcomes, the
  evidence page and claim-bundle export need ``auditor`` or ``admin``: a station does not review
  its own output (the review is signed evidence that overrides the model's grades, so it must
  come from someone independent of the station).

Blocking work (database, model, zip export) runs in plain ``def`` endpoints (FastAPI's thread pool).

No ``from __future__ import annotations`` here: FastAPI resolves the endpoints' annotations at
definition time, and the ``User`` dependency alias is local to :func:`create_ui_router`.
"""

import json
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.background import BackgroundTask

from inspection.service.auth import AuthError, Principal, authenticate
from inspection.service.state import ServiceState
from inspection.service.web import charts, session
from inspection.store import InspectionFilter, InspectionRecord, Page
from inspection.store.marks import MAX_MARKS

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
PAGE_SIZE = 25
AUTO_VERIFY_MAX_RECORDS = 5000
"""The evidence page verifies the whole chain by itself up to this many records (else on request)."""
VERIFY_CACHE_S = 600
"""A chain verification is reused for this long while the ledger head is unchanged ("Verify now" forces)."""
REVIEW_ROLES = ("auditor", "admin")
NEEDS_REVIEW = {"": None, "yes": True, "no": False}
BUCKETS = {"day": "per UTC day", "count": "per N inspections"}


@dataclass(frozen=True)
class UiUser:
    """The logged-in user of one request: principal, session and the form CSRF token."""

    principal: Principal
    session: session.SessionData
    csrf: str
    state: ServiceState

    @property
    def can_review(self) -> bool:
        return self.principal.role in REVIEW_ROLES


@dataclass
class _VerifyCache:
    """The last chain verification, valid while the ledger head is unchanged."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    head: tuple[int, str] | None = None
    report: Any = None
    at: datetime | None = None
    seconds: float = 0.0


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = lambda v: "" if v is None else v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    env.filters["pct"] = lambda v: "–" if v is None else f"{100.0 * v:.1f} %"
    env.filters["num"] = lambda v, nd=2: "–" if v is None else f"{v:.{nd}f}"
    env.filters["grade"] = lambda v: "–" if v is None else str(v)
    env.filters["short"] = lambda v, n=12: (
        "" if v is None else (str(v)[:n] + "…" if len(str(v)) > n else str(v))
    )
    return env


def _parse_day(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError as exc:
        msg = f"{name} must be a date YYYY-MM-DD, got {value!r}"
        raise ValueError(msg) from exc


def _parse_grade(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if value not in ("0", "1", "2", "3"):
        msg = f"{name} must be one of 0, 1, 2, 3 (or empty), got {value!r}"
        raise ValueError(msg)
    return int(value)


def _safe_next(value: str | None) -> str:
    """A local dashboard path to go to after login (anything else -> the inspections page)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/inspections"


def create_ui_router(
    *, secret: bytes | None = None, secure_cookies: bool | None = None, session_ttl_s: int = 12 * 3600
) -> APIRouter:
    """The ``/ui`` router (a :class:`fastapi.APIRouter`).

    ``secret`` signs session cookies and CSRF tokens (>= 32 bytes; default: random per process, so
    sessions end when the service restarts -- pass a shared secret when running several workers).
    ``secure_cookies``: True/False forces the cookies' ``Secure`` flag; None (default) sets it when
    the request came over HTTPS. ``session_ttl_s``: session lifetime in seconds.
    """
    codec = session.SessionCodec(secret or secrets.token_bytes(32), ttl_s=session_ttl_s)
    env = _env()
    verify_cache = _VerifyCache()
    router = APIRouter(prefix="/ui", include_in_schema=False)

    # ---- plumbing -------------------------------------------------------------------------------

    def state_of(request: Request) -> ServiceState:
        state = request.app.state.service
        if state is None:
            raise HTTPException(503, "service is starting or stopping; retry shortly")
        return state  # type: ignore[no-any-return]

    def current_user(request: Request) -> UiUser:
        """The logged-in user; a 303 redirect to the login page when there is no valid session."""
        state = state_of(request)
        data = codec.read(request.cookies.get(session.SESSION_COOKIE), time.time())
        info = None if data is None else state.store.find_api_key(data.key_hash)
        if data is None or info is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            if request.method != "GET":  # a form post cannot be replayed after logging in
                target = "/ui/inspections"
            location = "/ui/login?" + urlencode({"next": target})
            raise HTTPException(303, "log in first", headers={"Location": location})
        principal = Principal(info.name, info.role, info.station_id)
        return UiUser(principal, data, codec.csrf_token(data), state)

    User = Annotated[UiUser, Depends(current_user)]

    def render(
        request: Request, name: str, user: UiUser | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        template = env.get_template(name)
        html = template.render(request=request, user=user, path=request.url.path, **values)
        response = HTMLResponse(html, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def error(request: Request, user: UiUser | None, status: int, message: str) -> HTMLResponse:
        return render(request, "error.html", user, status=status, status_code=status, message=message)

    def csrf_failed(request: Request, user: UiUser, token: str | None) -> HTMLResponse | None:
        if codec.check_csrf(user.session, token):
            return None
        logger.warning("CSRF check failed for %s on %s", user.principal.name, request.url.path)
        return error(request, user, 403, "The form's security token is missing or wrong; reload the page.")

    def forbidden(request: Request, user: UiUser, what: str) -> HTMLResponse:
        msg = (
            f"Your key {user.principal.name!r} has role {user.principal.role!r}; "
            f"{what} needs the auditor or admin role."
        )
        return error(request, user, 403, msg)

    def readable(user: UiUser, inspection_id: str) -> InspectionRecord | None:
        record = user.state.store.get_inspection(inspection_id)
        if record is None or not user.principal.can_read(record.station_id):
            return None
        return record

    # ---- static files -----------------------------------------------------------------------------

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        path = STATIC / name
        if path.suffix not in STATIC_TYPES or path.parent != STATIC or not path.is_file():
            raise HTTPException(404, f"no static file {name!r}")
        return Response(
            path.read_bytes(),
            media_type=STATIC_TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=300"},
        )

    # ---- login / logout -----------------------------------------------------------------------

    @router.get("", response_class=HTMLResponse)
    @router.get("/", response_class=HTMLResponse)
    def home() -> Response:
        return RedirectResponse("/ui/inspections", status_code=303)

    def login_page(request: Request, next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
        nonce = session.new_nonce()
        response = render(
            request,
            "login.html",
            None,
            status=status,
            login_token=codec.login_token(nonce),
            next_path=_safe_next(next_path),
            message=message,
        )
        session.set_cookie(
            response,
            session.LOGIN_COOKIE,
            nonce,
            max_age=session.LOGIN_TTL_S,
            secure=session.secure_flag(request, secure_cookies),
        )
        return response

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/ui/inspections") -> HTMLResponse:
        return login_page(request, next)

    @router.post("/login", response_class=HTMLResponse)
    def login(
        request: Request,
        api_key: Annotated[str, Form()] = "",
        login_token: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/ui/inspections",
    ) -> Response:
        state = state_of(request)
        if not codec.check_login(request.cookies.get(session.LOGIN_COOKIE), login_token):
            return login_page(
                request, next, "The login form expired or was not sent by this page; try again.", 403
            )
        key = api_key.strip()
        if not key:
            return login_page(request, next, "Enter your API key.", 400)
        try:
            principal = authenticate(state.store, key)
        except AuthError:
            logger.info("dashboard login refused: invalid or revoked key")
            return login_page(request, next, "Invalid or revoked API key.", 401)
        from inspection.service.auth import hash_key

        secure = session.secure_flag(request, secure_cookies)
        response = RedirectResponse(_safe_next(next), status_code=303)
        token = codec.issue(hash_key(key), time.time())
        session.set_cookie(response, session.SESSION_COOKIE, token, max_age=codec.ttl_s, secure=secure)
        session.clear_cookie(response, session.LOGIN_COOKIE, secure=secure)
        logger.info("dashboard login: %s (%s)", principal.name, principal.role)
        return response

    @router.post("/logout")
    def logout(request: Request, user: User, csrf_token: Annotated[str, Form()] = "") -> Response:
        failed = csrf_failed(request, user, csrf_token)
        if failed is not None:
            return failed
        response = RedirectResponse("/ui/login", status_code=303)
        session.clear_cookie(
            response, session.SESSION_COOKIE, secure=session.secure_flag(request, secure_cookies)
        )
        return response

    # ---- inspections --------------------------------------------------------------------------

    @router.get("/inspections", response_class=HTMLResponse)
    def inspections(
        request: Request,
        user: User,
        station: str = "",
        serial: str = "",
        since: str = "",
        until: str = "",
        grade: str = "",
        spatter_grade: str = "",
        needs_review: str = "",
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    ) -> HTMLResponse:
        form = {
            "station": station.strip(),
            "serial": serial.strip(),
            "since": since,
            "until": until,
            "grade": grade,
            "spatter_grade": spatter_grade,
            "needs_review": needs_review,
        }
        station_id = form["station"] or None
        if user.principal.role == "station":
            station_id = user.principal.station_id
            form["station"] = station_id or ""
        try:
            start = _parse_day(since, "from date")
            end_day = _parse_day(until, "to date")
            if needs_review not in NEEDS_REVIEW:
                msg = f"needs review must be yes, no or empty, got {needs_review!r}"
                raise ValueError(msg)
            filters = InspectionFilter(
                machine_serial=form["serial"] or None,
                station_id=station_id,
                needs_review=NEEDS_REVIEW[needs_review],
                since=start,
                until=None if end_day is None else end_day + timedelta(days=1),
                min_porosity_grade=_parse_grade(grade, "porosity grade"),
                min_spatter_grade=_parse_grade(spatter_grade, "spatter grade"),
            )
        except ValueError as exc:
            return render(
                request, "inspections.html", user, status=422, form=form, error=str(exc), items=[], total=0,
                page=1, pages=1, query="", reviewed={},
            )  # fmt: skip
        from inspection.service.web.queries import latest_reviews

        result = user.state.store.list_inspections(
            filters, Page(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        )
        pages = max(1, -(-result.total // PAGE_SIZE))
        query = urlencode({k: v for k, v in form.items() if v})
        reviewed = latest_reviews(user.state.store, [r.id for r in result.items])
        return render(
            request, "inspections.html", user, form=form, error="", items=result.items, total=result.total,
            page=page, pages=pages, query=query, reviewed=reviewed,
        )  # fmt: skip

    @router.get("/inspections/{inspection_id}", response_class=HTMLResponse)
    def inspection(request: Request, user: User, inspection_id: str, reviewed: str = "") -> HTMLResponse:
        record = readable(user, inspection_id)
        if record is None:
            return error(request, user, 404, f"No inspection {inspection_id!r} visible to your key.")
        from inspection.service.web.evidence_view import evidence_status

        evidence = evidence_status(user.state.store, record.evidence_seq)
        result = dict(record.result)
        return render(
            request,
            "inspection.html",
            user,
            record=record,
            result=result,
            ctx=result.get("context") or {},
            findings=_findings(result),
            standards=result.get("standards"),
            recommendation=None if evidence is None else evidence.recommendation,
            evidence=evidence,
            reviews=user.state.store.list_reviews(record.id),
            reviewed=reviewed == "1",
            marks_init=json.dumps(_finding_marks(result), separators=(",", ":")),
            max_marks=MAX_MARKS,
            grading=user.state.settings.app_config.grading,
        )

    @router.get("/inspections/{inspection_id}/image")
    def inspection_image(user: User, inspection_id: str) -> Response:
        from inspection.service.web.queries import image_media_type
        from inspection.store import sniff_media_type

        record = readable(user, inspection_id)
        if record is None:
            raise HTTPException(404, f"no inspection {inspection_id!r} visible to your key")
        try:
            data = user.state.store.images.read(record.image_sha256)
        except FileNotFoundError as exc:
            raise HTTPException(404, f"image {record.image_sha256} is missing from the store") from exc
        media = image_media_type(user.state.store, record.image_sha256) or sniff_media_type(data)
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @router.get("/inspections/{inspection_id}/overlay.png")
    def inspection_overlay(user: User, inspection_id: str) -> Response:
        record = readable(user, inspection_id)
        if record is None:
            raise HTTPException(404, f"no inspection {inspection_id!r} visible to your key")
        try:
            png = user.state.recorder.overlay_png(record)
        except FileNotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    # ---- reviews ------------------------------------------------------------------------------

    @router.get("/reviews", response_class=HTMLResponse)
    def reviews(
        request: Request, user: User, page: Annotated[int, Query(ge=1, le=100_000)] = 1, done: str = ""
    ) -> HTMLResponse:
        from inspection.evidence.audit import miss_rate_from_store
        from inspection.service.web.queue import review_queue
        from inspection.service.web.reviews import refresh_queue

        if not user.can_review:
            return forbidden(request, user, "the review queue")
        audit_rate = refresh_queue(user.state)
        items, total = review_queue(user.state.store, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        return render(
            request, "reviews.html", user, items=items, total=total, page=page, pages=pages, done=done,
            audit_rate=audit_rate, miss_rate=miss_rate_from_store(user.state.store),
        )  # fmt: skip

    @router.post("/inspections/{inspection_id}/review")
    def submit_review(
        request: Request,
        user: User,
        inspection_id: str,
        csrf_token: Annotated[str, Form()] = "",
        porosity_grade: Annotated[str, Form()] = "",
        spatter_grade: Annotated[str, Form()] = "",
        comment: Annotated[str, Form(max_length=4000)] = "",
        back: Annotated[str, Form()] = "",
        marks: Annotated[str, Form()] = "",
        not_gradable: Annotated[str, Form()] = "",
        not_gradable_reason: Annotated[str, Form(max_length=1000)] = "",
    ) -> Response:
        from inspection.service.web.reviews import sign_review
        from inspection.store.marks import parse_marks

        failed = csrf_failed(request, user, csrf_token)
        if failed is not None:
            return failed
        if not user.can_review:
            return forbidden(request, user, "reviewing")
        record = readable(user, inspection_id)
        if record is None:
            return error(request, user, 404, f"No inspection {inspection_id!r} visible to your key.")
        flagged = not_gradable not in ("", "0")
        try:
            if not_gradable not in ("", "0", "1", "on"):
                msg = f"not_gradable must be 1 (flagged) or empty, got {not_gradable!r}"
                raise ValueError(msg)
            por = None if flagged else _parse_grade(porosity_grade, "porosity grade")
            spa = None if flagged else _parse_grade(spatter_grade, "spatter grade")
            reason = not_gradable_reason.strip() if flagged else None
            if flagged and not reason:
                msg = "not_gradable_reason: say why the photo cannot be graded (e.g. glare over the seam)"
                raise ValueError(msg)
            parsed = None
            if marks.strip() and not flagged:  # the form sends the marks as JSON text
                result = record.result
                parsed = parse_marks(
                    marks,
                    width=result.get("width"),
                    height=result.get("height"),
                    n_findings=len(result.get("findings") or ()),
                )
            sign_review(
                user.state,
                record,
                reviewer=user.principal.name,
                porosity_grade=por,
                spatter_grade=spa,
                comment=comment,
                marks=parsed,
                not_gradable_reason=reason,
            )
        except LookupError as exc:
            return error(request, user, 404, str(exc))
        except ValueError as exc:  # MarkError too: the message names the field
            return error(request, user, 422, str(exc))
        if back == "queue":
            return RedirectResponse(f"/ui/reviews?{urlencode({'done': record.id})}", status_code=303)
        return RedirectResponse(f"/ui/inspections/{record.id}?reviewed=1", status_code=303)

    @router.get("/reviews/export.jsonl")
    def export_reviews(request: Request, user: User) -> Response:
        from inspection.service.web.queries import review_manifest

        if not user.can_review:
            return forbidden(request, user, "the retraining export")
        lines = review_manifest(user.state.store)

        def body() -> Iterator[bytes]:
            for line in lines:
                yield (json.dumps(line, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            body(),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="reviews-{stamp}.jsonl"'},
        )

    # ---- machines -------------------------------------------------------------------------------

    @router.get("/machines", response_class=HTMLResponse)
    def machines(request: Request, user: User) -> HTMLResponse:
        from inspection.service.web.queries import machine_summaries

        station = None if user.principal.sees_all else user.principal.station_id
        return render(
            request, "machines.html", user, machines=machine_summaries(user.state.store, station_id=station)
        )

    @router.get("/machines/{serial}", response_class=HTMLResponse)
    def machine(
        request: Request,
        user: User,
        serial: str,
        bucket: str = "day",
        size: Annotated[int, Query(ge=2, le=10_000)] = 20,
        recomputed: str = "",
    ) -> HTMLResponse:
        from inspection.recommend.outcomes import OutcomeRecord, rule_stats
        from inspection.recommend.tracking import outcomes_summary, tracked_outcomes
        from inspection.service.queries import trend_points
        from inspection.service.web.queries import param_history

        store = user.state.store
        info = store.get_machine(serial)
        if info is None:
            return error(request, user, 404, f"No machine with serial {serial!r}.")
        if bucket not in BUCKETS:
            return error(request, user, 422, f"Unknown subgroup {bucket!r}; valid: {', '.join(BUCKETS)}.")
        station = None if user.principal.sees_all else user.principal.station_id
        points = trend_points(store, serial, station_id=station)
        svgs = []
        for defect in charts.DEFECTS:
            groups = charts.subgroups(points, defect, bucket=bucket, size=size)
            for chart in (charts.p_chart(groups, defect), charts.ewma_chart(groups, defect)):
                svgs.append((chart, Markup(charts.render_svg(chart))))
        changes, names = param_history(store, serial, station_id=station)
        outcomes = tracked_outcomes(store, serial) if user.principal.sees_all else []
        stats = rule_stats(
            OutcomeRecord(t.rule_id, t.parameter, t.new_value or 0.0, t.issued_at, None, t.outcome)
            for t in outcomes
            if t.outcome != "pending"
        )
        return render(
            request, "machine.html", user, machine=info, points=len(points), bucket=bucket, size=size,
            buckets=BUCKETS, charts=svgs, changes=list(reversed(changes)), param_names=names,
            outcomes=outcomes, summary=outcomes_summary(outcomes),
            stats=sorted(stats.values(), key=lambda s: s.rule_id),
            recomputed=recomputed,
        )  # fmt: skip

    @router.post("/machines/{serial}/outcomes")
    def recompute_outcomes(
        request: Request, user: User, serial: str, csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        failed = csrf_failed(request, user, csrf_token)
        if failed is not None:
            return failed
        if not user.can_review:
            return forbidden(request, user, "recomputing outcomes")
        if user.state.store.get_machine(serial) is None:
            return error(request, user, 404, f"No machine with serial {serial!r}.")
        # through the recorder's tracker, so the advice of the next upload is ranked with the result
        added, outcomes = user.state.recorder.outcomes.recompute(serial)
        user.state.recorder.outcomes.invalidate()  # reload all rules: other writers may have changed some
        n = len(outcomes)
        logger.info(
            "%s recomputed outcomes of %s: %d backfilled, %d outcomes", user.principal.name, serial, added, n
        )
        location = f"/ui/machines/{quote(serial, safe='')}?{urlencode({'recomputed': n})}"
        return RedirectResponse(location, status_code=303)

    # ---- evidence -------------------------------------------------------------------------------

    def verification(state: ServiceState, force: bool) -> dict[str, Any]:
        from inspection.evidence.ledger import head_record
        from inspection.evidence.verify import verify_store

        head = head_record(state.store)
        key = None if head is None else (head.seq, head.record_hash)
        with verify_cache.lock:
            fresh = (
                verify_cache.report is not None
                and verify_cache.head == key
                and verify_cache.at is not None
                and (datetime.now(UTC) - verify_cache.at).total_seconds() < VERIFY_CACHE_S
            )
            if force or (not fresh and (head is None or head.seq <= AUTO_VERIFY_MAX_RECORDS)):
                t0 = time.perf_counter()
                verify_cache.report = verify_store(state.store)
                verify_cache.seconds = time.perf_counter() - t0
                verify_cache.head = key
                verify_cache.at = datetime.now(UTC)
                fresh = True
            return {
                "head": head,
                "report": verify_cache.report if fresh else None,
                "stale_report": None if fresh else verify_cache.report,
                "checked_at": verify_cache.at,
                "seconds": verify_cache.seconds,
                "auto_limit": AUTO_VERIFY_MAX_RECORDS,
            }

    def evidence_page(
        request: Request, user: UiUser, *, force: bool = False, message: str = "", status: int = 200,
        form: Mapping[str, str] | None = None,
    ) -> HTMLResponse:  # fmt: skip
        if not user.can_review:
            return forbidden(request, user, "the evidence page")
        from inspection.evidence.audit import miss_rate_from_store

        return render(
            request, "evidence.html", user, status=status, message=message,
            machines=user.state.store.list_machines(), form=form or {}, **verification(user.state, force),
            miss_rate=miss_rate_from_store(user.state.store),
        )  # fmt: skip

    @router.get("/evidence", response_class=HTMLResponse)
    def evidence(request: Request, user: User) -> HTMLResponse:
        return evidence_page(request, user)

    @router.post("/evidence/verify", response_class=HTMLResponse)
    def evidence_verify(
        request: Request, user: User, csrf_token: Annotated[str, Form()] = ""
    ) -> HTMLResponse:
        failed = csrf_failed(request, user, csrf_token)
        return failed if failed is not None else evidence_page(request, user, force=True)

    @router.post("/evidence/export")
    def evidence_export(
        request: Request,
        user: User,
        csrf_token: Annotated[str, Form()] = "",
        serial: Annotated[str, Form()] = "",
        since: Annotated[str, Form()] = "",
        until: Annotated[str, Form()] = "",
        full_chain: Annotated[str, Form()] = "",
    ) -> Response:
        from inspection.evidence.bundle import BundleError, export_bundle

        failed = csrf_failed(request, user, csrf_token)
        if failed is not None:
            return failed
        if not user.can_review:
            return forbidden(request, user, "claim-bundle export")
        form = {"serial": serial, "since": since, "until": until, "full_chain": full_chain}
        try:
            if not serial.strip():
                msg = "choose a machine serial"
                raise ValueError(msg)
            start = _parse_day(since, "from date")
            end_day = _parse_day(until, "to date")
            end = None if end_day is None else end_day + timedelta(days=1)
            if start is not None and end is not None and end <= start:
                msg = f"the to date ({until}) must not be before the from date ({since})"
                raise ValueError(msg)
        except ValueError as exc:
            return evidence_page(request, user, message=str(exc), status=422, form=form)
        tmp = Path(tempfile.mkdtemp(prefix="weldinspect-ui-export-"))
        out = tmp / f"claim-{serial.strip()}.zip"
        try:
            export_bundle(
                user.state.store,
                out,
                serial=serial.strip(),
                since=start,
                until=end,
                overlay=_bundle_overlay,
                signer=user.state.recorder.ledger.signer,
                full_chain=bool(full_chain),
            )
        except BundleError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            status = 404 if str(exc).startswith("no evidence records") else 409
            return evidence_page(request, user, message=str(exc), status=status, form=form)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("%s exported the claim bundle of %s from the dashboard", user.principal.name, serial)
        return FileResponse(
            out,
            media_type="application/zip",
            filename=out.name,
            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
        )

    return router


def _findings(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The result's findings with their index (the standards verdicts refer to them by index)."""
    return [{"index": i, **f} for i, f in enumerate(result.get("findings") or ())]


def _finding_marks(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model's findings as editable box marks (the box around each circle, inside the image)."""
    from inspection.store.marks import MARK_LABELS

    width, height = result.get("width"), result.get("height")
    if not (isinstance(width, int) and isinstance(height, int)):
        return []
    out = []
    for i, f in enumerate(result.get("findings") or ()):
        if f.get("kind") not in MARK_LABELS:
            continue
        r = max(2.0, float(f.get("diameter_px") or 0.0) / 2.0)
        x, y = float(f["x"]), float(f["y"])
        box = [max(0.0, x - r), max(0.0, y - r), min(float(width), x + r), min(float(height), y + r)]
        box = [round(v, 1) for v in box]
        if box[0] < box[2] and box[1] < box[3]:
            out.append({"label": f["kind"], "box": box, "origin": "model", "finding": i})
    return out


def _bundle_overlay(image_bytes: bytes, result: Any) -> bytes | None:
    """Findings drawn on the image for claim bundles (no heatmaps: no model run)."""
    import cv2
    import numpy as np

    from inspection.image.ingest import decode_image
    from inspection.image.overlay import draw_overlay

    drawn = draw_overlay(decode_image(image_bytes), result)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(drawn[..., ::-1]))
    return png.tobytes() if ok else None
