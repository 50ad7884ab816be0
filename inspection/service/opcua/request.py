"""OPC UA method arguments -> a checked inspection request, or :class:`Rejected` naming the problem.

The checks are the HTTP API's (``POST /v1/inspections``): the same size limit
(``ServiceSettings.max_upload_bytes``), the same image formats (by the bytes' magic number), the same
metadata parsing and model (:func:`inspection.service.validation.parse_metadata`,
:class:`~inspection.service.schemas.InspectionMetadata`, unknown fields refused) and the same
idempotency-key rules and scope (``<station>/<key>``, as HTTP station keys and MQTT). Decoding limits
(pixels, corrupt data) are checked by the recorder's ingest stage, as for HTTP.

An image path must resolve (``realpath``: every symlink followed, ``..`` removed) to a regular file
inside one of the allowed folders; anything else is refused before the file is opened.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from asyncua import ua
from pydantic import ValidationError

from inspection.config import IngestConfig
from inspection.image.ingest import (
    SUPPORTED_FORMATS,
    IngestError,
    image_sha256,
    read_image_bytes,
    sniff_format,
)
from inspection.service.routes import MAX_IDEMPOTENCY_KEY
from inspection.service.schemas import InspectionMetadata
from inspection.service.validation import InputError, parse_metadata, text_problem
from inspection.types import InspectionContext

DEFAULT_SCOPE: Final = "opcua"
"""Idempotency scope when neither ``--station`` nor the metadata names a station."""
MAX_PATH: Final = 4096


class Rejected(ValueError):
    """A call that cannot be served: ``code`` (machine-readable), ``status`` (OPC UA) and ``reason``."""

    def __init__(self, code: str, reason: str, status: int = ua.StatusCodes.BadInvalidArgument) -> None:
        self.code = code
        self.reason = reason
        self.status = status
        super().__init__(f"{code}: {reason}")


INGEST_STATUS: Final[dict[str, int]] = {
    "too_large": ua.StatusCodes.BadOutOfRange,
    "too_many_pixels": ua.StatusCodes.BadOutOfRange,
    "not_found": ua.StatusCodes.BadNotFound,
}
"""OPC UA status of an :class:`IngestError` code (others: BadInvalidArgument)."""


def rejected_from_ingest(exc: IngestError) -> Rejected:
    return Rejected(exc.code, str(exc), INGEST_STATUS.get(exc.code, ua.StatusCodes.BadInvalidArgument))


@dataclass(frozen=True)
class ImageRequest:
    """A call that passed every check: inspect ``data`` with ``context``, stored under ``idempotency_key``."""

    data: bytes
    sha256: str
    context: InspectionContext
    idempotency_key: str | None
    name: str


def metadata_context(text: str | None, station: str | None) -> InspectionContext:
    """The metadata JSON (the HTTP API's ``metadata`` field) as a context, bound to ``station``."""
    try:
        raw = parse_metadata(text or "{}")
    except InputError as exc:
        status = ua.StatusCodes.BadOutOfRange if exc.status == 413 else ua.StatusCodes.BadInvalidArgument
        raise Rejected("invalid_metadata", str(exc), status) from exc
    given = raw.get("station_id")
    if station is not None:
        if given is not None and given != station:
            raise Rejected(
                "station_mismatch",
                f"metadata station_id {given!r} differs from this server's station {station!r}; "
                "leave station_id out or send the server's",
            )
        raw["station_id"] = station
    try:
        meta = InspectionMetadata.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'metadata'}: {e['msg']}" for e in exc.errors()
        )
        valid = ", ".join(InspectionMetadata.model_fields)
        raise Rejected("invalid_metadata", f"invalid metadata: {problems} (fields: {valid})") from exc
    try:
        return meta.to_context()
    except ValueError as exc:
        raise Rejected("invalid_metadata", f"invalid metadata: {exc}") from exc


