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
from datetime import UTC, datetime
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
    values_match,
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


Combo = tuple[str | None, float | None]
"""(material, thickness_mm): a recommendation is judged on the history of its own combination."""


def _history(
    store: Store,
    serial: str,
    *,
    since: datetime | None = None,
    combos: Iterable[Combo] = (),
    before: int = 0,
) -> list[_HistoryRow]:
    """The machine's inspections oldest first, reviewed grades overriding the model's.

    With ``since``: only the inspections at or after it, plus, for each of ``combos``, the last
    ``before`` inspections of that material and thickness before it -- all that
    :func:`evaluate_outcomes` looks at for recommendations issued at or after ``since`` with a
    before-window of ``before``.
    """
    cols = (
        InspectionRow.id,
        InspectionRow.created_at,
        InspectionRow.params,
        InspectionRow.porosity_grade,
        InspectionRow.spatter_grade,
        InspectionRow.material,
        InspectionRow.thickness_mm,
    )
    base = select(*cols).where(InspectionRow.machine_serial == serial)
    with store.session() as s:
        if since is None:
            rows = list(s.execute(base.order_by(InspectionRow.created_at, InspectionRow.id)).all())
        else:
            rows = list(s.execute(base.where(InspectionRow.created_at >= since)).all())
            for material, thickness in set(combos):
                stmt = base.where(InspectionRow.created_at < since)
                stmt = stmt.where(
                    InspectionRow.material.is_(None)
                    if material is None
                    else InspectionRow.material == material
                )
                stmt = stmt.where(
                    InspectionRow.thickness_mm.is_(None)
                    if thickness is None
                    else InspectionRow.thickness_mm == thickness
                )
                order = (InspectionRow.created_at.desc(), InspectionRow.id.desc())
                rows.extend(s.execute(stmt.order_by(*order).limit(before)).all())
            rows.sort(key=lambda r: (as_utc(r[1]), r[0]))
        review_stmt = (
            select(ReviewRow.inspection_id, ReviewRow.porosity_grade, ReviewRow.spatter_grade)
            .join(InspectionRow, InspectionRow.id == ReviewRow.inspection_id)
            .where(InspectionRow.machine_serial == serial)
            .order_by(ReviewRow.created_at)
        )
        if since is not None and rows:
            review_stmt = review_stmt.where(InspectionRow.created_at >= rows[0][1])
        reviews = s.execute(review_stmt).all()
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


@dataclass(frozen=True)
class _Evaluated:
    """One recommendation's freshly computed outcome.

    ``settled``: applied, and its after-run is complete (``window`` matching inspections, or ended
    by a later inspection with other settings), so later inspections cannot change it (reviews
    can: the dashboard's *Recompute outcomes* re-evaluates everything).
    """

    rec_id: str
    serial: str
    issued: IssuedRecommendation
    combo: Combo
    record: OutcomeRecord
    applied_id: str | None
    settled: bool


def _is_settled(
    same: Sequence[_HistoryRow], issued: IssuedRecommendation, out: OutcomeRecord, window: int
) -> bool:
    if out.applied_at is None:
        return False
    records = sorted((h.record for h in same), key=lambda r: r.timestamp)
    start = next((i for i, r in enumerate(records) if r.timestamp == out.applied_at), None)
    if start is None:
        return False
    for run, r in enumerate(records[start:], start=1):
        if not values_match(r.params.get(issued.parameter), issued.new_value):
            return True  # the settings changed again: the after-run is over
        if run >= window:
            return True
    return False


def _evaluate(
    store: Store, recs: Sequence[repo.RecommendationInfo], *, window: int, min_samples: int, alpha: float
) -> list[_Evaluated]:
    """Outcomes of ``recs`` (recommendations with a machine serial), reading only the history they need."""
    combos: dict[str, Combo] = {}
    with store.session() as s:
        for chunk in repo.id_chunks([r.inspection_id for r in recs]):
            stmt = select(InspectionRow.id, InspectionRow.material, InspectionRow.thickness_mm)
            for iid, material, thickness in s.execute(stmt.where(InspectionRow.id.in_(chunk))).all():
                combos[iid] = (material, thickness)
    by_serial: dict[str, list[tuple[repo.RecommendationInfo, IssuedRecommendation]]] = {}
    for rec in recs:
        issued = _issued(rec)
        if issued is not None and rec.machine_serial:
            by_serial.setdefault(str(rec.machine_serial), []).append((rec, issued))
    results: list[_Evaluated] = []
    for serial, items in by_serial.items():
        since = min(issued.timestamp for _, issued in items)
        needed = {combos.get(rec.inspection_id, (None, None)) for rec, _ in items}
        history = _history(store, serial, since=since, combos=needed, before=window)
        for rec, issued in items:
            combo = combos.get(rec.inspection_id, (None, None))
            same = [h for h in history if (h.material, h.thickness_mm) == combo]
            (out,) = evaluate_outcomes(
                [h.record for h in same], [issued], window=window, min_samples=min_samples, alpha=alpha
            )
            applied_id = None
            if out.applied_at is not None:
                applied_id = next((h.id for h in same if h.record.timestamp == out.applied_at), None)
            settled = _is_settled(same, issued, out, window)
            results.append(_Evaluated(rec.id, serial, issued, combo, out, applied_id, settled))
    return results


