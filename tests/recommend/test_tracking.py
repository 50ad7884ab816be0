"""Outcome tracking over the store: storing recommendations, outcomes (idempotent), rule stats."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from inspection.evidence.ledger import Ledger, record_inspection, record_review
from inspection.recommend.tracking import (
    OutcomeTracker,
    RecordedAdvice,
    backfill_recommendations,
    rule_success,
    store_recommendation,
    tracked_outcomes,
    update_outcomes,
    verdict,
)
from inspection.store import Store
from inspection.store.models import RecommendationOutcomeRow, RecommendationRow
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


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_tracker_keeps_stats_current_in_memory_and_reloads_when_they_age(history: History) -> None:
    clock = FakeClock()
    tracker = OutcomeTracker(history.store, max_age_s=60.0, clock=clock)
    assert tracker.rule_stats() == {} and tracker.reloads == 1
    for _ in range(4):
        history.add(2, 25.0)
    trigger = history.add(2, 25.0)
    tracker.record([RecordedAdvice(trigger, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0))])
    assert [r.rule_id for r in history.store.list_recommendations("M-100")] == ["por-speed"]
    stats = tracker.rule_stats()
    assert (stats["por-speed"].issued, stats["por-speed"].applied) == (1, 0)  # the first verdict is known
    for _ in range(2):
        tracker.record([RecordedAdvice(history.add(2, 25.0), "M-100", None)])  # still not applied
    assert tracker.rule_stats() is stats  # nothing changed: the same cached object
    for _ in range(4):
        tracker.record([RecordedAdvice(history.add(0, 20.0), "M-100", None)])  # applied and it worked
    stats = tracker.rule_stats()
    assert (stats["por-speed"].applied, stats["por-speed"].worked) == (1, 1)
    assert tracker.reloads == 1  # all of it from this tracker's own updates, no store reads
    assert stats == rule_success(history.store)  # ...and equal to what the store says
    clock.t = 61.0  # older than max_age_s: picks up what other processes wrote
    tracker.rule_stats()
    assert tracker.reloads == 2
    with pytest.raises(ValueError, match="max_age_s"):
        OutcomeTracker(history.store, max_age_s=0)


def _stored(store: Store) -> list[tuple[str, str, str | None, float | None, float | None]]:
    return [
        (t.recommendation_id, t.outcome, t.applied_inspection_id, t.before_rate, t.after_rate)
        for t in tracked_outcomes(store, "M-100")
    ]


def test_incremental_updates_store_what_a_full_recompute_stores(history: History) -> None:
    """Advice is given, ignored, applied, undone and re-applied, over two materials; after every
    upload the tracker's stored outcomes equal a full recomputation from scratch."""
    tracker = OutcomeTracker(history.store, window=4)
    speed = 25.0
    script = (
        [(2, None, "stainless")] * 3
        + [(2, ("por-speed", 20.0), "stainless"), (2, None, "stainless"), (2, None, "aluminium")]
        + [(0, "apply:20.0", "stainless")] * 3
        + [(2, ("por-gas", 18.0), "aluminium"), (2, "apply:25.0", "stainless"), (1, None, "stainless")]
        + [(2, ("por-speed", 20.0), "stainless")]
        + [(0, "apply:20.0", "stainless")] * 6
        + [(2, None, "aluminium")] * 2
    )
    for porosity, action, material in script:
        rec = None
        if isinstance(action, str):
            speed = float(action.split(":")[1])
        elif action is not None:
            rule, new = action
            rec = _rec(rule, "speed_mm_s", speed, new)
        iid = history.add(porosity, speed, material=material, rec=rec)
        tracker.record([RecordedAdvice(iid, "M-100", rec)])
        incremental = _stored(history.store)
        update_outcomes(history.store, "M-100", window=4)
        assert incremental == _stored(history.store), f"after upload {history.n}"
    outcomes = {t.outcome for t in tracked_outcomes(history.store, "M-100")}
    assert "not_applied" in outcomes and len(outcomes) >= 2  # the script reached several verdicts


