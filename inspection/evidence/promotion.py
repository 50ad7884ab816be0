"""Model promotion and rollback: signed ledger records that say which model a store runs, and who approved it.

A **promotion** record (kind ``model.promotion``) or **rollback** record (kind ``model.rollback``) is
appended to the same hash-chained, signed ledger as inspections (:meth:`Ledger.append_in`, one write
transaction). Its ``data``::

    {"action": "promote" | "rollback",
     "model": {"name", "version", "sha256" (of model.safetensors), "config_sha256" (of config.json),
               "path" (the artifact folder relative to the models root, e.g. "weld-grader/2026.12.3")},
     "approved_by": "...",
     "report": {"file", "sha256", "bytes"} | null,      # the comparison report (promote)
     "no_report_reason": "..." | null,                  # why there is none (promote)
     "metrics": {...}, "metrics_source": "...", "metrics_json_sha256": hex | null,   (promote)
     "reason": "..." | null,                            # rollback: why
     "approved_record": {"seq", "record_hash"} | null,  # rollback: the earlier record naming the target
     "previous": {"name", "version", "sha256", "seq"} | null}   # the model that was current before

**The current model of a store** is the model named by its latest promotion or rollback record
(:func:`current_model`). When the ledger holds none, nothing is decided by the ledger: each process
runs the model it is configured with (``--model``, ``$WELDINSPECT_MODEL``, else the newest shipped
version) -- the behaviour before promotion records existed.

Claim bundles carry, for every model their inspection records name, the latest promotion/rollback
record naming that model's sha256 (:mod:`inspection.evidence.bundle_models`). Never imports torch
or the model package: callers identify an artifact (:class:`ModelIdentity`) and pass it in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from inspection.evidence.canonical import CanonicalError, canonical_json
from inspection.evidence.ledger import EvidenceRecord, Ledger
from inspection.store.db import Store
from inspection.store.models import EvidenceRecordRow

logger = logging.getLogger(__name__)

KIND_PROMOTION = "model.promotion"
KIND_ROLLBACK = "model.rollback"
MODEL_KINDS = (KIND_PROMOTION, KIND_ROLLBACK)
ACTIONS = {KIND_PROMOTION: "promote", KIND_ROLLBACK: "rollback"}
MAX_TEXT = 2000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PromotionError(ValueError):
    """A promotion or rollback cannot be recorded; the message says what is wrong and what is valid."""


def _hex64(value: Any, name: str) -> str:
    if not (isinstance(value, str) and _HEX64.match(value)):
        msg = f"{name} must be a 64-character lower-case hex SHA-256, got {value!r}"
        raise ValueError(msg)
    return value


def _text(value: Any, name: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        msg = f"{name} must be a non-empty string, got {value!r}"
        raise ValueError(msg)
    if len(value) > MAX_TEXT or "\x00" in value:
        msg = f"{name} must be at most {MAX_TEXT} characters without NUL, got {len(value)} characters"
        raise ValueError(msg)
    return value.strip()


def check_model_path(path: str) -> str:
    """A relative POSIX path below the models root (``name/version``); ValueError says what is valid."""
    p = PurePosixPath(path)
    parts = path.split("/")
    if not path or p.is_absolute() or "\\" in path or any(part in ("", ".", "..") for part in parts):
        msg = (
            f"model path {path!r} must be relative to the models root, without '.', '..' or backslashes "
            "(e.g. 'weld-grader/2026.12.3')"
        )
        raise ValueError(msg)
    return p.as_posix()


@dataclass(frozen=True)
class ModelIdentity:
    """What a promotion names: ``sha256`` of ``model.safetensors`` (the id every inspection record
    carries in ``model.sha256``), ``config_sha256`` of ``config.json`` and the artifact folder
    ``path`` relative to the models root."""

    name: str
    version: str
    sha256: str
    config_sha256: str
    path: str

    def __post_init__(self) -> None:
        _text(self.name, "model name")
        _text(self.version, "model version")
        _hex64(self.sha256, "model sha256")
        _hex64(self.config_sha256, "model config_sha256")
        check_model_path(self.path)

    def to_json(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "config_sha256": self.config_sha256,
            "path": self.path,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "model") -> ModelIdentity:
        if not isinstance(data, Mapping):
            msg = f"{where} must be an object with name, version, sha256, config_sha256, path"
            raise ValueError(msg)
        try:
            return cls(
                str(data["name"]),
                str(data["version"]),
                str(data["sha256"]),
                str(data["config_sha256"]),
                str(data["path"]),
            )
        except KeyError as exc:
            msg = f"{where} lacks {exc.args[0]!r} (needs name, version, sha256, config_sha256, path)"
            raise ValueError(msg) from exc

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.sha256[:12]})"


@dataclass(frozen=True)
class ReportRef:
    """The comparison report a promotion was decided on: its file name, SHA-256 and size."""

    file: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class ModelDecision:
    """One parsed promotion or rollback record (:func:`parse_decision`)."""

    seq: int
    record_hash: str
    created_at: str
    key_id: str | None
    action: str
    model: ModelIdentity
    approved_by: str
    data: Mapping[str, Any] = field(repr=False)

    @property
    def report(self) -> Mapping[str, Any] | None:
        value = self.data.get("report")
        return value if isinstance(value, Mapping) else None

    @property
    def reason(self) -> str | None:
        """The rollback reason, or a promotion's ``no_report_reason``."""
        value = self.data.get("reason") or self.data.get("no_report_reason")
        return str(value) if value else None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "record_hash": self.record_hash,
            "created_at": self.created_at,
            "key_id": self.key_id,
            "kind": KIND_PROMOTION if self.action == "promote" else KIND_ROLLBACK,
            "data": dict(self.data),
        }