def _write_outcomes(store: Store, evaluated: Sequence[_Evaluated]) -> None:
    """Store one outcome row per evaluated recommendation (update it if present; never a duplicate)."""
    now = utcnow()
    with store.write() as s:
        existing: dict[str, list[RecommendationOutcomeRow]] = {}
        for chunk in repo.id_chunks([e.rec_id for e in evaluated]):
            stmt = (
                select(RecommendationOutcomeRow)
                .where(RecommendationOutcomeRow.recommendation_id.in_(chunk))
                .order_by(RecommendationOutcomeRow.computed_at, RecommendationOutcomeRow.id)
            )
            for row in s.scalars(stmt):
                existing.setdefault(row.recommendation_id, []).append(row)
        for e in evaluated:
            fields = _outcome_fields(e.record, e.applied_id)
            rows = existing.get(e.rec_id, [])
            if not rows:
                repo.add_recommendation_outcome(s, recommendation_id=e.rec_id, computed_at=now, **fields)
                continue
            for extra in rows[1:]:  # a duplicate written by someone else: keep one row only
                s.delete(extra)
            for name, value in fields.items():
                setattr(rows[0], name, value)
            rows[0].computed_at = now
        s.flush()


def _recommendations(store: Store, ids: Sequence[str]) -> list[repo.RecommendationInfo]:
    """The stored recommendations with these ids, oldest first."""
    with store.session() as s:
        return repo.get_recommendations(s, list(ids))


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
    evaluated = _evaluate(store, recs, window=window, min_samples=min_samples, alpha=alpha)
    _write_outcomes(store, evaluated)
    order = {r.id: i for i, r in enumerate(recs)}
    evaluated.sort(key=lambda e: order[e.rec_id])
    logger.info("computed %d recommendation outcome(s) (machine %s)", len(evaluated), machine_serial or "all")
    return [e.record for e in evaluated]


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


@dataclass(frozen=True)
class _Open:
    """A recommendation whose outcome later inspections may still change."""

    issued: IssuedRecommendation
    combo: Combo
    applied: bool


