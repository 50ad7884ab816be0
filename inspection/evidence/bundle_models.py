"""The ``models`` section of claim bundles: which promotion record vouches for each model a bundle uses.

At export, :class:`PromotionIndex` is fed every record of the chain and picks, for every model the
subject inspection records name (by weights sha256), the latest ``model.promotion`` /
``model.rollback`` record naming it. ``manifest.json`` lists them::

    "models": {"ledger_records": n, "first_seq": seq | null,
               "used": [{"sha256", "name", "version", "promotion": [seq, record_hash] | null}]}

At verification, :func:`check_bundle_models` checks them (``promotion_missing``,
``promotion_mismatch``; ``null`` = unpromoted, a note). Bundles without the section (exported before
promotion records existed) are not checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from inspection.evidence.canonical import CanonicalError
from inspection.evidence.ledger import KIND_INSPECTION, EvidenceRecord
from inspection.evidence.promotion import MODEL_KINDS, parse_decision
from inspection.evidence.verify import Problem

logger = logging.getLogger(__name__)

MANIFEST_MODELS = "models"
"""Manifest key of the section (see the module docstring)."""


def _inspection_model(rec: EvidenceRecord) -> tuple[str, str, str] | None:
    """(sha256, name, version) of the model an inspection record names, or None."""
    if rec.kind != KIND_INSPECTION:
        return None
    try:
        model = rec.data.get("model")
    except (CanonicalError, ValueError):
        return None
    if not isinstance(model, Mapping) or not isinstance(model.get("sha256"), str):
        return None
    return str(model["sha256"]), str(model.get("name")), str(model.get("version"))


class PromotionIndex:
    """Fed every record of a chain in seq order (:meth:`feed`), it tells which promotion records a
    bundle of some subject records must carry (:meth:`for_subjects`)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_seq: int | None = None
        self._latest: dict[str, EvidenceRecord] = {}

    def feed(self, rec: EvidenceRecord) -> None:
        if rec.kind not in MODEL_KINDS:
            return
        self.count += 1
        if self.first_seq is None:
            self.first_seq = rec.seq
        try:
            sha = parse_decision(rec).model.sha256
        except ValueError as exc:
            logger.warning("model record not usable in a bundle: %s", exc)
            return
        self._latest[sha] = rec

    def for_subjects(self, subjects: Sequence[EvidenceRecord]) -> tuple[list[EvidenceRecord], dict[str, Any]]:
        """(the promotion records to include, the manifest's ``models`` section) for ``subjects``."""
        used: dict[str, tuple[str, str]] = {}
        for rec in subjects:
            found = _inspection_model(rec)
            if found is not None:
                used.setdefault(found[0], (found[1], found[2]))
        records: list[EvidenceRecord] = []
        entries: list[dict[str, Any]] = []
        for sha in sorted(used):
            name, version = used[sha]
            approval = self._latest.get(sha)
            if approval is not None:
                records.append(approval)
            entries.append(
                {
                    "sha256": sha,
                    "name": name,
                    "version": version,
                    "promotion": None if approval is None else [approval.seq, approval.record_hash],
                }
            )
        section = {"ledger_records": self.count, "first_seq": self.first_seq, "used": entries}
        return sorted(records, key=lambda r: r.seq), section


def check_bundle_models(
    manifest: Mapping[str, Any], full: Sequence[EvidenceRecord], subjects: Iterable[EvidenceRecord]
) -> tuple[list[Problem], list[str]]:
    """Check the promotion records of the models a bundle's subject records name.

    Old bundles (no ``models`` section in the manifest) are not checked; a note says so. Otherwise
    every model named by a subject inspection record must be listed; a listed promotion record must
    be in the bundle (``promotion_missing``), with the listed hash, be a promotion/rollback record
    naming that model's sha256, name and version (``promotion_mismatch``). A model listed without a
    promotion record is a note ("unpromoted"), not a failure.
    """
    section = manifest.get(MANIFEST_MODELS)
    if section is None:
        return [], ["manifest has no models section (exported before promotion records): not checked"]
    if not isinstance(section, Mapping) or not isinstance(section.get("used"), list):
        shape = "manifest models section is not {ledger_records, first_seq, used}"
        return [Problem("promotion_mismatch", shape)], []
    listed: dict[str, Mapping[str, Any]] = {}
    for entry in section["used"]:
        if isinstance(entry, Mapping) and isinstance(entry.get("sha256"), str):
            listed[str(entry["sha256"])] = entry
    by_seq = {r.seq: r for r in full}
    problems: list[Problem] = []
    notes: list[str] = []
    users: dict[str, list[EvidenceRecord]] = {}
    for rec in subjects:
        found = _inspection_model(rec)
        if found is not None:
            users.setdefault(found[0], []).append(rec)
    for sha, recs in sorted(users.items()):
        first = min(recs, key=lambda r: r.seq)
        _, name, version = _inspection_model(first) or (sha, "?", "?")
        label = f"model {name} {version} ({sha[:12]})"
        entry = listed.get(sha)
        if entry is None:
            msg = f"{label}, used by record seq {first.seq}, is not listed in the manifest's models section"
            problems.append(Problem("promotion_missing", msg, first.seq, first.record_id))
            continue
        ref = entry.get("promotion")
        if ref is None:
            notes.append(_unpromoted_note(label, recs, section))
            continue
        found_problems = _check_ref(ref, label, sha, name, version, by_seq, first)
        problems.extend(found_problems)
        if not found_problems:
            notes.append(f"{label}: promotion record seq {ref[0]} checked")
    return problems, notes


def _unpromoted_note(label: str, recs: Sequence[EvidenceRecord], section: Mapping[str, Any]) -> str:
    n, first_seq = section.get("ledger_records"), section.get("first_seq")
    later = [r.seq for r in recs if isinstance(first_seq, int) and r.seq > first_seq]
    text = f"{label} is unpromoted: no promotion record names it"
    if later:
        text += (
            f"; {len(later)} of its records (first seq {later[0]}) were made after the ledger's first "
            f"promotion record (seq {first_seq}), with a model that was not promoted (pinned --model?)"
        )
    elif n:
        text += f" (the ledger holds {n} promotion/rollback record(s), all after these records)"
    return text


def _check_ref(
    ref: Any,
    label: str,
    sha: str,
    name: str,
    version: str,
    by_seq: Mapping[int, EvidenceRecord],
    first: EvidenceRecord,
) -> list[Problem]:
    if not (isinstance(ref, list) and len(ref) == 2 and isinstance(ref[0], int) and isinstance(ref[1], str)):
        msg = f"{label}: manifest promotion {ref!r} is not [seq, record_hash]"
        return [Problem("promotion_mismatch", msg)]
    seq, record_hash = ref
    rec = by_seq.get(seq)
    if rec is None:
        msg = f"{label}: its promotion record seq {seq} (listed in the manifest) is not in the bundle"
        return [Problem("promotion_missing", msg, first.seq, first.record_id)]
    if rec.record_hash != record_hash:
        msg = f"{label}: promotion record seq {seq} hashes to {rec.record_hash}, manifest: {record_hash}"
        return [Problem("promotion_mismatch", msg, seq, rec.record_id)]
    try:
        decision = parse_decision(rec)
    except ValueError as exc:
        return [Problem("promotion_mismatch", f"{label}: {exc}", seq, rec.record_id)]
    m = decision.model
    if (m.sha256, m.name, m.version) != (sha, name, version):
        msg = f"{label}: promotion record seq {seq} names {m.label}, not the model of the inspection records"
        return [Problem("promotion_mismatch", msg, seq, rec.record_id)]
    return []
