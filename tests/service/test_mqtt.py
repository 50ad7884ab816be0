"""The MQTT adapter: message checks (pure), the handler's idempotency, and the real broker end to end.

Broker tests talk to the Mosquitto on 127.0.0.1:1883 (``scripts/test.sh`` starts one when it can),
each with its own station id, so tests never see each other's messages. Without a broker, or with
``WELDINSPECT_NO_MQTT=1``, they are skipped LOUDLY.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, overload

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from typer.testing import CliRunner

from inspection.cli import app as cli_app
from inspection.image.ingest import image_sha256
from inspection.service.mqtt.adapter import MqttAdapter, MqttConnectError
from inspection.service.mqtt.broker import BrokerConfig, parse_broker_url
from inspection.service.mqtt.handler import handle
from inspection.service.mqtt.request import Inbound, Rejected, parse_request
from inspection.service.mqtt.topics import StationTopics, check_station
from inspection.service.recorder import open_recorder
from inspection.service.settings import ServiceSettings
from inspection.service.state import ServiceState
from inspection.store import InspectionFilter
from tests.helpers.images import encode, gradient_rgb, png_declaring, truncated
from tests.service.helpers import STATION_META, make_settings, seam_jpeg

HOST, PORT = "127.0.0.1", 1883
MAX_BYTES = 200_000
WAIT_S = 60.0  # how long a test waits for a broker message before failing (not a speed check)


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> ServiceSettings:
    return make_settings(
        tmp_path_factory.mktemp("mqtt"), tiny_model_dir, max_upload_bytes=MAX_BYTES, max_pixels=400 * 400
    )


@pytest.fixture(scope="module")
def state(settings: ServiceSettings) -> Iterator[ServiceState]:
    recorder = open_recorder(settings)
    yield ServiceState(settings, recorder.store, recorder)
    recorder.store.close()


@pytest.fixture(scope="module")
def broker() -> None:
    if os.environ.get("WELDINSPECT_NO_MQTT") == "1":
        pytest.skip("!!! MQTT broker tests SKIPPED: WELDINSPECT_NO_MQTT=1 !!!")
    try:
        socket.create_connection((HOST, PORT), timeout=3).close()
    except OSError as exc:
        pytest.skip(f"!!! MQTT broker tests SKIPPED: no broker on {HOST}:{PORT} ({exc}) !!!")


@pytest.fixture
def station() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


def _config(station: str) -> BrokerConfig:
    return BrokerConfig(HOST, PORT, client_id=f"weldinspect-{station}", session_expiry_s=120)


@dataclass
class Got:
    topic: str
    payload: bytes
    retain: bool
    props: dict[str, str]
    correlation: bytes | None

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """A plain MQTT v5 client: subscribes to topics and hands out what arrives, in order."""

    def __init__(
        self, *topics: str, port: int = PORT, user: tuple[str, str] | None = None, ca: Path | None = None
    ) -> None:
        self.messages: queue.Queue[Got] = queue.Queue()
        self.suback: queue.Queue[list[Any]] = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.suback.put(codes)
        self.pubacks: dict[int, int] = {}
        self.client.on_publish = lambda _c, _u, mid, code, _p: self.pubacks.__setitem__(mid, code.value)
        if user is not None:
            self.client.username_pw_set(*user)
        if ca is not None:
            self.client.tls_set(ca_certs=str(ca))
        self.client.connect(HOST, port)
        self.client.loop_start()
        for t in topics:  # waits for each SUBACK: the subscriptions are in place afterwards
            self.subscribe(t)

    def subscribe(self, topic: str) -> list[Any]:
        """Subscribe at QoS 1; the SUBACK's reason codes."""
        self.client.subscribe(topic, qos=1)
        try:
            return self.suback.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no SUBACK for {topic} within {WAIT_S:g} s")

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        props = m.properties
        user = dict(getattr(props, "UserProperty", None) or [])
        self.messages.put(
            Got(m.topic, m.payload, bool(m.retain), user, getattr(props, "CorrelationData", None))
        )

    @overload
    def next(self, topic: str) -> Got: ...
    @overload
    def next(self, topic: str, *, fail: bool) -> Got | None: ...
    def next(self, topic: str, *, fail: bool = True) -> Got | None:
        """The next message on ``topic`` (messages on other topics before it are dropped).

        None (or a test failure when ``fail``) when none comes within ``WAIT_S``.
        """
        while True:
            try:
                got = self.messages.get(timeout=WAIT_S)
            except queue.Empty:
                if not fail:
                    return None
                pytest.fail(f"no message on {topic} within {WAIT_S:g} s")
            if got.topic == topic:
                return got

    def publish(
        self,
        topic: str,
        payload: bytes,
        props: list[tuple[str, str]] | None = None,
        *,
        correlation: bytes | None = None,
        response_topic: str | None = None,
        content_type: str | None = None,
        qos: int = 1,
    ) -> int:
        """Publish and wait for the PUBACK; its reason code (0 = accepted, 0x87 = not authorized)."""
        p = Properties(PacketTypes.PUBLISH)
        if props:
            p.UserProperty = props
        if correlation is not None:
            p.CorrelationData = correlation
        if response_topic is not None:
            p.ResponseTopic = response_topic
        if content_type is not None:
            p.ContentType = content_type
        info = self.client.publish(topic, payload, qos=qos, properties=p)
        info.wait_for_publish(WAIT_S)
        return self.pubacks.get(info.mid, 0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def listener(station: str, broker: None) -> Iterator[Listener]:
    topics = StationTopics(station)
    lis = Listener(topics.result, topics.error, topics.status, f"reply/{station}")
    yield lis
    lis.client.publish(topics.status, b"", qos=1, retain=True).wait_for_publish(WAIT_S)  # clear retained
    lis.close()
    _forget_session(station)


def _forget_session(station: str) -> None:
    """Drop the adapter's persistent session from the broker (clean start, expiry 0)."""
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"weldinspect-{station}", protocol=mqtt.MQTTv5
    )
    c.connect(HOST, PORT, clean_start=True)
    c.loop_start()
    c.publish("weldinspect/test/forget", b"", qos=1).wait_for_publish(WAIT_S)
    c.disconnect()
    c.loop_stop()


