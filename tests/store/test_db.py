"""Store: opening, migrations, transactions and repository functions (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from inspection.config import StoreConfig
from inspection.evidence.ledger import record_inspection
from inspection.store import InspectionFilter, Page, Store, StoreError, repo
from inspection.store.models import Base, InspectionRow, Machine
from tests.evidence.factories import CONFIG_SHA, StepClock, make_ledger, make_result, open_store, png_bytes


def test_open_migrates_to_head_and_matches_models(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"
    store.close()
    # reopening an up-to-date database is a no-op
    again = open_store(tmp_path)
    assert again.dialect == "sqlite"
    again.close()


def test_from_config_uses_home(tmp_path: Path) -> None:
    cfg = StoreConfig(home=tmp_path / "home")
    with Store.from_config(cfg) as store:
        assert (tmp_path / "home" / "weldinspect.db").is_file()
        assert store.images.root == cfg.images_dir
        assert cfg.images_dir.is_dir()


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("sqlite://", "needs a file path"),
        ("sqlite:///:memory:", "needs a file path"),
        ("not a url", "invalid database URL"),
    ],
)
def test_open_refuses_bad_urls(tmp_path: Path, url: str, match: str) -> None:
    with pytest.raises(StoreError, match=match):
        Store.open(url, tmp_path / "images")


def test_write_rolls_back_everything_on_error(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), store.write() as s:
        repo.upsert_machine(s, "M-1", firmware="1", model=None, seen_at=datetime.now(UTC))
        raise RuntimeError("boom")
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Machine)) == 0
    with store.write() as s:
        repo.upsert_machine(s, "M-1", firmware="1", model=None, seen_at=datetime.now(UTC))
    assert store.get_machine("M-1") is not None


def test_upsert_machine_keeps_first_seen_and_updates_firmware(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    with store.write() as s:
        repo.upsert_machine(s, "M-1", firmware="1.0", model="LW-500", seen_at=t0)
    with store.write() as s:
        repo.upsert_machine(s, "M-1", firmware="1.1", model=None, seen_at=t0 + timedelta(days=3))
    m = store.get_machine("M-1")
    assert m is not None
    assert (m.firmware, m.model, m.first_seen) == ("1.1", "LW-500", t0)


def _record(store: Store, n: int) -> list[str]:
    from inspection.evidence.ledger import record_inspection

    ledger = make_ledger(store, clock=StepClock(step=timedelta(days=1)))
    ids = []
    for i in range(n):
        img = png_bytes(i)
        serial = "A" if i % 2 == 0 else "B"
        result = make_result(img, serial=serial, porosity=i % 4, part=f"P-{i}")
        iid, _ = record_inspection(
            store, ledger, result, img, config_sha256=CONFIG_SHA, idempotency_key=f"key-{i}"
        )
        ids.append(iid)
    return ids


def test_inspection_repository(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ids = _record(store, 7)
    got = store.get_inspection(ids[3])
    assert got is not None
    assert (got.machine_serial, got.porosity_grade, got.part_id, got.idempotency_key) == (
        "B",
        3,
        "P-3",
        "key-3",
    )
    assert got.to_result().porosity is not None and got.to_result().porosity.grade == 3
    assert got.params == {"laser_power_w": 1500.0, "speed_mm_s": 25.0}
    assert store.get_inspection("nope") is None
    found = store.find_by_idempotency_key("key-5")
    assert found is not None and found.id == ids[5]
    assert store.find_by_idempotency_key("key-99") is None

    everything = store.list_inspections()
    assert everything.total == 7
    assert [r.id for r in everything.items] == ids[::-1]  # newest first
    only_a = store.list_inspections(InspectionFilter(machine_serial="A"))
    assert only_a.total == 4 and {r.machine_serial for r in only_a.items} == {"A"}
    bad = store.list_inspections(InspectionFilter(min_porosity_grade=2))
    assert {r.porosity_grade for r in bad.items} == {2, 3} and bad.total == 3
    t0 = everything.items[-1].created_at
    window = store.list_inspections(
        InspectionFilter(since=t0 + timedelta(days=2), until=t0 + timedelta(days=4))
    )
    assert [r.id for r in window.items] == [ids[3], ids[2]]
    page = store.list_inspections(page=Page(limit=3, offset=3))
    assert [r.id for r in page.items] == ids[::-1][3:6] and page.total == 7
    assert {m.serial for m in store.list_machines()} == {"A", "B"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"limit": 0}, "limit must be in 1..1000"),
        ({"limit": 1001}, "limit must be in 1..1000"),
        ({"offset": -1}, "offset must be >= 0"),
    ],
)
def test_page_validation(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Page(**kwargs)


def test_filter_validation() -> None:
    t = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="until"):
        InspectionFilter(since=t, until=t)
    with pytest.raises(ValueError, match="min_porosity_grade"):
        InspectionFilter(min_porosity_grade=4)


def test_api_keys(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    station = store.add_api_key("line 1", "station", "h1", station_id="st-1")
    store.add_api_key("audit", "auditor", "h2")
    found = store.find_api_key("h1")
    assert found is not None and found.id == station.id and found.active
    assert store.revoke_api_key(station.id)
    assert not store.revoke_api_key(station.id)  # already revoked
    assert store.find_api_key("h1") is None
    keys = store.list_api_keys()
    assert [k.name for k in keys] == ["line 1", "audit"] and not keys[0].active
    with pytest.raises(ValueError, match="unknown API key role 'root'; valid: station, auditor, admin"):
        store.add_api_key("x", "root", "h3")
    with pytest.raises(ValueError, match="station API key needs a station_id"):
        store.add_api_key("x", "station", "h4")


def test_recommendations_and_outcomes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ids = _record(store, 2)
    rec_id = store.add_recommendation(
        inspection_id=ids[0], machine_serial="A", rule_id="R1", parameter="speed_mm_s",
        current_value=30.0, new_value=25.0, payload={"why": "pores at start"},
    )  # fmt: skip
    out_id = store.add_recommendation_outcome(
        recommendation_id=rec_id, applied_inspection_id=ids[1], before_rate=0.4, after_rate=0.1,
        p_value=0.03, worked=True,
    )  # fmt: skip
    assert out_id
    recs = store.list_recommendations("A")
    assert [(r.id, r.new_value, r.payload["why"]) for r in recs] == [(rec_id, 25.0, "pores at start")]
    assert store.list_recommendations("B") == []
    with pytest.raises(ValueError, match="p_value must be in"):
        store.add_recommendation_outcome(
            recommendation_id=rec_id, applied_inspection_id=None, before_rate=None, after_rate=None,
            p_value=1.5, worked=None,
        )  # fmt: skip


def test_inspection_rows_need_an_existing_image(tmp_path: Path) -> None:
    """Foreign keys are enforced on SQLite (PRAGMA foreign_keys=ON)."""
    from sqlalchemy.exc import IntegrityError

    store = open_store(tmp_path)
    img = png_bytes(1)
    with pytest.raises(IntegrityError), store.write() as s:
        repo.add_inspection(
            s, make_result(img), inspection_id="x", created_at=datetime.now(UTC), evidence_seq=None
        )
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(InspectionRow)) == 0


def test_a_0001_store_with_reviews_upgrades_and_keeps_them(tmp_path: Path) -> None:
    """An existing store (revision 0001, a review in it) migrates to 0002: the review keeps its
    grades, has no marks and is no audit, and the chain still verifies."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from inspection.evidence.ledger import record_review
    from inspection.evidence.verify import verify_store
    from inspection.store.db import ALEMBIC_DIR, migrate

    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(1)
    iid, _ = record_inspection(store, ledger, make_result(img, porosity=1), img, config_sha256=CONFIG_SHA)
    record_review(store, ledger, inspection_id=iid, reviewer="q.lee", porosity_grade=2, spatter_grade=0)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
        columns = {c["name"] for c in conn.execute(text("PRAGMA table_info(reviews)")).mappings()}
    assert "marks" not in columns and "audit" not in columns
    migrate(store.engine)
    (review,) = store.list_reviews(iid)
    assert (review.porosity_grade, review.spatter_grade, review.marks, review.audit) == (2, 0, None, False)
    assert not review.not_gradable
    assert verify_store(store).ok
    store.close()


