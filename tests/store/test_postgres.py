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
