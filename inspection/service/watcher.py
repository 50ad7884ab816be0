"""Hot folder: stations that only drop files get them inspected, recorded and moved.

Protocol (polling, no inotify):

* An image ``IN/<stem>.<ext>`` (ext: jpg, jpeg, png, bmp, tif, tiff) with optional metadata
  ``IN/<stem>.json`` (the same fields as the service's ``metadata``; see
  :class:`inspection.service.schemas.InspectionMetadata`).
* A file is processed once it is **stable**: its size and mtime were the same at the previous
  poll. Without a sidecar, the image also waits ``sidecar_wait_s`` after it became stable (the
  JSON may be written just after the image), then is processed with the default metadata.
* The record (image + inspection + evidence) is committed with the idempotency key
  ``hotfolder:<sha256 of the bytes>:<file name>``; only then are the image and sidecar moved to
  ``DONE`` with a ``<name>.result.json`` beside them. A restart after a crash between commit and
  move finds the key in the store and just moves the files: no file is recorded twice.
* Unreadable images and invalid sidecars are moved to ``FAILED`` with ``<name>.error.json``
  (``{"file", "code", "reason", "failed_at"}``). Other errors (database down, ...) are logged and
  retried at the next poll.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspection.image.ingest import IngestError, image_sha256
from inspection.service.recorder import Recorder
from inspection.service.schemas import InspectionMetadata

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
IDEMPOTENCY_PREFIX = "hotfolder"


def idempotency_key_for(data: bytes, file_name: str) -> str:
    """``hotfolder:<sha256>:<file name>``, cut to the store's 255 characters."""
    return f"{IDEMPOTENCY_PREFIX}:{image_sha256(data)}:{file_name}"[:255]


@dataclass(frozen=True)
class Outcome:
    """What happened to one file in a poll: ``status`` is ``done``, ``duplicate`` or ``failed``."""

    file: str
    status: str
    inspection_id: str | None = None
    reason: str | None = None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float | None = None


