"""Outcome tracking on a synthetic machine history: one rule works, one does not."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from inspection.recommend import (
    InspectionRecord,
    IssuedRecommendation,
    RuleStats,
    evaluate_outcomes,
    recommend,
    rule_stats,
    track_outcomes,
)
from inspection.recommend.outcomes import values_match
from tests.recommend.factories import ALONG_WHOLE_SEAM, LASER_PARAMS, pores, result

T0 = datetime(2025, 6, 1, 6, 0)
WORKS, FAILS = "LW-SPEED-SLOWER", "LW-WOBBLE-WIDER"


def synthetic_history() -> tuple[list[InspectionRecord], list[IssuedRecommendation]]:
    """Three episodes per rule on one machine. Slowing down cuts porosity from 7/8 to 1/8 of
    inspections; widening the wobble leaves it at 4/8 -> 5/8. One issued change is never applied."""
    history: list[InspectionRecord] = []
    issued: list[IssuedRecommendation] = []
    params = dict(LASER_PARAMS)
    t = T0

    def inspect(grades: list[int]) -> None:
        nonlocal t
        for g in grades:
            history.append(InspectionRecord(t, dict(params), porosity_grade=g, spatter_grade=0))
            t += timedelta(hours=1)

    for _ in range(3):
        inspect([2, 2, 1, 2, 0, 2, 2, 1])
        new_speed = float(params["speed_mm_s"]) - 2.0
        issued.append(IssuedRecommendation(t, WORKS, "speed_mm_s", new_speed, "porosity"))
        params["speed_mm_s"] = new_speed + 0.1  # logged value differs slightly (within tolerance)
        inspect([0, 0, 0, 1, 0, 0, 0, 0])
        inspect([1, 0, 2, 0, 1, 0, 2, 0])  # something else drifted: back to 4/8
        new_width = float(params["wobble_width_mm"]) + 0.5
        issued.append(IssuedRecommendation(t, FAILS, "wobble_width_mm", new_width, "porosity"))
        params["wobble_width_mm"] = new_width
        inspect([1, 2, 0, 1, 0, 2, 1, 0])
    issued.append(IssuedRecommendation(t, "LW-RAMP-DOWN", "ramp_down_ms", 999.0, "porosity"))
    inspect([0, 0, 0])
    return history, issued


def test_outcomes_per_issued_change() -> None:
    history, issued = synthetic_history()
    outcomes = evaluate_outcomes(history, issued, window=8)
    by_rule: dict[str, list[str]] = {}
    for o in outcomes:
        by_rule.setdefault(o.rule_id, []).append(o.outcome)
    assert by_rule[WORKS] == ["worked"] * 3
    assert by_rule[FAILS] == ["did_not_work"] * 3
    assert by_rule["LW-RAMP-DOWN"] == ["not_applied"]
    first = outcomes[0]
    assert (first.before_n, first.before_defective, first.after_n, first.after_defective) == (8, 7, 8, 1)
    assert first.applied_at is not None and first.applied_at >= first.issued_at
    assert first.p_value is not None and first.p_value < 0.01
    assert first.before_rate == pytest.approx(7 / 8) and first.after_rate == pytest.approx(1 / 8)


def test_rule_stats_and_ranking() -> None:
    history, issued = synthetic_history()
    stats = track_outcomes(history, issued, window=8)
    assert (stats[WORKS].worked, stats[WORKS].evaluated) == (3, 3)
    assert (stats[FAILS].did_not_work, stats[FAILS].evaluated) == (3, 3)
    assert stats["LW-RAMP-DOWN"].applied == 0 and stats["LW-RAMP-DOWN"].ranking_factor == 1.0
    assert stats[WORKS].success_rate > 0.5 > stats[FAILS].success_rate
    assert stats[WORKS].ranking_factor > 1.0 > stats[FAILS].ranking_factor

    advise = dict(
        result=result(2, 0, pores(ALONG_WHOLE_SEAM)),
        params=LASER_PARAMS,
        process="laser_wobble",
        material="stainless",
        thickness_mm=2.0,
        one_at_a_time=False,
    )
    without = recommend(**advise)  # type: ignore[arg-type]
    with_stats = recommend(**advise, rule_stats=stats)  # type: ignore[arg-type]
    order = [i.rule_id for i in without.items]
    assert order.index(FAILS) < order.index(WORKS)  # the database's prior order
    order = [i.rule_id for i in with_stats.items]
    assert order.index(WORKS) < order.index(FAILS)  # the outcome record reverses it
    assert with_stats.items[0].rule_id == WORKS
    works = next(i for i in with_stats.items if i.rule_id == WORKS)
    assert "3 worked of 3" in works.why


def test_insufficient_and_inconclusive() -> None:
    params = {"gas_flow_l_min": 10.0}
    history = [InspectionRecord(T0 + timedelta(hours=i), params, 1, 0) for i in range(2)]
    later = {"gas_flow_l_min": 20.0}
    history += [InspectionRecord(T0 + timedelta(hours=10 + i), later, 0, 0) for i in range(5)]
    rec = IssuedRecommendation(T0 + timedelta(hours=5), "LW-GAS-LOW", "gas_flow_l_min", 20.0, "porosity")
    (few,) = evaluate_outcomes(history, [rec])
    assert few.outcome == "insufficient_data" and few.p_value is None
    # 4 before (2 defective) vs 4 after (1 defective): lower but far from significant
    history = [InspectionRecord(T0 + timedelta(hours=i), params, g, 0) for i, g in enumerate([1, 0, 1, 0])]
    history += [
        InspectionRecord(T0 + timedelta(hours=10 + i), later, g, 0) for i, g in enumerate([0, 1, 0, 0])
    ]
    (weak,) = evaluate_outcomes(history, [rec])
    assert weak.outcome == "inconclusive" and weak.p_value is not None and weak.p_value > 0.1
    stats = rule_stats([weak])["LW-GAS-LOW"]
    assert stats.success_rate == pytest.approx((0.5 + 1) / 3)


def test_defect_none_uses_either_grade() -> None:
    params, later = {"voltage_v": 20.0}, {"voltage_v": 21.0}
    history = [InspectionRecord(T0 + timedelta(hours=i), params, 0, 2) for i in range(6)]
    history += [InspectionRecord(T0 + timedelta(hours=10 + i), later, 0, 0) for i in range(6)]
    rec = IssuedRecommendation(T0 + timedelta(hours=7), "MG-SPATTER-VOLTAGE", "voltage_v", 21.0)
    (outcome,) = evaluate_outcomes(history, [rec])
    assert outcome.outcome == "worked"


@pytest.mark.parametrize(
    ("logged", "target", "match"),
    [
        (20.0, 20.0, True),
        (20.3, 20.0, True),
        (21.0, 20.0, False),
        ("Argon", "argon", True),
        (None, 1.0, False),
    ],
)
def test_values_match(logged: object, target: float | str, match: bool) -> None:
    assert values_match(logged, target) is match


def test_rule_stats_validation() -> None:
    with pytest.raises(ValueError, match="applied"):
        RuleStats("X", issued=1, applied=2)
    with pytest.raises(ValueError, match=r"0\.\.3"):
        InspectionRecord(T0, {}, porosity_grade=5, spatter_grade=0)
