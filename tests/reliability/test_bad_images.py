"""A corpus of bad image files, generated here, through `weldinspect inspect` and `weldinspect score`.

`inspect`: every bad file is one `error:` line naming the file and the reason, never a traceback;
files that are odd but valid (wrong extension, 1x1, 16-bit, CMYK) are inspected. `score` on a folder
of all of them plus good photos: every entry has a record, good ones are scored, bad ones are error
records with the reason, exit code 3. (The service path is tested in tests/service.)"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from inspection.cli import app
from inspection.data.synth import generate_weld
from tests.helpers.images import png_declaring

runner = CliRunner()


def _seam_rgb(seed: int) -> np.ndarray:
    return generate_weld(np.random.default_rng(seed), width=320, height=240, n_pores=2, n_spatter=3).image


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return enc.tobytes()


def _png(rgb: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return enc.tobytes()


def _pil(image: PILImage.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_bomb(side: int = 8_000) -> bytes:
    """A complete, valid grey PNG of ``side`` x ``side`` zeros: ~60 kB that inflate to 64 MB of pixels."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _gif_animated() -> bytes:
    frames = [PILImage.fromarray(_seam_rgb(s)).convert("P") for s in (1, 2)]
    return _pil(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


Maker = Callable[[Path], None]


def _write(data: Callable[[], bytes]) -> Maker:
    return lambda path: path.write_bytes(data())


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


def _dangling(path: Path) -> None:
    path.symlink_to(path.with_name("gone-" + path.name))


# name -> (how to make it, `inspect` exit code, words of its error (None: inspected fine), `score` error code)
BAD: dict[str, tuple[Maker, int, str | None, str | None]] = {
    "empty.jpg": (_write(lambda: b""), 1, "file is empty (0 bytes)", "empty"),
    "truncated.jpg": (_write(lambda: _jpeg(_seam_rgb(3))[:4000]), 1, "truncated", "truncated"),
    "truncated.png": (_write(lambda: _png(_seam_rgb(4))[:5000]), 1, "truncated", "truncated"),
    "random.jpg": (
        _write(lambda: np.random.default_rng(5).bytes(5000)),
        1,
        "not a recognised image",
        "not_an_image",
    ),
    "text.jpg": (
        _write(lambda: b"this is a text file, not a photo\n" * 20),
        1,
        "not a recognised image",
        "not_an_image",
    ),
    "huge-header.png": (_write(lambda: png_declaring(100_000, 100_000)), 1, "pixels", "too_many_pixels"),
    "bomb.png": (_write(_png_bomb), 1, "the limit is max_pixels=50000000", "too_many_pixels"),
    "animated.jpg": (_write(_gif_animated), 1, "GIF is not supported", "unsupported_format"),
    "loop.jpg": (_symlink_loop, 1, "symlink loop", "unreadable"),
    "dangling.jpg": (_dangling, 2, "dangling symlink", "not_found"),
    "pipe.jpg": (lambda p: os.mkfifo(p), 1, "FIFO", "unreadable"),
    "folder.jpg": (lambda p: p.mkdir(), 1, "a folder, not an image file", "unreadable"),
}
ODD_BUT_VALID: dict[str, Maker] = {
    "png-named.jpg": _write(lambda: _png(_seam_rgb(6))),  # wrong extension: decoded by content
    "jpeg-named.png": _write(lambda: _jpeg(_seam_rgb(7))),
    "one-pixel.png": _write(lambda: _pil(PILImage.new("RGB", (1, 1), (90, 90, 90)), "PNG")),
    "sixteen-bit.png": _write(
        lambda: cv2.imencode(".png", (_seam_rgb(8).astype(np.uint16) * 257)[..., ::-1])[1].tobytes()
    ),
    "cmyk.jpg": _write(lambda: _pil(PILImage.fromarray(_seam_rgb(9)).convert("CMYK"), "JPEG")),
}
GOOD = ("good_1.jpg", "good_2.jpg")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-images")
    for name, (make, *_rest) in BAD.items():
        make(folder / name)
    for name, make in ODD_BUT_VALID.items():
        make(folder / name)
    for i, name in enumerate(GOOD):
        (folder / name).write_bytes(_jpeg(_seam_rgb(20 + i)))
    return folder


def _no_traceback(res: object) -> None:
    exc = getattr(res, "exception", None)
    assert exc is None or isinstance(exc, SystemExit), repr(exc)
    assert "Traceback" not in getattr(res, "output", "")


@pytest.mark.parametrize("name", list(BAD))
def test_inspect_names_the_file_and_the_reason(tiny_model_dir: Path, corpus: Path, name: str) -> None:
    _, exit_code, words, _ = BAD[name]
    path = corpus / name
    res = runner.invoke(app, ["inspect", str(path), "--model", str(tiny_model_dir)])
    _no_traceback(res)
    assert res.exit_code == exit_code, res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert str(path) in lines[0] and words is not None and words in lines[0], lines[0]


@pytest.mark.parametrize("name", list(ODD_BUT_VALID))
def test_inspect_accepts_odd_but_valid_files(tiny_model_dir: Path, corpus: Path, name: str) -> None:
    res = runner.invoke(app, ["inspect", str(corpus / name), "--model", str(tiny_model_dir)])
    _no_traceback(res)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["image_sha256"]) == 64 and out["width"] >= 1


def test_score_accounts_for_every_entry(tiny_model_dir: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    res = runner.invoke(app, ["score", str(corpus), "--out", str(out), "--model", str(tiny_model_dir),
                              "--workers", "0", "--quiet"])  # fmt: skip
    _no_traceback(res)
    assert res.exit_code == 3, res.output  # some records are errors
    recs = {Path(r["image"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(recs) == set(BAD) | set(ODD_BUT_VALID) | set(GOOD)  # every entry, once
    for name in (*GOOD, *ODD_BUT_VALID):
        assert recs[name]["status"] in ("ok", "review"), recs[name]
    for name, (*_rest, code) in BAD.items():
        rec = recs[name]
        assert rec["status"] == "error" and rec["error"]["code"] == code, (name, rec["error"])
        assert rec["error"]["message"].startswith(str(corpus / name))
