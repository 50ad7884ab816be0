"""Signed promotion/rollback records: the current model, history, refusals, claim bundles that carry
them, and a tamper table for them (codes: inspection/evidence/bundle.py). No model, no torch."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inspection.evidence.bundle import MANIFEST, MANIFEST_SIG, RECORDS, export_bundle, verify_bundle
from inspection.evidence.canonical import canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import Signer
from inspection.evidence.ledger import Ledger, build_payload, record_inspection
from inspection.evidence.promotion import (
    KIND_PROMOTION,
    KIND_ROLLBACK,
    ModelDecision,
    ModelIdentity,
    PromotionError,
    ReportRef,
    current_model,
    model_history,
    promotion_data,
    record_promotion,
    record_rollback,
)
from inspection.evidence.verify import VerifyReport, verify_store
from inspection.store import Store
from inspection.store.models import EvidenceRecordRow
from inspection.types import ModelInfo
from tests.evidence.factories import StepClock, make_result, open_store, png_bytes

A = ModelIdentity("weldnet", "1.0.0", "ab" * 32, "cd" * 32, "weldnet/1.0.0")  # factories.MODEL
B = ModelIdentity("weldnet", "1.1.0", "ef" * 32, "12" * 32, "weldnet/1.1.0")
REPORT = ReportRef("compare.json", "34" * 32, 1234)


def _inspect(store: Store, ledger: Ledger, seed: int, model: ModelIdentity, serial: str = "M-1") -> None:
    img = png_bytes(seed)
    info = ModelInfo(model.name, model.version, model.sha256)
    result = dataclasses.replace(make_result(img, serial=serial), model=info)
    record_inspection(store, ledger, result, img, config_sha256=model.config_sha256)


def _promote(store: Store, ledger: Ledger, model: ModelIdentity, **kw: Any) -> ModelDecision:
    args: dict[str, Any] = {
        "approved_by": "alice",
        "report": REPORT,
        "metrics": {"pore_recall": 0.81},
        "metrics_source": "report compare.json",
    }
    args.update(kw)
    return record_promotion(store, ledger, model, **args)


@dataclass
class Chain:
    store: Store
    signer: Signer
    ledger: Ledger


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    """seq 1 inspection M-1 (A, before any promotion); 2 promotion of B; 3 inspection M-2 (B);
    4 inspection M-1 (B); 5 rollback to A; 6 inspection M-1 (A)."""
    store = open_store(tmp_path)
    signer = Signer.generate("st-1")
    ledger = Ledger(store, signer, clock=StepClock())
    _inspect(store, ledger, 1, A)
    _promote(store, ledger, B)
    _inspect(store, ledger, 2, B, serial="M-2")
    _inspect(store, ledger, 3, B)
    record_rollback(store, ledger, A, approved_by="bob", reason="B misses pores on weld 7")
    _inspect(store, ledger, 4, A)
    return Chain(store, signer, ledger)


def test_current_model_is_the_latest_promotion_or_rollback(tmp_path: Path, chain: Chain) -> None:
    assert current_model(open_store(tmp_path / "empty")) is None  # no record: the configured model runs
    current = current_model(chain.store)
    assert current is not None and (current.seq, current.action, current.model) == (5, "rollback", A)
    assert current.data["approved_record"] is None  # A was never promoted (the shipped model)
    assert current.data["previous"] == {"name": "weldnet", "version": "1.1.0", "sha256": B.sha256, "seq": 2}
    assert current.reason == "B misses pores on weld 7" and current.approved_by == "bob"
    history = model_history(chain.store)
    assert [(d.seq, d.action, d.model.version) for d in history] == [
        (2, "promote", "1.1.0"),
        (5, "rollback", "1.0.0"),
    ]
    promo = history[0]
    assert promo.report == REPORT.to_json() and promo.data["metrics"] == {"pore_recall": 0.81}
    assert promo.data["no_report_reason"] is None and promo.data["previous"] is None
    assert verify_store(chain.store, {chain.signer.key_id: chain.signer.public_key}).ok


def test_promotion_needs_a_report_or_a_reason_and_a_change(chain: Chain) -> None:
    common: dict[str, Any] = {
        "approved_by": "a",
        "metrics": {},
        "metrics_source": "x",
        "metrics_json_sha256": None,
        "previous": None,
    }
    with pytest.raises(PromotionError, match=r"--report R\.json"):
        promotion_data(B, report=None, no_report_reason="  ", **common)
    with pytest.raises(PromotionError, match="not both"):
        promotion_data(B, report=REPORT, no_report_reason="x", **common)
    with pytest.raises(PromotionError, match="canonical JSON"):
        promotion_data(B, report=REPORT, no_report_reason=None, **{**common, "metrics": {"x": float("nan")}})
    data = promotion_data(B, report=None, no_report_reason="first model of a new line", **common)
    assert data["report"] is None and data["no_report_reason"] == "first model of a new line"
    with pytest.raises(PromotionError, match="already current"):
        _promote(chain.store, chain.ledger, A)
    with pytest.raises(ValueError, match="approved_by"):
        _promote(chain.store, chain.ledger, B, approved_by=" ")
    with pytest.raises(ValueError, match="relative to the models root"):
        dataclasses.replace(B, path="../elsewhere/1.1.0")


def test_rollback_refuses_files_changed_since_their_approval(chain: Chain) -> None:
    _promote(chain.store, chain.ledger, B)  # B current again (seq 7)
    altered = dataclasses.replace(A, config_sha256="99" * 32)
    with pytest.raises(PromotionError, match="files changed since"):
        record_rollback(chain.store, chain.ledger, altered, approved_by="bob", reason="x")
    back = record_rollback(chain.store, chain.ledger, A, approved_by="bob", reason="again")
    assert back.data["approved_record"]["seq"] == 5  # the earlier rollback record approved A


def test_bundle_carries_the_promotion_records_of_its_models(chain: Chain, tmp_path: Path) -> None:
    keys = {chain.signer.key_id: chain.signer.public_key}
    out = tmp_path / "claim.zip"
    summary = export_bundle(chain.store, out, serial="M-1", signer=chain.signer)
    assert summary.promotions == 2
    roles = {x["seq"]: x["role"] for x in _lines(_files(out))}
    assert roles == {1: "subject", 2: "promotion", 3: "link", 4: "subject", 5: "promotion", 6: "subject"}
    manifest = parse_json(_files(out)[MANIFEST].decode())
    used = {e["version"]: e["promotion"] for e in manifest["models"]["used"]}
    assert used == {"1.0.0": [5, _hash(chain, 5)], "1.1.0": [2, _hash(chain, 2)]}
    assert (manifest["models"]["ledger_records"], manifest["models"]["first_seq"]) == (2, 2)
    report = verify_bundle(out, keys)
    assert report.ok, [str(p) for p in report.problems]
    assert any("promotion record seq 5 checked" in n for n in report.notes)
    full = tmp_path / "full.zip"
    export_bundle(chain.store, full, serial="M-1", signer=chain.signer, full_chain=True)
    assert verify_bundle(full, keys).ok


def test_unpromoted_models_are_a_note_not_a_failure(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    signer = Signer.generate("st-1")
    ledger = Ledger(store, signer, clock=StepClock())
    _inspect(store, ledger, 1, A)
    out = tmp_path / "claim.zip"
    export_bundle(store, out, serial="M-1", signer=signer)
    report = verify_bundle(out, {signer.key_id: signer.public_key})
    assert report.ok and any("unpromoted" in n for n in report.notes), report.notes
    _promote(store, ledger, B)
    _inspect(store, ledger, 2, A)  # a pinned, unpromoted model after the first promotion
    export_bundle(store, out, serial="M-1", signer=signer)
    report = verify_bundle(out, {signer.key_id: signer.public_key})
    assert report.ok
    assert any("after the ledger's first promotion record (seq 2)" in n for n in report.notes), report.notes


def test_old_bundles_without_a_models_section_still_verify(chain: Chain, tmp_path: Path) -> None:
    """What an exporter before promotion records wrote: no models section, no promotion role."""
    out = tmp_path / "claim.zip"
    export_bundle(chain.store, out, serial="M-1", signer=chain.signer)
    files = _files(out)
    lines = [x if x["role"] != "promotion" else _stub(chain, int(str(x["seq"]))) for x in _lines(files)]
    _set_lines(files, lines)
    manifest = parse_json(files[MANIFEST].decode())
    del manifest["models"]
    files[MANIFEST] = canonical_json(manifest).encode()
    _fix_manifest(files, resign=chain.signer)
    report = verify_bundle(_zip(tmp_path / "old.zip", files), {chain.signer.key_id: chain.signer.public_key})
    assert report.ok, [str(p) for p in report.problems]
    assert any("no models section" in n for n in report.notes)


# ---- tamper table ---------------------------------------------------------------------------------

Files = dict[str, bytes]


def _files(path: Path) -> Files:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _lines(files: Files) -> list[dict[str, object]]:
    return [json.loads(x) for x in files[RECORDS].decode().splitlines()]


def _set_lines(files: Files, lines: list[dict[str, object]]) -> None:
    files[RECORDS] = "".join(
        canonical_json(x) + "\n" for x in sorted(lines, key=lambda x: int(str(x["seq"])))
    ).encode()


def _fix_manifest(files: Files, *, resign: Signer | None = None) -> None:
    manifest = parse_json(files[MANIFEST].decode())
    manifest["files"] = {n: {"sha256": sha256_hex(b), "bytes": len(b)} for n, b in sorted(files.items())
                         if n not in (MANIFEST, MANIFEST_SIG)}  # fmt: skip
    files[MANIFEST] = canonical_json(manifest).encode()
    if resign is not None:
        sig = {"key_id": resign.key_id, "signature": resign.sign_hash(sha256_hex(files[MANIFEST]))}
        files[MANIFEST_SIG] = canonical_json(sig).encode()


def _zip(path: Path, files: Files) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def _hash(chain: Chain, seq: int) -> str:
    with chain.store.session() as s:
        row = s.get(EvidenceRecordRow, seq)
        assert row is not None
        return row.record_hash


def _stub(chain: Chain, seq: int) -> dict[str, object]:
    with chain.store.session() as s:
        row = s.get(EvidenceRecordRow, seq)
        assert row is not None
        return {"seq": seq, "role": "link", "record_hash": row.record_hash, "signature": row.signature,
                "key_id": row.key_id}  # fmt: skip


def _edit_promotion(files: Files, seq: int, edit: Callable[[dict[str, object]], None]) -> None:
    lines = _lines(files)
    for x in lines:
        if x["seq"] == seq:
            edit(x)
    _set_lines(files, lines)
    _fix_manifest(files)


def _models(files: Files, edit: Callable[[Any], object]) -> None:
    manifest = parse_json(files[MANIFEST].decode())
    edit(manifest["models"])
    files[MANIFEST] = canonical_json(manifest).encode()


def removed_promotion(files: Files) -> None:
    _set_lines(files, [x for x in _lines(files) if x["seq"] != 2])
    _fix_manifest(files)


def removed_promotion_and_its_listing(files: Files) -> None:
    """A careful tamperer without the key: the record and its manifest entry removed, hashes fixed."""
    removed_promotion(files)
    _models(files, lambda m: [e.update(promotion=None) for e in m["used"]])
    _fix_manifest(files)


def edited_approver(files: Files) -> None:
    _edit_promotion(files, 2, lambda x: x.update(payload=str(x["payload"]).replace('"alice"', '"mallory"')))


def edited_approver_rehashed(files: Files) -> None:
    def edit(x: dict[str, object]) -> None:
        x["payload"] = str(x["payload"]).replace('"alice"', '"mallory"')
        x["record_hash"] = sha256_hex(str(x["payload"]))

    _edit_promotion(files, 2, edit)


def forged_promotion(files: Files) -> None:
    """A promotion of model B made up with the forger's own key and listed in place of the real one."""
    rogue = Signer.generate("st-1")
    lines = _lines(files)
    real = next(x for x in lines if x["seq"] == 2)
    env = parse_json(str(real["payload"]))
    env["data"]["approved_by"] = "mallory"
    payload = build_payload(seq=2, prev_hash=env["prev_hash"], record_id=env["record_id"],
                            kind=KIND_PROMOTION, created_at=env["created_at"], key_id=rogue.key_id,
                            data=env["data"])  # fmt: skip
    real.update(payload=payload, record_hash=sha256_hex(payload), key_id=rogue.key_id)
    real["signature"] = rogue.sign_hash(str(real["record_hash"]))
    _set_lines(files, lines)
    _models(
        files,
        lambda m: [
            e.update(promotion=[2, real["record_hash"]]) for e in m["used"] if e["version"] == "1.1.0"
        ],
    )
    _fix_manifest(files)


