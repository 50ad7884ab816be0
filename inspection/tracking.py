"""Recommendation outcome tracking over the store (I/O edge around :mod:`inspection.recommend.outcomes`).

* :func:`store_recommendation` writes the parameter changes of one inspection's recommendation
  (``Recommendation.to_dict()`` output, ``items`` only: the changes to make now) into the
  ``recommendations`` table. Idempotent per (inspection, rule, parameter). The service's recorder
  and the batch ``--ledger`` hook call it (through :meth:`OutcomeTracker.record`) right after
  :func:`inspection.evidence.ledger.record_inspection`; :func:`backfill_recommendations` fills it
  from the recommendations already held in the signed inspection records (older data, repairs).
* :func:`update_outcomes` reads each machine's inspection history and the recommendations issued,
  runs :func:`inspection.recommend.outcomes.evaluate_outcomes` and writes one
  ``recommendation_outcomes`` row per recommendation (recomputing updates that row; never a
  duplicate).
* :func:`rule_success` aggregates the stored outcomes into ``RuleStats`` per rule (for ranking).
* :class:`OutcomeTracker` ties these together for the callers that record inspections: after
  each recording it stores the recommendation and recomputes the outcomes of that machine, and it
  serves the per-rule stats the next recommendation is ranked with from a cache.

Conventions:

* A recommendation is *issued* at its inspection's ``created_at``. ``evaluate_outcomes`` counts
  inspections strictly before that time as "before", so the inspection that triggered the advice
  is not in the before-window (it was selected because it was bad; counting it would bias the
  comparison in favour of every rule -- regression to the mean).
* The history compared is that of the same machine, material and thickness as the inspection the
  recommendation was made for. Human reviews override the model's grades (latest review wins).
* The store's outcome row has no verdict column; the verdict is recovered losslessly from it:
  ``applied_inspection_id`` None -> ``not_applied``; ``worked`` True -> ``worked``, False ->
  ``did_not_work``; None with a ``p_value`` -> ``inconclusive``; None without -> ``insufficient_data``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from inspection.recommend.outcomes import (
    DEFECT_FIELDS,
    InspectionRecord,
    IssuedRecommendation,
    OutcomeRecord,
    RuleStats,
    evaluate_outcomes,
    rule_stats,
)
from inspection.store import Store, repo
from inspection.store.models import (
    EvidenceRecordRow,
    InspectionRow,
    RecommendationOutcomeRow,
    RecommendationRow,
    ReviewRow,
    as_utc,
    utcnow,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackedOutcome:
    """A stored outcome joined with its recommendation (what the dashboard lists).

    ``outcome`` is one of :data:`inspection.recommend.outcomes.OUTCOMES` or ``pending`` (no outcome
    computed yet); rates are fractions in [0, 1].
    """

    recommendation_id: str
    inspection_id: str
    machine_serial: str | None
    rule_id: str
    parameter: str
    current_value: float | None
    new_value: float | None
    issued_at: datetime
    outcome: str
    applied_inspection_id: str | None
    before_rate: float | None
    after_rate: float | None
    p_value: float | None
    computed_at: datetime | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def store_recommendation(
    store: Store,
    inspection_id: str,
    machine_serial: str | None,
    recommendation_dict: Mapping[str, Any] | None,
) -> list[str]:
    """Store the parameter changes of ``recommendation_dict`` made for ``inspection_id``.

    Only ``status == "change"`` recommendations with ``items`` are stored (one row per item:
    ``rule_id``, ``parameter``, ``current`` -> ``new``; the whole item plus the defect, pattern,
    process, material and thickness go into ``payload``). Calling it again for the same inspection
    stores nothing new. Returns the ids of the rows (existing or new), in item order.
    ``LookupError`` when the inspection does not exist.
    """
    if not recommendation_dict or recommendation_dict.get("status") != "change":
        return []
    items = [i for i in recommendation_dict.get("items") or () if isinstance(i, Mapping)]
    if not items:
        return []
    ids: list[str] = []
    with store.write() as s:
        row = s.get(InspectionRow, inspection_id)
        if row is None:
            msg = f"no inspection with id {inspection_id!r}; record the inspection before its recommendation"
            raise LookupError(msg)
        existing = {
            (r.rule_id, r.parameter): r.id
            for r in s.scalars(
                select(RecommendationRow).where(RecommendationRow.inspection_id == inspection_id)
            )
        }
        context = {k: recommendation_dict.get(k) for k in ("pattern", "process", "material", "thickness_mm")}
        for item in items:
            rule_id, parameter = str(item.get("rule_id", "")), str(item.get("parameter", ""))
            if not rule_id or not parameter:
                logger.warning("recommendation item without rule_id/parameter skipped: %r", item)
                continue
            if (rule_id, parameter) in existing:
                ids.append(existing[(rule_id, parameter)])
                continue
            rid = repo.add_recommendation(
                s,
                inspection_id=inspection_id,
                rule_id=rule_id,
                parameter=parameter,
                current_value=_number(item.get("current")),
                new_value=_number(item.get("new")),
                machine_serial=machine_serial,
                payload={**context, "item": dict(item)},
                created_at=as_utc(row.created_at),
            )
            existing[(rule_id, parameter)] = rid
            ids.append(rid)
    return ids


def backfill_recommendations(store: Store, machine_serial: str | None = None) -> int:
    """Store the recommendations held in the inspections' evidence records (idempotent).

    Returns how many inspections had a recommendation with parameter changes.
    """
    stmt = select(InspectionRow.id, InspectionRow.machine_serial, EvidenceRecordRow.payload).join(
        EvidenceRecordRow, EvidenceRecordRow.seq == InspectionRow.evidence_seq
    )
    if machine_serial is not None:
        stmt = stmt.where(InspectionRow.machine_serial == machine_serial)
    with store.session() as s:
        rows = s.execute(stmt.order_by(InspectionRow.created_at)).all()
    n = 0
    for inspection_id, serial, payload in rows:
        envelope = json.loads(payload)
        data = envelope.get("data") if isinstance(envelope, dict) else None
        rec = data.get("recommendation") if isinstance(data, dict) else None
        if isinstance(rec, dict) and store_recommendation(store, inspection_id, serial, rec):
            n += 1
    return n


# ---- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _HistoryRow:
    id: str
    record: InspectionRecord
    material: str | None
    thickness_mm: float | None


def _history(store: Store, serial: str) -> list[_HistoryRow]:
    """The machine's inspections oldest first, reviewed grades overriding the model's."""
    with store.session() as s:
        rows = s.execute(
            select(
                InspectionRow.id,
                InspectionRow.created_at,
                InspectionRow.params,
                InspectionRow.porosity_grade,
                InspectionRow.spatter_grade,
                InspectionRow.material,
                InspectionRow.thickness_mm,
            )
            .where(InspectionRow.machine_serial == serial)
            .order_by(InspectionRow.created_at, InspectionRow.id)
        ).all()
        reviews = s.execute(
            select(ReviewRow.inspection_id, ReviewRow.porosity_grade, ReviewRow.spatter_grade)
            .join(InspectionRow, InspectionRow.id == ReviewRow.inspection_id)
            .where(InspectionRow.machine_serial == serial)
            .order_by(ReviewRow.created_at)
        ).all()
    latest = {r[0]: (r[1], r[2]) for r in reviews}  # later reviews overwrite earlier ones
    out = []
    for r in rows:
        por, spa = latest.get(r[0], (r[3], r[4]))
        record = InspectionRecord(as_utc(r[1]), dict(r[2] or {}), por, spa)
        out.append(_HistoryRow(r[0], record, r[5], r[6]))
    return out


def _issued(rec: repo.RecommendationInfo) -> IssuedRecommendation | None:
    raw = rec.payload.get("item")
    item: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    new: Any = rec.new_value if rec.new_value is not None else item.get("new")
    if new is None or isinstance(new, bool) or not isinstance(new, int | float | str):
        logger.warning("recommendation %s has no usable new value; not evaluated", rec.id)
        return None
    defect = item.get("defect")
    return IssuedRecommendation(
        rec.created_at, rec.rule_id, rec.parameter, new, defect if defect in DEFECT_FIELDS else None
    )


def _outcome_fields(out: OutcomeRecord, applied_id: str | None) -> dict[str, Any]:
    worked = {"worked": True, "did_not_work": False}.get(out.outcome)
    return {
        "applied_inspection_id": applied_id,
        "before_rate": out.before_rate,
        "after_rate": out.after_rate,
        "p_value": out.p_value,
        "worked": worked,
    }


def update_outcomes(
    store: Store,
    machine_serial: str | None = None,
    *,
    window: int = 20,
    min_samples: int = 3,
    alpha: float = 0.1,
) -> list[OutcomeRecord]:
    """(Re)compute the outcome of every recommendation (of one machine, or of all) and store it.

    Keyword arguments go to :func:`evaluate_outcomes`. Returns one record per recommendation with a
    usable new value, in the order of :meth:`Store.list_recommendations` (oldest first).
    Recommendations without a machine serial cannot be evaluated and are skipped.
    """
    recs = [r for r in store.list_recommendations(machine_serial) if r.machine_serial]
    histories: dict[str, list[_HistoryRow]] = {}
    results: list[tuple[str, OutcomeRecord, str | None]] = []
    with store.session() as s:
        rec_rows = {
            r.id: (r.material, r.thickness_mm)
            for r in s.scalars(
                select(InspectionRow).where(InspectionRow.id.in_([x.inspection_id for x in recs]))
            )
        }
    for rec in recs:
        issued = _issued(rec)
        if issued is None:
            continue
        serial = str(rec.machine_serial)
        if serial not in histories:
            histories[serial] = _history(store, serial)
        material, thickness = rec_rows.get(rec.inspection_id, (None, None))
        same = [h for h in histories[serial] if h.material == material and h.thickness_mm == thickness]
        (out,) = evaluate_outcomes(
            [h.record for h in same], [issued], window=window, min_samples=min_samples, alpha=alpha
        )
        applied_id = None
        if out.applied_at is not None:
            applied_id = next((h.id for h in same if h.record.timestamp == out.applied_at), None)
        results.append((rec.id, out, applied_id))
    now = utcnow()
    with store.write() as s:
        for rec_id, out, applied_id in results:
            fields = _outcome_fields(out, applied_id)
            rows = list(
                s.scalars(
                    select(RecommendationOutcomeRow)
                    .where(RecommendationOutcomeRow.recommendation_id == rec_id)
                    .order_by(RecommendationOutcomeRow.computed_at, RecommendationOutcomeRow.id)
                )
            )
            if not rows:
                repo.add_recommendation_outcome(s, recommendation_id=rec_id, computed_at=now, **fields)
                continue
            for extra in rows[1:]:  # a duplicate written by someone else: keep one row only
                s.delete(extra)
            for name, value in fields.items():
                setattr(rows[0], name, value)
            rows[0].computed_at = now
        s.flush()
    logger.info("computed %d recommendation outcome(s) (machine %s)", len(results), machine_serial or "all")
    return [out for _, out, _ in results]


def verdict(applied_inspection_id: str | None, worked: bool | None, p_value: float | None) -> str:
    """The outcome name of a stored outcome row (see the module docstring)."""
    if applied_inspection_id is None:
        return "not_applied"
    if worked is True:
        return "worked"
    if worked is False:
        return "did_not_work"
    return "inconclusive" if p_value is not None else "insufficient_data"


def tracked_outcomes(store: Store, machine_serial: str | None = None) -> list[TrackedOutcome]:
    """Every recommendation (of one machine, or all) with its stored outcome (``pending`` if none)."""
    stmt = select(RecommendationRow, RecommendationOutcomeRow).outerjoin(
        RecommendationOutcomeRow, RecommendationOutcomeRow.recommendation_id == RecommendationRow.id
    )
    if machine_serial is not None:
        stmt = stmt.where(RecommendationRow.machine_serial == machine_serial)
    out: dict[str, TrackedOutcome] = {}
    with store.session() as s:
        for rec, res in s.execute(stmt.order_by(RecommendationRow.created_at, RecommendationRow.id)).all():
            if rec.id in out and res is None:
                continue
            out[rec.id] = TrackedOutcome(
                recommendation_id=rec.id,
                inspection_id=rec.inspection_id,
                machine_serial=rec.machine_serial,
                rule_id=rec.rule_id,
                parameter=rec.parameter,
                current_value=rec.current_value,
                new_value=rec.new_value,
                issued_at=as_utc(rec.created_at),
                outcome="pending"
                if res is None
                else verdict(res.applied_inspection_id, res.worked, res.p_value),
                applied_inspection_id=None if res is None else res.applied_inspection_id,
                before_rate=None if res is None else res.before_rate,
                after_rate=None if res is None else res.after_rate,
                p_value=None if res is None else res.p_value,
                computed_at=None if res is None else as_utc(res.computed_at),
            )
    return list(out.values())


def rule_success(store: Store) -> dict[str, RuleStats]:
    """``RuleStats`` per rule id from the stored outcomes (run :func:`update_outcomes` first).

    Recommendations without a computed outcome are not counted.
    """
    records = [
        OutcomeRecord(t.rule_id, t.parameter, t.new_value or 0.0, t.issued_at, None, t.outcome)
        for t in tracked_outcomes(store)
        if t.outcome != "pending"
    ]
    return rule_stats(records)


def outcomes_summary(outcomes: Sequence[TrackedOutcome]) -> dict[str, int]:
    """How many recommendations have each outcome (for the dashboard's summary line)."""
    counts: dict[str, int] = {}
    for t in outcomes:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    return counts


# ---- keeping it current ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedAdvice:
    """One recorded inspection and the recommendation it was recorded with (``to_dict()`` or None)."""

    inspection_id: str
    machine_serial: str | None
    recommendation: Mapping[str, Any] | None


class OutcomeTracker:
    """Keeps one store's recommendations, outcomes and per-rule stats current (thread-safe).

    The service's recorder and the batch ``--ledger`` hook each hold one:

    * :meth:`rule_stats` -- ``RuleStats`` per rule for ranking the next recommendation, from a
      cache. The cache is reloaded (:func:`rule_success`, one query over the recommendations and
      their outcomes) when an outcome update through this tracker changed a verdict, after
      :meth:`invalidate`, and when it is older than ``max_age_s`` (which picks up outcomes written
      by other processes: another service, batch scoring, a dashboard of another process).
    * :meth:`record` -- after inspections were recorded: store each recommendation's changes
      (:func:`store_recommendation`), then recompute the outcomes (:func:`update_outcomes`) of
      each machine among them that has stored recommendations, once per machine per call. A
      machine without any stored recommendation costs one indexed query.
    * :meth:`recompute` -- backfill from the evidence records and recompute one machine (the
      dashboard's *Recompute outcomes* button); needed after reviews change grades.

    ``clock`` (seconds, monotonic) is injectable for tests; keyword arguments ``window``,
    ``min_samples`` and ``alpha`` go to :func:`update_outcomes`.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_age_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        window: int = 20,
        min_samples: int = 3,
        alpha: float = 0.1,
    ) -> None:
        if max_age_s <= 0:
            msg = f"max_age_s must be > 0 seconds, got {max_age_s}"
            raise ValueError(msg)
        self.store = store
        self.max_age_s = float(max_age_s)
        self._clock = clock
        self._window, self._min_samples, self._alpha = window, min_samples, alpha
        self._lock = threading.Lock()
        self._stats: dict[str, RuleStats] | None = None
        self._loaded_at = 0.0
        self._verdicts: dict[str, tuple[tuple[str, str], ...]] = {}
        self.reloads = 0
        """How often the stats were read from the store (for tests and logs)."""

    def rule_stats(self) -> dict[str, RuleStats]:
        """``RuleStats`` per rule id (cached; see the class docstring). Do not mutate the result."""
        with self._lock:
            now = self._clock()
            if self._stats is None or now - self._loaded_at > self.max_age_s:
                self._stats = rule_success(self.store)
                self._loaded_at = now
                self.reloads += 1
                logger.debug("loaded outcome stats of %d rule(s)", len(self._stats))
            return self._stats

    def invalidate(self) -> None:
        """Make the next :meth:`rule_stats` read the store."""
        with self._lock:
            self._stats = None

    def record(self, recorded: Iterable[RecordedAdvice]) -> list[OutcomeRecord]:
        """Store the recommendations of newly recorded inspections, then update their machines' outcomes.

        Returns the outcome records of the machines updated (see :func:`update_outcomes`).
        """
        serials: list[str] = []
        for r in recorded:
            store_recommendation(self.store, r.inspection_id, r.machine_serial, r.recommendation)
            if r.machine_serial and r.machine_serial not in serials:
                serials.append(r.machine_serial)
        out: list[OutcomeRecord] = []
        for serial in serials:
            if self._has_recommendations(serial):
                out.extend(self._update(serial))
        return out

    def recompute(self, machine_serial: str) -> tuple[int, list[OutcomeRecord]]:
        """Backfill ``machine_serial``'s recommendations from the evidence records and recompute its
        outcomes; returns (inspections backfilled, outcome records)."""
        added = backfill_recommendations(self.store, machine_serial)
        return added, self._update(machine_serial)

    def _has_recommendations(self, serial: str) -> bool:
        with self.store.session() as s:
            stmt = select(RecommendationRow.id).where(RecommendationRow.machine_serial == serial).limit(1)
            return s.scalar(stmt) is not None

    def _update(self, serial: str) -> list[OutcomeRecord]:
        outcomes = update_outcomes(
            self.store, serial, window=self._window, min_samples=self._min_samples, alpha=self._alpha
        )
        verdicts = tuple((o.rule_id, o.outcome) for o in outcomes)
        with self._lock:
            if self._verdicts.get(serial) != verdicts:
                self._verdicts[serial] = verdicts
                self._stats = None  # a verdict changed (or first update here): reload on next use
        return outcomes
