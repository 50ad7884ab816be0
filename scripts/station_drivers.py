"""The station side of ``scripts/station_sim.py``: one driver per protocol, and a private Mosquitto.

Each :class:`Station` starts its ``weldinspect`` command in a subprocess (``serve``, ``watch``,
``mqtt``, ``opcua``) on loopback, waits until it serves, hands out clients (one per sending thread)
whose :meth:`Client.send` delivers one photo the way a real station would and waits for its
result, and stops the command with SIGTERM. Every photo carries the metadata
``{"machine_serial": "SIM-1", "part_id": <file stem>}`` and, where the protocol has one, an
idempotency key, so a station-side retry never makes a second record.

Latency is what the station sees: HTTP and OPC UA the call's round trip; MQTT from the first
publish to the first result message; the hot folder from the moment the image is renamed into
``IN`` to the moment its ``<name>.result.json`` appears in ``DONE`` (polled every 5 ms; the
watcher's own ``--poll`` and its two-poll stability check are part of it).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")
log = logging.getLogger("station_sim")

POLL_S = 0.005
OPCUA_USER = "station-sim"
OPCUA_PASSWORD_ENV = "WELDINSPECT_SIM_OPCUA_PASSWORD"


@dataclass(frozen=True)
class Photo:
    """One photo as the station holds it (``name`` is the file name, unique in the run)."""

    name: str
    data: bytes
    sha256: str

    @property
    def part_id(self) -> str:
        return Path(self.name).stem


@dataclass
class Outcome:
    """What the station got for one photo (``result`` is the ``InspectionResult`` dict)."""

    photo: str
    latency_ms: float
    inspection_id: str | None = None
    result: dict[str, Any] | None = None
    created: bool | None = None
    error: str | None = None
    resends: int = 0
    replies: int = 0
    answered_at: float | None = None  # time.perf_counter() of the first reply (MQTT)


@dataclass(frozen=True)
class Env:
    """What every station needs: data directory, database, model, run id, signing keys per station."""

    home: Path
    db_url: str
    model: Path | None
    backend: str
    run_id: str
    key_ids: dict[str, str]
    timeout_s: float = 300.0

    def common_args(self) -> list[str]:
        args = ["--home", str(self.home), "--db", self.db_url, "--backend", self.backend]
        return args + (["--model", str(self.model)] if self.model is not None else [])

    def idempotency_key(self, photo: Photo) -> str:
        return f"sim-{self.run_id}-{photo.part_id}"[:128]


def metadata(photo: Photo) -> dict[str, Any]:
    return {"machine_serial": "SIM-1", "part_id": photo.part_id}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{what} exited with code {proc.returncode} before listening on port {port}"
            raise RuntimeError(msg)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    msg = f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:g} s"
    raise RuntimeError(msg)


class Process:
    """A ``weldinspect`` subcommand in a subprocess, its output in ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        cmd = [sys.executable, "-c", "from inspection.cli import main; main()", *args]
        with log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 120.0) -> int:
        """Signal, wait, and return the exit code (killed after ``timeout_s``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %g s; killed", self.log_path.name, timeout_s)
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


class Client:
    """Sends photos for one thread of one station."""

    def send(self, photo: Photo) -> Outcome:
        raise NotImplementedError

    def close(self) -> None:
        return None


class Station:
    """One protocol: ``start`` the command, ``connect`` clients, ``stop`` it, ``finish`` outcomes."""

    name = ""

    def __init__(self, env: Env, station_id: str) -> None:
        self.env = env
        self.station_id = station_id
        self.process: Process | None = None

    def start(self) -> None:
        raise NotImplementedError

    def connect(self) -> Client:
        raise NotImplementedError

    def stop(self) -> int | None:
        return None if self.process is None else self.process.stop()

    def finish(self, outcomes: list[Outcome]) -> None:
        """Complete the outcomes after the command stopped (the hot folder reads results here)."""
        return None


# ---- HTTP -----------------------------------------------------------------------------------------


class HttpStation(Station):
    name = "http"

    def __init__(self, env: Env, station_id: str, api_key: str) -> None:
        super().__init__(env, station_id)
        self.api_key = api_key
        self.base = ""

    def start(self) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        args = ["serve", "--port", str(port), "--key-id", self.env.key_ids[self.station_id]]
        self.process = Process([*args, *self.env.common_args()], self.env.home / "serve.log")
        deadline = time.monotonic() + self.env.timeout_s
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                msg = f"weldinspect serve exited early:\n{self.process.tail()}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        msg = f"weldinspect serve not ready within {self.env.timeout_s:g} s"
        raise RuntimeError(msg)

    def connect(self) -> Client:
        return HttpClient(self)


class HttpClient(Client):
    def __init__(self, station: HttpStation) -> None:
        self.station = station
        self.http = httpx.Client(base_url=station.base, timeout=station.env.timeout_s)

    def send(self, photo: Photo) -> Outcome:
        env = self.station.env
        headers = {
            "Authorization": f"Bearer {self.station.api_key}",
            "Idempotency-Key": env.idempotency_key(photo),
        }
        t0 = time.perf_counter()
        out = Outcome(photo.name, 0.0)
        for attempt in range(3):  # a transport error is retried with the same key (a replay at worst)
            try:
                r = self.http.post(
                    "/v1/inspections",
                    headers=headers,
                    files={"image": (photo.name, photo.data, "image/jpeg")},
                    data={"metadata": json.dumps(metadata(photo))},
                )
            except httpx.HTTPError as exc:
                out.resends = attempt + 1
                out.error = f"transport error: {exc}"
                continue
            out.latency_ms = (time.perf_counter() - t0) * 1000.0
            out.replies = 1
            if r.status_code in (200, 201):
                body = r.json()
                out.inspection_id, out.result, out.created = body["id"], body["result"], r.status_code == 201
                out.error = None
            else:
                out.error = f"HTTP {r.status_code}: {r.text[:200]}"
            return out
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        return out

    def close(self) -> None:
        self.http.close()


# ---- hot folder -----------------------------------------------------------------------------------


class FolderStation(Station):
    name = "folder"

    def __init__(self, env: Env, station_id: str, poll_s: float) -> None:
        super().__init__(env, station_id)
        self.poll_s = poll_s
        root = env.home / "hotfolder"
        self.inbox, self.done, self.failed, self.staging = (
            root / d for d in ("in", "done", "failed", "staging")
        )

    def start(self) -> None:
        for d in (self.inbox, self.done, self.failed, self.staging):
            d.mkdir(parents=True, exist_ok=True)
        args = ["watch", str(self.inbox), "--done", str(self.done), "--failed", str(self.failed)]
        args += ["--station", self.station_id, "--poll", str(self.poll_s), "--sidecar-wait", "60"]
        self.process = Process([*args, *self.env.common_args()], self.env.home / "watch.log")

    def connect(self) -> Client:
        return FolderClient(self)

    def stop(self) -> int | None:
        # SIGTERM, not SIGINT: a background job inherits SIGINT ignored (CI runs us so), SIGTERM never
        return None if self.process is None else self.process.stop(signal.SIGTERM)

    def finish(self, outcomes: list[Outcome]) -> None:
        from inspection.store import Store

        with Store.open(self.env.db_url, self.env.home / "images", migrate_db=False) as store:
            for o in outcomes:
                if o.inspection_id is None:
                    continue
                record = store.get_inspection(o.inspection_id)
                if record is None:
                    o.error = f"inspection {o.inspection_id} named in the result file is not in the store"
                else:
                    o.result = dict(record.result)


class FolderClient(Client):
    def __init__(self, station: FolderStation) -> None:
        self.station = station

    def send(self, photo: Photo) -> Outcome:
        st = self.station
        sidecar = st.staging / f"{photo.part_id}.json"
        sidecar.write_text(json.dumps(metadata(photo)), encoding="utf-8")
        os.replace(sidecar, st.inbox / sidecar.name)  # the sidecar first: the image need not wait for it
        staged = st.staging / photo.name
        staged.write_bytes(photo.data)
        result_file = st.done / f"{photo.name}.result.json"
        error_file = st.failed / f"{photo.name}.error.json"
        t0 = time.perf_counter()
        os.replace(staged, st.inbox / photo.name)
        deadline = time.monotonic() + st.env.timeout_s
        out = Outcome(photo.name, 0.0)
        while time.monotonic() < deadline:
            if result_file.exists():
                out.latency_ms = (time.perf_counter() - t0) * 1000.0
                body = json.loads(result_file.read_text(encoding="utf-8"))
                out.inspection_id, out.created, out.replies = body["inspection_id"], not body["duplicate"], 1
                return out
            if error_file.exists():
                out.latency_ms = (time.perf_counter() - t0) * 1000.0
                out.error = f"moved to FAILED: {error_file.read_text(encoding='utf-8')[:300]}"
                return out
            time.sleep(POLL_S)
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        out.error = f"no result in {st.done} within {st.env.timeout_s:g} s"
        return out


# ---- MQTT -----------------------------------------------------------------------------------------


class Mosquitto:
    """A Mosquitto of our own on a loopback port, with persistence, that can be restarted."""

    def __init__(self, folder: Path, port: int) -> None:
        if port == 1883:
            msg = "refusing port 1883: that is the machine's own broker; use another port"
            raise ValueError(msg)
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).is_file():
            msg = "mosquitto is not installed (apt-get install mosquitto)"
            raise FileNotFoundError(msg)
        self.binary, self.port, self.folder = binary, port, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {folder}/\npersistence_file mosquitto.db\n"
            "max_queued_messages 10000\nmax_inflight_messages 20\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.downtime_s: list[float] = []

    def start(self) -> None:
        with (self.folder / "mosquitto.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_port(self.port, self.proc, 30.0, "mosquitto")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM saves the persistence file; SIGKILL does not), then start on the same port."""
        t0 = time.monotonic()
        self.stop(sig)
        self.start()
        self.restarts += 1
        self.downtime_s.append(time.monotonic() - t0)
        log.info(
            "mosquitto on port %d restarted (%s) in %.2f s",
            self.port,
            signal.Signals(sig).name,
            self.downtime_s[-1],
        )


