"""The review queue: flagged inspections ordered by their value to the model, plus audit samples.

**Review value** (:func:`review_value`, pure, from the stored result; 0 to 4.5, higher first)::

    value = U + B + 1.5 D + N

* ``U`` uncertainty = max over the graded heads (porosity, spatter) of ``(1 - confidence) / 0.75``
  (``confidence`` = calibrated probability of the chosen grade; 0.25 = uniform over 4 grades -> 1);
* ``B`` near the accept threshold = max over the graded heads of ``1 - |2 P(grade >= 1) - 1|``
  with ``P(grade >= 1) = 1 - probs[0]`` (1 when defect and no defect are equally likely);
* ``D`` disagreement between heads = 1 when ``review_reasons`` holds ``grade_findings_disagree``
  (the porosity head against the pore count) or ``abstain:<head>`` (a head's zero rule against the
  findings), else 0;
* ``N`` novelty / out of distribution = 1 when ``review_reasons`` holds ``unfamiliar_appearance``,
  ``out_of_distribution`` or ``not_seam_closeup``, else 0.

A head that was not graded (quality or domain gate) adds nothing to ``U`` and ``B``: a blurred photo
teaches the grader little. Ties are broken by the OOD score (higher first), then by arrival
(evidence seq, older first).

**Order of the queue**: audit samples first (oldest first; the miss-rate estimate of
:mod:`inspection.evidence.audit` is only unbiased if every one of them is reviewed), then the
flagged inspections by value. Only inspections without any review are listed.

The queue is materialised in ``review_candidates``: :func:`refresh_candidates` scans the
inspections recorded since the last scan (by evidence seq, which only grows), adds each flagged one
with its value and each unflagged one that the audit draw selects, and moves the mark
(``review_queue_state``). The page calls it before listing, so the cost is proportional to the
inspections that arrived since the last view, not to the size of the store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, select

from inspection.evidence.audit import AuditSampler
from inspection.store import InspectionRecord, Store, repo
from inspection.store.models import (
    InspectionRow,
    ReviewCandidateRow,
    ReviewQueueStateRow,
    ReviewRow,
    utcnow,
)

logger = logging.getLogger(__name__)

DISAGREEMENT_REASONS = ("grade_findings_disagree", "abstain:porosity", "abstain:spatter")
NOVELTY_REASONS = ("unfamiliar_appearance", "out_of_distribution", "not_seam_closeup")
DISAGREEMENT_WEIGHT = 1.5
SCAN_BATCH = 2000
_STATE_ID = 1


def _head_terms(head: Any) -> tuple[float, float]:
    if not isinstance(head, Mapping):
        return 0.0, 0.0
    conf, probs = head.get("confidence"), head.get("probs")
    u = 0.0 if not isinstance(conf, int | float) else min(1.0, max(0.0, (1.0 - float(conf)) / 0.75))
    b = 0.0
    if isinstance(probs, list | tuple) and probs and isinstance(probs[0], int | float):
        p_defect = min(1.0, max(0.0, 1.0 - float(probs[0])))
        b = 1.0 - abs(2.0 * p_defect - 1.0)
    return u, b


def review_value(result: Mapping[str, Any]) -> float:
    """The review value of a stored result (formula in the module docstring); 0.0 to 4.5."""
    terms = [_head_terms(result.get(name)) for name in ("porosity", "spatter")]
    u = max(t[0] for t in terms)
    b = max(t[1] for t in terms)
    reasons = set(result.get("review_reasons") or ())
    d = 1.0 if reasons & set(DISAGREEMENT_REASONS) else 0.0
    n = 1.0 if reasons & set(NOVELTY_REASONS) else 0.0
    return round(u + b + DISAGREEMENT_WEIGHT * d + n, 6)


def _ood(result: Mapping[str, Any]) -> float | None:
    v = result.get("ood_score")
    return float(v) if isinstance(v, int | float) else None


def refresh_candidates(store: Store, *, key: bytes | None, audit_rate: float) -> int:
    """Add the inspections recorded since the last scan to the queue; returns how many were added.

    ``key``: the audit key (:func:`inspection.evidence.audit.audit_key`; None = no audit samples).
    Inspections without an evidence record are never queued. Safe to call from several processes:
    each batch runs in one serialised write transaction and re-reads the mark under its lock.
    """
    sampler = None if key is None or audit_rate <= 0.0 else AuditSampler(key, audit_rate)
    with store.session() as s:
        state = s.get(ReviewQueueStateRow, _STATE_ID)
        scanned = 0 if state is None else int(state.scanned_seq)
        newest = s.scalar(select(func.max(InspectionRow.evidence_seq)))
    if newest is None or int(newest) <= scanned:
        return 0
    added = 0
    while True:
        with store.write() as s:
            state = s.get(ReviewQueueStateRow, _STATE_ID)
            if state is None:
                state = ReviewQueueStateRow(id=_STATE_ID, scanned_seq=0, updated_at=utcnow())
                s.add(state)
            rows = s.execute(
                select(InspectionRow.id, InspectionRow.evidence_seq, InspectionRow.needs_review)
                .where(InspectionRow.evidence_seq > state.scanned_seq)
                .order_by(InspectionRow.evidence_seq)
                .limit(SCAN_BATCH)
            ).all()
            if not rows:
                return added
            flagged = [iid for iid, _, needs in rows if needs]
            found = s.execute(
                select(InspectionRow.id, InspectionRow.result).where(InspectionRow.id.in_(flagged))
            )
            results: dict[str, Any] = {iid: result for iid, result in found}
            now = utcnow()
            for iid, seq, needs in rows:
                audit = not needs and sampler is not None and sampler(iid)
                if not (needs or audit) or s.get(ReviewCandidateRow, iid) is not None:
                    continue
                result = results.get(iid) or {}
                s.add(
                    ReviewCandidateRow(
                        inspection_id=iid,
                        evidence_seq=int(seq or 0),  # not NULL: selected by seq > mark
                        flagged=bool(needs),
                        audit=audit,
                        audit_rate=None if sampler is None else sampler.rate,
                        value=review_value(result) if needs else 0.0,
                        ood_score=_ood(result),
                        added_at=now,
                    )
                )
                added += 1
            state.scanned_seq = int(rows[-1][1] or 0)
            state.updated_at = now
            s.flush()
            logger.debug("review queue: scanned to evidence seq %d, %d added", state.scanned_seq, added)


@dataclass(frozen=True)
class QueueItem:
    """One inspection in the queue with why it is there."""

    record: InspectionRecord
    value: float
    audit: bool


def review_queue(
    store: Store, *, station_id: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[QueueItem], int]:
    """Queued inspections without any review (audit samples first, then by value) and their total.

    Call :func:`refresh_candidates` first to include inspections recorded since the last scan.
    """
    conds: list[Any] = [~exists().where(ReviewRow.inspection_id == ReviewCandidateRow.inspection_id)]
    if station_id is not None:
        conds.append(InspectionRow.station_id == station_id)
    page = repo.Page(limit=limit, offset=offset)
    base = select(ReviewCandidateRow).join(
        InspectionRow, InspectionRow.id == ReviewCandidateRow.inspection_id
    )
    with store.session() as s:
        total = s.scalar(select(func.count()).select_from(base.where(*conds).subquery())) or 0
        rows = s.scalars(
            base.where(*conds)
            .order_by(
                ReviewCandidateRow.audit.desc(),
                ReviewCandidateRow.value.desc(),
                func.coalesce(ReviewCandidateRow.ood_score, -1.0e9).desc(),
                ReviewCandidateRow.evidence_seq,
            )
            .limit(page.limit)
            .offset(page.offset)
        ).all()
        items = []
        for c in rows:
            record = repo.get_inspection(s, c.inspection_id)
            if record is not None:
                items.append(QueueItem(record, float(c.value), bool(c.audit)))
    return items, int(total)


def is_audit_sample(store: Store, inspection_id: str) -> bool:
    """Whether the inspection is queued as an audit sample."""
    with store.session() as s:
        row = s.get(ReviewCandidateRow, inspection_id)
        return row is not None and bool(row.audit)
