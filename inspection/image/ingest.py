"""Ingest: file path or bytes -> :data:`inspection.types.Image` (RGB uint8 ``(H, W, 3)``).

Accepted formats: JPEG, PNG, BMP, TIFF (8- or 16-bit; grayscale, palette, RGB, RGBA, CMYK).
Everything else is refused with a typed :class:`IngestError` whose ``code`` is one of
:data:`ERROR_CODES`.

Decisions (stated once, here):

* **16-bit** samples are mapped to 8-bit by taking the high byte (``v >> 8``), i.e. scaling
  0..65535 onto 0..255, never by clipping.
* **Alpha** is dropped: the colour channels are kept exactly as stored (a photo's pixels are the
  measurement; transparency is a display hint). Palette images are expanded first.
* **EXIF orientation** (JPEG, TIFF, PNG eXIf) is applied, so the returned array is upright as a
  viewer shows it; ``width``/``height`` are swapped for orientations 5-8.
* **Pixel limit**: ``IngestConfig.max_pixels`` is checked from the header (Pillow's
  ``Image.open`` reads only the header) before any pixel is decoded. Pillow's own decompression
  bomb guard (``Image.MAX_IMAGE_PIXELS``, left at its default) is mapped to ``too_many_pixels``
  too, so the effective limit is ``min(max_pixels, 2 * Image.MAX_IMAGE_PIXELS)``.
* **Truncated** files are refused (``truncated``), never padded with grey. This relies on
  ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` being False (Pillow's default); if some other code set it
  True, JPEGs without an end-of-image marker are still refused by an explicit check.

This module is the I/O edge: :func:`decode_image` is pure (bytes in, array out) and
:func:`read_image` adds the file system.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import math
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile, ImageOps, UnidentifiedImageError

from inspection.config import IngestConfig
from inspection.types import Image

log = logging.getLogger(__name__)

SUPPORTED_FORMATS: Final[tuple[str, ...]] = ("JPEG", "PNG", "BMP", "TIFF")
"""Pillow format names this module decodes."""

ERROR_CODES: Final[tuple[str, ...]] = (
    "empty",
    "truncated",
    "corrupt",
    "unsupported_format",
    "not_an_image",
    "too_many_pixels",
    "too_large",
    "not_found",
    "unreadable",
)
"""The stable machine codes an :class:`IngestError` may carry."""

# Magic numbers of the supported formats (checked before asking Pillow).
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
# Image formats we recognise but refuse (named in the error).
_OTHER_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"II\xbc", "JPEG XR"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
)


class IngestError(ValueError):
    """An input could not be turned into an :data:`Image`.

    ``path`` names the file (or ``"<bytes>"``/the given name for in-memory data), ``code`` is a
    stable machine code from :data:`ERROR_CODES` and ``reason`` a human sentence saying what was
    wrong and what is valid. ``str(error)`` is ``"<path>: <reason>"``.
    """

    def __init__(self, path: str | Path, code: str, reason: str) -> None:
        if code not in ERROR_CODES:
            msg = f"unknown IngestError code {code!r}; valid: {', '.join(ERROR_CODES)}"
            raise ValueError(msg)
        self.path = str(path)
        self.code = code
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[IngestError], tuple[str, str, str]]:  # picklable across processes
        return (IngestError, (self.path, self.code, self.reason))


def image_sha256(data: bytes) -> str:
    """Hex SHA-256 of the bytes as received (the identity used in results and evidence)."""
    return hashlib.sha256(data).hexdigest()


def sniff_format(data: bytes) -> str | None:
    """The image format named by the leading magic bytes (``"JPEG"``, ``"GIF"``...), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "AVIF/HEIF"
    for magic, fmt in _MAGIC + _OTHER_MAGIC:
        if data.startswith(magic):
            return fmt
    return None


