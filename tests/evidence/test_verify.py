"""Verification of the stored chain: every tamper case is detected and located (SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from inspection.evidence.canonical import canonical_json, parse_json, sha256_hex
from inspection.evidence.keys import Signer
from inspection.evidence.ledger import record_inspection, record_review
from inspection.evidence.verify import verify_store
from inspection.store import Store
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, open_store, png_bytes


@dataclass(frozen=True)
class Chain:
    store: Store
    db: Path
    signer: Signer
    image_shas: list[str]


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    """6 inspection records (seq 1-6) and a review of the 3rd (seq 7), all valid."""
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    ids, shas = [], []
    for i in range(6):
        img = png_bytes(i)
        iid, _ = record_inspection(
            store, ledger, make_result(img, porosity=i % 4), img, config_sha256=CONFIG_SHA
        )
        ids.append(iid)
        shas.append(make_result(img).image_sha256)
    record_review(store, ledger, inspection_id=ids[2], reviewer="q.lee", porosity_grade=3, spatter_grade=0)
    assert verify_store(store).ok
    return Chain(store, tmp_path / "weld.db", ledger.signer, shas)


def _sql(c: Chain, *statements: str, params: tuple[object, ...] = ()) -> None:
    con = sqlite3.connect(c.db)  # foreign keys off: an attacker editing the file directly
    try:
        for st in statements:
            con.execute(st, params if "?" in st else ())
        con.commit()
    finally:
        con.close()


def _row(c: Chain, seq: int) -> tuple[str, str]:
    con = sqlite3.connect(c.db)
    try:
        payload, record_hash = con.execute(
            "SELECT payload, record_hash FROM evidence_records WHERE seq=?", (seq,)
        ).fetchone()
    finally:
        con.close()
    return payload, record_hash


def edit_payload(c: Chain) -> None:
    payload, _ = _row(c, 3)
    _sql(
        c,
        "UPDATE evidence_records SET payload=? WHERE seq=3",
        params=(payload.replace('"grade":2', '"grade":0', 1),),
    )


def edit_payload_and_hash(c: Chain) -> None:
    payload, _ = _row(c, 3)
    edited = payload.replace('"grade":2', '"grade":0', 1)
    _sql(
        c,
        "UPDATE evidence_records SET payload=?, record_hash=? WHERE seq=3",
        params=(edited, sha256_hex(edited)),
    )


def resign_with_stolen_key_id(c: Chain) -> None:
    """Edit, re-hash and sign with another key while keeping the station's key id: a forgery."""
    payload, _ = _row(c, 3)
    edited = payload.replace('"grade":2', '"grade":0', 1)
    h = sha256_hex(edited)
    forged = Signer.generate().sign_hash(h)
    _sql(
        c,
        "UPDATE evidence_records SET payload=?, record_hash=?, signature=? WHERE seq=3",
        params=(edited, h, forged),
    )


def delete_record(c: Chain) -> None:
    _sql(c, "DELETE FROM inspections WHERE evidence_seq=4", "DELETE FROM evidence_records WHERE seq=4")


def delete_record_keep_row(c: Chain) -> None:
    _sql(c, "DELETE FROM evidence_records WHERE seq=4")


def truncate_head(c: Chain) -> None:
    _sql(
        c,
        "DELETE FROM reviews",
        "DELETE FROM evidence_records WHERE seq=7",
        "DELETE FROM evidence_records WHERE seq=6",
    )


def reorder_records(c: Chain) -> None:
    """Swap whole rows 2 and 3 (every column moves; only the seq numbers stay in place)."""
    _sql(
        c,
        "UPDATE evidence_records SET seq=-2 WHERE seq=2",
        "UPDATE evidence_records SET seq=2 WHERE seq=3",
        "UPDATE evidence_records SET seq=3 WHERE seq=-2",
    )


def swap_image(c: Chain) -> None:
    path = c.store.images.path_for(c.image_shas[4])
    path.chmod(0o644)
    path.write_bytes(png_bytes(999))


def delete_image(c: Chain) -> None:
    c.store.images.path_for(c.image_shas[1]).unlink()


def forge_signature(c: Chain) -> None:
    _, h = _row(c, 5)
    _sql(c, "UPDATE evidence_records SET signature=? WHERE seq=5", params=(Signer.generate().sign_hash(h),))


def drop_signature(c: Chain) -> None:
    _sql(c, "UPDATE evidence_records SET signature=NULL WHERE seq=5")


def edit_created_at(c: Chain) -> None:
    _sql(c, "UPDATE evidence_records SET created_at='2020-01-01 00:00:00.000000' WHERE seq=2")


def edit_inspection_row(c: Chain) -> None:
    _sql(c, "UPDATE inspections SET porosity_grade=0 WHERE evidence_seq=4")


def edit_review_row(c: Chain) -> None:
    _sql(c, "UPDATE reviews SET porosity_grade=1")


def edit_envelope_seq(c: Chain) -> None:
    """Rewrite the payload's own seq (and re-canonicalise): the hash no longer matches."""
    payload, _ = _row(c, 2)
    env = parse_json(payload)
    env["seq"] = 9
    _sql(c, "UPDATE evidence_records SET payload=? WHERE seq=2", params=(canonical_json(env),))


CASES: list[tuple[Callable[[Chain], None], str, int | None]] = [
    (edit_payload, "hash_mismatch", 3),
    (edit_payload_and_hash, "bad_signature", 3),
    (resign_with_stolen_key_id, "bad_signature", 3),
    (delete_record, "seq_gap", 5),
    (delete_record_keep_row, "seq_gap", 5),
    (reorder_records, "field_mismatch", 2),
    (swap_image, "image_mismatch", 5),
    (delete_image, "image_missing", 2),
    (forge_signature, "bad_signature", 5),
    (drop_signature, "missing_signature", 5),
    (edit_created_at, "field_mismatch", 2),
    (edit_inspection_row, "row_mismatch", 4),
    (edit_review_row, "row_mismatch", 7),
    (edit_envelope_seq, "hash_mismatch", 2),
    (truncate_head, "row_mismatch", None),
]


