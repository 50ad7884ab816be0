"""One received MQTT message -> a checked inspection request, or a :class:`Rejected` naming why.

The checks are the HTTP API's (``POST /v1/inspections``): the same size limit
(``ServiceSettings.max_upload_bytes``), the same image types (by content type when the message
declares one, and by the bytes' magic number), the same metadata model
(:class:`~inspection.service.schemas.InspectionMetadata`, unknown fields refused) bound to the
station, and the same idempotency-key rules. Decoding limits (pixels, corrupt data) are checked by
the recorder's ingest stage, also as for HTTP. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from inspection.evidence.canonical import CanonicalError, parse_json
from inspection.image.ingest import SUPPORTED_FORMATS, image_sha256, sniff_format
from inspection.service.routes import ACCEPTED_TYPES, MAX_IDEMPOTENCY_KEY
from inspection.service.schemas import InspectionMetadata
from inspection.service.validation import (
    MAX_JSON_DEPTH,
    MAX_METADATA_BYTES,
    InputError,
    nesting_exceeds,
    parse_metadata,
    text_problem,
)
from inspection.types import InspectionContext

IDEMPOTENCY_PROPERTY: Final = "idempotency_key"
METADATA_PROPERTY: Final = "metadata"
METADATA_FIELDS: Final[tuple[str, ...]] = tuple(InspectionMetadata.model_fields)
VALID_PROPERTIES: Final[tuple[str, ...]] = (IDEMPOTENCY_PROPERTY, METADATA_PROPERTY, *METADATA_FIELDS)
MAX_PROPERTIES_BYTES: Final = MAX_METADATA_BYTES
"""Largest total of user-property names and values (UTF-8): the HTTP API's ``metadata`` limit."""
JSON_FIELDS: Final = frozenset({"params"})
"""Metadata fields whose user-property value is JSON (the others are plain strings)."""


@dataclass(frozen=True)
class Inbound:
    """What the adapter keeps of one received PUBLISH (library-independent)."""

    topic: str
    payload: bytes
    qos: int = 1
    mid: int = 0
    dup: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    correlation_data: bytes | None = None
    response_topic: str | None = None

    def user_property(self, name: str) -> str | None:
        return next((v for k, v in self.user_properties if k == name), None)


@dataclass(frozen=True)
class ImageRequest:
    """A message that passed every check: inspect ``data`` with ``context``.

    ``idempotency_key`` is the key the record is stored under (None: QoS 0, never redelivered).
    """

    data: bytes
    sha256: str
    context: InspectionContext
    idempotency_key: str | None
    name: str


class Rejected(ValueError):
    """A message that cannot be inspected: ``code`` (machine-readable) and ``reason`` (for people)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{code}: {reason}")


def client_key(msg: Inbound) -> str | None:
    """The station's ``idempotency_key`` user property (stripped), or None."""
    key = msg.user_property(IDEMPOTENCY_PROPERTY)
    return None if key is None else key.strip()


def storage_key(station: str, msg: Inbound, sha256: str) -> str | None:
    """The idempotency key a message's record is stored under.

    * ``<station>/<key>`` for an ``idempotency_key`` property: the HTTP API's scope for a station's
      ``Idempotency-Key``, so a key sent over MQTT and over HTTP names the same record;
    * else ``mqtt:<station>:<sha256>:<packet id>``: a redelivery carries the same packet id (and DUP);
    * None for QoS 0 (never redelivered; every copy is a new inspection).
    """
    key = client_key(msg)
    if key:
        return f"{station}/{key}"
    if msg.qos == 0:
        return None
    return f"mqtt:{station}:{sha256}:{msg.mid}"


def parse_request(msg: Inbound, station: str, max_bytes: int) -> ImageRequest:
    """Check ``msg`` (received on ``station``'s image topic); raise :class:`Rejected` naming the problem."""
    data = msg.payload
    if not data:
        raise Rejected("empty", "payload is empty (0 bytes); publish the image file's bytes")
    if len(data) > max_bytes:
        raise Rejected(
            "too_large",
            f"payload is {len(data)} bytes, larger than the limit of {max_bytes} (max_upload_bytes)",
        )
    _check_type(msg.content_type, data)
    key = client_key(msg)
    if key is not None and not key:
        raise Rejected("invalid_idempotency_key", "idempotency_key must not be blank")
    if key is not None and text_problem(key) is not None:
        raise Rejected("invalid_idempotency_key", f"idempotency_key {text_problem(key)}")
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise Rejected(
            "invalid_idempotency_key",
            f"idempotency_key is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY} are allowed",
        )
    meta = metadata_of(msg.user_properties, station)
    try:
        context = meta.to_context()
    except ValueError as exc:
        raise Rejected("invalid_metadata", f"invalid metadata: {exc}") from exc
    sha = image_sha256(data)
    return ImageRequest(data, sha, context, storage_key(station, msg, sha), name=f"mqtt:{station}/{msg.mid}")