@dataclass
class HotFolder:
    """Polls ``inbox`` and processes stable images through ``recorder``.

    ``defaults`` are metadata fields applied under each sidecar's (e.g. ``station_id``);
    ``clock`` is injectable for tests (seconds, monotonic).
    """

    inbox: Path
    done: Path
    failed: Path
    recorder: Recorder
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sidecar_wait_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _seen: dict[str, _Seen] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.inbox, self.done, self.failed = Path(self.inbox), Path(self.done), Path(self.failed)
        if not self.inbox.is_dir():
            msg = f"hot folder {self.inbox} is not a directory"
            raise ValueError(msg)
        if len({self.inbox.resolve(), self.done.resolve(), self.failed.resolve()}) != 3:
            msg = f"IN ({self.inbox}), DONE ({self.done}) and FAILED ({self.failed}) must differ"
            raise ValueError(msg)
        self.done.mkdir(parents=True, exist_ok=True)
        self.failed.mkdir(parents=True, exist_ok=True)

    # -- polling ----------------------------------------------------------------------------------
    def ready_files(self) -> list[Path]:
        """Images that are stable now (and whose sidecar is present or waited for), by name."""
        now = self.clock()
        ready: list[Path] = []
        present: set[str] = set()
        for path in sorted(self.inbox.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
                continue
            present.add(path.name)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            prev = self._seen.get(path.name)
            if prev is None or (prev.size, prev.mtime_ns) != (st.st_size, st.st_mtime_ns):
                self._seen[path.name] = _Seen(st.st_size, st.st_mtime_ns)
                continue  # new or still growing: look again at the next poll
            if prev.stable_since is None:
                prev.stable_since = now
            sidecar = path.with_suffix(".json")
            if sidecar.is_file() or now - prev.stable_since >= self.sidecar_wait_s:
                ready.append(path)
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def run_once(self, stop: Callable[[], bool] = lambda: False) -> list[Outcome]:
        """One poll: process every ready image (until ``stop()`` is true); what happened to each."""
        outcomes = []
        for path in self.ready_files():
            if stop():
                break
            outcome = self.process(path)
            if outcome is not None:
                outcomes.append(outcome)
                self._seen.pop(path.name, None)
        return outcomes

    def run(
        self,
        poll_s: float = 1.0,
        *,
        stop: Callable[[], bool] = lambda: False,
        wait: Callable[[float], object] = time.sleep,
    ) -> None:
        """Poll every ``poll_s`` seconds until ``stop()`` is true (or KeyboardInterrupt). ``stop`` is
        checked before each file, so a stop request lets the file in hand finish; ``wait`` sleeps
        between polls (an ``Event.wait`` makes a stop request end the sleep at once)."""
        logger.info("watching %s (done: %s, failed: %s)", self.inbox, self.done, self.failed)
        while not stop():
            for o in self.run_once(stop=stop):
                logger.info("%s: %s %s", o.file, o.status, o.inspection_id or o.reason or "")
            wait(poll_s)

    # -- one file ---------------------------------------------------------------------------------
    def process(self, path: Path) -> Outcome | None:
        """Record one image and move it; None when it must be retried later (transient error)."""
        sidecar = path.with_suffix(".json")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        key = idempotency_key_for(data, path.name)
        try:
            context = InspectionMetadata.model_validate(self._metadata(sidecar)).to_context()
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            return self._fail(path, sidecar, "invalid_metadata", str(exc))
        try:
            existing = self.recorder.existing(key, image_sha256(data))
        except Exception:
            logger.exception("could not look %s up in the store; will retry at the next poll", path)
            return None
        if existing is not None:
            self._move(path, sidecar, self.done, {"inspection_id": existing.id, "duplicate": True})
            return Outcome(path.name, "duplicate", existing.id)
        try:
            sub = self.recorder.submit(data, context, idempotency_key=key, name=path.name)
        except IngestError as exc:
            return self._fail(path, sidecar, exc.code, exc.reason)
        except ValueError as exc:  # e.g. an idempotency conflict: never retried successfully
            return self._fail(path, sidecar, "rejected", str(exc))
        except Exception:
            logger.exception("could not record %s; will retry at the next poll", path)
            return None
        status = "done" if sub.created else "duplicate"
        self._move(
            path, sidecar, self.done, {"inspection_id": sub.inspection_id, "duplicate": not sub.created}
        )
        return Outcome(path.name, status, sub.inspection_id)

    def _metadata(self, sidecar: Path) -> dict[str, Any]:
        meta = dict(self.defaults)
        if sidecar.is_file():
            try:
                loaded = json.loads(sidecar.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                msg = f"sidecar {sidecar.name} is not valid JSON: {exc}"
                raise ValueError(msg) from exc
            if not isinstance(loaded, dict):
                msg = f"sidecar {sidecar.name} must hold a JSON object, got {type(loaded).__name__}"
                raise ValueError(msg)
            meta.update(loaded)
        return meta

    def _fail(self, path: Path, sidecar: Path, code: str, reason: str) -> Outcome:
        logger.warning("%s failed (%s): %s", path.name, code, reason)
        error = {
            "file": path.name,
            "code": code,
            "reason": reason,
            "failed_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        target = self._move(path, sidecar, self.failed, None)
        _write_json(target.with_name(target.name + ".error.json"), error)
        return Outcome(path.name, "failed", reason=f"{code}: {reason}")

    def _move(self, path: Path, sidecar: Path, folder: Path, result: Mapping[str, Any] | None) -> Path:
        """Move the image (and sidecar) into ``folder`` without overwriting; returns the new image path."""
        target = _free_name(folder, path.name)
        if result is not None:
            _write_json(target.with_name(target.name + ".result.json"), {"file": path.name, **result})
        if sidecar.is_file():
            shutil.move(str(sidecar), str(target.with_suffix(".json")))
        shutil.move(str(path), str(target))
        return target


def _free_name(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/<stem>-1<suffix>``... when taken."""
    target = folder / name
    n = 0
    while target.exists() or target.with_suffix(".json").exists():
        n += 1
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
    return target


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
