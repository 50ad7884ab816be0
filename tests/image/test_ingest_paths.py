"""read_image_bytes on paths that are not regular files: each refused with a named reason, none opened
in a way that could block (FIFO), none reported as something it is not (a symlink loop is not "missing")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from inspection.image.ingest import IngestError, path_problem, read_image_bytes


def _loop(tmp: Path) -> Path:
    link = tmp / "loop.jpg"
    link.symlink_to(link.name)
    return link


def _dangling(tmp: Path) -> Path:
    link = tmp / "dangling.jpg"
    link.symlink_to(tmp / "gone.jpg")
    return link


def _fifo(tmp: Path) -> Path:
    path = tmp / "pipe.jpg"
    os.mkfifo(path)
    return path


def _folder(tmp: Path) -> Path:
    path = tmp / "folder.jpg"
    path.mkdir()
    return path


def _link_to_folder(tmp: Path) -> Path:
    (tmp / "sub").mkdir()
    link = tmp / "sub.jpg"
    link.symlink_to(tmp / "sub")
    return link


@pytest.mark.parametrize(
    ("make", "code", "reason"),
    [
        (lambda tmp: tmp / "missing.jpg", "not_found", "file does not exist"),
        (_dangling, "not_found", "dangling symlink: its target"),
        (_loop, "unreadable", "symlink loop"),
        (_fifo, "unreadable", "a FIFO (named pipe, not opened)"),
        (_folder, "unreadable", "a folder, not an image file"),
        (_link_to_folder, "unreadable", "a folder, not an image file"),
        (lambda tmp: tmp / "file.jpg" / "below", "unreadable", "Not a directory"),
    ],
    ids=["missing", "dangling", "loop", "fifo", "folder", "link-to-folder", "below-a-file"],
)
def test_non_files_are_refused_with_a_named_reason(
    tmp_path: Path, make: Callable[[Path], Path], code: str, reason: str
) -> None:
    (tmp_path / "file.jpg").write_bytes(b"\xff\xd8\xff")
    path = make(tmp_path)
    problem = path_problem(path)
    assert problem is not None and (problem.code, problem.path) == (code, str(path))
    assert reason in problem.reason
    with pytest.raises(IngestError) as info:  # a FIFO would block here if it were opened for reading
        read_image_bytes(path)
    assert (info.value.code, str(info.value)) == (code, str(problem))


def test_regular_file_and_link_to_it_are_read(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"abc")
    link = tmp_path / "b.jpg"
    link.symlink_to(path)
    assert path_problem(path) is None and path_problem(link) is None
    assert read_image_bytes(path) == read_image_bytes(link) == b"abc"


def test_permission_denied_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"abc")

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # root ignores mode bits, so simulate the refusal
    with pytest.raises(IngestError) as info:
        read_image_bytes(path)
    assert info.value.code == "unreadable" and "permission denied" in info.value.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_for_real(tmp_path: Path) -> None:
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"abc")
    path.chmod(0)
    with pytest.raises(IngestError) as info:
        read_image_bytes(path)
    assert info.value.code == "unreadable" and "permission denied" in info.value.reason