@pytest.mark.parametrize(("tamper", "code", "seq"), CASES, ids=[c[0].__name__ for c in CASES])
def test_tampering_is_detected_and_located(
    chain: Chain, tamper: Callable[[Chain], None], code: str, seq: int | None
) -> None:
    tamper(chain)
    report = verify_store(chain.store)
    assert not report.ok
    first = report.first_problem
    assert first is not None
    assert (first.code, first.seq) == (code, seq), [str(p) for p in report.problems]
    assert (first.record_id is not None) == (seq is not None)
    assert str(first).startswith(f"record seq {seq} ({first.record_id}): {code}:" if seq else f"{code}:")


def test_delete_breaks_the_link_too(chain: Chain) -> None:
    delete_record(chain)
    codes = {(p.code, p.seq) for p in verify_store(chain.store).problems}
    assert {("seq_gap", 5), ("broken_link", 5)} <= codes


def test_rewritten_chain_passes_only_without_trusted_keys(chain: Chain) -> None:
    """A rogue key re-signing everything from seq 3 on is caught only against independently held keys."""
    from inspection.evidence.ledger import Ledger, build_payload
    from inspection.store.models import EvidenceRecordRow

    rogue = Signer.generate("st-1")
    rogue_ledger = Ledger(chain.store, rogue)
    with chain.store.write() as s:
        rogue_ledger._register_key(s)  # the attacker controls the database
        rows = list(s.query(EvidenceRecordRow).order_by(EvidenceRecordRow.seq))
        prev = rows[1].record_hash
        for row in rows[2:]:
            env = parse_json(row.payload)
            payload = build_payload(
                seq=row.seq, prev_hash=prev, record_id=row.record_id, kind=row.kind,
                created_at=env["created_at"], key_id=rogue.key_id, data=env["data"],
            )  # fmt: skip
            row.payload, row.prev_hash, row.key_id = payload, prev, rogue.key_id
            row.record_hash = sha256_hex(payload)
            row.signature = rogue.sign_hash(row.record_hash)
            prev = row.record_hash
    assert verify_store(chain.store).ok  # self-consistent: the registry now holds the rogue key
    trusted = {chain.signer.key_id: chain.signer.public_key}
    report = verify_store(chain.store, trusted)
    assert report.first_problem is not None
    assert (report.first_problem.code, report.first_problem.seq) == ("unknown_key", 3)


def test_empty_store_verifies(tmp_path: Path) -> None:
    report = verify_store(open_store(tmp_path))
    assert report.ok and report.records == 0 and report.head_hash is None


def truncate_tail_cleanly(c: Chain) -> None:
    """Remove the last record (the review) with the row it mirrors: nothing left points at it."""
    _sql(c, "DELETE FROM reviews", "DELETE FROM evidence_records WHERE seq=7")


def test_expected_head_catches_a_truncated_tail(chain: Chain) -> None:
    head = (7, _row(chain, 7)[1])
    truncate_tail_cleanly(chain)
    assert verify_store(chain.store).ok  # the remaining chain is self-consistent
    report = verify_store(chain.store, expected_heads=[head])
    assert [(p.code, p.seq) for p in report.problems] == [("head_missing", 7)]
    assert "ends at seq 6" in report.problems[0].message
    # a head at or below the new end still passes
    assert verify_store(chain.store, expected_heads=[(6, _row(chain, 6)[1])]).ok


def test_expected_head_catches_a_rewritten_chain(chain: Chain) -> None:
    head = (5, _row(chain, 5)[1])
    from inspection.evidence.ledger import Ledger, build_payload
    from inspection.store.models import EvidenceRecordRow

    rogue = Signer.generate("st-1")
    with chain.store.write() as s:  # rewrite everything from seq 3 with a rogue key in the registry
        Ledger(chain.store, rogue)._register_key(s)
        rows = list(s.query(EvidenceRecordRow).order_by(EvidenceRecordRow.seq))
        prev = rows[1].record_hash
        for row in rows[2:]:
            env = parse_json(row.payload)
            env["data"]["rewritten"] = True
            payload = build_payload(
                seq=row.seq, prev_hash=prev, record_id=row.record_id, kind=row.kind,
                created_at=env["created_at"], key_id=rogue.key_id, data=env["data"],
            )  # fmt: skip
            row.payload, row.prev_hash, row.key_id = payload, prev, rogue.key_id
            row.record_hash = sha256_hex(payload)
            row.signature = rogue.sign_hash(row.record_hash)
            prev = row.record_hash
    assert verify_store(chain.store).ok
    report = verify_store(chain.store, expected_heads=[head])
    assert [(p.code, p.seq) for p in report.problems] == [("head_mismatch", 5)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7:" + "ab" * 32, (7, "ab" * 32)),
        (" 12:" + "AB" * 32 + " ", (12, "ab" * 32)),
        ("0:" + "ab" * 32, None),
        ("7:" + "ab" * 31, None),
        ("7" + "ab" * 32, None),
        ("x:" + "ab" * 32, None),
    ],
)
def test_parse_head(text: str, expected: tuple[int, str] | None) -> None:
    from inspection.evidence.verify import parse_head

    if expected is None:
        with pytest.raises(ValueError, match="is not SEQ:HASH"):
            parse_head(text)
    else:
        assert parse_head(text) == expected
