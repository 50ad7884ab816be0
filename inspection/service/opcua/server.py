"""The asyncua server: a Machine Vision-style VisionSystem over the service's one inspection path.

:class:`VisionServer` builds the address space of ``docs/opcua.md`` (namespace :data:`NAMESPACE_URI`,
string node ids = dotted browse paths under ``VisionSystem``), starts listening in state
*Preoperational*, loads the store, signing key and model (:func:`open_recorder`) and then reports
*Operational / Ready*. ``InspectBytes`` / ``InspectFile`` switch it to *SingleExecution* while they
run; every inspection goes through :meth:`Recorder.submit` (idempotency look-up, inspector, ledger
transaction committed before it returns), one at a time in call order. After the commit the
``ResultManagement.LastResult`` variables are written and an ``InspectionResultEventType`` event is
fired; then the method returns. A refused call returns a Bad status, the reason in its ``Error``
output, in ``ResultManagement.LastError`` and in an ``InspectionErrorEventType`` event; nothing is
recorded. ``SwitchRecipe`` loads another model artifact under the models folder and swaps it in
atomically: an inspection that already started finishes on the old model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlparse

from asyncua import Node, Server, ua
from sqlalchemy.exc import SQLAlchemyError

from inspection.evidence.ledger import IdempotencyConflictError
from inspection.image.ingest import IngestError
from inspection.service.opcua.request import (
    ImageRequest,
    Rejected,
    build_request,
    check_image_bytes,
    read_allowed_image,
    rejected_from_ingest,
)
from inspection.service.opcua.security import (
    SERVER_APP_URI,
    UserManager,
    ensure_server_certificate,
    fingerprint,
)
from inspection.service.recorder import Recorder, open_recorder
from inspection.service.routes import inspection_out
from inspection.service.schemas import InspectionOut
from inspection.service.settings import ServiceSettings, service_app_config
from inspection.service.state import ServiceState
from inspection.store.db import StoreError

logger = logging.getLogger(__name__)

NAMESPACE_URI: Final = "urn:weldinspect:opcua:machinevision:v1"
PREOPERATIONAL: Final = "Preoperational"
OPERATIONAL: Final = "Operational"
ERROR: Final = "Error"
READY: Final = "Ready"
SINGLE_EXECUTION: Final = "SingleExecution"
NO_GRADE: Final = -1
"""Grade variables hold -1 when the head did not grade (quality gate failed, abstained, no seam)."""
RECIPE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$"
TRANSIENT: Final = (SQLAlchemyError, StoreError, OSError)
Security = Literal["none", "sign-encrypt"]
SECURITY_MODES: Final[tuple[str, ...]] = ("none", "sign-encrypt")

_S = ua.VariantType.String
_B = ua.VariantType.Boolean
_I32 = ua.VariantType.Int32
_I64 = ua.VariantType.Int64
_BS = ua.VariantType.ByteString
_DT = ua.VariantType.DateTime
_LT = ua.VariantType.LocalizedText

RESULT_FIELDS: Final[tuple[tuple[str, ua.VariantType, str], ...]] = (
    ("ResultId", _S, "inspection id of the record"),
    ("Created", _B, "False for an idempotent replay of an earlier record"),
    ("ImageSha256", _S, "SHA-256 of the image bytes"),
    ("PorosityGrade", _I32, "0-3, -1 when not graded"),
    ("SpatterGrade", _I32, "0-3, -1 when not graded"),
    ("NeedsReview", _B, "a person must confirm the grades"),
    ("Reasons", _S, "review reasons (array of stable codes)"),
    ("EvidenceSeq", _I64, "sequence number of the signed evidence record"),
    ("RecordHash", _S, "hash of the evidence record"),
    ("ModelVersion", _S, "model that graded the image"),
    ("ResultJson", _S, "the HTTP API's inspection body (InspectionOut) as JSON"),
)
ERROR_FIELDS: Final[tuple[tuple[str, ua.VariantType, str], ...]] = (
    ("ErrorCode", _S, "machine-readable reason code"),
    ("ErrorMessage", _S, "what was wrong and what is valid"),
    ("Method", _S, "the method that was refused"),
)


@dataclass(frozen=True)
class OpcuaConfig:
    """How the OPC UA server listens and whom it serves.

    * ``endpoint``: ``opc.tcp://host:port[/path]`` to listen on;
    * ``security``: ``sign-encrypt`` (Basic256Sha256 Sign&Encrypt only; default) or ``none``
      (no channel security: passwords travel in clear text, for loopback tests only);
    * ``cert_dir``: ``server_cert.der`` + ``server_key.pem`` (made self-signed on first start);
    * ``users``: name -> scrypt hash (:mod:`.security`); ``allow_anonymous``: accept anonymous sessions;
    * ``allowed_dirs``: folders ``InspectFile`` may read from (none: ``InspectFile`` is refused);
    * ``models_dir``: where ``SwitchRecipe`` looks for ``<name>/<version>`` artifacts;
    * ``station``: the station this server inspects for (binds metadata ``station_id`` and scopes
      idempotency keys like an HTTP station key).
    """

    cert_dir: Path
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    security: Security = "sign-encrypt"
    users: Mapping[str, str] = field(default_factory=dict)
    allow_anonymous: bool = False
    allowed_dirs: tuple[Path, ...] = ()
    models_dir: Path | None = None
    station: str | None = None

    def __post_init__(self) -> None:
        url = urlparse(self.endpoint)
        if url.scheme != "opc.tcp" or not url.hostname:
            msg = f"endpoint {self.endpoint!r} is not valid; expected opc.tcp://host:port, e.g. opc.tcp://127.0.0.1:4840"
            raise ValueError(msg)
        try:
            port = url.port
        except ValueError as exc:
            msg = f"endpoint {self.endpoint!r}: the port must be a number 1-65535"
            raise ValueError(msg) from exc
        if port is None:
            msg = f"endpoint {self.endpoint!r} names no port; e.g. opc.tcp://127.0.0.1:4840"
            raise ValueError(msg)
        if self.security not in SECURITY_MODES:
            msg = f"security must be one of {', '.join(SECURITY_MODES)}, got {self.security!r}"
            raise ValueError(msg)
        if not self.users and not self.allow_anonymous:
            msg = (
                "no way to log in: give a user file (--user-file), a user from the environment "
                "(--username with --password-env), or --allow-anonymous"
            )
            raise ValueError(msg)
        for d in self.allowed_dirs:
            if not d.is_dir():
                msg = f"allowed folder {d} is not a directory"
                raise ValueError(msg)

    @property
    def host(self) -> str:
        return urlparse(self.endpoint).hostname or ""


@dataclass(frozen=True)
class Outcome:
    out: InspectionOut
    created: bool


def _arg(name: str, vtype: ua.VariantType, description: str, *, array: bool = False) -> ua.Argument:
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(vtype.value)  # type: ignore[arg-type]
    arg.ValueRank = 1 if array else -1
    arg.ArrayDimensions = [0] if array else []
    arg.Description = ua.LocalizedText(description)
    return arg


INSPECT_OUTPUTS: Final = [
    _arg("ResultId", _S, "inspection id ('' when refused)"),
    _arg("Created", _B, "False for an idempotent replay"),
    _arg("ResultJson", _S, "the HTTP API's inspection body as JSON ('' when refused)"),
    _arg("Error", _S, "'' on success; else JSON {error, reason} (the call's status is Bad)"),
]
METADATA_ARG: Final = _arg("Metadata", _S, "JSON object, the HTTP API's metadata fields ('' for none)")
KEY_ARG: Final = _arg("IdempotencyKey", _S, "retry key: the same key never stores twice ('' for none)")


class VisionServer:
    """One OPC UA server over one :class:`Recorder`. Use ``async with`` or :meth:`start` / :meth:`stop`.

    ``recorder_factory`` (default :func:`open_recorder`) is called in a worker thread after the server
    listens (state *Preoperational* meanwhile).
    """

    def __init__(
        self,
        settings: ServiceSettings,
        config: OpcuaConfig,
        *,
        recorder_factory: Callable[[ServiceSettings], Recorder] = open_recorder,
    ) -> None:
        self.settings = settings
        self.config = config
        self.recorder: Recorder | None = None
        self.certificate_created = False
        self.certificate: Path | None = None
        self._factory = recorder_factory
        self._server: Server | None = None
        self._nodes: dict[str, Node] = {}
        self._idx = 0
        self._state = PREOPERATIONAL
        self._error = ""
        self._busy = 0
        self._recipe_id = ""
        self._recipe_lock = asyncio.Lock()
        # inspections run one at a time, in call order; model loads run beside them
        self._inspect_pool = ThreadPoolExecutor(1, thread_name_prefix="opcua-inspect")
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="opcua-load")
        self._load_task: asyncio.Task[None] | None = None
        self._result_events: Any = None
        self._error_events: Any = None

    # ---- life cycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> VisionServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on the endpoint (state Preoperational) and start loading the model in the background."""
        cfg = self.config
        server = Server(user_manager=UserManager(cfg.users, allow_anonymous=cfg.allow_anonymous))  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(cfg.endpoint)
        server.set_server_name("weldinspect OPC UA Machine Vision")
        await server.set_application_uri(SERVER_APP_URI)
        tokens: list[type] = [ua.UserNameIdentityToken]
        if cfg.allow_anonymous:
            tokens.append(ua.AnonymousIdentityToken)
        server.set_identity_tokens(tokens)
        if cfg.security == "sign-encrypt":
            loop = asyncio.get_running_loop()
            pair, created = await loop.run_in_executor(
                self._load_pool, ensure_server_certificate, cfg.cert_dir
            )
            self.certificate, self.certificate_created = pair.cert, created
            if created:
                logger.warning(
                    "no server certificate in %s: made a self-signed one (%s, SHA-256 %s); clients must "
                    "trust it, or use certificates from 'weldinspect opcua certs --out DIR' (--cert-dir DIR)",
                    cfg.cert_dir,
                    pair.cert,
                    fingerprint(pair.cert),
                )
            await server.load_certificate(str(pair.cert))
            await server.load_private_key(str(pair.key))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            logger.warning(
                "OPC UA security 'none': no channel encryption, passwords travel in clear text; "
                "use it on loopback only"
            )
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self._idx = await server.register_namespace(NAMESPACE_URI)
        await self._build(server)
        await server.start()
        self._server = server
        logger.info("OPC UA server listening on %s (security %s)", cfg.endpoint, cfg.security)
        self._load_task = asyncio.create_task(self._load())

    async def wait_loaded(self) -> str:
        """Wait until the model is loaded (or failed); the state then (Operational or Error)."""
        if self._load_task is not None:
            await self._load_task
        return self._state

    async def stop(self) -> None:
        """Stop listening, let a running inspection finish, close the store."""
        if self._load_task is not None:
            await asyncio.gather(self._load_task, return_exceptions=True)
        if self._server is not None:
            await self._server.stop()
            self._server = None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._inspect_pool.shutdown, True)
        await loop.run_in_executor(None, self._load_pool.shutdown, True)
        if self.recorder is not None:
            self.recorder.store.close()
            self.recorder = None

    async def _load(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            recorder = await loop.run_in_executor(self._load_pool, self._factory, self.settings)
        except Exception as exc:
            logger.exception("loading the store, signing key or model failed")
            await self._set_state(ERROR, f"start-up failed: {type(exc).__name__}: {exc}")
            return
        self.recorder = recorder
        model_dir = self.settings.model_dir
        self._recipe_id = self._recipe_of(model_dir) if model_dir is not None else "default"
        await self._publish_recipe()
        await self._set_state(OPERATIONAL)

    # ---- address space -----------------------------------------------------------------------------

    def _nid(self, path: str) -> ua.NodeId:
        return ua.NodeId(path, self._idx)  # type: ignore[arg-type]

    def _qn(self, name: str) -> ua.QualifiedName:
        return ua.QualifiedName(name, self._idx)

    async def _obj(self, parent: Node, path: str) -> Node:
        node = await parent.add_object(self._nid(path), self._qn(path.rsplit(".", 1)[-1]))
        self._nodes[path] = node
        return node

    async def _var(self, parent: Node, path: str, value: Any, vtype: ua.VariantType) -> Node:
        node = await parent.add_variable(
            self._nid(path), self._qn(path.rsplit(".", 1)[-1]), ua.Variant(value, vtype)
        )
        self._nodes[path] = node
        return node

    async def _method(
        self,
        parent: Node,
        path: str,
        func: Callable[..., Awaitable[Any]],
        inputs: list[ua.Argument],
        outputs: list[ua.Argument],
    ) -> None:
        await parent.add_method(self._nid(path), self._qn(path.rsplit(".", 1)[-1]), func, inputs, outputs)

    async def _event_type(
        self, server: Server, name: str, fields: Sequence[tuple[str, ua.VariantType, str]]
    ) -> Node:
        base = server.get_node(ua.NodeId(ua.ObjectIds.BaseEventType))  # type: ignore[arg-type]
        etype = await base.add_object_type(self._nid(name), self._qn(name))
        for fname, vtype, _ in fields:
            default: Any = [] if fname == "Reasons" else ua.get_default_value(vtype)
            prop = await etype.add_property(
                self._nid(f"{name}.{fname}"), self._qn(fname), ua.Variant(default, vtype)
            )
            if fname == "Reasons":
                await prop.write_value_rank(1)
        return etype

    async def _build(self, server: Server) -> None:
        objects = server.nodes.objects
        vs = await self._obj(objects, "VisionSystem")
        sm = await self._obj(vs, "VisionSystem.VisionStateMachine")
        await self._var(
            sm, "VisionSystem.VisionStateMachine.CurrentState", ua.LocalizedText(PREOPERATIONAL), _LT
        )
        await self._var(sm, "VisionSystem.VisionStateMachine.ErrorMessage", "", _S)
        auto = await self._obj(sm, "VisionSystem.VisionStateMachine.VisionAutomaticModeStateMachine")
        await self._var(
            auto,
            "VisionSystem.VisionStateMachine.VisionAutomaticModeStateMachine.CurrentState",
            ua.LocalizedText(""),
            _LT,
        )
        recipes = await self._obj(vs, "VisionSystem.RecipeManagement")
        for name in ("RecipeId", "ModelName", "ModelVersion", "ModelSha256"):
            await self._var(recipes, f"VisionSystem.RecipeManagement.{name}", "", _S)
        await self._var(recipes, "VisionSystem.RecipeManagement.Recipes", [], _S)
        await self._method(
            recipes,
            "VisionSystem.RecipeManagement.SwitchRecipe",
            self._switch_recipe,
            [_arg("RecipeId", _S, "<name>/<version> of a model artifact under the models folder")],
            [
                _arg("ModelVersion", _S, "the version now loaded ('' when refused)"),
                _arg("Error", _S, "'' on success; else JSON {error, reason} (the call's status is Bad)"),
            ],
        )
        results = await self._obj(vs, "VisionSystem.ResultManagement")
        last = await self._obj(results, "VisionSystem.ResultManagement.LastResult")
        for fname, vtype, _ in RESULT_FIELDS:
            default: Any = [] if fname == "Reasons" else ua.get_default_value(vtype)
            await self._var(last, f"VisionSystem.ResultManagement.LastResult.{fname}", default, vtype)
        await self._var(
            last,
            "VisionSystem.ResultManagement.LastResult.CreationTime",
            datetime(1601, 1, 1, tzinfo=UTC),
            _DT,
        )
        err = await self._obj(results, "VisionSystem.ResultManagement.LastError")
        for fname, vtype, _ in ERROR_FIELDS:
            await self._var(err, f"VisionSystem.ResultManagement.LastError.{fname}", "", vtype)
        await self._var(
            err, "VisionSystem.ResultManagement.LastError.ErrorTime", datetime(1601, 1, 1, tzinfo=UTC), _DT
        )
        await self._method(
            vs,
            "VisionSystem.InspectBytes",
            self._inspect_bytes,
            [_arg("Image", _BS, "the image file's bytes (JPEG, PNG, BMP or TIFF)"), METADATA_ARG, KEY_ARG],
            INSPECT_OUTPUTS,
        )
        await self._method(
            vs,
            "VisionSystem.InspectFile",
            self._inspect_file,
            [_arg("ImagePath", _S, "path of an image file under an allowed folder"), METADATA_ARG, KEY_ARG],
            INSPECT_OUTPUTS,
        )
        result_type = await self._event_type(server, "InspectionResultEventType", RESULT_FIELDS)
        error_type = await self._event_type(server, "InspectionErrorEventType", ERROR_FIELDS)
        self._result_events = await server.get_event_generator(result_type, vs)  # type: ignore[arg-type]
        self._error_events = await server.get_event_generator(error_type, vs)  # type: ignore[arg-type]

    async def _write(self, path: str, value: Any, vtype: ua.VariantType) -> None:
        await self._nodes[path].write_value(ua.Variant(value, vtype))

    # ---- state machine -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``Preoperational``, ``Operational.Ready``, ``Operational.SingleExecution`` or ``Error``."""
        if self._state != OPERATIONAL:
            return self._state
        return f"{OPERATIONAL}.{SINGLE_EXECUTION if self._busy else READY}"

    @property
    def error(self) -> str:
        """The Error state's message ('' in the other states)."""
        return self._error

    async def _set_state(self, state: str, error: str = "") -> None:
        if state != self._state:
            logger.info("VisionSystem state %s -> %s%s", self._state, state, f" ({error})" if error else "")
        self._state, self._error = state, error
        await self._publish_state()

    async def _publish_state(self) -> None:
        sm = "VisionSystem.VisionStateMachine"
        await self._write(f"{sm}.CurrentState", ua.LocalizedText(self._state), _LT)
        await self._write(f"{sm}.ErrorMessage", self._error, _S)
        sub = (SINGLE_EXECUTION if self._busy else READY) if self._state == OPERATIONAL else ""
        await self._write(f"{sm}.VisionAutomaticModeStateMachine.CurrentState", ua.LocalizedText(sub), _LT)

    def _require_operational(self) -> Recorder:
        if self._state == OPERATIONAL and self.recorder is not None:
            return self.recorder
        why = f": {self._error}" if self._error else " (the model is still loading; retry shortly)"
        raise Rejected("invalid_state", f"VisionSystem is {self._state}{why}", ua.StatusCodes.BadInvalidState)

    # ---- inspections -------------------------------------------------------------------------------

    async def _inspect_bytes(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        def make(max_bytes: int) -> ImageRequest:
            image, metadata, key = _values("InspectBytes", args, (_BS, _S, _S))
            data = check_image_bytes(image, max_bytes)
            return build_request(data, metadata, key, station=self.config.station, name="opcua:<bytes>")

        return await self._inspect("InspectBytes", make)

    async def _inspect_file(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        def make(max_bytes: int) -> ImageRequest:
            path, metadata, key = _values("InspectFile", args, (_S, _S, _S))
            real, data = read_allowed_image(path, self.config.allowed_dirs, max_bytes)
            return build_request(data, metadata, key, station=self.config.station, name=str(real))

        return await self._inspect("InspectFile", make)

    async def _inspect(self, method: str, make: Callable[[int], ImageRequest]) -> ua.CallMethodResult:
        loop = asyncio.get_running_loop()
        try:
            self._require_operational()
            self._busy += 1
            await self._publish_state()
            try:
                outcome = await loop.run_in_executor(self._inspect_pool, self._run, make)
                await self._publish_result(outcome)
            finally:
                self._busy -= 1
                await self._publish_state()
        except Rejected as exc:
            return await self._refuse(method, exc)
        out = outcome.out
        return _result(ua.StatusCodes.Good, [out.id, outcome.created, out.model_dump_json(), ""])

    def _run(self, make: Callable[[int], ImageRequest]) -> Outcome:
        """In the inspection thread: check the request, inspect and commit, read the record back."""
        recorder = self.recorder  # read once: a recipe switch from now on does not affect this call
        if recorder is None:
            raise Rejected(
                "invalid_state", "VisionSystem has no model loaded", ua.StatusCodes.BadInvalidState
            )
        req = make(self.settings.max_upload_bytes)
        try:
            sub = recorder.submit(
                req.data,
                req.context,
                idempotency_key=req.idempotency_key,
                name=req.name,
                image_sha256=req.sha256,
            )
            record = recorder.store.get_inspection(sub.inspection_id)
            if record is None:
                msg = f"inspection {sub.inspection_id} was recorded but cannot be read back"
                raise StoreError(msg)
            out = inspection_out(ServiceState(self.settings, recorder.store, recorder), record)
        except IngestError as exc:
            raise rejected_from_ingest(exc) from exc
        except IdempotencyConflictError as exc:
            raise Rejected("idempotency_conflict", str(exc)) from exc
        except TRANSIENT as exc:
            logger.exception("store error while inspecting %s", req.name)
            raise Rejected(
                "store_unavailable",
                f"the store failed ({type(exc).__name__}: {exc}); retry with the same IdempotencyKey: "
                "a record that was committed is never stored twice",
                ua.StatusCodes.BadResourceUnavailable,
            ) from exc
        except ValueError as exc:
            raise Rejected("rejected", str(exc)) from exc
        except Exception as exc:
            logger.exception("inspecting %s failed", req.name)
            raise Rejected(
                "internal_error",
                f"inspection failed: {type(exc).__name__}: {exc}",
                ua.StatusCodes.BadInternalError,
            ) from exc
        logger.info("OPC UA %s: inspection %s (%s)", req.name, out.id, "new" if sub.created else "replay")
        return Outcome(out, sub.created)

    async def _publish_result(self, outcome: Outcome) -> None:
        """Write the LastResult variables, then fire the result event (the record is committed)."""
        values = result_values(outcome)
        base = "VisionSystem.ResultManagement.LastResult"
        for fname, vtype, _ in RESULT_FIELDS:
            await self._write(f"{base}.{fname}", values[fname], vtype)
        await self._write(f"{base}.CreationTime", outcome.out.created_at, _DT)
        event = self._result_events.event
        for fname, vtype, _ in RESULT_FIELDS:
            setattr(event, fname, ua.Variant(values[fname], vtype))
        event.Severity = 500 if values["NeedsReview"] else 100
        await self._result_events.trigger(message=f"inspection {outcome.out.id} recorded")

    async def _refuse(self, method: str, exc: Rejected) -> ua.CallMethodResult:
        logger.warning("OPC UA %s refused (%s): %s", method, exc.code, exc.reason)
        base = "VisionSystem.ResultManagement.LastError"
        await self._write(f"{base}.ErrorCode", exc.code, _S)
        await self._write(f"{base}.ErrorMessage", exc.reason, _S)
        await self._write(f"{base}.Method", method, _S)
        await self._write(f"{base}.ErrorTime", datetime.now(UTC), _DT)
        event = self._error_events.event
        event.ErrorCode, event.ErrorMessage, event.Method = exc.code, exc.reason, method
        event.Severity = 700
        await self._error_events.trigger(message=f"{method} refused: {exc.reason}")
        error = json.dumps({"error": exc.code, "reason": exc.reason})
        outputs = ["", error] if method == "SwitchRecipe" else ["", False, "", error]
        return _result(exc.status, outputs)

    # ---- recipes -----------------------------------------------------------------------------------

    def _recipe_of(self, directory: Path) -> str:
        root = self.config.models_dir
        real = Path(os.path.realpath(directory))
        if root is not None:
            base = Path(os.path.realpath(root))
            if real.is_relative_to(base):
                return real.relative_to(base).as_posix()
        return str(real)

    def recipe_dir(self, recipe_id: str) -> Path:
        """The artifact folder of ``recipe_id`` (``<name>/<version>`` under the models folder)."""
        root = self.config.models_dir
        if root is None:
            raise Rejected(
                "no_models_folder",
                "this server has no models folder (--models-dir)",
                ua.StatusCodes.BadNotSupported,
            )
        if (
            not recipe_id
            or len(recipe_id) > 256
            or not re.fullmatch(RECIPE_PATTERN, recipe_id)
            or ".." in recipe_id.split("/")
        ):
            raise Rejected(
                "invalid_recipe",
                f"RecipeId {recipe_id!r} is not valid; use <name>/<version> of a folder under the models "
                f"folder, one of: {', '.join(self.recipes()) or '(none)'}",
            )
        base = Path(os.path.realpath(root))
        real = Path(os.path.realpath(base / recipe_id))
        if not real.is_relative_to(base) or real == base:
            raise Rejected(
                "invalid_recipe",
                f"RecipeId {recipe_id!r} resolves outside the models folder {base}",
                ua.StatusCodes.BadUserAccessDenied,
            )
        if not (real / "config.json").is_file():
            raise Rejected(
                "unknown_recipe",
                f"RecipeId {recipe_id!r}: {real} is not a model artifact (no config.json); "
                f"available: {', '.join(self.recipes()) or '(none)'}",
                ua.StatusCodes.BadNotFound,
            )
        return real

    def recipes(self) -> list[str]:
        """Every ``<name>/<version>`` under the models folder that holds a ``config.json``."""
        root = self.config.models_dir
        if root is None or not root.is_dir():
            return []
        return sorted(p.parent.relative_to(root).as_posix() for p in root.glob("*/*/config.json"))

    async def _publish_recipe(self) -> None:
        base = "VisionSystem.RecipeManagement"
        info = self.recorder.inspector.grader.info if self.recorder is not None else None
        await self._write(f"{base}.RecipeId", self._recipe_id, _S)
        await self._write(f"{base}.ModelName", info.name if info else "", _S)
        await self._write(f"{base}.ModelVersion", info.version if info else "", _S)
        await self._write(f"{base}.ModelSha256", info.sha256 if info else "", _S)
        await self._write(f"{base}.Recipes", self.recipes(), _S)

    async def _switch_recipe(self, parent: ua.NodeId, *args: ua.Variant) -> ua.CallMethodResult:
        from inspection.pipeline import Inspector

        loop = asyncio.get_running_loop()
        try:
            (recipe_id,) = _values("SwitchRecipe", args, (_S,))
            old = self._require_operational()
            directory = self.recipe_dir(recipe_id or "")
            s = self.settings
            async with self._recipe_lock:
                try:
                    inspector = await loop.run_in_executor(
                        self._load_pool,
                        lambda: Inspector.from_artifact(
                            directory, backend=s.backend, config=service_app_config(s), threads=s.threads
                        ),
                    )
                except Exception as exc:  # ArtifactError, a broken file: the old model stays
                    raise Rejected(
                        "invalid_recipe", f"RecipeId {recipe_id!r} could not be loaded: {exc}"
                    ) from exc
                current = self.recorder or old
                self.recorder = Recorder(
                    inspector,
                    current.store,
                    current.ledger,
                    slots=s.inference_slots,
                    outcomes=current.outcomes,
                )
                self._recipe_id = recipe_id or ""
                await self._publish_recipe()
        except Rejected as exc:
            return await self._refuse("SwitchRecipe", exc)
        version = inspector.grader.info.version
        logger.info("recipe switched to %s (model %s %s)", recipe_id, inspector.grader.info.name, version)
        return _result(ua.StatusCodes.Good, [version, ""])


def _values(method: str, args: Sequence[ua.Variant], types: Sequence[ua.VariantType]) -> list[Any]:
    """The plain values of ``args``, checked against ``types`` (a null value passes as None)."""
    if len(args) != len(types):
        status = (
            ua.StatusCodes.BadArgumentsMissing
            if len(args) < len(types)
            else ua.StatusCodes.BadTooManyArguments
        )
        raise Rejected("bad_arguments", f"{method} takes {len(types)} arguments, got {len(args)}", status)
    out: list[Any] = []
    for i, (arg, vtype) in enumerate(zip(args, types, strict=True)):
        value = arg.Value if isinstance(arg, ua.Variant) else arg
        if value is not None and arg.VariantType not in (vtype, ua.VariantType.Null):
            raise Rejected(
                "bad_arguments",
                f"{method} argument {i + 1} must be {vtype.name}, got {arg.VariantType.name}",
                ua.StatusCodes.BadTypeMismatch,
            )
        out.append(value)
    return out


def _result(status: int, outputs: list[Any]) -> ua.CallMethodResult:
    res = ua.CallMethodResult()
    res.StatusCode = ua.StatusCode(status)  # type: ignore[arg-type]
    res.OutputArguments = [ua.Variant(v) for v in outputs]
    return res


def result_values(outcome: Outcome) -> dict[str, Any]:
    """The LastResult variable / event field values of one stored inspection."""
    out = outcome.out
    ev = out.evidence
    return {
        "ResultId": out.id,
        "Created": outcome.created,
        "ImageSha256": out.image_sha256,
        "PorosityGrade": NO_GRADE if out.porosity_grade is None else out.porosity_grade,
        "SpatterGrade": NO_GRADE if out.spatter_grade is None else out.spatter_grade,
        "NeedsReview": out.needs_review,
        "Reasons": [str(r) for r in out.result.get("review_reasons", [])],
        "EvidenceSeq": ev.seq if ev is not None else -1,
        "RecordHash": ev.record_hash if ev is not None else "",
        "ModelVersion": str(out.result.get("model", {}).get("version", "")),
        "ResultJson": out.model_dump_json(),
    }


async def serve(server: VisionServer, stop: asyncio.Event) -> None:
    """Run ``server`` until ``stop`` is set (the CLI sets it on SIGTERM / Ctrl-C)."""
    async with server:
        await stop.wait()