def scoped_key(key: str | None, context: InspectionContext) -> str | None:
    """The stored idempotency key: ``<station>/<key>`` (HTTP's and MQTT's scope), None for no key.

    An empty or null ``key`` means no key; a blank one, one over :data:`MAX_IDEMPOTENCY_KEY`
    characters or one with a NUL character / lone surrogate is refused.
    """
    if key is None or key == "":
        return None
    if not key.strip():
        raise Rejected(
            "invalid_idempotency_key", "IdempotencyKey must not be blank (send an empty string for none)"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise Rejected(
            "invalid_idempotency_key",
            f"IdempotencyKey is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY} are allowed",
        )
    problem = text_problem(key)
    if problem is not None:
        raise Rejected("invalid_idempotency_key", f"IdempotencyKey {problem}")
    scope = context.station_id or DEFAULT_SCOPE
    return f"{scope}/{key.strip()}"


def check_image_bytes(data: bytes | None, max_bytes: int) -> bytes:
    """``data`` unless it is empty, over ``max_bytes`` or not a supported image format."""
    if not data:
        raise Rejected("empty", "Image is empty (0 bytes); send the image file's bytes")
    if len(data) > max_bytes:
        raise Rejected(
            "too_large",
            f"Image is {len(data)} bytes, larger than the limit of {max_bytes} (max_upload_bytes)",
            ua.StatusCodes.BadOutOfRange,
        )
    valid = ", ".join(SUPPORTED_FORMATS)
    sniffed = sniff_format(data)
    if sniffed is None:
        raise Rejected("not_an_image", f"Image bytes are not a recognisable image; valid formats: {valid}")
    if sniffed not in SUPPORTED_FORMATS:
        raise Rejected("unsupported_format", f"{sniffed} images are not supported; valid formats: {valid}")
    return data


def resolve_image_path(path: str | None, allowed: Sequence[Path]) -> Path:
    """The real path of ``path`` when it lies inside one of the ``allowed`` folders.

    A relative path is taken relative to the first allowed folder. Symlinks are followed before the
    check, so a link inside an allowed folder that points outside it is refused, as is ``..``.
    """
    if not allowed:
        raise Rejected(
            "no_allowed_folder",
            "this server inspects no files: it was started without --allowed-dir; send the image bytes "
            "(InspectBytes) or restart it with --allowed-dir DIR",
            ua.StatusCodes.BadUserAccessDenied,
        )
    if not path:
        raise Rejected("invalid_path", "ImagePath is empty; send a file path under an allowed folder")
    problem = text_problem(path)
    if problem is not None or len(path) > MAX_PATH:
        raise Rejected("invalid_path", f"ImagePath {problem or f'is longer than {MAX_PATH} characters'}")
    given = Path(path)
    candidate = given if given.is_absolute() else allowed[0] / given
    real = Path(os.path.realpath(candidate))
    roots = [Path(os.path.realpath(a)) for a in allowed]
    if not any(real == root or real.is_relative_to(root) for root in roots):
        names = ", ".join(str(r) for r in roots)
        raise Rejected(
            "path_not_allowed",
            f"ImagePath {path!r} resolves to {str(real)!r}, outside the allowed folders ({names}); "
            "symlinks and '..' are resolved before this check",
            ua.StatusCodes.BadUserAccessDenied,
        )
    return real


def read_allowed_image(path: str | None, allowed: Sequence[Path], max_bytes: int) -> tuple[Path, bytes]:
    """Resolve ``path`` (:func:`resolve_image_path`) and read it with the ingest stage's checks."""
    real = resolve_image_path(path, allowed)
    try:
        data = read_image_bytes(real, IngestConfig.model_validate({"max_bytes": max_bytes}))
    except IngestError as exc:
        raise rejected_from_ingest(exc) from exc
    return real, check_image_bytes(data, max_bytes)


def build_request(
    data: bytes, metadata: str | None, key: str | None, *, station: str | None, name: str
) -> ImageRequest:
    """A checked request from image bytes, metadata JSON and an idempotency key."""
    context = metadata_context(metadata, station)
    return ImageRequest(data, image_sha256(data), context, scoped_key(key, context), name)
