"""The same store and ledger on PostgreSQL: migrations, repository, concurrent appends, verification."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from inspection.evidence.ledger import Ledger, record_inspection
from inspection.evidence.verify import verify_store
from inspection.store import InspectionFilter, Store
from inspection.store.models import Base
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, png_bytes

pytestmark = pytest.mark.postgres


def test_migrations_match_models(pg_url: str, tmp_path: Path) -> None:
    with Store.open(pg_url, tmp_path / "images") as store:
        assert store.dialect == "postgresql"
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert diff == []
    Store.open(pg_url, tmp_path / "images").close()  # second open: already at head


def test_record_list_and_verify(pg_url: str, tmp_path: Path) -> None:
    with Store.open(pg_url, tmp_path / "images") as store:
        ledger = make_ledger(store)
        ids = []
        for i in range(4):
            img = png_bytes(i)
            iid, rec = record_inspection(
                store, ledger, make_result(img, serial="PG-1", porosity=i % 4), img, config_sha256=CONFIG_SHA,
                idempotency_key=f"k{i}",
            )  # fmt: skip
            ids.append(iid)
            assert rec.seq == i + 1
        img = png_bytes(3)
        assert record_inspection(store, ledger, make_result(img, serial="PG-1", porosity=3), img,
                                 config_sha256=CONFIG_SHA, idempotency_key="k3")[0] == ids[3]  # fmt: skip
        page = store.list_inspections(InspectionFilter(machine_serial="PG-1", min_porosity_grade=2))
        assert page.total == 2
        stored = store.get_inspection(ids[0])
        assert stored is not None and stored.params == {"laser_power_w": 1500.0, "speed_mm_s": 25.0}
        report = verify_store(store)
        assert report.ok, report.problems
        assert report.records == 4


def test_concurrent_appends_make_one_chain(pg_url: str, tmp_path: Path) -> None:
    """4 threads (separate pooled connections) appending at once: the advisory lock serialises them."""
    with Store.open(pg_url, tmp_path / "images") as store:
        ledgers = [make_ledger(store, station=f"st-{w}") for w in range(4)]

        def work(w: int) -> int:
            ledger: Ledger = ledgers[w]
            for i in range(10):
                ledger.append("note", {"worker": w, "i": i})
            return w

        with ThreadPoolExecutor(4) as pool:
            assert sorted(pool.map(work, range(4))) == [0, 1, 2, 3]
        report = verify_store(store)
        assert report.ok, report.problems[:3]
        assert report.records == 40 and report.head_seq == 40


def test_review_marks_queue_and_miss_rate(pg_url: str, tmp_path: Path) -> None:
    """Migration 0002 on PostgreSQL: marks (JSONB) round-trip and verify, the queue scans, the
    audit flag and the miss-rate estimate work as on SQLite."""
    import dataclasses

    from inspection.evidence.audit import audit_key, miss_rate_from_store
    from inspection.evidence.ledger import record_review
    from inspection.service.web.queue import refresh_candidates, review_queue

    with Store.open(pg_url, tmp_path / "images") as store:
        ledger = make_ledger(store)
        ids = []
        for i in range(3):
            img = png_bytes(40 + i)
            result = dataclasses.replace(make_result(img, porosity=1), needs_review=i == 2)
            ids.append(record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)[0])
        assert refresh_candidates(store, key=audit_key(ledger.signer), audit_rate=1.0) == 3
        items, total = review_queue(store)
        assert total == 3 and [i.audit for i in items] == [True, True, False]
        marks = [{"label": "porosity", "box": [1, 2, 6.5, 7]}, {"label": "porosity", "point": [3, 4]}]
        _, rec = record_review(
            store, ledger, inspection_id=ids[0], reviewer="qa", porosity_grade=2, spatter_grade=0, marks=marks
        )
        assert rec.data["audit"] is True and len(rec.data["marks"]) == 2
        (review,) = store.list_reviews(ids[0])
        assert review.marks is not None and review.marks[0]["box"] == [1.0, 2.0, 6.5, 7.0]
        est = miss_rate_from_store(store)
        assert (est.audited, est.wrong, est.drawn) == (1, 1, 2)
        assert verify_store(store).ok
