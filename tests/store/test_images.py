"""Content-addressed image files."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from inspection.store.images import ImageFiles, relative_path, sniff_media_type
from tests.evidence.factories import png_bytes


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\nrest", "image/png"),
        (b"BMxxxx", "image/bmp"),
        (b"II*\x00rest", "image/tiff"),
        (b"MM\x00*rest", "image/tiff"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"GIF89a", "application/octet-stream"),
        (b"", "application/octet-stream"),
    ],
)
def test_sniff_media_type(head: bytes, expected: str) -> None:
    assert sniff_media_type(head) == expected


def test_put_stores_once_under_fanned_out_sha(tmp_path: Path) -> None:
    files = ImageFiles(tmp_path)
    data = png_bytes(1)
    sha = hashlib.sha256(data).hexdigest()
    first = files.put(data)
    second = files.put(data)
    assert first.created and not second.created
    assert first.sha256 == sha and first.relpath == f"{sha[:2]}/{sha[2:4]}/{sha}"
    assert (tmp_path / first.relpath).read_bytes() == data
    assert first.media_type == "image/png" and first.size == len(data)
    # exactly one file, no temp files left behind, and it is read-only
    all_files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all_files == [tmp_path / first.relpath]
    assert not stat.S_IMODE(os.stat(all_files[0]).st_mode) & 0o222


def test_put_rewrites_a_damaged_file(tmp_path: Path) -> None:
    files = ImageFiles(tmp_path)
    data = png_bytes(2)
    put = files.put(data)
    path = tmp_path / put.relpath
    path.chmod(0o644)
    path.write_bytes(b"swapped")
    assert files.hash_file(put.sha256) != put.sha256
    again = files.put(data)
    assert again.created
    assert files.hash_file(put.sha256) == put.sha256


def test_read_and_hash_missing(tmp_path: Path) -> None:
    files = ImageFiles(tmp_path)
    sha = "0" * 64
    assert files.hash_file(sha) is None
    with pytest.raises(FileNotFoundError, match=sha):
        files.read(sha)


@pytest.mark.parametrize("bad", ["", "ABC", "g" * 64, "A" * 64, "../" + "0" * 61])
def test_relative_path_refuses_non_hashes(bad: str) -> None:
    with pytest.raises(ValueError, match="64 lower-case hex"):
        relative_path(bad)


def test_put_refuses_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        ImageFiles(tmp_path).put(b"")