@pytest.fixture
def adapter(state: ServiceState, station: str, listener: Listener) -> Iterator[MqttAdapter]:
    ad = MqttAdapter(state, _config(station), station)
    ad.start()
    assert listener.next(ad.topics.status).payload == b"online"
    yield ad
    ad.stop()


def _records(state: ServiceState, station: str) -> list[Any]:
    return list(state.store.list_inspections(InspectionFilter(station_id=station)).items)


def _meta_props(meta: dict[str, Any]) -> list[tuple[str, str]]:
    return [(k, json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in meta.items()]


# ---- pure: message checks -------------------------------------------------------------------------

JPEG = seam_jpeg(1)


def _msg(payload: bytes = JPEG, props: list[tuple[str, str]] | None = None, **kw: Any) -> Inbound:
    return Inbound("weldinspect/v1/S1/image", payload, user_properties=tuple(props or ()), mid=7, **kw)


@pytest.mark.parametrize(
    ("msg", "code", "says"),
    [
        (_msg(b""), "empty", "0 bytes"),
        (_msg(b"\xff\xd8\xff" + b"0" * MAX_BYTES), "too_large", f"limit of {MAX_BYTES}"),
        (_msg(b"hello, not an image"), "not_an_image", "JPEG, PNG, BMP, TIFF"),
        (_msg(b"GIF89a" + b"\0" * 32), "unsupported_format", "GIF images are not supported"),
        (_msg(content_type="text/plain"), "unsupported_media_type", "'text/plain'"),
        (
            _msg(props=[("machine_seriel", "M-1")]),
            "invalid_metadata",
            "unknown user property 'machine_seriel'",
        ),
        (_msg(props=[("thickness_mm", "-1")]), "invalid_metadata", "thickness_mm"),
        (_msg(props=[("quality_level", "A")]), "invalid_metadata", "quality_level"),
        (_msg(props=[("params", "{power_w: 1}")]), "invalid_metadata", "'params' is not valid JSON"),
        (_msg(props=[("params", '{"a": 1, "a": 2}')]), "invalid_metadata", "duplicate object key 'a'"),
        (_msg(props=[("params", '{"a": NaN}')]), "invalid_metadata", "NaN is not valid JSON"),
        (_msg(props=[("params", "[" * 100_000)]), "invalid_metadata", "at most 65536"),
        (_msg(props=[("metadata", "[" * 20_000 + "]" * 20_000)]), "invalid_metadata", "levels deep"),
        (_msg(props=[("params", '{"a": ' * 16 + "1" + "}" * 16)]), "invalid_metadata", "levels deep"),
        (_msg(props=[("params", '{"a": 1e400}')]), "invalid_metadata", "params"),
        (_msg(props=[("part_id", "P\x00")]), "invalid_metadata", "NUL"),
        (_msg(props=[("idempotency_key", "k\x00")]), "invalid_idempotency_key", "NUL"),
        (_msg(props=[("part_id", "a"), ("part_id", "b")]), "invalid_metadata", "more than once"),
        (_msg(props=[("metadata", "[1]")]), "invalid_metadata", "must be a JSON object"),
        (_msg(props=[("metadata", '{"a": NaN}')]), "invalid_metadata", "without NaN"),
        (_msg(props=[("metadata", '{"part_id": "a"}'), ("part_id", "b")]), "invalid_metadata", "given twice"),
        (
            _msg(props=[("station_id", "S2")]),
            "station_mismatch",
            "'S2' differs from the topic's station 'S1'",
        ),
        (_msg(props=[("idempotency_key", "  ")]), "invalid_idempotency_key", "blank"),
        (_msg(props=[("idempotency_key", "k" * 129)]), "invalid_idempotency_key", "at most 128"),
    ],
)
def test_bad_messages_are_rejected_with_a_code_and_reason(msg: Inbound, code: str, says: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_request(msg, "S1", MAX_BYTES)
    assert info.value.code == code
    assert says in info.value.reason


@pytest.mark.parametrize(
    ("props", "content_type"),
    [
        (_meta_props(STATION_META), None),  # one property per field, params as JSON
        ([("metadata", json.dumps(STATION_META))], "image/jpeg"),  # the HTTP API's JSON in one property
        ([("metadata", json.dumps({"machine_serial": "M-1"})), *_meta_props({"part_id": "P-1"})], None),
    ],
)
def test_metadata_from_user_properties(props: list[tuple[str, str]], content_type: str | None) -> None:
    req = parse_request(_msg(props=props, content_type=content_type), "S1", MAX_BYTES)
    assert req.context.station_id == "S1"
    assert req.context.machine_serial == "M-1"
    assert req.context.part_id == "P-1"
    if len(props) > 2:
        assert req.context.thickness_mm == 2.0 and req.context.params == STATION_META["params"]


@pytest.mark.parametrize(
    ("msg", "key"),
    [
        (_msg(props=[("idempotency_key", " k1 ")]), "S1/k1"),  # the HTTP API's per-station scope
        (_msg(), f"mqtt:S1:{image_sha256(JPEG)}:7"),  # sha256 + packet id: a redelivery has both
        (_msg(qos=0), None),  # QoS 0 is never redelivered
    ],
)
def test_storage_key(msg: Inbound, key: str | None) -> None:
    assert parse_request(msg, "S1", MAX_BYTES).idempotency_key == key


@pytest.mark.parametrize("station", ["", "a/b", "S+", "#", "-S", "x" * 65, "Stätion"])
def test_station_ids_that_would_break_topics_are_refused(station: str) -> None:
    with pytest.raises(ValueError, match="not valid"):
        check_station(station)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, False)),
        ("mqtt://127.0.0.1:1884", ("127.0.0.1", 1884, False)),
        ("mqtts://broker.local", ("broker.local", 8883, True)),
    ],
)
def test_broker_url(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [("http://h", "mqtt:// or mqtts://"), ("mqtt://u:p@h", "--password-env"), ("mqtt://", "no host")],
)
def test_bad_broker_url(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_broker_url(url)


def test_cli_refuses_a_station_id_that_breaks_topics() -> None:
    r = CliRunner().invoke(cli_app, ["mqtt", "--station", "a/b"])
    assert r.exit_code == 2
    assert "not valid" in r.output


# ---- handler: the one inspection path, idempotent ------------------------------------------------


def test_handling_the_same_message_twice_stores_one_record_and_answers_both(state: ServiceState) -> None:
    station = f"H-{uuid.uuid4().hex[:8]}"
    topics = StationTopics(station)
    msg = Inbound(topics.image, seam_jpeg(11), mid=42, user_properties=tuple(_meta_props(STATION_META)))
    first = handle(state, topics, msg)
    again = handle(state, topics, replace(msg, dup=True))
    assert (first.kind, first.created, again.kind, again.created) == ("result", True, "result", False)
    assert first.inspection_id == again.inspection_id
    assert json.loads(first.replies[0].payload) == json.loads(again.replies[0].payload)
    records = _records(state, station)
    assert [r.id for r in records] == [first.inspection_id]
    assert records[0].machine_serial == "M-1"


def test_idempotency_key_reused_for_another_image_is_an_error(state: ServiceState) -> None:
    topics = StationTopics(f"H-{uuid.uuid4().hex[:8]}")
    key = (("idempotency_key", "seam-1"),)
    assert handle(state, topics, Inbound(topics.image, seam_jpeg(12), user_properties=key)).kind == "result"
    out = handle(state, topics, Inbound(topics.image, seam_jpeg(13), user_properties=key, mid=3))
    assert (out.kind, out.code) == ("error", "idempotency_conflict")
    body = json.loads(out.replies[0].payload)
    assert body["message"]["idempotency_key"] == "seam-1"
    assert body["message"]["image_sha256"] == image_sha256(seam_jpeg(13))
    assert len(_records(state, topics.station)) == 1


# ---- real broker ---------------------------------------------------------------------------------


def test_image_with_properties_gives_a_result_and_one_record(
    state: ServiceState, adapter: MqttAdapter, listener: Listener, station: str
) -> None:
    data = seam_jpeg(21)
    reply_to = f"reply/{station}"
    listener.publish(
        adapter.topics.image,
        data,
        [*_meta_props(STATION_META), ("idempotency_key", "seam-21")],
        correlation=b"req-21",
        response_topic=reply_to,
        content_type="image/jpeg",
    )
    got = listener.next(adapter.topics.result)
    body = got.json()
    assert (got.props["kind"], got.props["created"], got.correlation) == ("result", "true", b"req-21")
    assert body["image_sha256"] == image_sha256(data) and body["station_id"] == station
    assert body["evidence"]["seq"] >= 1 and body["result"]["context"]["params"] == STATION_META["params"]
    answered = listener.next(reply_to)  # the MQTT v5 request/response pattern
    assert answered.json() == body and answered.correlation == b"req-21"
    (record,) = _records(state, station)
    assert record.id == body["id"]
    assert (record.machine_serial, record.part_id, record.idempotency_key) == (
        "M-1",
        "P-1",
        f"{station}/seam-21",
    )


def test_metadata_property_as_one_json_object(
    state: ServiceState, adapter: MqttAdapter, listener: Listener, station: str
) -> None:
    listener.publish(adapter.topics.image, seam_jpeg(22), [("metadata", json.dumps(STATION_META))])
    body = listener.next(adapter.topics.result).json()
    (record,) = _records(state, station)
    assert record.id == body["id"] and record.seam_id == STATION_META["seam_id"]
    assert body["result"]["context"]["operator_id"] == STATION_META["operator_id"]


def test_plain_mosquitto_pub_without_properties_works(
    state: ServiceState, adapter: MqttAdapter, listener: Listener, station: str, tmp_path: Path
) -> None:
    seam = tmp_path / "seam.jpg"
    seam.write_bytes(seam_jpeg(23))
    pub = shutil.which("mosquitto_pub")
    if pub is not None:  # the real tool a station integrator would try first (MQTT 3.1.1: no properties)
        cmd = [pub, "-h", HOST, "-p", str(PORT), "-q", "1", "-t", adapter.topics.image, "-f", str(seam)]
        subprocess.run(cmd, check=True, timeout=WAIT_S)
    else:
        listener.publish(adapter.topics.image, seam.read_bytes())
    body = listener.next(adapter.topics.result).json()
    (record,) = _records(state, station)
    assert record.id == body["id"] and record.station_id == station
    assert record.machine_serial is None and record.image_sha256 == image_sha256(seam.read_bytes())


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto_pub not installed")
def test_mosquitto_pub_with_user_properties_as_documented(
    state: ServiceState, adapter: MqttAdapter, listener: Listener, station: str, tmp_path: Path
) -> None:
    seam = tmp_path / "seam.jpg"
    seam.write_bytes(seam_jpeg(24))
    cmd = [
        "mosquitto_pub",
        "-h",
        HOST,
        "-p",
        str(PORT),
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-t",
        adapter.topics.image,
    ]
    cmd += ["-D", "publish", "user-property", "machine_serial", "M-24"]
    cmd += ["-D", "publish", "user-property", "params", '{"power_w": 1800}', "-f", str(seam)]
    cmd += [
        "-D",
        "publish",
        "response-topic",
        f"reply/{station}",
        "-D",
        "publish",
        "correlation-data",
        "req-24",
    ]
    subprocess.run(cmd, check=True, timeout=WAIT_S)
    got = listener.next(adapter.topics.result)
    body = got.json()
    assert body["machine_serial"] == "M-24" and body["result"]["context"]["params"] == {"power_w": 1800}
    assert got.correlation == b"req-24"
    assert listener.next(f"reply/{station}").json() == body


BAD = [
    ("not_an_image", b"not an image at all", []),
    ("unsupported_format", b"GIF89a" + b"\0" * 64, []),
    ("too_large", b"\xff\xd8\xff" + b"\0" * MAX_BYTES, []),
    ("too_many_pixels", png_declaring(1000, 1000), []),
    ("truncated", truncated(encode(gradient_rgb(64, 64), "JPEG")), []),
    ("invalid_metadata", JPEG, [("thickness_mm", "thick")]),
    ("invalid_metadata", JPEG, [("material", "x"), ("colour", "red")]),
    ("station_mismatch", JPEG, [("station_id", "someone-else")]),
]


def test_bad_messages_get_an_error_naming_them_and_the_adapter_keeps_serving(
    state: ServiceState, adapter: MqttAdapter, listener: Listener, station: str
) -> None:
    for n, (code, payload, props) in enumerate(BAD):
        key = f"bad-{n}"
        listener.publish(
            adapter.topics.image, payload, [*props, ("idempotency_key", key)], correlation=key.encode()
        )
        got = listener.next(adapter.topics.error)
        body = got.json()
        assert (body["error"], got.props["error"], got.correlation) == (code, code, key.encode()), body
        assert body["reason"] and body["station"] == station
        assert body["message"]["idempotency_key"] == key
        assert body["message"]["image_sha256"] == image_sha256(payload)
        assert body["message"]["bytes"] == len(payload)
    assert _records(state, station) == []
    listener.publish(adapter.topics.image, seam_jpeg(25))  # still serving after all of them
    assert listener.next(adapter.topics.result).json()["station_id"] == station
    assert len(_records(state, station)) == 1


def test_store_errors_are_retried_until_the_record_is_committed(
    state: ServiceState, listener: Listener, station: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    real_submit = state.recorder.submit
    calls: list[int] = []

    def flaky_submit(*args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:  # the database is down for the first two tries
            raise OperationalError("INSERT", {}, Exception("connection refused"))
        return real_submit(*args, **kw)

    monkeypatch.setattr(state.recorder, "submit", flaky_submit)
    ad = MqttAdapter(state, _config(station), station, retry_first_s=0.01)
    ad.start()
    try:
        listener.publish(ad.topics.image, seam_jpeg(26), [("idempotency_key", "k26")])
        got = listener.next(ad.topics.result)
    finally:
        ad.stop()
    assert len(calls) == 3 and got.props["created"] == "true"  # retried, not turned into an error
    assert [r.id for r in _records(state, station)] == [got.json()["id"]]


def test_stopping_while_the_store_is_down_leaves_the_message_for_redelivery(
    state: ServiceState, listener: Listener, station: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspection.store.db import StoreError

    real_submit = state.recorder.submit
    down = {"now": True}
    tried = queue.Queue[int]()

    def submit(*args: Any, **kw: Any) -> Any:
        if down["now"]:
            tried.put(1)
            raise StoreError("database unreachable")
        return real_submit(*args, **kw)

    monkeypatch.setattr(state.recorder, "submit", submit)
    ad = MqttAdapter(state, _config(station), station, retry_first_s=0.01, retry_max_s=0.05)
    ad.start()
    assert listener.next(ad.topics.status).payload == b"online"
    listener.publish(ad.topics.image, seam_jpeg(27))
    tried.get(timeout=WAIT_S)  # the adapter has the message and cannot record it
    ad.stop()  # nothing was acknowledged
    assert listener.next(ad.topics.status).payload == b"offline"
    assert _records(state, station) == []
    down["now"] = False
    again = MqttAdapter(state, _config(station), station)
    again.start()
    try:
        got = listener.next(ad.topics.result)  # the broker kept the message for the session
    finally:
        again.stop()
    assert got.props["created"] == "true"
    assert [r.id for r in _records(state, station)] == [got.json()["id"]]


def test_status_is_retained_online_then_offline_after_a_clean_stop(
    state: ServiceState, listener: Listener, station: str
) -> None:
    ad = MqttAdapter(state, _config(station), station)
    ad.start()
    assert listener.next(ad.topics.status).payload == b"online"
    late = Listener(ad.topics.status)  # a subscriber that comes later gets the retained value
    try:
        got = late.next(ad.topics.status)
        assert (got.payload, got.retain) == (b"online", True)
    finally:
        late.close()
    ad.stop()
    assert listener.next(ad.topics.status).payload == b"offline"
    late = Listener(ad.topics.status)
    try:
        got = late.next(ad.topics.status)
        assert (got.payload, got.retain) == (b"offline", True)
    finally:
        late.close()


CRASHING_ADAPTER = textwrap.dedent(
    """
    import os, sys, threading
    from pathlib import Path
    from inspection.service.mqtt.adapter import MqttAdapter, MqttConnectError
    from inspection.service.mqtt.broker import BrokerConfig
    from inspection.service.recorder import open_recorder
    from inspection.service.settings import ServiceSettings
    from inspection.service.state import ServiceState

    db, images, keys, model, station, host, port = sys.argv[1:]
    settings = ServiceSettings(
        db_url=db, images_dir=Path(images), keys_dir=Path(keys), model_dir=Path(model),
        max_upload_bytes=200_000, max_pixels=160_000,
    )
    recorder = open_recorder(settings)
    config = BrokerConfig(host, int(port), client_id=f"weldinspect-{station}", session_expiry_s=120)
    adapter = MqttAdapter(ServiceState(settings, recorder.store, recorder), config, station)
    # the record is committed and the result published; the process dies before its PUBACK
    adapter.client.ack = lambda mid, qos: os._exit(17)
    adapter.start()
    threading.Event().wait()
    """
)


def test_crash_before_ack_means_redelivery_and_no_second_record(
    state: ServiceState, settings: ServiceSettings, listener: Listener, station: str
) -> None:
    topics = StationTopics(station)
    args = [settings.db_url, settings.images_dir, settings.keys_dir, settings.model_dir, station, HOST, PORT]
    child = subprocess.Popen([sys.executable, "-c", CRASHING_ADAPTER, *map(str, args)])
    try:
        assert listener.next(topics.status).payload == b"online"
        data = seam_jpeg(31)
        listener.publish(topics.image, data, [("part_id", "P-31")])  # no key: sha256 + packet id
        first = listener.next(topics.result)
        assert child.wait(timeout=WAIT_S) == 17  # crashed before acknowledging
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert listener.next(topics.status).payload == b"offline"  # the last will
    assert first.props["created"] == "true"
    assert len(_records(state, station)) == 1

    restarted = MqttAdapter(state, _config(station), station)  # same client id: same session
    restarted.start()
    try:
        assert listener.next(topics.status).payload == b"online"
        again = listener.next(topics.result)  # the broker redelivered the unacknowledged message
    finally:
        restarted.stop()
    assert again.props["created"] == "false"
    assert again.json() == first.json()
    (record,) = _records(state, station)
    assert record.id == first.json()["id"] and record.part_id == "P-31"
    assert record.idempotency_key is not None and record.idempotency_key.startswith(f"mqtt:{station}:")


def test_cli_serves_until_sigterm_then_says_offline(
    listener: Listener, station: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    from inspection.evidence.keys import init_key
    from inspection.store import Store

    init_key(tmp_path / "keys", station_id=station)
    topics = StationTopics(station)
    cmd = [sys.executable, "-c", "from inspection.cli import main; main()", "mqtt", "--station", station]
    cmd += ["--broker", f"mqtt://{HOST}:{PORT}", "--home", str(tmp_path), "--model", str(tiny_model_dir)]
    cmd += ["--session-expiry", "120", "--max-bytes", "1000"]
    log = tmp_path / "stderr.txt"
    with log.open("w") as fh:
        child = subprocess.Popen(cmd, stderr=fh)
    try:
        if (got := listener.next(topics.status, fail=False)) is None:
            pytest.fail(f"weldinspect mqtt did not come online; it said:\n{log.read_text()}")
        assert got.payload == b"online"
        listener.publish(topics.image, seam_jpeg(41))  # over --max-bytes 1000
        assert listener.next(topics.error).json()["error"] == "too_large"
        listener.publish(topics.image, encode(gradient_rgb(32, 32), "PNG"))
        body = listener.next(topics.result).json()
        child.terminate()
        child.wait(timeout=WAIT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, log.read_text()
    assert listener.next(topics.status).payload == b"offline"
    with Store.open(f"sqlite:///{tmp_path / 'weldinspect.db'}", tmp_path / "images") as store:
        assert [r.id for r in store.list_inspections().items] == [body["id"]]


# ---- a private broker: TLS, passwords and the documented ACL --------------------------------------

SECURE_STATION = "S1"
ACL = """\
pattern write weldinspect/v1/%u/image
pattern read  weldinspect/v1/%u/result
pattern read  weldinspect/v1/%u/result/#
pattern read  weldinspect/v1/%u/error
pattern read  weldinspect/v1/%u/status

user weldinspect-S1
topic read  weldinspect/v1/S1/image
topic write weldinspect/v1/S1/result
topic write weldinspect/v1/S1/result/#
topic write weldinspect/v1/S1/error
topic write weldinspect/v1/S1/status
"""


@dataclass(frozen=True)
class SecureBroker:
    port: int
    ca: Path
    passwords: dict[str, str]


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 that it signed: (ca.crt, broker.crt, broker.key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert("weldinspect test CA", ca_key, "weldinspect test CA", ca_key, ca=True)
    broker_cert = cert(HOST, key, "weldinspect test CA", ca_key, ca=False)
    paths = folder / "ca.crt", folder / "broker.crt", folder / "broker.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(broker_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A Mosquitto of our own on a free loopback port: TLS only, no anonymous access, the ACL above."""
    import getpass

    if os.environ.get("WELDINSPECT_NO_MQTT") == "1":
        pytest.skip("!!! MQTT broker tests SKIPPED: WELDINSPECT_NO_MQTT=1 !!!")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not (Path(binary).is_file() and shutil.which("mosquitto_passwd")):
        pytest.skip("!!! MQTT TLS/ACL tests SKIPPED: mosquitto or mosquitto_passwd not installed !!!")
    folder = tmp_path_factory.mktemp("broker")
    ca, crt, key = _tls_files(folder)
    passwords = {SECURE_STATION: "station-secret", f"weldinspect-{SECURE_STATION}": "adapter-secret"}
    pwfile = folder / "passwd"
    pwfile.touch()
    for user, password in passwords.items():
        subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password], check=True, timeout=WAIT_S)
    (folder / "acl").write_text(ACL)
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} {HOST}\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {pwfile}\nacl_file {folder / 'acl'}\npersistence false\n"
    )
    log = (folder / "mosquitto.log").open("w")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mosquitto exited: {(folder / 'mosquitto.log').read_text()}")
                time.sleep(0.1)
        else:
            pytest.fail(f"mosquitto did not listen on {port}: {(folder / 'mosquitto.log').read_text()}")
        yield SecureBroker(port, ca, passwords)
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT_S)
        log.close()


def _secure_config(broker: SecureBroker, password: str | None = None) -> BrokerConfig:
    user = f"weldinspect-{SECURE_STATION}"
    return BrokerConfig(
        HOST,
        broker.port,
        client_id=user,
        tls_ca=broker.ca,
        username=user,
        password=password or broker.passwords[user],
        session_expiry_s=60,
    )


def test_tls_credentials_and_acl(state: ServiceState, secure_broker: SecureBroker) -> None:
    topics = StationTopics(SECURE_STATION)
    station = Listener(
        topics.result,
        topics.status,
        port=secure_broker.port,
        user=(SECURE_STATION, secure_broker.passwords[SECURE_STATION]),
        ca=secure_broker.ca,
    )
    adapter = MqttAdapter(state, _secure_config(secure_broker), SECURE_STATION)
    adapter.start()
    try:
        assert station.next(topics.status).payload == b"online"
        station.publish(topics.image, seam_jpeg(51), [("part_id", "P-51")])
        body = station.next(topics.result).json()
        assert body["station_id"] == SECURE_STATION and body["part_id"] == "P-51"
        # the ACL: the station may publish only its images (PUBACK 0x87 Not authorized otherwise)
        assert station.publish(topics.result, b"{}") == 0x87
        assert station.publish(topics.status, b"offline") == 0x87
        assert station.publish("weldinspect/v1/S2/image", seam_jpeg(52)) == 0x87
    finally:
        adapter.stop()
        station.close()
    assert [r.id for r in _records(state, SECURE_STATION)] == [body["id"]]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"password": "wrong"}, "refused client 'weldinspect-S1': Not authorized"),
        ({"tls_ca": None, "tls": False}, "no CONNACK within 5 s (is it an MQTTS port?"),  # plain MQTT to TLS
    ],
)
def test_refused_connections_name_the_broker_and_reason(
    state: ServiceState, secure_broker: SecureBroker, change: dict[str, Any], says: str
) -> None:
    config = replace(_secure_config(secure_broker), **change)
    adapter = MqttAdapter(state, config, SECURE_STATION, connect_timeout_s=5)
    with pytest.raises(MqttConnectError, match=f"{secure_broker.port}") as info:
        adapter.start()
    assert says in str(info.value)