class MqttStation(Station):
    name = "mqtt"

    def __init__(
        self, env: Env, station_id: str, broker: Mosquitto, restart_photo: str | None, restart_sig: int
    ) -> None:
        super().__init__(env, station_id)
        self.broker = broker
        self.restart_photo = restart_photo  # restart once the broker accepted this photo (None: never)
        self.restart_sig = restart_sig
        self.restart_at: float | None = None  # time.perf_counter() when the restart began
        self.lock = threading.Lock()
        self.restarter: threading.Thread | None = None
        self.clients = 0
        self.topics = {k: f"weldinspect/v1/{station_id}/{k}" for k in ("image", "result", "error", "status")}

    def start(self) -> None:
        args = ["mqtt", "--broker", f"mqtt://127.0.0.1:{self.broker.port}", "--station", self.station_id]
        args += ["--key-id", self.env.key_ids[self.station_id], "--session-expiry", "3600"]
        self.process = Process([*args, *self.env.common_args()], self.env.home / "mqtt.log")
        watcher = MqttClient(self, "status")
        try:
            if not watcher.wait_status(b"online", self.env.timeout_s, self.process):
                msg = f"weldinspect mqtt did not come online:\n{self.process.tail()}"
                raise RuntimeError(msg)
        finally:
            watcher.close()

    def connect(self) -> Client:
        with self.lock:
            self.clients += 1
            return MqttClient(self, f"w{self.clients}")

    def accepted(self, photo: Photo) -> None:
        """The broker accepted ``photo`` (PUBACK); the restart photo restarts it while in flight."""
        with self.lock:
            if photo.name != self.restart_photo or self.restarter is not None:
                return
            self.restart_at = time.perf_counter()
        self.restarter = threading.Thread(target=self.broker.restart, args=(self.restart_sig,), daemon=True)
        self.restarter.start()

    def stop(self) -> int | None:
        if self.restarter is not None:
            self.restarter.join()
        return super().stop()


