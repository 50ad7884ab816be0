"""The OPC UA adapter: a real asyncua server on a free loopback port, driven by a real asyncua client.

One server (security ``none``, a password user, an allowed folder, two recipes) serves the module; it
runs on its own event loop in a thread and is stopped at the end. Tests are plain functions that run
their client with ``asyncio.run``. Separate short-lived servers check Sign&Encrypt with generated
certificates, the start-up states, and anonymous access when it is switched on.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asyncua import Client, Node, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from typer.testing import CliRunner

from inspection.cli import app as cli_app
from inspection.service.opcua.request import Rejected, resolve_image_path, scoped_key
from inspection.service.opcua.security import (
    CLIENT_APP_URI,
    UserFileError,
    UserManager,
    hash_password,
    read_user_file,
    server_pair,
    verify_password,
)
from inspection.service.opcua.server import NAMESPACE_URI, OpcuaConfig, VisionServer
from inspection.service.recorder import Recorder
from inspection.service.settings import ServiceSettings
from inspection.store import InspectionFilter
from inspection.types import InspectionContext
from tests.helpers.artifacts import make_tiny_artifact
from tests.helpers.images import truncated
from tests.service.helpers import STATION_META, make_settings, seam_jpeg

USER, PASSWORD = "line-plc", "correct horse battery"
T = TypeVar("T")
WAIT_S = 120.0  # a guard against hanging, not a speed check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerThread:
    """A :class:`VisionServer` on its own event loop in a daemon thread (started, model loaded)."""

    def __init__(self, server: VisionServer, *, wait: bool = True) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(server.start())
        if wait:
            self.call(server.wait_loaded())

    def call(self, coro: Awaitable[T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout=WAIT_S)

    def close(self) -> None:
        try:
            self.call(self.server.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=WAIT_S)
            self.loop.close()


@dataclass
class Env:
    url: str
    server: VisionServer
    allowed: Path
    outside: Path

    @property
    def recorder(self) -> Recorder:
        assert self.server.recorder is not None
        return self.server.recorder

    def records(self) -> int:
        return self.recorder.store.list_inspections(InspectionFilter()).total

    def head_seq(self) -> int:
        head = self.recorder.ledger.head()
        return 0 if head is None else head.seq


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("opcua")


@pytest.fixture(scope="module")
def models(root: Path) -> Path:
    base = root / "models"
    make_tiny_artifact(base / "weld-grader-test" / "0.0.1", version="0.0.1")
    make_tiny_artifact(base / "weld-grader-test" / "0.0.2", seed=1, version="0.0.2")
    return base


@pytest.fixture(scope="module")
def settings(root: Path, models: Path) -> ServiceSettings:
    return make_settings(
        root, models / "weld-grader-test" / "0.0.1", max_upload_bytes=200_000, max_pixels=400 * 400
    )


@pytest.fixture(scope="module")
def env(root: Path, settings: ServiceSettings, models: Path) -> Iterator[Env]:
    allowed, outside = root / "allowed", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = OpcuaConfig(
        cert_dir=root / "pki",
        endpoint=url,
        security="none",
        users={USER: hash_password(PASSWORD)},
        allowed_dirs=(allowed,),
        models_dir=models,
        station="S1",
    )
    thread = ServerThread(VisionServer(settings, config))
    assert thread.server.state == "Operational.Ready", thread.server.error
    try:
        yield Env(url, thread.server, allowed, outside)
    finally:
        thread.close()


# ---- client helpers -------------------------------------------------------------------------------


class Events:
    """Collects the events of one subscription."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    def event_notification(self, event: Any) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> Any:
        return await asyncio.wait_for(self.queue.get(), WAIT_S)


@dataclass
class Session:
    client: Client
    idx: int

    def node(self, path: str) -> Node:
        return self.client.get_node(ua.NodeId(path, self.idx))  # type: ignore[arg-type]

    async def read(self, path: str) -> Any:
        return await self.node(f"VisionSystem.{path}").read_value()

    async def call(self, method: str, *args: Any) -> tuple[ua.StatusCode, list[Any]]:
        """Call a method of VisionSystem (or its RecipeManagement); status and outputs, Bad included."""
        parent = "VisionSystem.RecipeManagement" if method == "SwitchRecipe" else "VisionSystem"
        req = ua.CallMethodRequest()
        req.ObjectId = self.node(parent).nodeid
        req.MethodId = self.node(f"{parent}.{method}").nodeid
        req.InputArguments = [a if isinstance(a, ua.Variant) else ua.Variant(a) for a in args]
        (res,) = await self.client.uaclient.call([req])
        return res.StatusCode, [v.Value for v in res.OutputArguments or []]

    async def events(self, type_name: str) -> Events:
        handler = Events()
        sub = await self.client.create_subscription(20, handler)
        await sub.subscribe_events(self.node("VisionSystem"), self.node(type_name))
        return handler