def _check_type(declared: str | None, data: bytes) -> None:
    """The HTTP API's media check: a declared content type must be an image type (or octet-stream),
    and the bytes must be one of the supported formats."""
    valid = ", ".join(SUPPORTED_FORMATS)
    if declared is not None:
        mime = declared.split(";")[0].strip().lower()
        if mime not in (*ACCEPTED_TYPES, "application/octet-stream"):
            raise Rejected(
                "unsupported_media_type",
                f"content type {declared!r} is not accepted; valid: {', '.join(ACCEPTED_TYPES)}, "
                "application/octet-stream (or none)",
            )
    sniffed = sniff_format(data)
    if sniffed is None:
        raise Rejected("not_an_image", f"payload is not a recognisable image; valid formats: {valid}")
    if sniffed not in SUPPORTED_FORMATS:
        raise Rejected("unsupported_format", f"{sniffed} images are not supported; valid formats: {valid}")


def metadata_of(properties: tuple[tuple[str, str], ...], station: str) -> InspectionMetadata:
    """The metadata carried by user properties, bound to ``station`` (raises :class:`Rejected`).

    One property per field (values are strings; ``params`` is a JSON object), and/or one
    ``metadata`` property holding the HTTP API's JSON object. A field may be given once.
    """
    size = sum(
        len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
        for k, v in properties
    )
    if size > MAX_PROPERTIES_BYTES:
        raise Rejected(
            "invalid_metadata",
            f"user properties hold {size} bytes; at most {MAX_PROPERTIES_BYTES} are accepted",
        )
    raw: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in properties:
        if name in seen:
            raise Rejected("invalid_metadata", f"user property {name!r} is given more than once")
        seen.add(name)
        if name == IDEMPOTENCY_PROPERTY:
            continue
        if name == METADATA_PROPERTY:  # the HTTP form field's text: the HTTP API's parser
            try:
                obj = parse_metadata(value)
            except InputError as exc:
                raise Rejected("invalid_metadata", f"user property 'metadata': {exc}") from exc
            for key, item in obj.items():
                _put(raw, str(key), item, "the 'metadata' property")
        elif name in METADATA_FIELDS:
            _put(raw, name, _json(name, value) if name in JSON_FIELDS else value, f"user property {name!r}")
        else:
            raise Rejected(
                "invalid_metadata", f"unknown user property {name!r}; valid: {', '.join(VALID_PROPERTIES)}"
            )
    given = raw.get("station_id")
    if given is not None and given != station:
        raise Rejected(
            "station_mismatch",
            f"metadata station_id {given!r} differs from the topic's station {station!r}; "
            "publish on weldinspect/v1/<your station>/image, or leave station_id out",
        )
    raw["station_id"] = station
    try:
        return InspectionMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        raise Rejected(
            "invalid_metadata", f"invalid metadata: {problems} (fields: {', '.join(METADATA_FIELDS)})"
        ) from exc


def _put(raw: dict[str, Any], name: str, value: Any, where: str) -> None:
    if name in raw:
        raise Rejected("invalid_metadata", f"metadata field {name!r} is given twice ({where} repeats it)")
    raw[name] = value


def _json(name: str, value: str) -> Any:
    """The JSON of a property: no duplicate keys, NaN or Infinity (what a signed record can hold)."""
    if nesting_exceeds(value, MAX_JSON_DEPTH - 1):  # params sits one level inside the metadata object
        raise Rejected(
            "invalid_metadata", f"user property {name!r} nests more than {MAX_JSON_DEPTH - 1} levels deep"
        )
    try:
        return parse_json(value)
    except CanonicalError as exc:
        raise Rejected("invalid_metadata", f"user property {name!r} is {exc}") from exc
    except RecursionError as exc:
        raise Rejected("invalid_metadata", f"user property {name!r} nests too deeply") from exc
