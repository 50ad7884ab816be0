"""The ledger: appends, the one-transaction inspection write, idempotency, reviews, concurrency."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inspection.evidence.canonical import GENESIS_HASH, parse_json, sha256_hex
from inspection.evidence.keys import verify_signature
from inspection.evidence.ledger import (
    IdempotencyConflictError,
    InspectionToRecord,
    build_payload,
    record_inspection,
    record_inspections,
    record_review,
)
from inspection.evidence.verify import verify_store
from inspection.store.models import EvidenceRecordRow, InspectionRow, Machine, ReviewRow, StoredImageRow
from tests.evidence.factories import (
    CONFIG_SHA,
    append_worker,
    make_ledger,
    make_result,
    open_store,
    png_bytes,
)


def _count(store, model) -> int:  # type: ignore[no-untyped-def]
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_append_builds_a_signed_hash_chain(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    recs = [ledger.append("note", {"i": i, "p": 0.1234567}) for i in range(3)]
    assert [r.seq for r in recs] == [1, 2, 3]
    assert recs[0].prev_hash == GENESIS_HASH
    assert [r.prev_hash for r in recs[1:]] == [r.record_hash for r in recs[:-1]]
    for r in recs:
        assert r.record_hash == sha256_hex(r.payload)
        assert r.signature is not None
        assert verify_signature(ledger.signer.public_key, r.record_hash, r.signature)
        env = parse_json(r.payload)
        assert (env["seq"], env["prev_hash"], env["key_id"], env["kind"]) == (
            r.seq,
            r.prev_hash,
            r.key_id,
            "note",
        )
    assert recs[0].data == {"i": 0, "p": 0.123457}  # floats rounded to 6 decimals by the canonical rule
    head = ledger.head()
    assert head is not None and head.record_hash == recs[-1].record_hash


@pytest.mark.parametrize("kind", ["", "Inspection", "1x", "has space", "x" * 65])
def test_bad_kinds_are_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="record kind"):
        build_payload(
            seq=1, prev_hash=GENESIS_HASH, record_id="r", kind=kind, created_at="t", key_id="k", data={}
        )


def test_record_inspection_stores_everything_in_the_record(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1)
    result = make_result(img, serial="M-7", porosity=2, spatter=1, part="P-9")
    reco = {"rule_id": "R-START", "parameter": "ramp_up_ms", "current": 0, "new": 150}
    iid, rec = record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA, recommendation=reco)
    data = rec.data
    assert rec.kind == "inspection" and data["inspection_id"] == iid
    assert data["image"] == {"sha256": result.image_sha256, "bytes": len(img), "media_type": "image/png",
                             "width": 24, "height": 16}  # fmt: skip
    assert data["model"] == {"name": "weldnet", "version": "1.0.0", "sha256": "ab" * 32}
    assert data["config_sha256"] == CONFIG_SHA
    assert data["grades"]["porosity"]["grade"] == 2 and len(data["grades"]["porosity"]["probs"]) == 4
    assert len(data["findings"]) == 2 and data["standards"]["verdicts"][0]["imperfection"] == "2017"
    ctx = data["context"]
    assert (ctx["machine_serial"], ctx["firmware"], ctx["station_id"], ctx["operator_id"]) == (
        "M-7",
        "fw-2.3.1",
        "st-1",
        "op-7",
    )
    assert (ctx["part_id"], ctx["seam_id"], ctx["params"]["laser_power_w"]) == ("P-9", "S1", 1500)
    assert data["recommendation"] == reco
    row = store.get_inspection(iid)
    assert row is not None and row.evidence_seq == rec.seq and row.porosity_grade == 2
    assert store.images.read(result.image_sha256) == img
    machine = store.get_machine("M-7")
    assert machine is not None and machine.firmware == "fw-2.3.1"


def test_record_inspection_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1)

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full while inserting the inspection row")

    monkeypatch.setattr("inspection.evidence.ledger.repo.add_inspection", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        record_inspection(store, ledger, make_result(img), img, config_sha256=CONFIG_SHA)
    for model in (EvidenceRecordRow, InspectionRow, StoredImageRow, Machine):
        assert _count(store, model) == 0, model.__tablename__
    monkeypatch.undo()
    iid, rec = record_inspection(store, ledger, make_result(img), img, config_sha256=CONFIG_SHA)
    assert rec.seq == 1 and store.get_inspection(iid) is not None
    assert verify_store(store).ok


def test_idempotency_key_replays_and_conflicts(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1)
    first = record_inspection(
        store, ledger, make_result(img), img, config_sha256=CONFIG_SHA, idempotency_key="job-1"
    )
    again = record_inspection(
        store, ledger, make_result(img), img, config_sha256=CONFIG_SHA, idempotency_key="job-1"
    )
    assert again[0] == first[0] and again[1] == first[1]
    assert _count(store, EvidenceRecordRow) == 1
    other = png_bytes(2)
    with pytest.raises(IdempotencyConflictError, match="already used for image"):
        record_inspection(
            store, ledger, make_result(other), other, config_sha256=CONFIG_SHA, idempotency_key="job-1"
        )


@pytest.mark.parametrize(
    ("image", "config", "match"),
    [
        (b"other bytes", CONFIG_SHA, "image bytes hash to"),
        (None, "abc", "config_sha256 must be a 64-character"),
        (None, "AB" * 32, "config_sha256 must be a 64-character"),
    ],
)
def test_record_inspection_refuses_bad_input(
    tmp_path: Path, image: bytes | None, config: str, match: str
) -> None:
    store = open_store(tmp_path)
    img = png_bytes(1)
    with pytest.raises(ValueError, match=match):
        record_inspection(store, make_ledger(store), make_result(img), image or img, config_sha256=config)
    assert _count(store, EvidenceRecordRow) == 0


def test_review_record_links_to_the_inspection_record(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1)
    iid, rec = record_inspection(store, ledger, make_result(img, porosity=1), img, config_sha256=CONFIG_SHA)
    review_id, rrec = record_review(store, ledger, inspection_id=iid, reviewer="q.lee", porosity_grade=3,
                                    spatter_grade=None, comment="cluster at start")  # fmt: skip
    assert rrec.kind == "review" and rrec.prev_hash == rec.record_hash
    assert rrec.data["inspection_record_hash"] == rec.record_hash and rrec.data["grades"]["porosity"] == 3
    reviews = store.list_reviews(iid)
    assert [(r.id, r.evidence_seq, r.porosity_grade) for r in reviews] == [(review_id, rrec.seq, 3)]
    with pytest.raises(ValueError, match=r"porosity_grade must be an integer in 0\.\.3"):
        record_review(store, ledger, inspection_id=iid, reviewer="x", porosity_grade=7, spatter_grade=None)
    with pytest.raises(LookupError, match="no inspection with id 'nope'"):
        record_review(store, ledger, inspection_id="nope", reviewer="x", porosity_grade=1, spatter_grade=None)
    assert _count(store, EvidenceRecordRow) == 2 and _count(store, ReviewRow) == 1
    assert verify_store(store).ok


def test_four_processes_append_one_valid_chain(tmp_path: Path) -> None:
    """4 spawned processes x 25 inspections on one fresh SQLite file -> 100 records, one valid chain."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        done = pool.map(append_worker, [(url, str(tmp_path / "images"), w, 25) for w in range(4)])
    assert done == [25, 25, 25, 25]
    store = open_store(tmp_path, url)
    report = verify_store(store)
    assert report.ok, report.problems[:3]
    assert (report.records, report.head_seq, report.images) == (100, 100, 100)
    with store.session() as s:
        keys = set(s.scalars(select(EvidenceRecordRow.key_id)))
    assert len(keys) == 4  # every process really appended