def parse_decision(rec: EvidenceRecord) -> ModelDecision:
    """The promotion/rollback in ``rec``; ValueError naming the field when the record is not one."""
    if rec.kind not in MODEL_KINDS:
        msg = f"record seq {rec.seq} is a {rec.kind!r} record, not one of {', '.join(MODEL_KINDS)}"
        raise ValueError(msg)
    try:
        data = rec.data
    except (CanonicalError, ValueError) as exc:
        msg = f"record seq {rec.seq}: payload unreadable ({exc})"
        raise ValueError(msg) from exc
    model = ModelIdentity.from_json(data.get("model"), f"record seq {rec.seq} data.model")
    action = data.get("action")
    if action != ACTIONS[rec.kind]:
        msg = f"record seq {rec.seq}: action {action!r} does not match kind {rec.kind!r}"
        raise ValueError(msg)
    approved_by = _text(data.get("approved_by"), f"record seq {rec.seq} data.approved_by")
    return ModelDecision(
        rec.seq, rec.record_hash, rec.created_at, rec.key_id, str(action), model, approved_by, data
    )


# ---- the data of the records (pure) ----------------------------------------------------------------


def _previous(current: ModelDecision | None) -> dict[str, Any] | None:
    if current is None:
        return None
    m = current.model
    return {"name": m.name, "version": m.version, "sha256": m.sha256, "seq": current.seq}


def promotion_data(
    model: ModelIdentity,
    *,
    approved_by: str,
    report: ReportRef | None,
    no_report_reason: str | None,
    metrics: Mapping[str, Any],
    metrics_source: str,
    metrics_json_sha256: str | None,
    previous: ModelDecision | None,
) -> dict[str, Any]:
    """The ``data`` of a promotion record. A comparison report is required unless ``no_report_reason``
    says why there is none (not both)."""
    if report is None and not (no_report_reason and no_report_reason.strip()):
        msg = (
            "a promotion needs the comparison report it was decided on (--report R.json), or a reason "
            "why there is none (--no-report REASON)"
        )
        raise PromotionError(msg)
    if report is not None and no_report_reason:
        msg = "give either a comparison report or --no-report REASON, not both"
        raise PromotionError(msg)
    if report is not None:
        _hex64(report.sha256, "report sha256")
    if metrics_json_sha256 is not None:
        _hex64(metrics_json_sha256, "metrics_json_sha256")
    data = {
        "action": "promote",
        "model": model.to_json(),
        "approved_by": _text(approved_by, "approved_by"),
        "report": None if report is None else report.to_json(),
        "no_report_reason": None if report is not None else _text(no_report_reason, "no_report_reason"),
        "metrics": dict(metrics),
        "metrics_source": _text(metrics_source, "metrics_source"),
        "metrics_json_sha256": metrics_json_sha256,
        "previous": _previous(previous),
    }
    try:
        canonical_json(data)
    except CanonicalError as exc:
        msg = f"the metrics cannot be recorded as canonical JSON: {exc}"
        raise PromotionError(msg) from exc
    return data


def rollback_data(
    model: ModelIdentity,
    *,
    approved_by: str,
    reason: str,
    approved_record: ModelDecision | None,
    previous: ModelDecision | None,
) -> dict[str, Any]:
    """The ``data`` of a rollback record: back to ``model``, naming the earlier record that approved it."""
    return {
        "action": "rollback",
        "model": model.to_json(),
        "approved_by": _text(approved_by, "approved_by"),
        "reason": _text(reason, "reason"),
        "approved_record": None
        if approved_record is None
        else {"seq": approved_record.seq, "record_hash": approved_record.record_hash},
        "previous": _previous(previous),
    }


# ---- reading and writing the ledger ----------------------------------------------------------------


def _decisions(session: Session, *, after_seq: int = 0, newest_first: bool = True) -> Iterable[ModelDecision]:
    order = EvidenceRecordRow.seq.desc() if newest_first else EvidenceRecordRow.seq
    stmt = (
        select(EvidenceRecordRow)
        .where(EvidenceRecordRow.kind.in_(MODEL_KINDS), EvidenceRecordRow.seq > after_seq)
        .order_by(order)
    )
    for row in session.scalars(stmt):
        rec = EvidenceRecord.from_row(row)
        try:
            yield parse_decision(rec)
        except ValueError as exc:
            logger.warning("skipping unreadable model record: %s", exc)


