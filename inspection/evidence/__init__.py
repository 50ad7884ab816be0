"""Warranty evidence: canonical JSON, station keys, the hash-chained signed ledger, verification,
claim bundles and the fund's report. Never imports torch.

Typical use (batch scoring, the service)::

    store = Store.open(cfg.store.db_url, cfg.store.images_dir)
    ledger = Ledger(store, load_signer(cfg.store.keys_dir, station_id="st-1"))
    inspection_id, record = record_inspection(store, ledger, result, image_bytes, config_sha256=sha)
"""

from __future__ import annotations

from inspection.evidence.canonical import GENESIS_HASH, CanonicalError, canonical_json, is_canonical
from inspection.evidence.keys import (
    KeyFileError,
    KeyInfo,
    Signer,
    init_key,
    list_keys,
    load_public_keys,
    load_signer,
)
from inspection.evidence.ledger import (
    EvidenceRecord,
    IdempotencyConflictError,
    InspectionToRecord,
    Ledger,
    head_record,
    record_inspection,
    record_inspections,
    record_review,
)
from inspection.evidence.verify import Problem, VerifyReport, verify_store

__all__ = [
    "GENESIS_HASH",
    "CanonicalError",
    "EvidenceRecord",
    "IdempotencyConflictError",
    "InspectionToRecord",
    "KeyFileError",
    "KeyInfo",
    "Ledger",
    "Problem",
    "Signer",
    "VerifyReport",
    "canonical_json",
    "head_record",
    "init_key",
    "is_canonical",
    "list_keys",
    "load_public_keys",
    "load_signer",
    "record_inspection",
    "record_inspections",
    "record_review",
    "verify_store",
]
