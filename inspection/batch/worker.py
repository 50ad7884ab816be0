"""The batch scoring worker: what runs in the prefetch thread or in a worker process.

Kept apart from :mod:`inspection.batch.runner` so that a worker process imports only the prepare stage
(ingest, preprocess, quality; no torch, no onnxruntime): started from the fork server it is ready
in well under a second instead of the ~3 s a torch import takes.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import time
from dataclasses import dataclass
from pathlib import Path

from inspection.image.ingest import IngestError, image_sha256, read_image_bytes
from inspection.image.prepare import PrepareConfig, Prepared, prepare
from inspection.types import InspectionContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreItem:
    """One input image: ``image`` is the path as given (it appears in the output).

    ``error`` ``(code, message)`` marks an entry known to be bad before it is read (e.g. a folder
    that cannot be listed): it becomes an error record without touching the file system again."""

    image: str
    path: Path
    context: InspectionContext | None = None
    error: tuple[str, str] | None = None


_CFG: PrepareConfig | None = None
_DONE: frozenset[str] = frozenset()
_KEEP_BYTES = False


def worker_context() -> multiprocessing.context.BaseContext:
    """``forkserver``: workers are forked from a clean server process that imported this (light,
    torch-free) module once, never from the caller. Forking the caller directly hangs the workers
    when it has already run OpenCV's or torch's thread pools (a lock held by a thread that does not
    exist in the child), which is the normal state of a program that inspected an image before
    scoring a folder."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["inspection.batch.worker"])
    return ctx


def init_worker(cfg: PrepareConfig, done: frozenset[str], keep_bytes: bool) -> None:
    global _CFG, _DONE, _KEEP_BYTES
    _CFG, _DONE, _KEEP_BYTES = cfg, done, keep_bytes
    try:
        import cv2

        cv2.setNumThreads(1)
    except Exception:  # pragma: no cover - best effort
        pass


@dataclass(frozen=True, eq=False)
class Job:
    """What a worker hands back for one item."""

    item: ScoreItem
    kind: str  # "prepared" | "skip" | "error"
    prepared: Prepared | None = None
    sha256: str | None = None
    code: str = ""
    message: str = ""
    data: bytes | None = None
    elapsed_ms: float = 0.0


def work(item: ScoreItem) -> Job:
    cfg = _CFG
    if cfg is None:  # pragma: no cover - initializer always runs first
        msg = "worker not initialised"
        raise RuntimeError(msg)
    t0 = time.perf_counter()
    sha = None
    if item.error is not None:
        return Job(item, "error", code=item.error[0], message=item.error[1])
    try:
        data = read_image_bytes(item.path, cfg.ingest)
        sha = image_sha256(data)
        if sha in _DONE:
            return Job(item, "skip", sha256=sha)
        prepared = prepare(data, cfg, name=item.image, context=item.context, sha256=sha)
    except IngestError as exc:
        return Job(item, "error", sha256=sha, code=exc.code, message=str(exc))
    except Exception as exc:  # a batch never dies on one bad image
        log.exception("unexpected failure on %s", item.image)
        return Job(
            item, "error", sha256=sha, code="internal", message=f"{item.image}: {type(exc).__name__}: {exc}"
        )
    return Job(
        item,
        "prepared",
        prepared=prepared,
        sha256=sha,
        data=data if _KEEP_BYTES else None,
        elapsed_ms=(time.perf_counter() - t0) * 1000.0,
    )
