"""Verification of ONE evidence record for the detail page: its hash, signature and chain links.

Cheap (three rows read, one signature checked), unlike :func:`inspection.evidence.verify.verify_store`
which walks the whole chain. Signatures are checked against the store's key registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspection.evidence.canonical import GENESIS_HASH
from inspection.evidence.ledger import EvidenceRecord, get_record
from inspection.evidence.verify import Problem, check_record, registry_keys
from inspection.store import Store


@dataclass(frozen=True)
class EvidenceStatus:
    """One record and what its checks found; ``ok`` when ``problems`` is empty.

    ``next_linked`` is None when the record is the chain's head (no next record yet).
    """

    record: EvidenceRecord
    problems: tuple[Problem, ...]
    prev_linked: bool
    next_linked: bool | None
    recommendation: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return not self.problems and self.prev_linked and self.next_linked is not False


def evidence_status(store: Store, seq: int | None) -> EvidenceStatus | None:
    """The record with ``seq`` and its checks, or None when ``seq`` is None or unknown."""
    if seq is None:
        return None
    with store.session() as s:
        rec = get_record(s, seq)
        if rec is None:
            return None
        prev = get_record(s, seq - 1) if seq > 1 else None
        nxt = get_record(s, seq + 1)
    problems = list(check_record(rec, registry_keys(store)))
    expected_prev = GENESIS_HASH if seq == 1 else (None if prev is None else prev.record_hash)
    prev_linked = expected_prev is not None and rec.prev_hash == expected_prev
    if not prev_linked:
        problems.append(
            Problem(
                "broken_link",
                f"prev_hash {rec.prev_hash} is not the hash of record {seq - 1} ({expected_prev})",
                rec.seq,
                rec.record_id,
            )
        )
    next_linked = None if nxt is None else nxt.prev_hash == rec.record_hash
    if next_linked is False:
        problems.append(
            Problem(
                "broken_link", f"record {seq + 1} does not link to this record's hash", rec.seq, rec.record_id
            )
        )
    recommendation = None
    try:
        raw = rec.data.get("recommendation")
        recommendation = dict(raw) if isinstance(raw, dict) else None
    except ValueError:
        pass  # payload_invalid is already among the problems
    return EvidenceStatus(rec, tuple(problems), prev_linked, next_linked, recommendation)
