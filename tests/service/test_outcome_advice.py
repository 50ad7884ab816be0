"""The service's advice learns from outcomes: recorded advice is stored, outcomes follow new
inspections of the machine, and a rule with a poor record is ranked lower in the next response.

The recorder runs its real submit path (recommendation, signed record, outcome tracking) on a tmp
SQLite store; only the model is replaced by scripted results, so the grades are known.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import select

from inspection.evidence.ledger import Ledger
from inspection.pipeline import Inspector, recommendation_for
from inspection.recommend.tracking import tracked_outcomes
from inspection.service.recorder import Recorder
from inspection.service.routes import inspection_out
from inspection.service.state import ServiceState
from inspection.store import Store
from inspection.store.models import RecommendationRow
from inspection.types import InspectionContext, InspectionResult
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, open_store, png_bytes
from tests.recommend.factories import ALONG_WHOLE_SEAM, LASER_PARAMS, pores

WIDER, SLOWER = "LW-WOBBLE-WIDER", "LW-SPEED-SLOWER"
SERIAL = "M-100"


class ScriptedRecorder(Recorder):
    """A :class:`Recorder` whose "model" returns the result queued by the test."""

    def __init__(self, store: Store, ledger: Ledger) -> None:
        super().__init__(cast(Inspector, SimpleNamespace(config_sha256=CONFIG_SHA)), store, ledger)
        self.queued: InspectionResult | None = None

    def inspect(self, data: bytes, context: InspectionContext | None, *, name: str) -> InspectionResult:
        if self.queued is None:
            msg = "queue a result first"
            raise RuntimeError(msg)
        return self.queued


class Station:
    """One laser machine (stainless, 2 mm) sending an inspection per hour through the recorder."""

    def __init__(self, tmp: Path) -> None:
        self.store = open_store(tmp)
        self.recorder = ScriptedRecorder(self.store, make_ledger(self.store))
        self.params: dict[str, Any] = {**LASER_PARAMS, "wobble_width_mm": 1.5}
        self.n = 0

    def result(self, porosity: int, *, advise: bool) -> tuple[InspectionResult, bytes]:
        self.n += 1
        img = png_bytes(900 + self.n)
        res = make_result(img, serial=SERIAL, porosity=porosity, params=dict(self.params))
        res = replace(res, findings=pores(ALONG_WHOLE_SEAM) if porosity else ())
        if not advise:  # a context without a process gets no advice (still part of the history)
            assert res.context is not None
            res = replace(res, context=replace(res.context, process=None))
        return res, img

    def submit(self, porosity: int, *, advise: bool = False) -> tuple[str, Mapping[str, Any] | None]:
        res, img = self.result(porosity, advise=advise)
        self.recorder.queued = res
        sub = self.recorder.submit(img, res.context, name=f"img-{self.n}")
        return sub.inspection_id, self.served(sub.inspection_id)

    def served(self, inspection_id: str) -> Mapping[str, Any] | None:
        """The recommendation of the service's response body for ``inspection_id``."""
        record = self.store.get_inspection(inspection_id)
        assert record is not None
        state = cast(ServiceState, SimpleNamespace(store=self.store))
        return inspection_out(state, record).recommendation

    def many(self, porosity: int, n: int = 4) -> None:
        for _ in range(n):
            self.submit(porosity)


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    s = Station(tmp_path)
    yield s
    s.store.close()


def _first_change(rec: Mapping[str, Any] | None) -> tuple[str, str, Any, Any]:
    assert rec is not None and rec["status"] == "change", rec
    item = rec["items"][0]
    return item["rule_id"], item["parameter"], item["current"], item["new"]


def test_recorded_advice_is_stored_and_outcomes_follow_later_inspections(station: Station) -> None:
    station.many(2)
    iid, rec = station.submit(2, advise=True)
    assert _first_change(rec) == (WIDER, "wobble_width_mm", 1.5, 2.0)
    with station.store.session() as s:
        rows = [
            (r.inspection_id, r.machine_serial, r.rule_id, r.new_value)
            for r in s.scalars(select(RecommendationRow))
        ]
    assert rows == [(iid, SERIAL, WIDER, 2.0)]
    (pending,) = tracked_outcomes(station.store, SERIAL)
    assert pending.outcome == "not_applied"  # computed right after recording: not applied yet

    station.params["wobble_width_mm"] = 2.0
    station.many(2)  # applied, still porous
    (tracked,) = tracked_outcomes(station.store, SERIAL)
    assert tracked.outcome == "did_not_work"
    assert (tracked.before_rate, tracked.after_rate) == (1.0, 1.0)


def test_grade_zero_and_uncertain_results_store_no_advice(station: Station) -> None:
    _, keep = station.submit(0, advise=True)
    assert keep is not None and keep["status"] == "keep_settings"
    res, img = station.result(0, advise=True)
    station.recorder.queued = replace(res, needs_review=True, review_reasons=("abstain:porosity",))
    review = station.served(station.recorder.submit(img, res.context).inspection_id)
    assert review is not None and review["status"] == "review" and "keep settings" not in review["message"]
    assert "abstain:porosity" in review["message"] and review["items"] == []
    assert station.store.list_recommendations(SERIAL) == []


def test_a_rule_with_a_poor_record_is_ranked_lower_in_the_next_response(station: Station) -> None:
    """Widening the wobble is tried twice and porosity stays; slowing down is tried twice and it
    clears. Without a record the database prefers the wobble; with this store's record the service
    now advises slowing down first."""
    for _ in range(2):  # the wobble episodes: 1.5 -> 2.0 -> 2.5 mm, porosity every time
        station.many(2)
        _, rec = station.submit(2, advise=True)
        rule, parameter, _, new = _first_change(rec)
        assert (rule, parameter) == (WIDER, "wobble_width_mm")
        station.params["wobble_width_mm"] = new
        station.many(2)
    station.params["wobble_width_mm"] = 3.0  # at the window max: the wobble rule cannot apply
    for _ in range(2):  # the speed episodes: slower -> clean welds
        station.many(2)
        _, rec = station.submit(2, advise=True)
        rule, parameter, _, new = _first_change(rec)
        assert (rule, parameter) == (SLOWER, "speed_mm_s")
        station.params["speed_mm_s"] = new
        station.many(0)

    verdicts: dict[str, list[str]] = {}
    for t in tracked_outcomes(station.store, SERIAL):
        verdicts.setdefault(t.rule_id, []).append(t.outcome)
    assert verdicts == {WIDER: ["did_not_work"] * 2, SLOWER: ["worked"] * 2}

    station.params["wobble_width_mm"] = 2.0  # the wobble rule applies again
    res, _ = station.result(2, advise=True)
    without_record = recommendation_for(res)
    assert _first_change(without_record)[0] == WIDER
    stats = station.recorder.outcomes.rule_stats()
    assert stats[WIDER].ranking_factor < 1.0 < stats[SLOWER].ranking_factor
    assert _first_change(recommendation_for(res, stats))[0] == SLOWER

    _, served = station.submit(2, advise=True)  # what the service returns for that result
    assert served is not None
    assert _first_change(served)[0] == SLOWER
    assert WIDER in {a["rule_id"] for a in served["alternatives"]}
    assert "outcome record: 0 worked of 2 evaluated" in next(
        a["why"] for a in served["alternatives"] if a["rule_id"] == WIDER
    )
