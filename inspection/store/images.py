"""Content-addressed image files: ``<images_dir>/ab/cd/<sha256>`` (the first two byte pairs fan out).

Identical bytes are stored once. A file is written to a temporary name in the target directory,
fsynced, then renamed into place (atomic on POSIX), so a reader never sees half a file and a
crash leaves at most a stray ``.tmp-*`` file. Files are never modified after the rename; the
directory's fsync after the rename makes the new name durable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"WEBP", 8, "image/webp"),
)

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/webp": ".webp",
    "application/octet-stream": ".bin",
}
"""File extension used in claim bundles for each media type."""


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def check_sha256(value: str, name: str = "sha256") -> str:
    """Return ``value`` if it is 64 lower-case hex characters, else raise ``ValueError``."""
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        msg = f"{name} must be 64 lower-case hex characters, got {value!r}"
        raise ValueError(msg)
    return value


def sniff_media_type(data: bytes) -> str:
    """The media type from magic bytes (JPEG, PNG, BMP, TIFF, WebP), else ``application/octet-stream``."""
    for magic, offset, media_type in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return media_type
    return "application/octet-stream"


def relative_path(sha256: str) -> str:
    """``ab/cd/<sha256>`` for a content hash (POSIX separators, relative to the images dir)."""
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


@dataclass(frozen=True)
class PutResult:
    """Where :meth:`ImageFiles.put` stored the bytes; ``created`` is False when already present."""

    sha256: str
    relpath: str
    size: int
    media_type: str
    created: bool


class ImageFiles:
    """The image directory of a store."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, sha256: str) -> Path:
        """Absolute path of the file for ``sha256`` (whether or not it exists)."""
        return self.root / relative_path(sha256)

    def put(self, data: bytes) -> PutResult:
        """Store ``data`` once under its SHA-256 (temp file, fsync, rename). Returns where it is."""
        if not data:
            msg = "refusing to store an empty image (0 bytes)"
            raise ValueError(msg)
        digest = sha256_hex(data)
        rel = relative_path(digest)
        target = self.root / rel
        media_type = sniff_media_type(data)
        if target.is_file():
            actual = self.hash_file(digest)
            if actual == digest:
                return PutResult(digest, rel, len(data), media_type, created=False)
            logger.warning(
                "image file %s holds bytes hashing to %s, not %s; rewriting it", target, actual, digest
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
        logger.debug("stored image %s (%d bytes) at %s", digest, len(data), target)
        return PutResult(digest, rel, len(data), media_type, created=True)

    def read(self, sha256: str) -> bytes:
        """The bytes stored for ``sha256``; ``FileNotFoundError`` names the missing path."""
        path = self.path_for(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            msg = f"image {sha256} is missing from the store: {path} does not exist"
            raise FileNotFoundError(msg) from exc

    def hash_file(self, sha256: str) -> str | None:
        """Re-hash the file stored for ``sha256``: its actual SHA-256, or None when it is missing."""
        path = self.path_for(sha256)
        if not path.is_file():
            return None
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
