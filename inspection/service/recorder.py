"""The one way the service and the hot folder turn image bytes into a committed, signed record.

:meth:`Recorder.submit` = idempotency look-up, inspection (model runs bounded by ``slots``),
recommendation, then :func:`inspection.evidence.ledger.record_inspection`, which commits the image,
the inspection row and its evidence record in ONE transaction before this returns.

Outcome tracking (:class:`inspection.recommend.tracking.OutcomeTracker`, ``Recorder.outcomes``): the
recommendation is ranked with the per-rule outcome stats of the store (cached); after a new record
its parameter changes go into the ``recommendations`` table and the outcomes of its machine are
recomputed, in the same writer turn. A failure there is logged and does not fail the upload: the
signed record holds the recommendation, and the dashboard's *Recompute outcomes* backfills it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from inspection.evidence.ledger import EvidenceRecord, IdempotencyConflictError, Ledger, record_inspection
from inspection.pipeline import Inspector, prepare, recommendation_for
from inspection.recommend.tracking import OutcomeTracker, RecordedAdvice
from inspection.service.settings import ServiceSettings
from inspection.store import InspectionRecord, Store
from inspection.store.db import StoreError
from inspection.types import InspectionContext, InspectionResult

if TYPE_CHECKING:
    from inspection.service.promotion import ModelFollower

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """Outcome of :meth:`Recorder.submit`: ``created`` is False for an idempotent replay."""

    inspection_id: str
    created: bool


class _TrackingLedger(Ledger):
    """A per-call view of a ledger that counts its appends (tells a new record from a replay)."""

    def __init__(self, base: Ledger) -> None:
        super().__init__(base.store, base.signer, clock=base.clock)
        self.appended = 0

    def append_in(
        self, session: Session, kind: str, data: Mapping[str, Any], *, now: datetime | None = None
    ) -> EvidenceRecord:
        record = super().append_in(session, kind, data, now=now)
        self.appended += 1
        return record


def open_recorder(
    settings: ServiceSettings, *, on_inference: Callable[[float], None] | None = None
) -> Recorder:
    """Open the store, load the signing key and the model of ``settings`` (blocking; seconds).

    The model is the store's current (promoted) model, else the configured one
    (:func:`inspection.service.promotion.load_inspector`); ``Recorder.follower`` follows later
    promotions once started. Raises ``KeyFileError`` (no/ambiguous signing key), ``StoreError``
    (database) or ``ArtifactError`` (model), each naming what is wrong.
    """
    from inspection.evidence.keys import load_signer
    from inspection.service.promotion import ModelFollower, load_inspector

    signer = load_signer(
        settings.keys_dir, key_id=settings.signing_key_id, station_id=settings.signing_station
    )
    store = Store.open(settings.db_url, settings.images_dir)
    try:
        start = load_inspector(settings, store)
    except Exception:
        store.close()
        raise
    inspector = start.inspector
    logger.info(
        "loaded model %s %s (%s), store %s, signing key %s",
        inspector.grader.info.name,
        inspector.grader.info.version,
        start.status or "configured",
        store.url,
        signer.key_id,
    )
    recorder = Recorder(
        inspector, store, Ledger(store, signer), slots=settings.inference_slots, on_inference=on_inference
    )
    recorder.follower = ModelFollower(recorder, store, settings, start)
    return recorder


class Recorder:
    """Inspects images with one :class:`Inspector` and records them in one :class:`Store`.

    ``slots`` bounds how many images are inspected (decode, preprocessing, model) at once; the
    others wait in turn, so a burst does not slow every request down together. Use about one slot
    per CPU core with one model thread each. ``on_inference`` gets each image's inspection seconds.
    ``outcomes`` (default: a new :class:`OutcomeTracker` over ``store``) ranks the advice by the
    rules' outcome record and is updated after each new record.

    The inspector is an immutable reference that :meth:`swap_inspector` replaces (a promoted model):
    each call takes the reference once when it starts, so a request in flight finishes -- and is
    recorded, with its model's ``config_sha256`` -- on the model it started with. The running
    inspector is never changed. ``follower`` (set by :func:`open_recorder`) follows promotions.
    """

    def __init__(
        self,
        inspector: Inspector,
        store: Store,
        ledger: Ledger,
        *,
        slots: int = 1,
        on_inference: Callable[[float], None] | None = None,
        outcomes: OutcomeTracker | None = None,
    ) -> None:
        if slots < 1:
            msg = f"slots must be >= 1, got {slots}"
            raise ValueError(msg)
        self._inspector = inspector
        self._swap_lock = threading.Lock()
        self._used = threading.local()  # the inspector of this thread's last inspect()
        self.follower: ModelFollower | None = None
        self.store = store
        self.ledger = ledger
        self._slots = threading.BoundedSemaphore(slots)
        # Writers of this process queue here rather than in SQLite's busy handler, whose sleeping
        # back-off starves unlucky writers (seconds of p99 at 16 concurrent uploads).
        self._write_lock = threading.Lock()
        self._on_inference = on_inference
        self.outcomes = outcomes if outcomes is not None else OutcomeTracker(store)

    @property
    def inspector(self) -> Inspector:
        """The inspector new requests use."""
        return self._inspector

    def swap_inspector(self, new: Inspector) -> Inspector:
        """Make ``new`` the inspector of requests that start from now on; returns the old one, which
        the requests in flight keep using until they finish."""
        with self._swap_lock:
            old, self._inspector = self._inspector, new
        return old

    def existing(self, idempotency_key: str, image_sha256: str) -> InspectionRecord | None:
        """The inspection stored under ``idempotency_key``, or None.

        Raises :class:`IdempotencyConflictError` when the key was used for a different image.
        """
        found = self.store.find_by_idempotency_key(idempotency_key)
        if found is not None and found.image_sha256 != image_sha256:
            msg = (
                f"idempotency key {idempotency_key!r} was already used for image {found.image_sha256}, "
                f"not {image_sha256}; use a new key for a new image"
            )
            raise IdempotencyConflictError(msg)
        return found

    def inspect(self, data: bytes, context: InspectionContext | None, *, name: str) -> InspectionResult:
        """Run the pipeline on encoded bytes (raises ``IngestError`` for unreadable images)."""
        inspector = self._inspector  # one reference for the whole call (a swap may happen meanwhile)
        self._used.inspector = inspector
        with self._slots:
            t0 = time.perf_counter()
            prepared = prepare(data, inspector.prepare_config, name=name, context=context)
            result = inspector.finish([prepared])[0].result
        if self._on_inference is not None:
            self._on_inference(time.perf_counter() - t0)
        return result

    def submit(
        self,
        data: bytes,
        context: InspectionContext | None,
        *,
        idempotency_key: str | None = None,
        name: str = "<upload>",
        image_sha256: str | None = None,
    ) -> Submission:
        """Inspect and record ``data``; with a known ``idempotency_key`` return the earlier record.

        The record is committed when this returns. ``image_sha256`` may be passed when already known.
        """
        if idempotency_key is not None:
            from inspection.image.ingest import image_sha256 as sha_of

            found = self.existing(idempotency_key, image_sha256 or sha_of(data))
            if found is not None:
                return Submission(found.id, created=False)
        self._used.inspector = None
        current = self._inspector
        result = self.inspect(data, context, name=name)
        # the config hash recorded is that of the inspector that made the result, even when a promoted
        # model was swapped in meanwhile (an inspect() override that does not call ours: the one at start)
        inspector: Inspector = getattr(self._used, "inspector", None) or current
        recommendation = recommendation_for(result, self.outcomes.rule_stats())
        ledger = _TrackingLedger(self.ledger)
        with self._write_lock:
            inspection_id, record = record_inspection(
                self.store,
                ledger,
                result,
                data,
                config_sha256=inspector.config_sha256,
                recommendation=recommendation,
                idempotency_key=idempotency_key,
            )
            if ledger.appended > 0:
                self._track(inspection_id, result, recommendation)
        logger.info("inspection %s recorded as evidence seq %d", inspection_id, record.seq)
        return Submission(inspection_id, created=ledger.appended > 0)

    def _track(
        self, inspection_id: str, result: InspectionResult, recommendation: Mapping[str, Any] | None
    ) -> None:
        """Store the recommendation and update the machine's outcomes (failures logged, not raised)."""
        serial = result.context.machine_serial if result.context is not None else None
        try:
            self.outcomes.record([RecordedAdvice(inspection_id, serial, recommendation)])
        except (SQLAlchemyError, StoreError, LookupError, ValueError):
            logger.exception(
                "outcome tracking after inspection %s (machine %s) failed; the recommendation is in its "
                "evidence record, 'Recompute outcomes' on the machine page stores it later",
                inspection_id,
                serial,
            )

    def overlay_png(self, record: InspectionRecord) -> bytes:
        """A PNG of the stored image with the stored findings (and heatmaps when this model made them)."""
        import cv2

        from inspection.image.ingest import decode_image
        from inspection.image.overlay import draw_overlay

        inspector = self._inspector
        data = self.store.images.read(record.image_sha256)
        image = decode_image(data, name=record.image_sha256, cfg=inspector.prepare_config.ingest)
        result = record.to_result()
        heatmaps = None
        if result.model.sha256 == inspector.grader.info.sha256:
            with self._slots:  # from the stored bytes: the same decode path as the upload
                heatmaps = inspector.inspect_detailed(data, result.context).heatmaps
        drawn = draw_overlay(image, result, heatmaps)
        ok, png = cv2.imencode(".png", np.ascontiguousarray(drawn[..., ::-1]))
        if not ok:
            msg = f"could not encode the overlay of inspection {record.id} as PNG"
            raise RuntimeError(msg)
        return png.tobytes()