class MqttClient(Client):
    """A paho MQTT v5 client with a persistent session, re-subscribing on every (re)connect."""

    def __init__(self, station: MqttStation, suffix: str, *, resend_s: float = 20.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.station = station
        self.resend_s = resend_s
        self.replies: dict[bytes, list[tuple[float, str, bytes, dict[str, str]]]] = {}
        self.status: queue.Queue[bytes] = queue.Queue()
        self.cond = threading.Condition()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"station-sim-{station.env.run_id}-{suffix}",
            protocol=mqtt.MQTTv5,
        )
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", station.broker.port, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.subscribed.wait(30.0):
            msg = f"no connection to mosquitto on port {station.broker.port}"
            raise RuntimeError(msg)

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("mosquitto refused the station client: %s", reason)
            return
        t = self.station.topics
        client.subscribe([(t["result"], 1), (t["error"], 1), (t["status"], 1)])
        self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        kind = m.topic.rsplit("/", 1)[-1]
        if kind == "status":
            self.status.put(bytes(m.payload))
            return
        props = m.properties
        corr = getattr(props, "CorrelationData", None)
        user = {str(k): str(v) for k, v in getattr(props, "UserProperty", None) or ()}
        with self.cond:
            self.replies.setdefault(bytes(corr or b""), []).append(
                (time.perf_counter(), kind, bytes(m.payload), user)
            )
            self.cond.notify_all()

    def wait_status(self, expected: bytes, timeout_s: float, proc: Process) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.proc.poll() is not None:
                return False
            try:
                if self.status.get(timeout=0.2) == expected:
                    return True
            except queue.Empty:
                continue
        return False

    def _publish(self, photo: Photo, corr: bytes) -> bool:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [
            *((k, str(v)) for k, v in metadata(photo).items()),
            ("idempotency_key", self.station.env.idempotency_key(photo)),
        ]
        props.CorrelationData = corr
        props.ContentType = "image/jpeg"
        try:
            info = self.client.publish(self.station.topics["image"], photo.data, qos=1, properties=props)
            info.wait_for_publish(5.0)
            return bool(info.is_published())
        except (RuntimeError, ValueError) as exc:  # not connected (broker restarting): resent later
            log.info("publish of %s not accepted yet: %s", photo.name, exc)
            return False

    def send(self, photo: Photo) -> Outcome:
        corr = f"{self.station.env.run_id}:{photo.name}".encode()
        out = Outcome(photo.name, 0.0)
        t0 = time.perf_counter()
        if self._publish(photo, corr):
            self.station.accepted(photo)
        deadline = time.monotonic() + self.station.env.timeout_s
        next_resend = time.monotonic() + self.resend_s
        with self.cond:
            while not self.replies.get(corr):
                now = time.monotonic()
                if now >= deadline:
                    break
                if (
                    now >= next_resend
                ):  # no answer: publish again with the same key (replayed, not re-recorded)
                    self.cond.release()
                    try:
                        out.resends += 1
                        self._publish(photo, corr)
                    finally:
                        self.cond.acquire()
                    next_resend = time.monotonic() + self.resend_s
                self.cond.wait(timeout=0.2)
            got = list(self.replies.get(corr, ()))
        if not got:
            out.latency_ms = (time.perf_counter() - t0) * 1000.0
            out.error = f"no result or error on MQTT within {self.station.env.timeout_s:g} s"
            return out
        when, kind, payload, user = got[0]
        out.latency_ms = (when - t0) * 1000.0
        out.answered_at = when
        out.replies = len(got)
        if kind == "error":
            out.error = f"MQTT error: {payload[:300].decode(errors='replace')}"
            return out
        body = json.loads(payload)
        out.inspection_id, out.result, out.created = body["id"], body["result"], user.get("created") == "true"
        return out

    def settle(self, outcomes: list[Outcome], wait_s: float = 2.0) -> None:
        """Wait a little for late replies (replays after the restart) and count them."""
        time.sleep(wait_s)
        with self.cond:
            for o in outcomes:
                corr = f"{self.station.env.run_id}:{o.photo}".encode()
                o.replies = max(o.replies, len(self.replies.get(corr, ())))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- OPC UA ---------------------------------------------------------------------------------------