def test_an_upload_does_not_re_evaluate_settled_or_unmatched_advice(history: History) -> None:
    tracker = OutcomeTracker(history.store, window=3)
    for i in range(12):  # twelve pieces of advice nobody applies
        iid = history.add(2, 25.0, rec=_rec("por-speed", "speed_mm_s", 25.0, 20.0 - i))
        tracker.record([RecordedAdvice(iid, "M-100", _rec("por-speed", "speed_mm_s", 25.0, 20.0 - i))])
    before = tracker.evaluations
    tracker.record([RecordedAdvice(history.add(2, 25.0), "M-100", None)])
    assert tracker.evaluations == before  # no new advice, nothing applied: nothing to compute
    tracker.record([RecordedAdvice(history.add(1, 15.0), "M-100", None)])  # applies the 6th advice only
    assert tracker.evaluations == before + 1
    (applied,) = [t for t in tracked_outcomes(history.store, "M-100") if t.applied_inspection_id]
    assert applied.new_value == 15.0


def test_tracker_skips_machines_without_recommendations(history: History) -> None:
    tracker = OutcomeTracker(history.store)
    iid = history.add(2, 25.0)
    assert tracker.record([RecordedAdvice(iid, "M-100", {"status": "keep_settings", "items": []})]) == []
    assert history.store.list_recommendations() == []
    assert _count(history.store, RecommendationOutcomeRow) == 0


def test_batch_ledger_hook_ranks_with_stored_stats_and_stores_its_advice(tmp_path: Path) -> None:
    """`weldinspect score --ledger`: the hook stores each batch's advice, updates the outcomes of
    the batch's machine, and ranks the next batch's advice with them."""
    from dataclasses import replace
    from types import SimpleNamespace
    from typing import cast

    from inspection.batch.runner import Graded, ScoreItem, ledger_hook
    from inspection.config import StoreConfig
    from inspection.evidence.keys import init_key
    from inspection.pipeline import Inspector
    from inspection.recommend import RuleStats
    from tests.recommend.factories import ALONG_WHOLE_SEAM, LASER_PARAMS, pores

    cfg = StoreConfig(home=tmp_path)
    init_key(cfg.keys_dir, station_id="st-1")
    hook = ledger_hook(
        "default", cast(Inspector, SimpleNamespace(config_sha256=CONFIG_SHA)), store_config=cfg
    )
    n = 0

    def graded(porosity: int, params: dict[str, Any], *, advise: bool = True) -> Graded:
        nonlocal n
        n += 1
        img = png_bytes(700 + n)
        res = make_result(img, serial="M-100", porosity=porosity, params=params)
        res = replace(res, findings=pores(ALONG_WHOLE_SEAM) if porosity else ())
        if not advise:  # no process in the context: no advice, still part of the history
            assert res.context is not None
            res = replace(res, context=replace(res.context, process=None))
        return Graded(ScoreItem(f"{n}.png", tmp_path / f"{n}.png"), res, img)

    params = dict(LASER_PARAMS)
    first = hook([graded(2, params)])
    rec = first[0]["recommendation"]
    assert rec["status"] == "change" and rec["items"][0]["rule_id"] == "LW-WOBBLE-WIDER"
    store = Store.open(cfg.db_url, cfg.images_dir)
    try:
        (info,) = store.list_recommendations("M-100")
        assert (info.inspection_id, info.rule_id) == (
            first[0]["evidence"]["inspection_id"],
            "LW-WOBBLE-WIDER",
        )
        applied = {**params, "wobble_width_mm": rec["items"][0]["new"]}
        hook([graded(2, applied, advise=False) for _ in range(3)])
        (tracked,) = tracked_outcomes(store, "M-100")
        assert (
            tracked.outcome != "pending" and tracked.applied_inspection_id is not None
        )  # updated by the hook

        # a record in the store (written by anyone) that widening the wobble keeps failing ...
        with store.write() as s:
            s.execute(update(RecommendationOutcomeRow).values(worked=False, p_value=0.9))
        assert rule_success(store)["LW-WOBBLE-WIDER"] == RuleStats("LW-WOBBLE-WIDER", 1, 1, 0, 1, 0)
    finally:
        store.close()
    # ... ranks that rule lower in the next `score --ledger` run (its hook reads the record once)
    fresh = ledger_hook(
        "default", cast(Inspector, SimpleNamespace(config_sha256=CONFIG_SHA)), store_config=cfg
    )
    out = fresh([graded(2, params)])[0]["recommendation"]
    assert "outcome record: 0 worked of 1 evaluated" in next(
        i["why"] for i in out["items"] + out["alternatives"] if i["rule_id"] == "LW-WOBBLE-WIDER"
    )