def run_client(
    url: str,
    body: Callable[[Session], Awaitable[T]],
    *,
    user: tuple[str, str] | None = (USER, PASSWORD),
    secure: tuple[Path, Path] | None = None,
) -> T:
    async def main() -> T:
        client = Client(url, timeout=WAIT_S)
        client.application_uri = CLIENT_APP_URI
        if user is not None:
            client.set_user(user[0])
            client.set_password(user[1])
        if secure is not None:
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(secure[0]),
                private_key=str(secure[1]),
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        async with client:
            idx = await client.get_namespace_index(NAMESPACE_URI)
            return await body(Session(client, idx))

    return asyncio.run(main())


def image(data: bytes) -> ua.Variant:
    return ua.Variant(data, ua.VariantType.ByteString)


def meta(**over: Any) -> str:
    return json.dumps({**STATION_META, "part_id": f"P-{uuid.uuid4().hex[:8]}", **over})


# ---- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "code"),
    [
        (None, "BadIdentityTokenRejected"),
        ((USER, "wrong password!"), "BadUserAccessDenied"),
        (("nobody", PASSWORD), "BadUserAccessDenied"),
    ],
    ids=["anonymous", "wrong-password", "unknown-user"],
)
def test_session_refused(env: Env, user: tuple[str, str] | None, code: str) -> None:
    async def body(s: Session) -> None:
        await s.read("RecipeManagement.ModelVersion")

    with pytest.raises(ua.UaStatusCodeError) as info:
        run_client(env.url, body, user=user)
    assert type(info.value).__name__ == code


def test_password_user_reads_state_and_recipe(env: Env) -> None:
    async def body(s: Session) -> tuple[Any, ...]:
        return (
            (await s.read("VisionStateMachine.CurrentState")).Text,
            (await s.read("VisionStateMachine.VisionAutomaticModeStateMachine.CurrentState")).Text,
            await s.read("RecipeManagement.RecipeId"),
            await s.read("RecipeManagement.ModelVersion"),
            await s.read("RecipeManagement.Recipes"),
        )

    assert run_client(env.url, body) == (
        "Operational",
        "Ready",
        "weld-grader-test/0.0.1",
        "0.0.1",
        ["weld-grader-test/0.0.1", "weld-grader-test/0.0.2"],
    )


# ---- inspections ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["bytes", "file", "relative-file"])
def test_inspection_sets_result_fires_event_and_records_once(env: Env, source: str) -> None:
    data = seam_jpeg({"bytes": 11, "file": 12, "relative-file": 13}[source])
    (env.allowed / "seam.jpg").write_bytes(data)
    before_records, before_seq = env.records(), env.head_seq()
    metadata = meta()

    async def body(s: Session) -> tuple[Any, ...]:
        events = await s.events("InspectionResultEventType")
        if source == "bytes":
            status, out = await s.call("InspectBytes", image(data), metadata, "")
        else:
            path = str(env.allowed / "seam.jpg") if source == "file" else "seam.jpg"
            status, out = await s.call("InspectFile", path, metadata, "")
        event = await events.next()
        last = {
            name: await s.read(f"ResultManagement.LastResult.{name}")
            for name in ("ResultId", "EvidenceSeq", "RecordHash", "NeedsReview", "Reasons", "ResultJson")
        }
        return status, out, event, last

    status, out, event, last = run_client(env.url, body)
    assert status.is_good(), out
    result_id, created, result_json, error = out
    assert (created, error) == (True, "")
    body_ = json.loads(result_json)
    assert body_["id"] == result_id == last["ResultId"] == event.ResultId
    assert body_["station_id"] == "S1"
    assert json.loads(last["ResultJson"])["id"] == result_id
    assert last["EvidenceSeq"] == event.EvidenceSeq == body_["evidence"]["seq"] == before_seq + 1
    assert last["RecordHash"] == event.RecordHash == body_["evidence"]["record_hash"]
    assert last["NeedsReview"] == event.NeedsReview == body_["needs_review"]
    assert list(last["Reasons"]) == list(event.Reasons) == body_["result"]["review_reasons"]
    assert event.PorosityGrade == (-1 if body_["porosity_grade"] is None else body_["porosity_grade"])
    assert (env.records(), env.head_seq()) == (before_records + 1, before_seq + 1)
    stored = env.recorder.store.get_inspection(result_id)
    assert stored is not None and stored.part_id == json.loads(metadata)["part_id"]


