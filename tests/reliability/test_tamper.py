"""Every tamper class, for the ledger and for the claim bundle, is caught with a named reason.

Ledger: verified as the fund would, against the independently held public key and a head reported
earlier (``weldinspect evidence verify --keys DIR --expect-head SEQ:HASH``). Bundle: verified offline
against the registered key (``weldinspect evidence verify-bundle --keys DIR``, which requires a signed
manifest). Each row names the problem code that must be reported (codes: inspection/evidence/verify.py
and inspection/evidence/bundle.py)."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from inspection.evidence.bundle import MANIFEST, MANIFEST_SIG, RECORDS, export_bundle, verify_bundle
from inspection.evidence.canonical import canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import Signer, public_key_pem
from inspection.evidence.ledger import Ledger, build_payload, record_inspection
from inspection.evidence.verify import VerifyReport, verify_store
from inspection.store import Store
from inspection.store.models import EvidenceRecordRow, InspectionRow
from tests.evidence.factories import CONFIG_SHA, StepClock, make_result, open_store, png_bytes

# ---- ledger ---------------------------------------------------------------------------------------


@dataclass
class Ledgered:
    store: Store
    db: Path
    signer: Signer
    head: tuple[int, str]
    image_shas: list[str]

    def sql(self, *statements: str, params: tuple[object, ...] = ()) -> None:
        """Edit the database file directly (foreign keys off), as an insider would."""
        con = sqlite3.connect(self.db)
        try:
            for st in statements:
                con.execute(st, params if "?" in st else ())
            con.commit()
        finally:
            con.close()

    def verify(self) -> VerifyReport:
        return verify_store(
            self.store, {self.signer.key_id: self.signer.public_key}, expected_heads=[self.head]
        )


@pytest.fixture
def ledgered(tmp_path: Path) -> Ledgered:
    """Six signed inspection records (seq 1-6); the head (6, hash) was reported to the fund."""
    store = open_store(tmp_path)
    signer = Signer.generate("st-1")
    ledger = Ledger(store, signer, clock=StepClock())
    shas: list[str] = []
    rec = None
    for i in range(6):
        img = png_bytes(i)
        _, rec = record_inspection(
            store, ledger, make_result(img, porosity=i % 4), img, config_sha256=CONFIG_SHA
        )
        shas.append(rec.data["image"]["sha256"])
    assert rec is not None
    ctx = Ledgered(store, tmp_path / "weld.db", signer, (rec.seq, rec.record_hash), shas)
    assert ctx.verify().ok
    return ctx


def _rows(s: object) -> list[EvidenceRecordRow]:
    return list(s.query(EvidenceRecordRow).order_by(EvidenceRecordRow.seq))  # type: ignore[attr-defined]


def _resign(
    row: EvidenceRecordRow, signer: Signer, *, prev_hash: str, data_edit: Callable[[dict], None] | None = None
) -> None:
    env = parse_json(row.payload)
    data = dict(env["data"])
    if data_edit is not None:
        data_edit(data)
    row.payload = build_payload(seq=row.seq, prev_hash=prev_hash, record_id=row.record_id, kind=row.kind,
                                created_at=env["created_at"], key_id=signer.key_id, data=data)  # fmt: skip
    row.prev_hash, row.key_id = prev_hash, signer.key_id
    row.record_hash = sha256_hex(row.payload)
    row.signature = signer.sign_hash(row.record_hash)


def _register(c: Ledgered, rogue: Signer, s: object) -> None:
    Ledger(c.store, rogue)._register_key(s)  # the attacker controls the database


def edited_field(c: Ledgered) -> None:
    with c.store.write() as s:
        row = _rows(s)[2]
        row.payload = row.payload.replace('"op-7"', '"op-8"', 1)


def edited_and_rehashed(c: Ledgered) -> None:
    with c.store.write() as s:
        row = _rows(s)[2]
        row.payload = row.payload.replace('"op-7"', '"op-8"', 1)
        row.record_hash = sha256_hex(row.payload)


def deleted_record(c: Ledgered) -> None:
    with c.store.write() as s:
        s.query(InspectionRow).filter(InspectionRow.evidence_seq == 4).delete()
        s.delete(_rows(s)[3])


def reordered(c: Ledgered) -> None:
    c.sql(
        "UPDATE evidence_records SET seq=-2 WHERE seq=2",
        "UPDATE evidence_records SET seq=2 WHERE seq=3",
        "UPDATE evidence_records SET seq=3 WHERE seq=-2",
    )


def inserted(c: Ledgered) -> None:
    """A forged record slipped in at seq 4 (the later ones moved up), linked and signed by a rogue key."""
    rogue = Signer.generate("st-1")
    with c.store.write() as s:
        _register(c, rogue, s)
        rows = _rows(s)
        template = EvidenceRecordRow(seq=4, record_id="f" * 36, kind=rows[2].kind,
                                     created_at=rows[2].created_at, payload=rows[2].payload,
                                     prev_hash="", record_hash="")  # fmt: skip
        _resign(
            template,
            rogue,
            prev_hash=rows[2].record_hash,
            data_edit=lambda d: d.update(inspection_id="forged"),
        )
        forged = (template.record_id, template.kind, rows[2].created_at.isoformat(sep=" "), template.payload,
                  template.prev_hash, template.record_hash, template.signature, template.key_id)  # fmt: skip
    c.sql(*(f"UPDATE evidence_records SET seq={n + 1} WHERE seq={n}" for n in (6, 5, 4)))
    c.sql(
        "INSERT INTO evidence_records (seq, record_id, kind, created_at, payload, prev_hash, record_hash, "
        "signature, key_id) VALUES (4, ?, ?, ?, ?, ?, ?, ?, ?)",
        params=forged,
    )


def truncated_tail(c: Ledgered) -> None:
    with c.store.write() as s:
        s.query(InspectionRow).filter(InspectionRow.evidence_seq == 6).delete()
        s.delete(_rows(s)[5])


def resigned_with_foreign_key(c: Ledgered) -> None:
    rogue = Signer.generate("st-1")
    with c.store.write() as s:
        _register(c, rogue, s)
        rows = _rows(s)
        prev = rows[0].record_hash
        for row in rows[1:]:
            _resign(row, rogue, prev_hash=prev)
            prev = row.record_hash


def broken_hash_link(c: Ledgered) -> None:
    """Record 5 re-signed with the real key (an insider holding it), pointing at a made-up predecessor."""
    with c.store.write() as s:
        _resign(_rows(s)[4], c.signer, prev_hash="0" * 63 + "1")


def altered_image_blob(c: Ledgered) -> None:
    path = c.store.images.path_for(c.image_shas[1])
    path.chmod(0o644)
    path.write_bytes(png_bytes(999))


LEDGER_CASES: list[tuple[Callable[[Ledgered], None], str, int | None]] = [
    (edited_field, "hash_mismatch", 3),
    (edited_and_rehashed, "bad_signature", 3),
    (deleted_record, "seq_gap", 5),
    (reordered, "field_mismatch", 2),
    (inserted, "unknown_key", 4),
    (truncated_tail, "head_missing", 6),
    (resigned_with_foreign_key, "unknown_key", 2),
    (broken_hash_link, "broken_link", 5),
    (altered_image_blob, "image_mismatch", 2),
]


@pytest.mark.parametrize(("tamper", "code", "seq"), LEDGER_CASES, ids=[c[0].__name__ for c in LEDGER_CASES])
def test_ledger_tamper_is_caught_with_a_named_reason(
    ledgered: Ledgered, tamper: Callable[[Ledgered], None], code: str, seq: int | None
) -> None:
    tamper(ledgered)
    report = ledgered.verify()
    assert not report.ok
    first = report.first_problem
    assert first is not None and (first.code, first.seq) == (code, seq), [str(p) for p in report.problems]
    assert first.message  # the reason is said in words too


def test_truncation_and_rewrite_need_the_anchored_head(ledgered: Ledgered) -> None:
    """Without --expect-head a clean truncation verifies; a foreign-key rewrite verifies against the
    database's own registry. The anchored head (and trusted keys) are what catch them."""
    truncated_tail(ledgered)
    assert verify_store(ledgered.store).ok
    resigned_with_foreign_key(ledgered)
    assert verify_store(ledgered.store).ok
    codes = {p.code for p in ledgered.verify().problems}
    assert {"head_missing", "unknown_key"} <= codes


