"""The paho-mqtt client of one station: subscribe, inspect in a worker thread, acknowledge after commit.

Delivery (``docs/mqtt.md``): the client connects with a fixed client id, ``clean_start=False`` and a
session expiry, so the broker keeps the QoS 1 subscription and every unacknowledged message while the
adapter is down. Messages are acknowledged by hand (``manual_ack=True``) and only after
:func:`~inspection.service.mqtt.handler.handle` returned, i.e. after the record was committed (or
the message was rejected) and the reply was accepted by the broker. A crash before that means
redelivery, which the idempotency key turns into a replay of the same record.

The network thread (paho's ``loop_start``) only queues messages; one worker thread handles them in
order, which also keeps the acknowledgements in the order the messages arrived (MQTT requires it).
After a reconnect, messages queued from the previous connection are dropped unhandled: the broker
sends them again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from inspection.service.mqtt.broker import BrokerConfig
from inspection.service.mqtt.handler import TRANSIENT, Handled, Reply, handle
from inspection.service.mqtt.request import Inbound
from inspection.service.mqtt.topics import OFFLINE, ONLINE, StationTopics
from inspection.service.state import ServiceState

logger = logging.getLogger(__name__)

SUBSCRIBE_QOS: Final = 1
"""QoS 1 at most: a QoS 2 delivery is completed by paho before the application has the record."""
PUBLISH_WAIT_S: Final = 10.0


class MqttConnectError(RuntimeError):
    """The broker could not be reached or refused the connection (the message says which and why)."""


class MqttAdapter:
    """Serves one station's image topic through ``state.recorder`` until :meth:`stop`.

    ``on_handled`` (tests, monitoring) is called after each message was handled and acknowledged.
    A message whose record could not be committed (database down) is retried after
    ``retry_first_s``, then twice as long each time up to ``retry_max_s``.
    """

    def __init__(
        self,
        state: ServiceState,
        broker: BrokerConfig,
        station: str,
        *,
        retry_first_s: float = 0.5,
        retry_max_s: float = 30.0,
        connect_timeout_s: float = 15.0,
        on_handled: Callable[[Inbound, Handled], None] | None = None,
    ) -> None:
        self.state = state
        self.broker = broker
        self.topics = StationTopics(station)
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.connect_timeout_s = connect_timeout_s
        self.on_handled = on_handled
        self._queue: queue.Queue[tuple[int, Inbound]] = queue.Queue()
        self._generation = 0
        self._stopping = threading.Event()
        self._first_connect = threading.Event()
        self._connect_error: str | None = None
        self._worker: threading.Thread | None = None
        self.client = self._make_client()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect, subscribe, publish ``online`` and start the worker; raises :class:`MqttConnectError`."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.broker.session_expiry_s
        props.ReceiveMaximum = self.broker.receive_maximum
        try:
            self.client.connect(
                self.broker.host,
                self.broker.port,
                keepalive=self.broker.keepalive_s,
                clean_start=False,
                properties=props,
            )
        except (OSError, ValueError) as exc:
            msg = f"cannot connect to MQTT broker {self.broker.url}: {exc}"
            raise MqttConnectError(msg) from exc
        self.client.loop_start()
        if not self._first_connect.wait(self.connect_timeout_s) or self._connect_error is not None:
            self.client.disconnect()
            self.client.loop_stop()
            who = f"MQTT broker {self.broker.url}", repr(self.broker.client_id)
            if self._connect_error is not None:
                msg = f"{who[0]} refused client {who[1]}: {self._connect_error}"
            else:
                expected = "MQTT" if self.broker.uses_tls else "MQTTS"
                msg = (
                    f"{who[0]} did not accept client {who[1]}: "
                    f"no CONNACK within {self.connect_timeout_s:g} s "
                    f"(is it an {expected} port? check mqtt:// vs mqtts:// and --tls-ca)"
                )
            raise MqttConnectError(msg)
        self._worker = threading.Thread(target=self._work, name=f"mqtt-{self.topics.station}", daemon=True)
        self._worker.start()
        logger.info("serving %s on %s as %s", self.topics.image, self.broker.url, self.broker.client_id)

    def stop(self) -> None:
        """Finish the message in hand, publish retained ``offline``, disconnect cleanly.

        Messages received but not yet handled stay unacknowledged: the broker keeps them for the
        next start.
        """
        self._stopping.set()
        if self._worker is not None:
            self._worker.join()
        try:
            self.client.publish(self.topics.status, OFFLINE, qos=1, retain=True).wait_for_publish(
                PUBLISH_WAIT_S
            )
        except (RuntimeError, ValueError) as exc:
            logger.warning("could not publish %s to %s: %s", OFFLINE, self.topics.status, exc)
        self.client.disconnect()
        self.client.loop_stop()
        logger.info("stopped serving %s", self.topics.image)

    def run(self, stop: threading.Event) -> None:
        """:meth:`start`, serve until ``stop`` is set, then :meth:`stop`."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # -- paho callbacks (network thread) ----------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        b = self.broker
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=b.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        if b.username is not None:
            client.username_pw_set(b.username, b.password)
        if b.uses_tls:
            client.tls_set(
                ca_certs=str(b.tls_ca) if b.tls_ca else None,
                certfile=str(b.tls_cert) if b.tls_cert else None,
                keyfile=str(b.tls_key) if b.tls_key else None,
            )
        client.will_set(self.topics.status, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._connect_error = str(reason)
            logger.error("MQTT broker %s refused the connection: %s", self.broker.url, reason)
            self._first_connect.set()
            return
        self._generation += 1
        client.subscribe(self.topics.image, options=SubscribeOptions(qos=SUBSCRIBE_QOS, retainHandling=2))
        client.publish(self.topics.status, ONLINE, qos=1, retain=True)
        logger.info(
            "connected to %s (session present: %s)",
            self.broker.url,
            bool(getattr(flags, "session_present", False)),
        )
        self._first_connect.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            logger.warning("disconnected from %s (%s); reconnecting", self.broker.url, reason)

    def _on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            inbound = inbound_of(message)
        except Exception:  # an exception here would stop paho's network loop
            logger.exception(
                "cannot read message %d on %s; acknowledged and dropped", message.mid, message.topic
            )
            client.ack(message.mid, message.qos)
            return
        if message.topic != self.topics.image:  # not subscribed to it: acknowledge and ignore
            logger.warning("ignoring message on unexpected topic %s", message.topic)
            client.ack(message.mid, message.qos)
            return
        self._queue.put((self._generation, inbound))

    # -- worker thread ----------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                generation, msg = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if generation != self._generation:
                logger.info("message %d arrived before a reconnect; the broker redelivers it", msg.mid)
                continue
            try:
                self._serve(generation, msg)
            except Exception:  # never let the worker die: the adapter would look alive and do nothing
                logger.exception(
                    "message %d on %s: unexpected failure; left unacknowledged", msg.mid, msg.topic
                )

    def _serve(self, generation: int, msg: Inbound) -> None:
        """Handle one message, publish its replies, then acknowledge it (if still on its connection)."""
        handled = self._handle(msg)
        if handled is None:  # stopping while the store was down: left for redelivery
            return
        delivered = all([self._publish(r) for r in handled.replies])
        if msg.qos > 0 and delivered and generation == self._generation:
            self.client.ack(msg.mid, msg.qos)
        if self.on_handled is not None:
            self.on_handled(msg, handled)

    def _handle(self, msg: Inbound) -> Handled | None:
        """:func:`handle`, retried with back-off while the store fails; None when stopping first."""
        delay = self.retry_first_s
        while True:
            try:
                return handle(self.state, self.topics, msg)
            except TRANSIENT as exc:
                logger.warning(
                    "message %d on %s not recorded (%s: %s); retrying in %.1f s, not acknowledged",
                    msg.mid,
                    msg.topic,
                    type(exc).__name__,
                    exc,
                    delay,
                )
            if self._stopping.wait(delay):
                return None
            delay = min(delay * 2, self.retry_max_s)

    def _publish(self, reply: Reply) -> bool:
        """Publish at QoS 1 and wait for the broker's PUBACK; False when it did not come."""
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = reply.content_type
        if reply.user_properties:
            props.UserProperty = list(reply.user_properties)
        if reply.correlation_data is not None:
            props.CorrelationData = reply.correlation_data
        try:
            info = self.client.publish(reply.topic, reply.payload, qos=1, properties=props)
            info.wait_for_publish(PUBLISH_WAIT_S)
        except (RuntimeError, ValueError) as exc:
            logger.warning(
                "reply to %s not confirmed (%s); the request stays unacknowledged", reply.topic, exc
            )
            return False
        return info.is_published()


def inbound_of(message: mqtt.MQTTMessage) -> Inbound:
    """The library-independent view of a received message (MQTT v5 properties included)."""
    props = getattr(message, "properties", None)
    user = tuple((str(k), str(v)) for k, v in getattr(props, "UserProperty", None) or ())
    correlation = getattr(props, "CorrelationData", None)
    return Inbound(
        topic=message.topic,
        payload=bytes(message.payload),
        qos=message.qos,
        mid=message.mid,
        dup=bool(message.dup),
        content_type=getattr(props, "ContentType", None),
        user_properties=user,
        correlation_data=bytes(correlation) if correlation is not None else None,
        response_topic=getattr(props, "ResponseTopic", None),
    )