def _link(env: Env, name: str, target: Path) -> str:
    link = env.allowed / name
    if not link.is_symlink():
        link.symlink_to(target)
    return str(link)


REFUSALS: list[tuple[str, Callable[[Env], tuple[Any, ...]], str, str]] = [
    (
        "outside-folder",
        lambda e: ("InspectFile", str(e.outside / "seam.jpg"), "{}", ""),
        "BadUserAccessDenied",
        "path_not_allowed",
    ),
    (
        "dot-dot",
        lambda e: ("InspectFile", str(e.allowed / ".." / "outside" / "seam.jpg"), "{}", ""),
        "BadUserAccessDenied",
        "path_not_allowed",
    ),
    (
        "symlink-escape",
        lambda e: ("InspectFile", _link(e, "escape.jpg", e.outside / "seam.jpg"), "{}", ""),
        "BadUserAccessDenied",
        "path_not_allowed",
    ),
    (
        "missing-file",
        lambda e: ("InspectFile", str(e.allowed / "nope.jpg"), "{}", ""),
        "BadNotFound",
        "not_found",
    ),
    (
        "not-an-image",
        lambda e: ("InspectBytes", image(b"hello, not an image"), "{}", ""),
        "BadInvalidArgument",
        "not_an_image",
    ),
    ("empty-image", lambda e: ("InspectBytes", image(b""), "{}", ""), "BadInvalidArgument", "empty"),
    (
        "truncated-jpeg",
        lambda e: ("InspectBytes", image(truncated(seam_jpeg(7), 0.3)), "{}", ""),
        "BadInvalidArgument",
        "truncated",
    ),
    (
        "too-large",
        lambda e: ("InspectBytes", image(b"\xff\xd8" + bytes(300_000)), "{}", ""),
        "BadOutOfRange",
        "too_large",
    ),
    (
        "metadata-not-json",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), "{not json", ""),
        "BadInvalidArgument",
        "invalid_metadata",
    ),
    (
        "metadata-unknown-field",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), '{"bogus": 1}', ""),
        "BadInvalidArgument",
        "invalid_metadata",
    ),
    (
        "metadata-bad-value",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), '{"thickness_mm": -1}', ""),
        "BadInvalidArgument",
        "invalid_metadata",
    ),
    (
        "metadata-nan",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), '{"params": {"p": NaN}}', ""),
        "BadInvalidArgument",
        "invalid_metadata",
    ),
    (
        "other-station",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), '{"station_id": "S2"}', ""),
        "BadInvalidArgument",
        "station_mismatch",
    ),
    (
        "blank-key",
        lambda e: ("InspectBytes", image(seam_jpeg(8)), "{}", "   "),
        "BadInvalidArgument",
        "invalid_idempotency_key",
    ),
    ("wrong-type", lambda e: ("InspectBytes", "not bytes", "{}", ""), "BadTypeMismatch", "bad_arguments"),
    (
        "missing-argument",
        lambda e: ("InspectBytes", image(seam_jpeg(8))),
        "BadArgumentsMissing",
        "bad_arguments",
    ),
]