def pointed_at_another_models_promotion(files: Files) -> None:
    """Model A's entry made to point at B's promotion record (seq 2), hashes listed correctly."""
    b = next(x for x in _lines(files) if x["seq"] == 2)
    _models(
        files,
        lambda m: [e.update(promotion=[2, b["record_hash"]]) for e in m["used"] if e["version"] == "1.0.0"],
    )
    _fix_manifest(files)


def listed_hash_changed(files: Files) -> None:
    _models(
        files, lambda m: [e.update(promotion=[5, "0" * 64]) for e in m["used"] if e["version"] == "1.0.0"]
    )
    _fix_manifest(files)


def model_left_out_of_manifest(files: Files) -> None:
    _models(files, lambda m: m.update(used=[e for e in m["used"] if e["version"] != "1.1.0"]))
    _fix_manifest(files)


def models_section_stripped(files: Files) -> None:
    """A downgrade to an 'old' bundle so that nothing is checked: the signed manifest changes."""
    manifest = parse_json(files[MANIFEST].decode())
    del manifest["models"]
    files[MANIFEST] = canonical_json(manifest).encode()


BUNDLE_CASES: list[tuple[Callable[[Files], None], tuple[str, ...]]] = [
    (removed_promotion, ("promotion_missing",)),
    (removed_promotion_and_its_listing, ("manifest_signature",)),
    (edited_approver, ("hash_mismatch",)),
    (edited_approver_rehashed, ("bad_signature",)),
    (forged_promotion, ("unknown_key", "manifest_signature")),
    (pointed_at_another_models_promotion, ("promotion_mismatch",)),
    (listed_hash_changed, ("promotion_mismatch",)),
    (model_left_out_of_manifest, ("promotion_missing",)),
    (models_section_stripped, ("manifest_signature",)),
]


