"""Small helpers that make test images and deliberately bad image files (all in memory)."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image as PILImage


def gradient_rgb(height: int, width: int) -> npt.NDArray[np.uint8]:
    """A deterministic RGB uint8 test pattern (distinct values in each channel)."""
    ys, xs = np.mgrid[0:height, 0:width]
    r = (xs * 255 // max(width - 1, 1)).astype(np.uint8)
    g = (ys * 255 // max(height - 1, 1)).astype(np.uint8)
    b = ((xs + ys) * 7 % 256).astype(np.uint8)
    return np.ascontiguousarray(np.stack([r, g, b], axis=2))


def encode(array: npt.NDArray[np.generic], fmt: str, **save_kw: object) -> bytes:
    """Encode ``array`` with Pillow in ``fmt`` (``"PNG"``, ``"JPEG"``, ``"BMP"``, ``"TIFF"``, ...)."""
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format=fmt, **save_kw)
    return buf.getvalue()


def encode_cv2(array_rgb: npt.NDArray[np.generic], ext: str) -> bytes:
    """Encode an RGB (or RGB 16-bit) array with OpenCV (which can write 16-bit colour PNG/TIFF)."""
    ok, enc = cv2.imencode(ext, np.ascontiguousarray(array_rgb[..., ::-1]))
    if not ok:
        msg = f"OpenCV could not encode {ext}"
        raise RuntimeError(msg)
    return enc.tobytes()


def jpeg_with_orientation(array: npt.NDArray[np.uint8], orientation: int) -> bytes:
    """A JPEG of ``array`` (stored as is) whose EXIF Orientation tag is ``orientation`` (1-8)."""
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return encode(array, "JPEG", quality=95, exif=exif.tobytes())


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width`` x ``height`` RGB 8-bit pixels (valid CRCs).

    The IDAT holds only a few bytes, so anything that actually tries to decode it fails; a
    header-only pixel check must refuse it first.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    """The first ``keep`` fraction of ``data``."""
    return data[: max(1, int(len(data) * keep))]


def webp_header() -> bytes:
    """Leading bytes of a WebP file (RIFF container), enough for format sniffing."""
    return b"RIFF" + struct.pack("<I", 26) + b"WEBPVP8 " + b"\x00" * 18


def png_with_corrupt_pixels(array: npt.NDArray[np.uint8]) -> bytes:
    """A complete PNG of ``array`` whose compressed pixel data (IDAT) is scrambled (CRC fixed up)."""
    data = bytearray(encode(array, "PNG", compress_level=9))
    pos = data.index(b"IDAT")
    length = struct.unpack(">I", data[pos - 4 : pos])[0]
    start = pos + 4
    for i in range(start + 2, start + length, 3):  # keep the 2-byte zlib header
        data[i] ^= 0x5A
    crc = zlib.crc32(bytes(data[pos : start + length])) & 0xFFFFFFFF
    data[start + length : start + length + 4] = struct.pack(">I", crc)
    return bytes(data)