@pytest.mark.parametrize(("case", "args", "status", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_call_says_why_and_records_nothing(
    env: Env, case: str, args: Callable[[Env], tuple[Any, ...]], status: str, code: str
) -> None:
    (env.outside / "seam.jpg").write_bytes(seam_jpeg(3))
    method, *values = args(env)
    before = env.records(), env.head_seq()

    async def body(s: Session) -> tuple[Any, ...]:
        events = await s.events("InspectionErrorEventType")
        got, out = await s.call(method, *values)
        event = await events.next()
        return got, out, event, await s.read("ResultManagement.LastError.ErrorMessage")

    got, out, event, last_error = run_client(env.url, body)
    assert got.name == status
    error = json.loads(out[3])
    assert error["error"] == code == event.ErrorCode
    assert error["reason"] == last_error == event.ErrorMessage
    assert error["reason"]  # a sentence naming the problem
    assert (env.records(), env.head_seq()) == before


def test_same_idempotency_key_records_once(env: Env) -> None:
    data, key, metadata = seam_jpeg(42), f"job-{uuid.uuid4().hex[:8]}", meta()
    before = env.records()

    async def body(s: Session) -> list[tuple[ua.StatusCode, list[Any]]]:
        return [
            await s.call("InspectBytes", image(data), metadata, key),
            await s.call("InspectBytes", image(data), metadata, key),
            await s.call("InspectBytes", image(seam_jpeg(43)), metadata, key),
        ]

    (st1, out1), (st2, out2), (st3, out3) = run_client(env.url, body)
    assert st1.is_good() and st2.is_good()
    assert out1[0] == out2[0] and (out1[1], out2[1]) == (True, False)
    assert st3.name == "BadInvalidArgument" and json.loads(out3[3])["error"] == "idempotency_conflict"
    assert env.records() == before + 1
    record = env.recorder.store.find_by_idempotency_key(f"S1/{key}")  # HTTP's and MQTT's scope
    assert record is not None and record.id == out1[0]


def test_recipe_switch_changes_model_version(env: Env) -> None:
    async def body(s: Session) -> tuple[Any, ...]:
        bad_status, bad_out = await s.call("SwitchRecipe", "../../etc")
        unknown_status, _ = await s.call("SwitchRecipe", "weld-grader-test/9.9.9")
        status, out = await s.call("SwitchRecipe", "weld-grader-test/0.0.2")
        version, recipe = (
            await s.read("RecipeManagement.ModelVersion"),
            await s.read("RecipeManagement.RecipeId"),
        )
        _, inspected = await s.call("InspectBytes", image(seam_jpeg(50)), "{}", "")
        back, _ = await s.call("SwitchRecipe", "weld-grader-test/0.0.1")
        return bad_status, bad_out, unknown_status, status, out, version, recipe, inspected, back

    bad, bad_out, unknown, status, out, version, recipe, inspected, back = run_client(env.url, body)
    assert bad.name == "BadInvalidArgument" and json.loads(bad_out[1])["error"] == "invalid_recipe"
    assert unknown.name == "BadNotFound"
    assert status.is_good() and out == ["0.0.2", ""]
    assert (version, recipe) == ("0.0.2", "weld-grader-test/0.0.2")
    assert json.loads(inspected[2])["result"]["model"]["version"] == "0.0.2"
    assert back.is_good()


# ---- separate servers: Sign&Encrypt, start-up states, anonymous -------------------------------------


def test_sign_encrypt_with_generated_certificates(tmp_path: Path, settings: ServiceSettings) -> None:
    certs = tmp_path / "certs"
    res = CliRunner().invoke(cli_app, ["opcua", "certs", "--out", str(certs)])
    assert res.exit_code == 0, res.output
    assert oct((certs / "client_key.pem").stat().st_mode & 0o777) == "0o600"
    again = CliRunner().invoke(cli_app, ["opcua", "certs", "--out", str(certs)])
    assert again.exit_code == 2 and "--force" in again.output
    first_start = tmp_path / "pki"  # no certificate yet: the server makes one and says so
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = OpcuaConfig(cert_dir=first_start, endpoint=url, users={USER: hash_password(PASSWORD)})
    thread = ServerThread(VisionServer(settings, config))
    try:
        assert thread.server.certificate_created
        assert server_pair(first_start).cert.is_file() and server_pair(first_start).key.is_file()

        async def body(s: Session) -> tuple[Any, ...]:
            status, out = await s.call("InspectBytes", image(seam_jpeg(60)), "{}", "")
            return await s.read("RecipeManagement.ModelVersion"), status, out

        version, status, out = run_client(
            url, body, secure=(certs / "client_cert.der", certs / "client_key.pem")
        )
        assert version == "0.0.1"
        assert status.is_good() and out[1] is True
        with pytest.raises(Exception):  # noqa: B017 - the plain endpoint does not exist
            run_client(url, body)
    finally:
        thread.close()
    restarted = VisionServer(settings, config)
    thread = ServerThread(restarted, wait=False)
    try:
        assert not restarted.certificate_created  # the certificate of the first start is kept
    finally:
        thread.close()


def test_states_preoperational_then_error_and_anonymous_when_allowed(
    tmp_path: Path, settings: ServiceSettings
) -> None:
    release = threading.Event()

    def factory(_: ServiceSettings) -> Recorder:
        release.wait(WAIT_S)
        raise RuntimeError("model file is damaged")

    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = OpcuaConfig(cert_dir=tmp_path, endpoint=url, security="none", allow_anonymous=True)
    thread = ServerThread(VisionServer(settings, config, recorder_factory=factory), wait=False)

    async def state(s: Session) -> tuple[Any, ...]:
        status, out = await s.call("InspectBytes", image(seam_jpeg(1)), "{}", "")
        return (
            (await s.read("VisionStateMachine.CurrentState")).Text,
            await s.read("VisionStateMachine.ErrorMessage"),
            status,
            out,
        )

    try:
        loading = run_client(url, state, user=None)
        release.set()
        assert thread.call(thread.server.wait_loaded()) == "Error"
        failed = run_client(url, state, user=None)
    finally:
        release.set()
        thread.close()
    assert loading[0] == "Preoperational" and loading[2].name == "BadInvalidState"
    assert "still loading" in json.loads(loading[3][3])["reason"]
    assert failed[0] == "Error" and "model file is damaged" in failed[1]
    assert (
        failed[2].name == "BadInvalidState" and "model file is damaged" in json.loads(failed[3][3])["reason"]
    )


# ---- pure parts and the CLI -----------------------------------------------------------------------


def test_password_hashes_are_salted_and_verified() -> None:
    a, b = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert a != b and a.startswith("scrypt$")
    assert verify_password("s3cret-pass", a) and not verify_password("s3cret-pasS", a)
    manager = UserManager({"op": a})
    assert manager.get_user(None, "op", "s3cret-pass") is not None
    assert manager.get_user(None, "op", "nope-nope") is None
    assert manager.get_user(None) is None  # anonymous off by default
    with pytest.raises(UserFileError, match="at least 8"):
        hash_password("short")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("op\n", "line 1: expected name:scrypt"),
        ("op:plain-password\n", "line 1: password hash must be"),
        ("# only a comment\n", "holds no users"),
        ("bad name:scrypt$16384$8$1$AAAA$AAAA\n", "line 1: user name"),
    ],
)
def test_user_file_errors_name_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "users"
    path.write_text(text)
    with pytest.raises(UserFileError, match=match):
        read_user_file(path)