def latest_model_record(session: Session, *, after_seq: int = 0) -> EvidenceRecord | None:
    """The newest ``model.promotion`` / ``model.rollback`` record with ``seq > after_seq`` (unparsed)."""
    row = session.scalars(
        select(EvidenceRecordRow)
        .where(EvidenceRecordRow.kind.in_(MODEL_KINDS), EvidenceRecordRow.seq > after_seq)
        .order_by(EvidenceRecordRow.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else EvidenceRecord.from_row(row)


def current_in(session: Session) -> ModelDecision | None:
    """The store's current model decision (its latest readable promotion/rollback record), or None."""
    return next(iter(_decisions(session)), None)


def current_model(store: Store) -> ModelDecision | None:
    """The latest promotion/rollback record of ``store``; None = no model decided by the ledger."""
    with store.session() as s:
        return current_in(s)


def model_history(store: Store) -> list[ModelDecision]:
    """Every promotion and rollback record, oldest first."""
    with store.session() as s:
        return list(_decisions(s, newest_first=False))


def approval_of(session: Session, *, sha256: str, version: str | None = None) -> ModelDecision | None:
    """The latest promotion/rollback record naming weights ``sha256`` (and ``version`` when given)."""
    for decision in _decisions(session):
        if decision.model.sha256 == sha256 and (version is None or decision.model.version == version):
            return decision
    return None


def find_version(store: Store, name: str, version: str) -> ModelDecision | None:
    """The latest promotion/rollback record naming model ``name`` at ``version``, or None."""
    with store.session() as s:
        for decision in _decisions(s):
            if (decision.model.name, decision.model.version) == (name, version):
                return decision
    return None


def record_promotion(
    store: Store,
    ledger: Ledger,
    model: ModelIdentity,
    *,
    approved_by: str,
    report: ReportRef | None,
    no_report_reason: str | None = None,
    metrics: Mapping[str, Any],
    metrics_source: str,
    metrics_json_sha256: str | None = None,
) -> ModelDecision:
    """Append a signed promotion record of ``model`` (one write transaction, under the chain lock).

    Refuses (:class:`PromotionError`) when ``model`` (weights and config) is already current.
    """
    with store.write() as session:
        current = current_in(session)
        if current is not None and _same(current.model, model):
            msg = f"model {model.label} is already current (record seq {current.seq}); nothing to promote"
            raise PromotionError(msg)
        data = promotion_data(
            model,
            approved_by=approved_by,
            report=report,
            no_report_reason=no_report_reason,
            metrics=metrics,
            metrics_source=metrics_source,
            metrics_json_sha256=metrics_json_sha256,
            previous=current,
        )
        rec = ledger.append_in(session, KIND_PROMOTION, data)
    logger.info("promoted model %s as evidence seq %d (approved by %s)", model.label, rec.seq, approved_by)
    return parse_decision(rec)


def record_rollback(
    store: Store, ledger: Ledger, model: ModelIdentity, *, approved_by: str, reason: str
) -> ModelDecision:
    """Append a signed rollback record back to ``model`` (one write transaction, under the chain lock).

    Names the latest earlier record that approved the same weights (``approved_record``; None when
    the target was never promoted, e.g. the shipped model before the first promotion). Refuses when
    ``model`` is already current, or when an earlier record approved that version with other weights
    or another config (the files changed since).
    """
    with store.write() as session:
        current = current_in(session)
        if current is not None and _same(current.model, model):
            msg = f"model {model.label} is already current (record seq {current.seq}); nothing to roll back"
            raise PromotionError(msg)
        approved = approval_of(session, sha256=model.sha256, version=model.version)
        if approved is None:
            for decision in _decisions(session):
                m = decision.model
                if (m.name, m.version) == (model.name, model.version):
                    msg = (
                        f"record seq {decision.seq} approved {m.label} with config "
                        f"{m.config_sha256[:12]}, but {model.path} now holds {model.label} with config "
                        f"{model.config_sha256[:12]}: the files changed since; restore them or promote the "
                        "new files with a report"
                    )
                    raise PromotionError(msg)
        elif approved.model.config_sha256 != model.config_sha256:
            msg = (
                f"record seq {approved.seq} approved {model.label} with config "
                f"{approved.model.config_sha256[:12]}, but {model.path}/config.json hashes to "
                f"{model.config_sha256[:12]}: the files changed since"
            )
            raise PromotionError(msg)
        data = rollback_data(
            model, approved_by=approved_by, reason=reason, approved_record=approved, previous=current
        )
        rec = ledger.append_in(session, KIND_ROLLBACK, data)
    logger.info("rolled back to model %s as evidence seq %d (%s)", model.label, rec.seq, reason)
    return parse_decision(rec)


def _same(a: ModelIdentity, b: ModelIdentity) -> bool:
    return (a.sha256, a.config_sha256) == (b.sha256, b.config_sha256)
