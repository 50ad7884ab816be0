"""The claim report's "Reviews and audit" section: the miss-rate estimate and the model approvals (pure).

Built from what a claim bundle carries besides the subject records (:mod:`inspection.evidence.bundle`):

* :func:`miss_rate_summaries` reads ``audit/miss_rate.json`` (``this_machine`` and ``all_machines``,
  :meth:`inspection.evidence.audit.MissRateEstimate.to_json`) into :class:`MissRateSummary` rows,
  whose :meth:`~MissRateSummary.sentence` is the figure a guarantee fund uses: "of the welds accepted
  without review, at most x % were wrong (95 % upper bound, n audited)", x the upper end of the
  two-sided Clopper-Pearson interval;
* :func:`model_approvals` turns the manifest's ``models`` section and the bundle's promotion /
  rollback records (:mod:`inspection.evidence.promotion`) into one :class:`ModelApproval` row per
  model the subject records name: who approved it, when, on which comparison report (its sha256),
  and the rollbacks that concern it (a rollback *to* it that approved it, a later rollback *away*
  from it).

Anything missing or unreadable (bundles exported before these files existed) gives no rows; the
renderings then say the bundle does not carry them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from inspection.evidence.ledger import EvidenceRecord
from inspection.evidence.promotion import MODEL_KINDS, ModelDecision, parse_decision

logger = logging.getLogger(__name__)

METHOD_NAMES = {"clopper-pearson": "Clopper-Pearson", "wilson": "Wilson"}
SCOPES = (("this_machine", "this machine"), ("all_machines", "all machines"))
"""The keys of ``audit/miss_rate.json`` shown, and how the report names them."""


@dataclass(frozen=True)
class MissRateSummary:
    """One miss-rate estimate as the report states it (fractions, not percent)."""

    scope: str
    audited: int
    wrong: int
    drawn: int
    low: float
    high: float
    confidence: float = 0.95
    method: str = "clopper-pearson"
    wrong_means: str = ""

    @property
    def pending(self) -> int:
        return max(0, self.drawn - self.audited)

    def sentence(self) -> str:
        """The figure in words (the upper bound) for this scope."""
        if self.audited == 0:
            return (
                f"No audit sample has been reviewed yet ({self.scope}, {self.drawn} drawn): the miss rate "
                "of the welds accepted without review is unknown."
            )
        return (
            f"Of the welds accepted without review ({self.scope}), at most {100.0 * self.high:.1f} % were "
            f"wrong ({100.0 * self.confidence:.0f} % upper bound, {self.audited} audited)."
        )

    def detail(self) -> str:
        """How the figure was obtained: k of n, the interval, the drawn samples not reviewed yet."""
        if self.audited == 0:
            return ""
        method = METHOD_NAMES.get(self.method, self.method)
        low, high = 100.0 * self.low, 100.0 * self.high
        return (
            f"{self.wrong} of {self.audited} reviewed audit samples were wrong; "
            f"{100.0 * self.confidence:.0f} % {method} interval {low:.1f}-{high:.1f} %; "
            f"{self.drawn} drawn, {self.pending} not reviewed yet."
        )


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"expected a count, got {value!r}"
        raise ValueError(msg)
    return value


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        msg = f"expected a fraction in [0, 1], got {value!r}"
        raise ValueError(msg)
    return float(value)


def miss_rate_summaries(body: Mapping[str, Any] | None) -> tuple[MissRateSummary, ...]:
    """The estimates of ``audit/miss_rate.json`` (this machine first); () when absent or unreadable."""
    if not isinstance(body, Mapping):
        return ()
    out = []
    for key, scope in SCOPES:
        est = body.get(key)
        if not isinstance(est, Mapping):
            continue
        serial = est.get("serial")
        try:
            out.append(
                MissRateSummary(
                    scope=f"{scope} {serial}" if key == "this_machine" and serial else scope,
                    audited=_count(est.get("audited")),
                    wrong=_count(est.get("wrong")),
                    drawn=_count(est.get("drawn", 0)),
                    low=_share(est.get("low")),
                    high=_share(est.get("high")),
                    confidence=_share(est.get("confidence", 0.95)),
                    method=str(est.get("method", "clopper-pearson")),
                    wrong_means=str(est.get("wrong_means") or ""),
                )
            )
        except ValueError as exc:
            logger.warning("audit/miss_rate.json %s is unreadable (%s): left out of the report", key, exc)
    return tuple(out)


@dataclass(frozen=True)
class ModelApproval:
    """One model the report's inspections were graded with, and the record that approved it.

    ``action`` None: no promotion record names these weights (the configured model ran unpromoted).
    ``report_sha256`` the comparison report a promotion was decided on (None: ``note`` says why).
    ``rollback``: the rollbacks concerning this model, in words ("" when none).
    """

    name: str
    version: str
    sha256: str
    action: str | None = None
    seq: int | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    report_sha256: str | None = None
    note: str = ""
    rollback: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


def _decisions(records: Sequence[EvidenceRecord]) -> list[ModelDecision]:
    out = []
    for rec in sorted(records, key=lambda r: r.seq):
        if rec.kind not in MODEL_KINDS:
            continue
        try:
            out.append(parse_decision(rec))
        except ValueError as exc:
            logger.warning("model record left out of the report: %s", exc)
    return out


def _when(created_at: str) -> str:
    return created_at[:16].replace("T", " ")


def _approval(entry: Mapping[str, Any], by_seq: Mapping[int, ModelDecision]) -> ModelApproval:
    sha = str(entry.get("sha256"))
    name, version = str(entry.get("name")), str(entry.get("version"))
    listed = entry.get("promotion")
    decision = None
    if isinstance(listed, list | tuple) and listed and isinstance(listed[0], int):
        decision = by_seq.get(listed[0])
    if decision is None:
        note = (
            "no promotion record names these weights: the configured model ran"
            if listed is None
            else f"the listed promotion record (seq {listed[0] if listed else '?'}) is not in this bundle"
        )
        return ModelApproval(name, version, sha, note=note)
    report = decision.report
    report_sha = str(report["sha256"]) if report is not None and "sha256" in report else None
    note = ""
    rollback = ""
    if decision.action == "rollback":
        rollback = f"rollback to this model (seq {decision.seq}): {decision.reason or 'no reason given'}"
        prior = decision.data.get("approved_record")
        if isinstance(prior, Mapping) and isinstance(prior.get("seq"), int):
            note = f"restores the approval of record seq {prior['seq']}"
            earlier = by_seq.get(prior["seq"])
            if earlier is not None and earlier.report is not None:
                report_sha = str(earlier.report.get("sha256"))
        else:
            note = "the model was never promoted before (e.g. the shipped model)"
    elif report_sha is None:
        note = f"no comparison report: {decision.reason or 'no reason given'}"
    return ModelApproval(
        name=name,
        version=version,
        sha256=sha,
        action=decision.action,
        seq=decision.seq,
        approved_by=decision.approved_by,
        approved_at=_when(decision.created_at),
        report_sha256=report_sha,
        note=note,
        rollback=rollback,
    )


def model_approvals(
    models: Mapping[str, Any] | None, records: Sequence[EvidenceRecord]
) -> tuple[ModelApproval, ...] | None:
    """One row per model of the manifest's ``models`` section (None: the bundle has no such section).

    ``records``: the promotion/rollback records the bundle carries (others are ignored). A later
    rollback whose ``previous`` model is a listed model is added to that model's ``rollback`` text.
    """
    if not isinstance(models, Mapping) or not isinstance(models.get("used"), list):
        return None
    decisions = _decisions(records)
    by_seq = {d.seq: d for d in decisions}
    rows = []
    for entry in models["used"]:
        if not isinstance(entry, Mapping):
            continue
        row = _approval(entry, by_seq)
        away = [
            d
            for d in decisions
            if d.action == "rollback"
            and isinstance(d.data.get("previous"), Mapping)
            and d.data["previous"].get("sha256") == row.sha256
            and (row.seq is None or d.seq > row.seq)
        ]
        if away:
            texts = [
                f"rolled back to {d.model.name} {d.model.version} at seq {d.seq} ({_when(d.created_at)}) by "
                f"{d.approved_by}: {d.reason or 'no reason given'}"
                for d in away
            ]
            row = replace(row, rollback="; ".join(filter(None, [row.rollback, *texts])))
        rows.append(row)
    return tuple(rows)