class OpcuaStation(Station):
    name = "opcua"

    def __init__(self, env: Env, station_id: str, security: str) -> None:
        super().__init__(env, station_id)
        self.security = security
        self.pki = env.home / "opcua-pki"
        self.password = f"sim-{env.run_id}-password"
        self.url = ""

    def start(self) -> None:
        certs = Process(["opcua", "certs", "--out", str(self.pki)], self.env.home / "opcua-certs.log")
        if certs.proc.wait(timeout=120) != 0:
            msg = f"weldinspect opcua certs failed:\n{certs.tail()}"
            raise RuntimeError(msg)
        self.url = f"opc.tcp://127.0.0.1:{free_port()}"
        args = ["opcua", "--endpoint", self.url, "--station", self.station_id, "--security", self.security]
        args += ["--key-id", self.env.key_ids[self.station_id], "--cert-dir", str(self.pki)]
        args += ["--username", OPCUA_USER, "--password-env", OPCUA_PASSWORD_ENV]
        self.process = Process(
            [*args, *self.env.common_args()],
            self.env.home / "opcua.log",
            env={OPCUA_PASSWORD_ENV: self.password},
        )
        deadline = time.monotonic() + self.env.timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                msg = f"weldinspect opcua exited early:\n{self.process.tail()}"
                raise RuntimeError(msg)
            try:
                client = OpcuaClient(self)
            except Exception as exc:  # not listening yet
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)
                continue
            try:
                state = client.state()
            finally:
                client.close()
            if state == "Operational":
                return
            last = f"state {state}"
            time.sleep(0.5)
        msg = f"weldinspect opcua not Operational within {self.env.timeout_s:g} s ({last})"
        raise RuntimeError(msg)

    def connect(self) -> Client:
        return OpcuaClient(self)