@pytest.mark.parametrize(("tamper", "codes"), BUNDLE_CASES, ids=[c[0].__name__ for c in BUNDLE_CASES])
def test_promotion_tamper_in_a_bundle_is_caught_with_a_named_reason(
    chain: Chain, tmp_path: Path, tamper: Callable[[Files], None], codes: tuple[str, ...]
) -> None:
    out = tmp_path / "claim.zip"
    export_bundle(chain.store, out, serial="M-1", signer=chain.signer)
    files = _files(out)
    tamper(files)
    report: VerifyReport = verify_bundle(
        _zip(tmp_path / "t.zip", files), {chain.signer.key_id: chain.signer.public_key}
    )
    assert not report.ok
    found = {p.code for p in report.problems}
    assert set(codes) <= found, [str(p) for p in report.problems]
    assert all(p.message for p in report.problems)


def test_promotion_record_edited_in_the_database_is_caught(chain: Chain, tmp_path: Path) -> None:
    with chain.store.write() as s:
        row = s.get(EvidenceRecordRow, 5)
        assert row is not None and row.kind == KIND_ROLLBACK
        row.payload = row.payload.replace('"bob"', '"mallory"', 1)
    report = verify_store(chain.store, {chain.signer.key_id: chain.signer.public_key})
    first = report.first_problem
    assert first is not None and (first.code, first.seq) == ("hash_mismatch", 5)
    from inspection.evidence.bundle import BundleError

    with pytest.raises(BundleError, match="fails verification"):
        export_bundle(chain.store, tmp_path / "x.zip", serial="M-1", signer=chain.signer)