def test_passwd_command_writes_a_hash_never_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users"
    monkeypatch.setenv("OPC_PW", "station-password-1")
    res = CliRunner().invoke(
        cli_app,
        ["opcua", "passwd", "--user-file", str(path), "--username", "plc1", "--password-env", "OPC_PW"],
    )
    assert res.exit_code == 0, res.output
    assert "station-password-1" not in path.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert verify_password("station-password-1", read_user_file(path)["plc1"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no way to log in"),
        (["--allow-anonymous", "--endpoint", "http://127.0.0.1:4840"], "expected opc.tcp://host:port"),
        (["--allow-anonymous", "--security", "plain"], "security must be one of"),
        (["--username", "u1"], "--username and --password-env go together"),
        (["--allow-anonymous", "--allowed-dir", "/nonexistent/folder"], "is not a directory"),
    ],
)
def test_opcua_command_refuses_bad_usage(tmp_path: Path, args: list[str], message: str) -> None:
    res = CliRunner().invoke(cli_app, ["opcua", "--data-dir", str(tmp_path), *args])
    assert res.exit_code == 2
    assert message in res.output


def test_path_rules(tmp_path: Path) -> None:
    allowed = tmp_path / "in"
    (allowed / "sub").mkdir(parents=True)
    (tmp_path / "secret.jpg").write_bytes(b"x")
    (allowed / "sub" / "a.jpg").write_bytes(b"x")
    (allowed / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    assert resolve_image_path("sub/a.jpg", [allowed]) == (allowed / "sub" / "a.jpg").resolve()
    for bad in ("../secret.jpg", str(tmp_path / "secret.jpg"), "link.jpg", "sub/../../secret.jpg"):
        with pytest.raises(Rejected, match="outside the allowed folders"):
            resolve_image_path(bad, [allowed])
    with pytest.raises(Rejected, match="without --allowed-dir"):
        resolve_image_path("a.jpg", [])


def test_idempotency_scope_matches_http_and_mqtt() -> None:
    assert scoped_key("k1", InspectionContext(station_id="S1")) == "S1/k1"
    assert scoped_key("k1", InspectionContext()) == "opcua/k1"
    assert scoped_key("", InspectionContext(station_id="S1")) is None


class GatedRecorder(Recorder):
    """A recorder whose inspections wait at a gate (says when one is waiting there)."""

    entered = threading.Event()
    gate = threading.Event()

    def inspect(self, data: bytes, context: InspectionContext | None, *, name: str) -> Any:
        self.entered.set()
        self.gate.wait(WAIT_S)
        return super().inspect(data, context, name=name)


def test_single_execution_and_recipe_switch_during_an_inspection(
    tmp_path: Path, settings: ServiceSettings
) -> None:
    from inspection.service.recorder import open_recorder

    def factory(s: ServiceSettings) -> Recorder:
        base = open_recorder(s)
        return GatedRecorder(base.inspector, base.store, base.ledger)

    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = replace_config(tmp_path, url, settings)
    thread = ServerThread(VisionServer(settings, config, recorder_factory=factory))

    async def body(s: Session) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        call = asyncio.ensure_future(s.call("InspectBytes", image(seam_jpeg(70)), "{}", ""))
        await loop.run_in_executor(None, GatedRecorder.entered.wait, WAIT_S)  # the inspection has started

        async def observe(other: Session) -> tuple[Any, ...]:  # a second session (own connection)
            during = await other.read("VisionStateMachine.VisionAutomaticModeStateMachine.CurrentState")
            switched, _ = await other.call("SwitchRecipe", "weld-grader-test/0.0.2")
            return during.Text, switched, await other.read("RecipeManagement.ModelVersion")

        seen = await loop.run_in_executor(None, lambda: run_client(url, observe))
        GatedRecorder.gate.set()
        status, out = await call
        after = (await s.read("VisionStateMachine.VisionAutomaticModeStateMachine.CurrentState")).Text
        return (*seen, status, out, after)

    try:
        during, switched, version, status, out, after = run_client(url, body)
    finally:
        GatedRecorder.gate.set()
        thread.close()
    assert during == "SingleExecution"
    assert switched.is_good() and version == "0.0.2"
    assert status.is_good()
    assert json.loads(out[2])["result"]["model"]["version"] == "0.0.1"  # finished on the old model
    assert after == "Ready"


def replace_config(tmp_path: Path, url: str, settings: ServiceSettings) -> OpcuaConfig:
    assert settings.model_dir is not None
    return OpcuaConfig(
        cert_dir=tmp_path,
        endpoint=url,
        security="none",
        users={USER: hash_password(PASSWORD)},
        models_dir=settings.model_dir.parents[1],
    )


def test_opcua_command_exits_1_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["opcua", "--data-dir", str(tmp_path), "--allow-anonymous", "--security", "none"]
        res = CliRunner().invoke(cli_app, [*args, "--endpoint", f"opc.tcp://127.0.0.1:{port}"])
    assert res.exit_code == 1, res.output
    assert f"cannot serve opc.tcp://127.0.0.1:{port}" in res.output


def test_idempotency_key_is_shared_with_the_http_api(env: Env, settings: ServiceSettings) -> None:
    from fastapi.testclient import TestClient

    from inspection.service.app import create_app
    from tests.service.helpers import make_keys, upload

    data, key = seam_jpeg(90), f"http-{uuid.uuid4().hex[:8]}"
    keys = make_keys(settings)
    with TestClient(create_app(settings)) as http:
        first = upload(http, keys.s1, data, idempotency_key=key)
    assert first.status_code == 201, first.text
    before = env.records()

    async def body(s: Session) -> tuple[ua.StatusCode, list[Any]]:
        return await s.call("InspectBytes", image(data), "{}", key)

    status, out = run_client(env.url, body)
    assert status.is_good() and out[:2] == [first.json()["id"], False]
    assert env.records() == before


@pytest.mark.postgres
def test_inspection_on_postgresql(tmp_path: Path, pg_url: str, models: Path) -> None:
    pg_settings = make_settings(tmp_path, models / "weld-grader-test" / "0.0.1", db_url=pg_url)
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    config = OpcuaConfig(
        cert_dir=tmp_path, endpoint=url, security="none", users={USER: hash_password(PASSWORD)}, station="S1"
    )
    thread = ServerThread(VisionServer(pg_settings, config))

    async def body(s: Session) -> list[tuple[ua.StatusCode, list[Any]]]:
        return [await s.call("InspectBytes", image(seam_jpeg(95)), meta(), "pg-key") for _ in range(2)]

    try:
        (st1, out1), (st2, out2) = run_client(url, body)
        recorder = thread.server.recorder
        assert recorder is not None
        total = recorder.store.list_inspections(InspectionFilter()).total
    finally:
        thread.close()
    assert st1.is_good() and st2.is_good()
    assert (out1[0], out1[1], out2[1]) == (out2[0], True, False)
    assert total == 1
