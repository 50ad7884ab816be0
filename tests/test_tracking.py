"""Outcome tracking over the store: storing recommendations, outcomes (idempotent), rule stats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from inspection.evidence.ledger import Ledger, record_inspection, record_review
from inspection.store import Store
from inspection.store.models import RecommendationOutcomeRow, RecommendationRow
from inspection.tracking import (
    backfill_recommendations,
    rule_success,
    store_recommendation,
    tracked_outcomes,
    update_outcomes,
    verdict,
)
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, open_store, png_bytes


def _rec(rule: str, parameter: str, current: float, new: float, defect: str = "porosity") -> dict[str, Any]:
    item = {"rule_id": rule, "defect": defect, "parameter": parameter, "current": current, "new": new,
            "unit": "mm/s", "why": "test", "confidence": 0.7}  # fmt: skip
    return {"status": "change", "message": "", "material": "stainless", "thickness_mm": 2.0, "items": [item]}


class History:
    """A store with one machine's history; ``add`` records inspections one hour apart."""

    def __init__(self, tmp: Path) -> None:
        self.store: Store = open_store(tmp)
        self.ledger: Ledger = make_ledger(self.store)
        self.n = 0

    def add(
        self, porosity: int, speed: float, *, material: str = "stainless", rec: dict[str, Any] | None = None
    ) -> str:
        self.n += 1
        img = png_bytes(500 + self.n)
        result = make_result(
            img, serial="M-100", porosity=porosity, params={"speed_mm_s": speed, "gas_l_min": 15.0}
        )
        if material != "stainless":
            from dataclasses import replace

            assert result.context is not None
            result = replace(result, context=replace(result.context, material=material))
        iid, _ = record_inspection(
            self.store, self.ledger, result, img, config_sha256=CONFIG_SHA, recommendation=rec
        )
        return iid


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path)
    yield h
    h.store.close()


def _count(store: Store, model: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_store_recommendation_is_idempotent_and_keeps_only_changes(history: History) -> None:
    iid = history.add(2, 25.0)
    first = store_recommendation(history.store, iid, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0))
    again = store_recommendation(history.store, iid, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0))
    assert len(first) == 1 and again == first
    assert _count(history.store, RecommendationRow) == 1
    (info,) = history.store.list_recommendations("M-100")
    assert (info.rule_id, info.parameter, info.current_value, info.new_value) == (
        "por-speed",
        "speed_mm_s",
        25.0,
        20.0,
    )
    assert info.created_at == history.store.get_inspection(iid).created_at  # type: ignore[union-attr]
    assert store_recommendation(history.store, iid, "M-100", {"status": "keep_settings", "items": []}) == []
    assert store_recommendation(history.store, iid, "M-100", None) == []
    with pytest.raises(LookupError, match="no inspection"):
        store_recommendation(history.store, "nope", "M-100", _rec("r", "speed_mm_s", 1.0, 2.0))


def test_update_outcomes_evaluates_writes_and_recomputes_without_duplicates(history: History) -> None:
    for _ in range(5):
        history.add(2, 25.0)
    trigger = history.add(2, 25.0)
    store_recommendation(history.store, trigger, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0))
    other = history.add(1, 25.0)  # advice that is never followed
    store_recommendation(history.store, other, "M-100", _rec("por-gas", "gas_l_min", 15.0, 20.0))
    after = [history.add(0, 20.0) for _ in range(6)]

    outcomes = update_outcomes(history.store, "M-100")
    assert [o.outcome for o in outcomes] == ["worked", "not_applied"]
    worked = outcomes[0]
    # before = the 5 inspections strictly before the trigger (the trigger itself is excluded): 5/5 bad
    assert (worked.before_n, worked.before_defective, worked.after_n, worked.after_defective) == (5, 5, 6, 0)
    assert worked.p_value == pytest.approx(1 / 462)  # Fisher one-sided [[0, 6], [5, 0]]: 1 / C(11, 5)
    assert _count(history.store, RecommendationOutcomeRow) == 2
    tracked = {t.rule_id: t for t in tracked_outcomes(history.store, "M-100")}
    assert tracked["por-speed"].applied_inspection_id == after[0]
    assert tracked["por-speed"].before_rate == 1.0 and tracked["por-speed"].after_rate == 0.0
    assert tracked["por-gas"].outcome == "not_applied"

    # a reviewer overrides three "after" grades: recomputing updates the same rows
    for iid in after[:3]:
        record_review(
            history.store, history.ledger, inspection_id=iid, reviewer="qa", porosity_grade=3, spatter_grade=0
        )
    again = update_outcomes(history.store)
    assert again[0].after_defective == 3
    assert _count(history.store, RecommendationOutcomeRow) == 2
    assert {t.rule_id: t.after_rate for t in tracked_outcomes(history.store)}["por-speed"] == 0.5


def test_history_is_restricted_to_the_recommendations_material(history: History) -> None:
    for _ in range(4):
        history.add(2, 25.0, material="aluminium")
    trigger = history.add(2, 25.0, material="aluminium")
    store_recommendation(history.store, trigger, "M-100", _rec("al-speed", "speed_mm_s", 25.0, 20.0))
    for _ in range(4):
        history.add(0, 20.0)  # stainless at the new speed: not evidence for the aluminium advice
        history.add(2, 25.0, material="aluminium")
    (out,) = update_outcomes(history.store, "M-100")
    assert out.outcome == "not_applied"


def test_rule_success_aggregates_stored_outcomes(history: History) -> None:
    for _ in range(4):
        history.add(2, 25.0)
    t1 = history.add(2, 25.0)
    store_recommendation(history.store, t1, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0))
    for _ in range(4):
        history.add(0, 20.0)
    t2 = history.add(0, 20.0)
    store_recommendation(history.store, t2, "M-100", _rec("por-gas", "gas_l_min", 15.0, 18.0))
    assert rule_success(history.store) == {}  # nothing computed yet
    update_outcomes(history.store)
    stats = rule_success(history.store)
    assert set(stats) == {"por-speed", "por-gas"}
    assert (stats["por-speed"].issued, stats["por-speed"].applied, stats["por-speed"].worked) == (1, 1, 1)
    assert (stats["por-gas"].issued, stats["por-gas"].applied) == (1, 0)
    assert stats["por-speed"].ranking_factor > stats["por-gas"].ranking_factor


def test_backfill_reads_recommendations_from_the_evidence_records(history: History) -> None:
    history.add(0, 25.0)
    iid = history.add(2, 25.0, rec=_rec("por-speed", "speed_mm_s", 25.0, 20.0))
    assert backfill_recommendations(history.store) == 1
    assert backfill_recommendations(history.store, "M-100") == 1  # idempotent: finds it, stores nothing new
    (info,) = history.store.list_recommendations()
    assert info.inspection_id == iid and info.machine_serial == "M-100"


@pytest.mark.parametrize(
    ("applied", "worked", "p", "expected"),
    [
        (None, None, None, "not_applied"),
        ("i", True, 0.01, "worked"),
        ("i", False, 0.9, "did_not_work"),
        ("i", None, 0.3, "inconclusive"),
        ("i", None, None, "insufficient_data"),
    ],
)
def test_verdict_is_recovered_from_the_stored_row(
    applied: str | None, worked: bool | None, p: float | None, expected: str
) -> None:
    assert verdict(applied, worked, p) == expected