class OutcomeTracker:
    """Keeps one store's recommendations, outcomes and per-rule stats current (thread-safe).

    The service's recorder and the batch ``--ledger`` hook each hold one:

    * :meth:`rule_stats` -- ``RuleStats`` per rule for ranking the next recommendation, from a
      cache of every recommendation's verdict. The cache is read from the store
      (:func:`tracked_outcomes`) on first use, after :meth:`invalidate`, and when it is older than
      ``max_age_s`` (which picks up outcomes written by other processes: another service, batch
      scoring, a dashboard of another process); outcome updates made through this tracker update
      it in memory.
    * :meth:`record` -- after inspections were recorded: store each recommendation's changes
      (:func:`store_recommendation`), then update the outcomes that the new inspections can
      change, per machine: the new recommendations, the applied ones whose after-window is still
      open, and the not-yet-applied ones whose new value a new inspection now uses. Settled
      outcomes are not recomputed and only the history those outcomes need is read, so the cost
      of an upload does not grow with the machine's history. The first update of a machine in this
      process (and the first after ``max_age_s``) evaluates all of its recommendations
      (:func:`update_outcomes`). A machine without any stored recommendation costs one indexed
      query.
    * :meth:`recompute` -- backfill from the evidence records and recompute one machine (the
      dashboard's *Recompute outcomes* button); needed after reviews change grades.

    ``clock`` (seconds, monotonic) is injectable for tests; keyword arguments ``window``,
    ``min_samples`` and ``alpha`` go to :func:`evaluate_outcomes`.
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
        self._lock = threading.RLock()
        self._verdicts: dict[str, tuple[str, str]] | None = None  # rec id -> (rule id, outcome)
        self._stats: dict[str, RuleStats] | None = None
        self._loaded_at = 0.0
        self._open: dict[str, dict[str, _Open]] = {}  # machine -> rec id -> open recommendation
        self._open_at: dict[str, float] = {}
        self.reloads = 0
        """How often the verdicts were read from the store (for tests and logs)."""
        self.evaluations = 0
        """How many recommendation outcomes this tracker computed (for tests and logs)."""

    # -- per-rule stats ------------------------------------------------------------------------
    def rule_stats(self) -> dict[str, RuleStats]:
        """``RuleStats`` per rule id (cached; see the class docstring). Do not mutate the result."""
        with self._lock:
            self._fresh_verdicts()
            if self._stats is None:
                records = [
                    OutcomeRecord(rule, "", 0.0, _EPOCH, None, outcome)
                    for rule, outcome in (self._verdicts or {}).values()
                ]
                self._stats = rule_stats(records)
            return self._stats

    def _fresh_verdicts(self) -> dict[str, tuple[str, str]]:
        now = self._clock()
        if self._verdicts is None or now - self._loaded_at > self.max_age_s:
            self._verdicts = {
                t.recommendation_id: (t.rule_id, t.outcome)
                for t in tracked_outcomes(self.store)
                if t.outcome != "pending"
            }
            self._stats = None
            self._loaded_at = now
            self.reloads += 1
            logger.debug("loaded %d recommendation verdict(s)", len(self._verdicts))
        return self._verdicts

    def invalidate(self) -> None:
        """Make the next :meth:`rule_stats` read the store (and the next update re-evaluate each machine)."""
        with self._lock:
            self._verdicts = None
            self._stats = None
            self._open.clear()

    # -- updates -------------------------------------------------------------------------------
    def record(self, recorded: Iterable[RecordedAdvice]) -> list[OutcomeRecord]:
        """Store the recommendations of newly recorded inspections, then update the outcomes they
        can change (see the class docstring). Returns the outcome records computed."""
        new_recs: dict[str, list[str]] = {}
        new_insp: dict[str, list[str]] = {}
        for r in recorded:
            ids = store_recommendation(self.store, r.inspection_id, r.machine_serial, r.recommendation)
            if r.machine_serial:
                new_recs.setdefault(r.machine_serial, []).extend(ids)
                new_insp.setdefault(r.machine_serial, []).append(r.inspection_id)
        out: list[OutcomeRecord] = []
        with self._lock:
            for serial, inspections in new_insp.items():
                if (
                    not new_recs[serial]
                    and serial not in self._open
                    and not self._has_recommendations(serial)
                ):
                    continue
                out.extend(self._update_after(serial, new_recs[serial], inspections))
        return out

    def recompute(self, machine_serial: str) -> tuple[int, list[OutcomeRecord]]:
        """Backfill ``machine_serial``'s recommendations from the evidence records and recompute its
        outcomes; returns (inspections backfilled, outcome records)."""
        added = backfill_recommendations(self.store, machine_serial)
        with self._lock:
            return added, self._update_all(machine_serial)

    def _has_recommendations(self, serial: str) -> bool:
        with self.store.session() as s:
            stmt = select(RecommendationRow.id).where(RecommendationRow.machine_serial == serial).limit(1)
            return s.scalar(stmt) is not None

    def _update_all(self, serial: str) -> list[OutcomeRecord]:
        recs = [r for r in self.store.list_recommendations(serial) if r.machine_serial]
        return self._apply(serial, recs, full=True)

    def _update_after(
        self, serial: str, new_rec_ids: Sequence[str], inspection_ids: Sequence[str]
    ) -> list[OutcomeRecord]:
        now = self._clock()
        if serial not in self._open or now - self._open_at.get(serial, now) > self.max_age_s:
            return self._update_all(serial)
        open_recs = self._open[serial]
        wanted = set(new_rec_ids) | {rid for rid, o in open_recs.items() if o.applied}
        waiting = {rid: o for rid, o in open_recs.items() if not o.applied}
        if waiting:
            with self.store.session() as s:
                stmt = select(
                    InspectionRow.created_at,
                    InspectionRow.params,
                    InspectionRow.material,
                    InspectionRow.thickness_mm,
                ).where(InspectionRow.id.in_(list(inspection_ids)))
                new_rows = s.execute(stmt).all()
            for created_at, params, material, thickness in new_rows:
                for rid, o in waiting.items():
                    if (
                        o.combo == (material, thickness)
                        and as_utc(created_at) >= o.issued.timestamp
                        and values_match((params or {}).get(o.issued.parameter), o.issued.new_value)
                    ):
                        wanted.add(rid)
        if not wanted:
            return []
        return self._apply(serial, _recommendations(self.store, sorted(wanted)), full=False)

    def _apply(
        self, serial: str, recs: Sequence[repo.RecommendationInfo], *, full: bool
    ) -> list[OutcomeRecord]:
        evaluated = _evaluate(
            self.store, recs, window=self._window, min_samples=self._min_samples, alpha=self._alpha
        )
        _write_outcomes(self.store, evaluated)
        self.evaluations += len(evaluated)
        open_recs = {} if full else self._open.get(serial, {})
        verdicts = self._verdicts
        changed = False
        for e in evaluated:
            if e.settled:
                open_recs.pop(e.rec_id, None)
            else:
                open_recs[e.rec_id] = _Open(e.issued, e.combo, e.record.applied_at is not None)
            if verdicts is not None and verdicts.get(e.rec_id) != (e.issued.rule_id, e.record.outcome):
                verdicts[e.rec_id] = (e.issued.rule_id, e.record.outcome)
                changed = True
        if changed:
            self._stats = None  # rebuilt from the verdicts in memory on the next use
        self._open[serial] = open_recs
        if full:
            self._open_at[serial] = self._clock()
        logger.debug("machine %s: %d outcome(s) computed, %d open", serial, len(evaluated), len(open_recs))
        return [e.record for e in evaluated]