# ---- bundle ---------------------------------------------------------------------------------------

Files = dict[str, bytes]


@dataclass(frozen=True)
class Exported:
    path: Path
    signer: Signer

    def verify(self, path: Path) -> VerifyReport:
        return verify_bundle(path, {self.signer.key_id: self.signer.public_key})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A signed subset bundle of machine A (records 1, 2, 4, 5, 7, 8; B at 3, 6, 9)."""
    tmp = tmp_path_factory.mktemp("tamper-bundle")
    store = open_store(tmp)
    signer = Signer.generate("st-1")
    ledger = Ledger(store, signer, clock=StepClock(step=timedelta(days=1)))
    for i in range(9):
        img = png_bytes(i)
        result = make_result(img, serial="B" if i % 3 == 2 else "A", porosity=2 if i in (3, 4) else 0)
        record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
    path = tmp / "claim.zip"
    export_bundle(store, path, serial="A", signer=signer)
    store.close()
    out = Exported(path, signer)
    assert out.verify(path).ok
    return out


def _lines(files: Files) -> list[dict[str, object]]:
    return [json.loads(x) for x in files[RECORDS].decode().splitlines()]


def _set_lines(files: Files, lines: list[dict[str, object]]) -> None:
    files[RECORDS] = "".join(
        canonical_json(x) + "\n" for x in sorted(lines, key=lambda x: int(str(x["seq"])))
    ).encode()


def _fix_manifest(files: Files, *, resign: Signer | None = None) -> None:
    """What a careful tamperer does: recompute the manifest's hashes and subject list (and re-sign
    with whatever key they have)."""
    manifest = parse_json(files[MANIFEST].decode())
    manifest["files"] = {n: {"sha256": sha256_hex(b), "bytes": len(b)} for n, b in sorted(files.items())
                         if n not in (MANIFEST, MANIFEST_SIG)}  # fmt: skip
    manifest["subject_records"] = [
        [x["seq"], x["record_hash"]] for x in _lines(files) if x["role"] == "subject"
    ]
    files[MANIFEST] = canonical_json(manifest).encode()
    if resign is not None:
        sig = {"key_id": resign.key_id, "signature": resign.sign_hash(sha256_hex(files[MANIFEST]))}
        files[MANIFEST_SIG] = canonical_json(sig).encode()


def missing_signature(files: Files) -> None:
    del files[MANIFEST_SIG]


def edited_signature(files: Files) -> None:
    sig = parse_json(files[MANIFEST_SIG].decode())
    sig["signature"] = ("0" if sig["signature"][0] != "0" else "1") + sig["signature"][1:]
    files[MANIFEST_SIG] = canonical_json(sig).encode()


def removed_record(files: Files) -> None:
    _set_lines(files, [x for x in _lines(files) if x["seq"] != 8])  # the last subject: nothing links to it


def removed_record_manifest_fixed(files: Files) -> None:
    removed_record(files)
    _fix_manifest(files)


def removed_record_downgraded(files: Files) -> None:
    removed_record_manifest_fixed(files)
    del files[MANIFEST_SIG]


def added_record(files: Files) -> None:
    rogue = Signer.generate("st-1")
    lines = _lines(files)
    template = next(x for x in lines if x["seq"] == 8)
    head = next(x for x in lines if x["seq"] == 9)
    env = parse_json(str(template["payload"]))
    payload = build_payload(seq=10, prev_hash=str(head["record_hash"]), record_id="f" * 36, kind=env["kind"],
                            created_at=env["created_at"], key_id=rogue.key_id, data=env["data"])  # fmt: skip
    record_hash = sha256_hex(payload)
    forged = {
        "seq": 10,
        "record_id": "f" * 36,
        "payload": payload,
        "prev_hash": head["record_hash"],
        "record_hash": record_hash,
        "key_id": rogue.key_id,
        "signature": rogue.sign_hash(record_hash),
    }
    lines.append({**template, **forged})
    _set_lines(files, lines)
    _fix_manifest(files)


def modified_record(files: Files) -> None:
    lines = _lines(files)
    for x in lines:
        if x["seq"] == 4:
            x["payload"] = str(x["payload"]).replace('"grade":2', '"grade":0', 1)
    _set_lines(files, lines)
    _fix_manifest(files)


def swapped_image(files: Files) -> None:
    name = sorted(n for n in files if n.startswith("images/"))[0]
    files[name] = png_bytes(999)
    _fix_manifest(files)


def edited_manifest(files: Files) -> None:
    manifest = parse_json(files[MANIFEST].decode())
    manifest["serial"] = "Z-1"
    files[MANIFEST] = canonical_json(manifest).encode()


def foreign_key(files: Files) -> None:
    """A forger with their own key: every record rebuilt, relinked and re-signed, keys replaced, manifest
    re-signed. Self-consistent; only the registered key shows it."""
    rogue = Signer.generate("st-1")
    new_hash: dict[int, str] = {}
    lines = _lines(files)
    for x in sorted(lines, key=lambda x: int(str(x["seq"]))):
        seq = int(str(x["seq"]))
        x["key_id"] = rogue.key_id
        if x["role"] == "subject":
            env = parse_json(str(x["payload"]))
            env["key_id"] = rogue.key_id
            if seq - 1 in new_hash:
                env["prev_hash"] = x["prev_hash"] = new_hash[seq - 1]
            x["payload"] = canonical_json(env)
            x["record_hash"] = sha256_hex(str(x["payload"]))
        x["signature"] = rogue.sign_hash(str(x["record_hash"]))
        new_hash[seq] = str(x["record_hash"])
    _set_lines(files, lines)
    for name in [n for n in files if n.startswith("keys/")]:
        del files[name]
    files[f"keys/{rogue.key_id}.pub"] = public_key_pem(rogue.public_key).encode()
    _fix_manifest(files, resign=rogue)


BUNDLE_CASES: list[tuple[Callable[[Files], None], str]] = [
    (missing_signature, "manifest_unsigned"),
    (edited_signature, "manifest_signature"),
    (removed_record, "record_missing"),
    (removed_record_manifest_fixed, "manifest_signature"),
    (removed_record_downgraded, "manifest_unsigned"),
    (added_record, "unknown_key"),
    (modified_record, "hash_mismatch"),
    (swapped_image, "image_mismatch"),
    (edited_manifest, "manifest_signature"),
    (foreign_key, "unknown_key"),
]


def _zip(path: Path, files: Files) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize(("tamper", "code"), BUNDLE_CASES, ids=[c[0].__name__ for c in BUNDLE_CASES])
def test_bundle_tamper_is_caught_with_a_named_reason(
    exported: Exported, tmp_path: Path, tamper: Callable[[Files], None], code: str
) -> None:
    with zipfile.ZipFile(exported.path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    tamper(files)
    report = exported.verify(_zip(tmp_path / "tampered.zip", files))
    assert not report.ok
    codes = [p.code for p in report.problems]
    assert code in codes, [str(p) for p in report.problems]
    assert all(p.message for p in report.problems)


def test_flipped_byte_in_the_signature_member_is_a_verdict(exported: Exported, tmp_path: Path) -> None:
    """A byte flipped inside manifest.sig's compressed data: before, a zlib/BadZipFile traceback."""
    with zipfile.ZipFile(exported.path) as zf:
        info = zf.getinfo(MANIFEST_SIG)
    data = bytearray(exported.path.read_bytes())
    header = info.header_offset
    start = (
        header
        + 30
        + int.from_bytes(data[header + 26 : header + 28], "little")
        + int.from_bytes(data[header + 28 : header + 30], "little")
    )
    data[start + 3] ^= 0xFF
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(data))
    report = exported.verify(flipped)
    assert [p.code for p in report.problems] == ["corrupt_member"]
    assert MANIFEST_SIG in report.problems[0].message