def test_add_review_validates_marks_and_not_gradable(tmp_path: Path) -> None:
    from inspection.store.marks import MarkError

    store = open_store(tmp_path)
    ledger = make_ledger(store)
    img = png_bytes(2, size=(24, 16))
    iid, _ = record_inspection(store, ledger, make_result(img, porosity=2), img, config_sha256=CONFIG_SHA)
    marks = [
        {"label": "porosity", "box": [1, 2, 5.04, 6], "origin": "model", "finding": 1},
        {"label": "spatter", "point": [23, 15.99]},
    ]
    with store.write() as s:
        info = repo.add_review(
            s, inspection_id=iid, reviewer="qa", porosity_grade=1, spatter_grade=1, marks=marks, audit=True
        )
    assert info.audit and info.marks == (
        {"label": "porosity", "box": [1.0, 2.0, 5.0, 6.0], "origin": "model", "finding": 1},
        {"label": "spatter", "point": [23.0, 16.0], "origin": "reviewer"},
    )
    assert store.list_reviews(iid)[0].marks == info.marks
    bad = [
        (
            [{"label": "porosity", "point": [25, 1]}],
            r"marks\[0\].point: x = 25.0 is outside the image \(width 24\)",
        ),
        ([{"label": "slag", "point": [1, 1]}], r"marks\[0\].label: unknown kind 'slag'"),
        ([{"label": "porosity", "point": [1, 1], "origin": "model", "finding": 2}], r"marks\[0\].finding"),
        ([{"label": "porosity", "point": [1, 1]}] * 501, r"marks: has 501 marks; at most 500"),
    ]
    for value, match in bad:
        with pytest.raises(MarkError, match=match), store.write() as s:
            repo.add_review(
                s, inspection_id=iid, reviewer="qa", porosity_grade=1, spatter_grade=0, marks=value
            )
    with pytest.raises(ValueError, match="has no grades"), store.write() as s:
        repo.add_review(s, inspection_id=iid, reviewer="qa", porosity_grade=1, spatter_grade=None,
                        not_gradable_reason="glare")  # fmt: skip
    with store.write() as s:
        flagged = repo.add_review(
            s, inspection_id=iid, reviewer="qa", porosity_grade=None, spatter_grade=None,
            not_gradable_reason="glare over the seam",
        )  # fmt: skip
    assert flagged.not_gradable and flagged.marks is None
    assert len(store.list_reviews(iid)) == 2
    store.close()