_EXPECTED_FILE = "expected a JPEG, PNG, BMP or TIFF file"


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is, in words (None for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe, not opened)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def path_problem(path: str | Path) -> IngestError | None:
    """Why ``path`` cannot be read as an image file without opening it, or None when it is a regular
    file: ``not_found`` (missing, or a dangling symlink naming its target) or ``unreadable`` (a symlink
    loop, a folder, a FIFO, a socket or device, a path that cannot be stat'ed). Never opens anything,
    so a FIFO cannot block."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            try:
                target = os.readlink(p)
            except OSError:  # pragma: no cover - vanished between the two calls
                target = "?"
            return IngestError(p, "not_found", f"dangling symlink: its target {target!r} does not exist")
        return IngestError(p, "not_found", "file does not exist")
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return IngestError(p, "unreadable", "symlink loop (the link resolves to itself); not a file")
        if isinstance(exc, PermissionError):
            return IngestError(p, "unreadable", "permission denied on a folder of the path")
        return IngestError(p, "unreadable", f"cannot stat file: {exc.strerror or exc}")
    what = _not_regular(st.st_mode)
    if what is not None:
        return IngestError(p, "unreadable", f"{what}, not an image file ({_EXPECTED_FILE})")
    return None


def read_image_bytes(path: str | Path, cfg: IngestConfig | None = None) -> bytes:
    """Read a file's bytes, refusing missing, unreadable, empty or over-``max_bytes`` files.

    Anything but a regular file (symlink loop, dangling symlink, folder, FIFO, socket, device) is an
    :class:`IngestError` saying what it is (:func:`path_problem`). The file is opened non-blocking
    and checked again on the open descriptor, so a FIFO swapped in after the check cannot block.
    """
    cfg = cfg or IngestConfig.model_validate({})
    p = Path(path)
    problem = path_problem(p)
    if problem is not None:
        raise problem
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(p, flags)
    except PermissionError as exc:
        raise IngestError(
            p, "unreadable", "permission denied: the file cannot be opened for reading"
        ) from exc
    except OSError as exc:
        raise IngestError(p, "unreadable", f"cannot open file: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        what = _not_regular(st.st_mode)
        if what is not None:
            raise IngestError(p, "unreadable", f"{what}, not an image file ({_EXPECTED_FILE})")
        if st.st_size == 0:
            raise IngestError(p, "empty", "file is empty (0 bytes)")
        if st.st_size > cfg.max_bytes:
            raise IngestError(
                p, "too_large", f"file has {st.st_size} bytes; the limit is max_bytes={cfg.max_bytes}"
            )
        try:
            data = fh.read(cfg.max_bytes + 1)
        except OSError as exc:
            raise IngestError(p, "unreadable", f"cannot read file: {exc.strerror or exc}") from exc
    if not data:
        raise IngestError(p, "empty", "file is empty (0 bytes)")
    if len(data) > cfg.max_bytes:
        raise IngestError(p, "too_large", f"file has more than max_bytes={cfg.max_bytes} bytes")
    return data


def read_image(path: str | Path, cfg: IngestConfig | None = None) -> Image:
    """Decode the image file at ``path`` into an RGB uint8 ``(H, W, 3)`` C-contiguous array.

    Raises :class:`IngestError` (naming ``path``) for anything that is not a readable, complete
    JPEG/PNG/BMP/TIFF within the configured limits.
    """
    data = read_image_bytes(path, cfg)
    return decode_image(data, name=str(path), cfg=cfg)


def decode_image(data: bytes, name: str = "<bytes>", cfg: IngestConfig | None = None) -> Image:
    """Decode encoded image ``data`` into an RGB uint8 ``(H, W, 3)`` C-contiguous array.

    ``name`` is used in error messages only. Pure: no file system access.
    """
    return decode_reduced(data, name, cfg).image


@dataclass(frozen=True, eq=False)
class Decoded:
    """A decoded image, possibly at a reduced scale: ``image`` is RGB uint8 ``(h, w, 3)`` and
    ``height`` x ``width`` the full (upright) size of the encoded image; ``image`` covers the same
    area, so source coordinates are ``x * width / w`` and ``y * height / h``."""

    image: Image
    height: int
    width: int

    @property
    def reduction(self) -> float:
        """Full size over decoded size (1.0 = decoded at full resolution)."""
        return self.width / self.image.shape[1]


REDUCTIONS: Final[tuple[int, ...]] = (8, 4, 2)
"""Scales libjpeg decodes at directly (DCT scaling), largest first."""


def decode_reduced(
    data: bytes,
    name: str = "<bytes>",
    cfg: IngestConfig | None = None,
    *,
    min_short: int | None = None,
    min_long: int | None = None,
) -> Decoded:
    """Decode ``data`` like :func:`decode_image`, but JPEGs at the smallest scale 1/2, 1/4 or 1/8
    whose short side is still >= ``min_short`` and long side >= ``min_long``.

    DCT-domain scaling averages blocks of the full image, so it is close to an area downscale and
    several times cheaper than a full decode followed by one. With both minimums None,
    ``cfg.reduced_decode`` False or a non-JPEG, the image is decoded at full size.
    """
    cfg = cfg or IngestConfig.model_validate({})
    if len(data) == 0:
        raise IngestError(name, "empty", "no data (0 bytes)")
    if len(data) > cfg.max_bytes:
        raise IngestError(
            name, "too_large", f"data has {len(data)} bytes; the limit is max_bytes={cfg.max_bytes}"
        )
    valid = ", ".join(SUPPORTED_FORMATS)
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed not in SUPPORTED_FORMATS:
        raise IngestError(name, "unsupported_format", f"{sniffed} is not supported; valid formats: {valid}")

    with warnings.catch_warnings():
        # We enforce our own pixel limit below; Pillow's soft warning is noise.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        pil = _open_header(data, name, sniffed, valid)
        try:
            fmt = pil.format or sniffed or "unknown"
            if fmt not in SUPPORTED_FORMATS:
                raise IngestError(
                    name, "unsupported_format", f"{fmt} is not supported; valid formats: {valid}"
                )
            width, height = pil.size
            if width < 1 or height < 1:
                raise IngestError(name, "corrupt", f"header declares an empty image ({width} x {height})")
            if width * height > cfg.max_pixels:
                raise IngestError(
                    name,
                    "too_many_pixels",
                    f"header declares {width} x {height} = {width * height} pixels; "
                    f"the limit is max_pixels={cfg.max_pixels}",
                )
            if fmt == "JPEG" and ImageFile.LOAD_TRUNCATED_IMAGES and b"\xff\xd9" not in data[-4096:]:
                raise IngestError(name, "truncated", "JPEG data ends without an end-of-image marker")
            full_w, full_h = width, height
            if fmt == "JPEG" and cfg.reduced_decode and (min_short is not None or min_long is not None):
                r = _reduction(width, height, min_short or 1, min_long or 1)
                if r > 1:
                    pil.draft(pil.mode, (math.ceil(width / r), math.ceil(height / r)))
            array = _decode_pixels(pil, name, fmt)
            if array.shape[1] != pil.size[0] or array.shape[0] != pil.size[1]:  # EXIF rotated by 90 deg
                full_w, full_h = height, width
        finally:
            pil.close()
    log.debug("decoded %s: %s of %dx%d", name, array.shape, width, height)
    return Decoded(array, int(full_h), int(full_w))


def _reduction(width: int, height: int, min_short: int, min_long: int) -> int:
    """The largest of :data:`REDUCTIONS` keeping both minimums (1 when none does)."""
    short, long = min(width, height), max(width, height)
    for r in REDUCTIONS:
        if short // r >= min_short and long // r >= min_long:
            return r
    return 1


def _open_header(data: bytes, name: str, sniffed: str | None, valid: str) -> PILImage.Image:
    """``PIL.Image.open`` (header only), mapping every failure onto an :class:`IngestError`."""
    try:
        return PILImage.open(io.BytesIO(data), formats=None)
    except PILImage.DecompressionBombError as exc:
        raise IngestError(name, "too_many_pixels", f"header declares too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        if sniffed is None:
            raise IngestError(
                name, "not_an_image", f"data is not a recognised image (valid formats: {valid})"
            ) from exc
        raise IngestError(
            name, _damage_code(data, sniffed), f"{sniffed} header is damaged or incomplete"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        code = _damage_code(data, sniffed) if sniffed else "not_an_image"
        raise IngestError(name, code, f"cannot read image header: {exc}") from exc


def _damage_code(data: bytes, fmt: str | None) -> str:
    """``truncated`` when the data is short or lacks its end marker, else ``corrupt``."""
    if len(data) < 64:
        return "truncated"
    if fmt == "JPEG" and b"\xff\xd9" not in data[-4096:]:
        return "truncated"
    if fmt == "PNG" and b"IEND" not in data[-32:]:
        return "truncated"
    return "corrupt"


def _decode_pixels(pil: PILImage.Image, name: str, fmt: str) -> Image:
    """Decode, apply EXIF orientation and convert any supported mode to RGB uint8."""
    try:
        pil.load()
    except PILImage.DecompressionBombError as exc:
        raise IngestError(name, "too_many_pixels", f"too many pixels ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError) as exc:
        text = str(exc)
        code = "truncated" if "truncated" in text or isinstance(exc, EOFError) else "corrupt"
        raise IngestError(name, code, f"cannot decode {fmt} data: {text or type(exc).__name__}") from exc
    try:
        upright = ImageOps.exif_transpose(pil) or pil
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error) as exc:
        # A damaged EXIF block does not make the pixels wrong: keep the stored orientation.
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", name, exc)
        upright = pil
    return _to_rgb8(upright, name, fmt)


def _to_rgb8(pil: PILImage.Image, name: str, fmt: str) -> Image:
    mode = pil.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit (or 32-bit integer) grayscale: 0..65535 -> 0..255 by the high byte.
        arr = np.asarray(pil)
        gray = (np.clip(arr.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        out = np.repeat(gray[:, :, None], 3, axis=2)
    elif mode == "F":
        raise IngestError(
            name,
            "unsupported_format",
            f"{fmt} with floating-point pixels is not supported; valid: 8- or 16-bit integer samples",
        )
    else:
        if mode in ("P", "PA"):
            pil = pil.convert("RGBA")
        if mode in ("LA", "La"):
            pil = pil.convert("L")
        # RGBA/RGBa/CMYK/YCbCr/L/1/... -> RGB; alpha is dropped (see module docstring).
        out = np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB"))
    out = np.ascontiguousarray(out, dtype=np.uint8)
    if not out.flags.writeable:  # arrays viewing Pillow's buffer are read-only; hand out our own
        out = out.copy()
    return out