def test_record_inspections_batch_is_all_or_nothing(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    imgs = [png_bytes(i) for i in range(4)]
    items = [
        InspectionToRecord(make_result(img), img, CONFIG_SHA, idempotency_key=f"b{i}")
        for i, img in enumerate(imgs)
    ]
    # a batch whose last item reuses a key for another image fails as a whole
    bad = [*items[:2], InspectionToRecord(make_result(imgs[3]), imgs[3], CONFIG_SHA, idempotency_key="b0")]
    with pytest.raises(IdempotencyConflictError):
        record_inspections(store, ledger, bad)
    assert _count(store, EvidenceRecordRow) == 0 and _count(store, InspectionRow) == 0
    out = record_inspections(store, ledger, items)
    assert [rec.seq for _, rec in out] == [1, 2, 3, 4]
    assert [store.get_inspection(iid).idempotency_key for iid, _ in out] == ["b0", "b1", "b2", "b3"]  # type: ignore[union-attr]
    assert verify_store(store).ok


def test_inspection_to_record_validates() -> None:
    img = png_bytes(1)
    with pytest.raises(ValueError, match="image bytes hash to"):
        InspectionToRecord(make_result(img), b"x", CONFIG_SHA)
    with pytest.raises(ValueError, match="idempotency_key must be non-empty"):
        InspectionToRecord(make_result(img), img, CONFIG_SHA, idempotency_key=" ")
