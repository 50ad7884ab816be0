"""Ingest: accepted formats decode to the image contract; bad files are refused with a typed error."""

from __future__ import annotations

import io
import pickle
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image as PILImage
from PIL import ImageFile

from inspection.config import IngestConfig
from inspection.image.ingest import ERROR_CODES, IngestError, decode_image, image_sha256, read_image
from inspection.types import check_image
from tests.helpers.images import (
    encode,
    encode_cv2,
    gradient_rgb,
    jpeg_with_orientation,
    png_declaring,
    png_with_corrupt_pixels,
    truncated,
    webp_header,
)


def _encode_pil(img: PILImage.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


RGB = gradient_rgb(24, 32)
U16 = (np.arange(24 * 32 * 3, dtype=np.uint32).reshape(24, 32, 3) * 977 % 65536).astype(np.uint16)
_PAL = PILImage.fromarray(RGB).quantize(colors=16)
_PALETTE_PNG = _encode_pil(_PAL, "PNG")
_PALETTE_RGB = np.asarray(_PAL.convert("RGB"))
RGBA = np.dstack([RGB, np.linspace(0, 255, 24 * 32).reshape(24, 32).astype(np.uint8)])


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---- accepted -------------------------------------------------------------------------------
# (case id, file name, bytes, expected RGB array, mean absolute error allowed)
ACCEPTED: list[tuple[str, str, bytes, npt.NDArray[np.uint8], int]] = [
    ("png_rgb", "a.png", encode(RGB, "PNG"), RGB, 0),
    ("bmp_rgb", "a.bmp", encode(RGB, "BMP"), RGB, 0),
    ("tiff_rgb", "a.tif", encode(RGB, "TIFF"), RGB, 0),
    ("jpeg_rgb", "a.jpg", encode(RGB, "JPEG", quality=98, subsampling=0), RGB, 3),
    ("png_rgba_alpha_dropped", "a.png", encode(RGBA, "PNG"), RGB, 0),
    ("png_gray", "g.png", encode(RGB[..., 1], "PNG"), np.repeat(RGB[..., 1:2], 3, axis=2), 0),
    (
        "tiff_gray16",
        "g16.tif",
        encode(U16[..., 0], "TIFF"),
        np.repeat((U16[..., 0:1] >> 8).astype(np.uint8), 3, axis=2),
        0,
    ),
    (
        "png_gray16",
        "g16.png",
        encode(U16[..., 0], "PNG"),
        np.repeat((U16[..., 0:1] >> 8).astype(np.uint8), 3, axis=2),
        0,
    ),
    ("png_rgb16", "c16.png", encode_cv2(U16, ".png"), (U16 >> 8).astype(np.uint8), 0),
    ("tiff_rgb16", "c16.tiff", encode_cv2(U16, ".tiff"), (U16 >> 8).astype(np.uint8), 0),
    ("one_pixel", "p.png", encode(RGB[:1, :1], "PNG"), RGB[:1, :1], 0),
    ("one_pixel_jpeg", "p.jpg", encode(RGB[:1, :1], "JPEG", quality=100), RGB[:1, :1], 3),
    ("palette_png", "pal.png", _PALETTE_PNG, _PALETTE_RGB, 0),
]


@pytest.mark.parametrize(
    ("name", "data", "expected", "tol"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted_formats_decode_to_contract(
    tmp_path: Path, name: str, data: bytes, expected: npt.NDArray[np.uint8], tol: int
) -> None:
    image = read_image(_write(tmp_path, name, data))
    check_image(image)
    assert image.flags["C_CONTIGUOUS"]
    assert image.shape == expected.shape
    assert float(np.abs(image.astype(np.int16) - expected.astype(np.int16)).mean()) <= tol


@pytest.mark.parametrize("case", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_decode_from_bytes_equals_read_from_path(tmp_path: Path, case: tuple) -> None:
    _, name, data, _, _ = case
    assert np.array_equal(decode_image(data, name=name), read_image(_write(tmp_path, name, data)))


def test_exif_orientation_6_is_applied() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 high, as stored
    stored[:5, :5] = (255, 0, 0)  # red marker at the stored top-left
    image = decode_image(jpeg_with_orientation(stored, 6), name="rot.jpg")
    assert image.shape == (40, 20, 3)  # width and height swapped
    # orientation 6 = rotate 90 deg clockwise for display: top-left goes to the top-right
    assert image[:5, -5:, 0].mean() > 200 and image[:5, -5:, 1].mean() < 60
    assert image[:5, :5, 0].mean() < 60


def test_exif_orientation_1_keeps_the_layout() -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    image = decode_image(jpeg_with_orientation(stored, 1), name="upright.jpg")
    assert image.shape == (20, 40, 3)


def test_input_bytes_hash_is_sha256() -> None:
    import hashlib

    data = encode(RGB, "PNG")
    assert image_sha256(data) == hashlib.sha256(data).hexdigest()
    assert image_sha256(data) != image_sha256(data + b"\x00")


# ---- refused --------------------------------------------------------------------------------
JPEG = encode(gradient_rgb(200, 240), "JPEG", quality=90)
# (case id, file name, bytes, expected code, config)
REFUSED: list[tuple[str, str, bytes, str, IngestConfig | None]] = [
    ("empty", "empty.jpg", b"", "empty", None),
    ("truncated_jpeg", "cut.jpg", truncated(JPEG, 0.6), "truncated", None),
    ("jpeg_without_end_marker", "cut2.jpg", JPEG[:-2], "truncated", None),
    ("truncated_png", "cut.png", truncated(encode(gradient_rgb(64, 64), "PNG"), 0.5), "truncated", None),
    ("jpeg_header_only", "hdr.jpg", JPEG[:20], "truncated", None),
    ("png_declares_100000x100000", "bomb.png", png_declaring(100_000, 100_000), "too_many_pixels", None),
    ("png_declares_8000x8000_over_50MP", "big.png", png_declaring(8000, 8000), "too_many_pixels", None),
    (
        "png_over_custom_limit",
        "small.png",
        encode(RGB, "PNG"),
        "too_many_pixels",
        IngestConfig(max_pixels=100),
    ),
    ("over_max_bytes", "a.png", encode(RGB, "PNG"), "too_large", IngestConfig(max_bytes=16)),
    ("text_named_jpg", "notes.jpg", b"this is a text file, not a photo\n" * 4, "not_an_image", None),
    ("html_named_png", "page.png", b"<!doctype html><html><body>hi</body></html>", "not_an_image", None),
    ("gif", "anim.gif", encode(RGB[..., 0], "GIF"), "unsupported_format", None),
    ("gif_named_jpg", "anim.jpg", encode(RGB[..., 0], "GIF"), "unsupported_format", None),
    ("webp", "photo.webp", webp_header(), "unsupported_format", None),
    ("png_idat_too_short", "short.png", png_declaring(16, 16), "truncated", None),
    ("png_scrambled_pixels", "scrambled.png", png_with_corrupt_pixels(gradient_rgb(64, 64)), "corrupt", None),
]


@pytest.mark.parametrize(
    ("name", "data", "code", "cfg"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_bad_files_are_refused_with_code_and_file_name(
    tmp_path: Path, name: str, data: bytes, code: str, cfg: IngestConfig | None
) -> None:
    path = _write(tmp_path, name, data)
    with pytest.raises(IngestError) as info:
        read_image(path, cfg)
    err = info.value
    assert err.code == code, str(err)
    assert err.path == str(path)
    assert name in str(err)
    assert err.reason and err.reason in str(err)
    # the same refusal from bytes names the given name
    with pytest.raises(IngestError) as info2:
        decode_image(data, name=name, cfg=cfg)
    assert info2.value.code == code
    assert str(info2.value).startswith(name)


def test_unsupported_format_names_the_valid_ones() -> None:
    with pytest.raises(IngestError) as info:
        decode_image(encode(RGB[..., 0], "GIF"), name="x.gif")
    for fmt in ("JPEG", "PNG", "BMP", "TIFF"):
        assert fmt in info.value.reason


def test_pixel_limit_is_checked_before_decoding() -> None:
    """A header declaring 10^10 pixels is refused without allocating the pixels."""
    data = png_declaring(100_000, 100_000)
    tracemalloc.start()
    try:
        with pytest.raises(IngestError) as info:
            decode_image(data, name="bomb.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == "too_many_pixels"
    assert peak < 5_000_000  # bytes; decoding would need 30 GB


def test_truncated_jpeg_refused_even_if_pillow_set_to_load_truncated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(IngestError) as info:
        decode_image(truncated(JPEG, 0.6), name="cut.jpg")
    assert info.value.code == "truncated"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda tmp: tmp / "missing.jpg", "not_found"),
        (lambda tmp: tmp, "unreadable"),  # a directory
    ],
    ids=["missing", "directory"],
)
def test_path_problems(tmp_path: Path, make: Callable[[Path], Path], code: str) -> None:
    path = make(tmp_path)
    with pytest.raises(IngestError) as info:
        read_image(path)
    assert info.value.code == code
    assert str(path) in str(info.value)


def test_error_is_a_value_error_and_picklable() -> None:
    err = IngestError("a.jpg", "corrupt", "bad data")
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.code, back.reason, str(back)) == (
        "a.jpg",
        "corrupt",
        "bad data",
        "a.jpg: bad data",
    )


def test_unknown_error_code_is_rejected() -> None:
    with pytest.raises(ValueError, match="valid"):
        IngestError("a.jpg", "whatever", "x")
    assert "truncated" in ERROR_CODES


def test_input_image_bytes_not_needed_after_decode() -> None:
    """The decoded array owns its memory (no view into a Pillow buffer that may be closed)."""
    image = decode_image(encode(RGB, "PNG"), name="a.png")
    image[0, 0] = (1, 2, 3)  # writable
    assert tuple(image[0, 0]) == (1, 2, 3)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_damaged_exif_keeps_the_stored_orientation() -> None:
    bad_exif = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff\x01\x12"
    image = decode_image(encode(gradient_rgb(20, 30), "JPEG", exif=bad_exif), name="bad_exif.jpg")
    assert image.shape == (20, 30, 3)


# --- reduced-scale JPEG decoding -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "min_short", "min_long", "decoded"),
    [
        ((800, 800), 320, 320, (400, 400)),  # 1/2 keeps both minimums, 1/4 would not
        ((800, 800), 100, 100, (100, 100)),  # 1/8
        ((800, 800), 401, 320, (800, 800)),  # 1/2 would give 400 < 401
        ((480, 960), 120, 240, (120, 240)),  # 1/4: short and long checked separately
        ((480, 960), 120, 241, (240, 480)),
        ((64, 64), 320, 320, (64, 64)),  # small images are never enlarged or reduced
    ],
)
def test_jpeg_decodes_at_the_smallest_scale_that_keeps_the_minimums(
    shape: tuple[int, int], min_short: int, min_long: int, decoded: tuple[int, int]
) -> None:
    from inspection.image.ingest import decode_reduced

    data = encode(gradient_rgb(*shape), "JPEG", quality=95)
    out = decode_reduced(data, "x.jpg", min_short=min_short, min_long=min_long)
    assert out.image.shape == (*decoded, 3)
    assert (out.height, out.width) == shape
    assert out.reduction == pytest.approx(shape[1] / decoded[1])
    check_image(out.image)


def test_reduced_decode_is_close_to_an_area_downscale_of_the_full_decode() -> None:
    import cv2

    from inspection.image.ingest import decode_reduced

    data = encode(gradient_rgb(400, 600), "JPEG", quality=95)
    full = decode_image(data)
    half = decode_reduced(data, min_short=150, min_long=150).image
    assert half.shape == (200, 300, 3)
    area = cv2.resize(full, (300, 200), interpolation=cv2.INTER_AREA).astype(int)
    diff = np.abs(half.astype(int) - area).mean()
    assert diff < 4.0  # grey levels: DCT scaling is close to an area average...
    shifted = np.abs(half[:, 1:].astype(int) - area[:, :-1]).mean()
    assert diff < shifted / 2  # ...and aligned with it (same pixel grid, no offset)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_only_jpeg_is_decoded_reduced(fmt: str) -> None:
    from inspection.image.ingest import decode_reduced

    out = decode_reduced(encode(gradient_rgb(400, 400), fmt), min_short=50, min_long=50)
    assert out.image.shape == (400, 400, 3) and out.reduction == 1.0


def test_reduced_decode_can_be_switched_off() -> None:
    from inspection.image.ingest import decode_reduced

    data = encode(gradient_rgb(400, 400), "JPEG")
    cfg = IngestConfig(reduced_decode=False)
    assert decode_reduced(data, cfg=cfg, min_short=50, min_long=50).image.shape == (400, 400, 3)
    assert decode_reduced(data).image.shape == (400, 400, 3)  # no minimums: full size


def test_reduced_decode_reports_the_upright_full_size_under_exif_rotation() -> None:
    from inspection.image.ingest import decode_reduced

    stored = np.zeros((200, 400, 3), np.uint8)  # 400 wide, 200 high, as stored
    stored[:40, :40] = (255, 0, 0)
    out = decode_reduced(jpeg_with_orientation(stored, 6), "rot.jpg", min_short=100, min_long=100)
    assert out.image.shape == (200, 100, 3)  # rotated and halved
    assert (out.height, out.width) == (400, 200)  # the upright full size
    assert out.image[:10, -10:, 0].mean() > 200  # the marker went to the top-right, as at full size


def test_reduced_decode_still_refuses_bad_files() -> None:
    from inspection.image.ingest import decode_reduced

    data = encode(gradient_rgb(400, 400), "JPEG")
    with pytest.raises(IngestError) as info:
        decode_reduced(truncated(data), "cut.jpg", min_short=50, min_long=50)
    assert info.value.code == "truncated" and "cut.jpg" in str(info.value)
