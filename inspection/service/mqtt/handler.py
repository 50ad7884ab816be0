"""One image message -> the replies to publish, through the service's one inspection path.

:func:`handle` checks the message (:mod:`.request`), then calls
:meth:`inspection.service.recorder.Recorder.submit`, the same call the HTTP API and the hot folder
make: idempotency look-up, :class:`~inspection.pipeline.Inspector`, and the ledger transaction that
commits image, inspection and evidence record before it returns. The result body is the HTTP API's
(:func:`inspection.service.routes.inspection_out`), for a new record and for a replay alike.

A bad message becomes an error reply (never an exception): the adapter publishes it and acknowledges
the message, so it is not redelivered forever. Errors of the store (:data:`TRANSIENT`) are raised:
the adapter retries and acknowledges nothing until the record is committed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy.exc import SQLAlchemyError

from inspection.evidence.ledger import IdempotencyConflictError
from inspection.image.ingest import IngestError, image_sha256
from inspection.service.mqtt.request import Inbound, Rejected, client_key, parse_request, storage_key
from inspection.service.mqtt.topics import StationTopics
from inspection.service.routes import inspection_out
from inspection.service.state import ServiceState
from inspection.store.db import StoreError

logger = logging.getLogger(__name__)

TRANSIENT: Final = (SQLAlchemyError, StoreError, OSError)
"""Errors that say nothing about the message (database down, disk full): retried, not acknowledged."""
JSON: Final = "application/json"


@dataclass(frozen=True)
class Reply:
    """One message to publish (QoS 1, not retained)."""

    topic: str
    payload: bytes
    user_properties: tuple[tuple[str, str], ...] = ()
    correlation_data: bytes | None = None
    content_type: str = JSON


@dataclass(frozen=True)
class Handled:
    """What :func:`handle` decided: ``kind`` result or error, the replies, and the record (results)."""

    kind: Literal["result", "error"]
    replies: tuple[Reply, ...]
    inspection_id: str | None = None
    created: bool = False
    code: str | None = None


def handle(state: ServiceState, topics: StationTopics, msg: Inbound) -> Handled:
    """Inspect and record ``msg`` (an image message of ``topics.station``); never raises for bad input.

    Raises only :data:`TRANSIENT` errors (the message must then stay unacknowledged).
    """
    station = topics.station
    try:
        req = parse_request(msg, station, state.settings.max_upload_bytes)
        sub = state.recorder.submit(
            req.data, req.context, idempotency_key=req.idempotency_key, name=req.name, image_sha256=req.sha256
        )
    except Rejected as exc:
        return _error(topics, msg, exc.code, exc.reason)
    except IngestError as exc:
        return _error(topics, msg, exc.code, exc.reason)
    except IdempotencyConflictError as exc:
        return _error(topics, msg, "idempotency_conflict", str(exc))
    except TRANSIENT:
        raise
    except ValueError as exc:
        return _error(topics, msg, "rejected", str(exc))
    except Exception as exc:  # a bug or a model failure on this image: report it, keep serving
        logger.exception("inspecting message %s on %s failed", msg.mid, msg.topic)
        return _error(topics, msg, "internal_error", f"inspection failed: {type(exc).__name__}: {exc}")
    record = state.store.get_inspection(sub.inspection_id)
    if record is None:  # committed a moment ago: only a concurrent deletion could cause this
        msg_ = f"inspection {sub.inspection_id} was recorded but cannot be read back"
        raise StoreError(msg_)
    body = inspection_out(state, record).model_dump_json().encode()
    props = [
        ("kind", "result"),
        ("created", "true" if sub.created else "false"),
        ("inspection_id", record.id),
        ("image_sha256", record.image_sha256),
    ]
    key = client_key(msg)
    if key:
        props.append(("idempotency_key", key))
    logger.info(
        "message %d on %s: inspection %s (%s)",
        msg.mid,
        msg.topic,
        record.id,
        "new" if sub.created else "replay",
    )
    replies = _addressed(topics.result, msg, body, tuple(props))
    return Handled("result", replies, inspection_id=record.id, created=sub.created)


def error_body(station: str, msg: Inbound, code: str, reason: str) -> dict[str, Any]:
    """The JSON of an error reply: code, reason and what identifies the message."""
    sha = image_sha256(msg.payload) if msg.payload else None
    return {
        "error": code,
        "reason": reason,
        "station": station,
        "message": {
            "topic": msg.topic,
            "mid": msg.mid,
            "qos": msg.qos,
            "dup": msg.dup,
            "bytes": len(msg.payload),
            "image_sha256": sha,
            "idempotency_key": client_key(msg),
            "stored_as": storage_key(station, msg, sha) if sha else None,
        },
    }


def _error(topics: StationTopics, msg: Inbound, code: str, reason: str) -> Handled:
    body = error_body(topics.station, msg, code, reason)
    logger.warning("message %d on %s rejected (%s): %s", msg.mid, msg.topic, code, reason)
    props = [("kind", "error"), ("error", code), ("mid", str(msg.mid))]
    if body["message"]["image_sha256"]:
        props.append(("image_sha256", body["message"]["image_sha256"]))
    key = client_key(msg)
    if key:
        props.append(("idempotency_key", key))
    payload = json.dumps(body).encode()
    return Handled("error", _addressed(topics.error, msg, payload, tuple(props)), code=code)


def _addressed(
    topic: str, msg: Inbound, payload: bytes, props: tuple[tuple[str, str], ...]
) -> tuple[Reply, ...]:
    """The reply on ``topic``, and a copy on the request's response topic when it named a valid one."""
    replies = [Reply(topic, payload, props, msg.correlation_data)]
    target = msg.response_topic
    if target and target != topic:
        if "+" in target or "#" in target:
            logger.warning(
                "message %d: response topic %r has wildcards; replying on %s only", msg.mid, target, topic
            )
        else:
            replies.append(Reply(target, payload, props, msg.correlation_data))
    return tuple(replies)
