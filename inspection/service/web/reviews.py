"""Signing a human review from the service: the one write path of the dashboard form and the API.

``POST /ui/inspections/{id}/review`` (form fields) and ``POST /v1/inspections/{id}/reviews`` (JSON)
both end in :func:`sign_review`, so they accept and refuse the same reviews and write the same
signed ``review`` record (:func:`inspection.evidence.ledger.record_review`, which validates grades
and marks in the store, :mod:`inspection.store.marks`).

Before signing, the review queue is brought up to date (:func:`refresh_queue`) so that an audit
sample recorded since the last queue view is flagged ``audit`` in the review (the miss-rate estimate
counts only reviews flagged so).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from inspection.evidence.ledger import EvidenceRecord, record_review
from inspection.service.state import ServiceState
from inspection.store import InspectionRecord
from inspection.store.repo import ReviewInfo

logger = logging.getLogger(__name__)

NOTHING_TO_SIGN = (
    "nothing to sign: set at least one final grade (porosity_grade or spatter_grade, 0-3), give marks, "
    "or flag the photo not gradable with a not_gradable_reason"
)


def refresh_queue(state: ServiceState) -> float:
    """Bring the review queue up to date (new flagged inspections, audit draws); the audit rate."""
    from inspection.evidence.audit import audit_key
    from inspection.service.web.queue import refresh_candidates

    rate = state.settings.app_config.service.audit_rate
    refresh_candidates(state.store, key=audit_key(state.recorder.ledger.signer), audit_rate=rate)
    return rate


def sign_review(
    state: ServiceState,
    record: InspectionRecord,
    *,
    reviewer: str,
    porosity_grade: int | None,
    spatter_grade: int | None,
    comment: str = "",
    marks: Sequence[Mapping[str, Any]] | None = None,
    not_gradable_reason: str | None = None,
) -> tuple[ReviewInfo, EvidenceRecord]:
    """Store the review of ``record`` by ``reviewer`` with its signed evidence record.

    ``marks`` None = the review drew no marks (``[]`` = marked: nothing there). The grades are held
    to the marks with the ``grading`` thresholds the service grades with
    (``settings.app_config.grading``; :func:`inspection.store.marks.grades_with_marks`). Raises ValueError
    (:class:`~inspection.store.marks.MarkError` for marks, naming the field) when the review is
    refused, before anything is stored or signed; LookupError when the inspection has gone.
    """
    if porosity_grade is None and spatter_grade is None and marks is None and not_gradable_reason is None:
        raise ValueError(NOTHING_TO_SIGN)
    refresh_queue(state)
    review_id, rec = record_review(
        state.store,
        state.recorder.ledger,
        inspection_id=record.id,
        reviewer=reviewer,
        porosity_grade=porosity_grade,
        spatter_grade=spatter_grade,
        comment=comment.strip(),
        marks=marks,
        not_gradable_reason=not_gradable_reason,
        grading=state.settings.app_config.grading,
    )
    logger.info("review %s of %s by %s: evidence seq %d", review_id, record.id, reviewer, rec.seq)
    info = next((r for r in state.store.list_reviews(record.id) if r.id == review_id), None)
    if info is None:  # committed a moment ago: only a concurrent deletion could cause this
        msg = f"review {review_id} of inspection {record.id} was signed but cannot be read back"
        raise RuntimeError(msg)
    return info, rec