class OpcuaClient(Client):
    """An asyncua client (Basic256Sha256 Sign&Encrypt unless ``security`` is none) on its own loop."""

    def __init__(self, station: OpcuaStation) -> None:
        self.station = station
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        try:
            self.client, self.idx = self._call(self._connect())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Awaitable[T]) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return fut.result(timeout=self.station.env.timeout_s)

    async def _connect(self) -> tuple[Any, int]:
        from asyncua import Client as UaClient
        from asyncua import ua
        from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

        from inspection.service.opcua.security import CLIENT_APP_URI
        from inspection.service.opcua.server import NAMESPACE_URI

        st = self.station
        client = UaClient(st.url, timeout=st.env.timeout_s)
        client.application_uri = CLIENT_APP_URI
        client.set_user(OPCUA_USER)
        client.set_password(st.password)
        if st.security != "none":
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=str(st.pki / "client_cert.der"),
                private_key=str(st.pki / "client_key.pem"),
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        await client.connect()
        return client, await client.get_namespace_index(NAMESPACE_URI)

    def state(self) -> str:
        from asyncua import ua

        node = self.client.get_node(ua.NodeId("VisionSystem.VisionStateMachine.CurrentState", self.idx))  # type: ignore[arg-type]
        return str(self._call(node.read_value()).Text)

    async def _inspect(self, photo: Photo) -> tuple[Any, list[Any]]:
        from asyncua import ua

        req = ua.CallMethodRequest()
        req.ObjectId = ua.NodeId("VisionSystem", self.idx)  # type: ignore[arg-type]
        req.MethodId = ua.NodeId("VisionSystem.InspectBytes", self.idx)  # type: ignore[arg-type]
        req.InputArguments = [
            ua.Variant(photo.data, ua.VariantType.ByteString),
            ua.Variant(json.dumps(metadata(photo))),
            ua.Variant(self.station.env.idempotency_key(photo)),
        ]
        (res,) = await self.client.uaclient.call([req])
        return res.StatusCode, [v.Value for v in res.OutputArguments or []]

    def send(self, photo: Photo) -> Outcome:
        out = Outcome(photo.name, 0.0)
        t0 = time.perf_counter()
        try:
            status, values = self._call(self._inspect(photo))
        except Exception as exc:
            out.latency_ms = (time.perf_counter() - t0) * 1000.0
            out.error = f"OPC UA call failed: {type(exc).__name__}: {exc}"
            return out
        out.latency_ms = (time.perf_counter() - t0) * 1000.0
        out.replies = 1
        if not status.is_good() or len(values) < 4 or values[3]:
            out.error = f"OPC UA {status.name}: {values[3] if len(values) > 3 else values}"
            return out
        body = json.loads(values[2])
        out.inspection_id, out.created, out.result = values[0], bool(values[1]), body["result"]
        return out

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()

    def close(self) -> None:
        try:
            self._call(self.client.disconnect())
        except Exception as exc:  # the server may already be gone
            log.info("OPC UA disconnect: %s", exc)
        finally:
            self._stop_loop()
