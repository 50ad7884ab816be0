"""The hot folder: stability, sidecars, failures and the crash/restart case (no duplicate record)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from inspection.service.recorder import Recorder, open_recorder
from inspection.service.watcher import HotFolder, idempotency_key_for
from tests.helpers.images import encode, gradient_rgb, truncated
from tests.service.helpers import STATION_META, make_settings, seam_jpeg


@pytest.fixture
def recorder(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Recorder]:
    rec = open_recorder(make_settings(tmp_path / "svc", tiny_model_dir))
    yield rec
    rec.store.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _folders(tmp_path: Path) -> tuple[Path, Path, Path]:
    inbox, done, failed = tmp_path / "in", tmp_path / "done", tmp_path / "failed"
    inbox.mkdir()
    return inbox, done, failed


def _drop(inbox: Path, stem: str, data: bytes, meta: dict[str, object] | None = STATION_META) -> Path:
    image = inbox / f"{stem}.jpg"
    if meta is not None:
        (inbox / f"{stem}.json").write_text(json.dumps(meta))
    image.write_bytes(data)
    return image


def _count(recorder: Recorder) -> int:
    return recorder.store.list_inspections().total


def test_stable_file_with_sidecar_is_recorded_then_moved(tmp_path: Path, recorder: Recorder) -> None:
    inbox, done, failed = _folders(tmp_path)
    data = seam_jpeg(1)
    _drop(inbox, "seam1", data, {**STATION_META, "station_id": "HF-1"})
    folder = HotFolder(inbox, done, failed, recorder, sidecar_wait_s=0)
    assert folder.run_once() == []  # first sight: not yet known to be stable
    outcomes = folder.run_once()
    assert [(o.file, o.status) for o in outcomes] == [("seam1.jpg", "done")]
    assert sorted(p.name for p in inbox.iterdir()) == []
    assert (done / "seam1.jpg").read_bytes() == data and (done / "seam1.json").is_file()
    info = json.loads((done / "seam1.jpg.result.json").read_text())
    stored = recorder.store.get_inspection(info["inspection_id"])
    assert stored is not None
    assert stored.station_id == "HF-1" and stored.machine_serial == STATION_META["machine_serial"]
    assert stored.idempotency_key == idempotency_key_for(data, "seam1.jpg")


def test_growing_file_waits_until_size_is_unchanged(tmp_path: Path, recorder: Recorder) -> None:
    inbox, done, failed = _folders(tmp_path)
    data = seam_jpeg(2)
    image = _drop(inbox, "grow", data[: len(data) // 2])
    folder = HotFolder(inbox, done, failed, recorder, sidecar_wait_s=0)
    assert folder.run_once() == []
    with image.open("ab") as fh:  # the camera is still writing
        fh.write(data[len(data) // 2 :])
    assert folder.run_once() == []
    assert [o.status for o in folder.run_once()] == ["done"]
    assert (done / "grow.jpg").read_bytes() == data


def test_image_without_sidecar_waits_then_uses_defaults(tmp_path: Path, recorder: Recorder) -> None:
    inbox, done, failed = _folders(tmp_path)
    clock = FakeClock()
    _drop(inbox, "bare", seam_jpeg(3), meta=None)
    folder = HotFolder(
        inbox, done, failed, recorder, defaults={"station_id": "HF-9"}, sidecar_wait_s=5.0, clock=clock
    )
    folder.run_once()
    clock.now = 1.0
    assert folder.run_once() == []  # stable, but the sidecar may still come
    clock.now = 7.0
    outcomes = folder.run_once()
    assert [o.status for o in outcomes] == ["done"]
    stored = recorder.store.get_inspection(str(outcomes[0].inspection_id))
    assert stored is not None and stored.station_id == "HF-9" and stored.machine_serial is None


@pytest.mark.parametrize(
    ("data", "sidecar", "code"),
    [
        (truncated(encode(gradient_rgb(64, 64), "JPEG")), json.dumps(STATION_META), "truncated"),
        (b"this is text", json.dumps(STATION_META), "not_an_image"),
        (None, "{broken json", "invalid_metadata"),
        (None, json.dumps({"colour": "red"}), "invalid_metadata"),
    ],
)
def test_bad_files_go_to_failed_with_reason(
    tmp_path: Path, recorder: Recorder, data: bytes | None, sidecar: str, code: str
) -> None:
    inbox, done, failed = _folders(tmp_path)
    (inbox / "bad.json").write_text(sidecar)
    (inbox / "bad.jpg").write_bytes(seam_jpeg(4) if data is None else data)
    folder = HotFolder(inbox, done, failed, recorder, sidecar_wait_s=0)
    folder.run_once()
    assert [o.status for o in folder.run_once()] == ["failed"]
    error = json.loads((failed / "bad.jpg.error.json").read_text())
    assert error["file"] == "bad.jpg" and error["code"] == code and error["reason"]
    assert (failed / "bad.jpg").is_file() and (failed / "bad.json").is_file()
    assert list(inbox.iterdir()) == [] and _count(recorder) == 0


def test_crash_before_move_then_restart_records_once(
    tmp_path: Path, recorder: Recorder, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, done, failed = _folders(tmp_path)
    _drop(inbox, "crash", seam_jpeg(5))
    folder = HotFolder(inbox, done, failed, recorder, sidecar_wait_s=0)
    folder.run_once()

    def crash(*_args: object, **_kw: object) -> Path:
        raise KeyboardInterrupt("power cut after the commit, before the move")

    with monkeypatch.context() as m:
        m.setattr(HotFolder, "_move", crash)
        with pytest.raises(KeyboardInterrupt):
            folder.run_once()
    assert (inbox / "crash.jpg").is_file()  # not moved ...
    assert _count(recorder) == 1  # ... but committed

    restarted = open_recorder(make_settings(tmp_path / "svc", tiny_model_dir))  # a new process
    try:
        again = HotFolder(inbox, done, failed, restarted, sidecar_wait_s=0)
        again.run_once()
        outcomes = again.run_once()
        assert [o.status for o in outcomes] == ["duplicate"]
        assert _count(restarted) == 1
        assert (done / "crash.jpg").is_file() and not (inbox / "crash.jpg").exists()
        assert json.loads((done / "crash.jpg.result.json").read_text())["duplicate"] is True
    finally:
        restarted.store.close()


def test_same_name_new_content_is_a_new_record(tmp_path: Path, recorder: Recorder) -> None:
    inbox, done, failed = _folders(tmp_path)
    folder = HotFolder(inbox, done, failed, recorder, sidecar_wait_s=0)
    for seed in (6, 7):
        _drop(inbox, "reused", seam_jpeg(seed))
        folder.run_once()
        assert [o.status for o in folder.run_once()] == ["done"]
    assert _count(recorder) == 2
    assert (done / "reused.jpg").is_file() and (done / "reused-1.jpg").is_file()


def test_folders_must_differ(tmp_path: Path, recorder: Recorder) -> None:
    inbox, _done, failed = _folders(tmp_path)
    with pytest.raises(ValueError, match="must differ"):
        HotFolder(inbox, inbox, failed, recorder)
