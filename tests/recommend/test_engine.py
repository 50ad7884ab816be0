"""Recommendation engine: main remedies per material, clamping, keep-settings, missing parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from inspection.recommend import (
    InvalidParameters,
    MissingParameters,
    Recommendation,
    check_compliance,
    load_expert_db,
    recommend,
    seam_pattern,
)
from tests.recommend.factories import ALONG_WHOLE_SEAM, AT_ENDS, LASER_PARAMS, pores, result

# Settings inside each material's 1.5-3 mm laser window.
LASER = {
    "stainless": LASER_PARAMS,
    "carbon_steel": LASER_PARAMS,
    "galvanised": LASER_PARAMS,
    "aluminium": {**LASER_PARAMS, "laser_power_w": 2000.0},
}
MIG = {
    "current_a": 150.0,
    "voltage_v": 20.0,
    "wire_feed_m_min": 6.0,
    "speed_mm_s": 6.0,
    "gas_type": "argon_co2",
    "gas_flow_l_min": 15.0,
    "gas_preflow_s": 0.2,
    "gas_postflow_s": 1.0,
    "ramp_up_ms": 0.0,
    "ramp_down_ms": 200.0,
}
TIG = {
    "current_a": 120.0,
    "voltage_v": 12.0,
    "speed_mm_s": 2.0,
    "gas_type": "argon",
    "gas_flow_l_min": 9.0,
    "gas_preflow_s": 0.3,
    "gas_postflow_s": 5.0,
    "ramp_up_ms": 0.0,
    "ramp_down_ms": 1000.0,
}


def _advise(
    process: str, material: str, params: Mapping[str, float | str], porosity: int, spatter: int, **kw: Any
) -> Recommendation:
    found = pores(ALONG_WHOLE_SEAM) if porosity else ()
    return recommend(
        result(porosity, spatter, found), params, process=process, material=material, thickness_mm=2.5, **kw
    )


# (material, defect, expected first parameter change, expected first action or None)
LASER_MAIN = [
    ("stainless", "porosity", "LW-WOBBLE-WIDER", "LW-SHIELD-CHECK"),
    ("carbon_steel", "porosity", "LW-WOBBLE-WIDER", "LW-SHIELD-CHECK"),
    ("aluminium", "porosity", "LW-AL-POWER", "LW-AL-OXIDE"),
    ("galvanised", "porosity", "LW-GALV-SLOWER", "LW-GALV-GAP"),
    ("stainless", "spatter", "LW-SPATTER-POWER", None),
    ("carbon_steel", "spatter", "LW-SPATTER-POWER", None),
    ("aluminium", "spatter", "LW-SPATTER-POWER", "LW-AL-SPATTER-CLEAN"),
    ("galvanised", "spatter", "LW-SPATTER-POWER", "LW-GALV-GAP"),
]


@pytest.mark.parametrize(("material", "defect", "change", "action"), LASER_MAIN)
def test_laser_main_remedies_per_material(
    material: str, defect: str, change: str, action: str | None
) -> None:
    grades = (2, 0) if defect == "porosity" else (0, 2)
    rec = _advise("laser_wobble", material, LASER[material], *grades)
    assert rec.status == "change"
    assert len(rec.items) == 1  # one parameter at a time
    assert rec.items[0].rule_id == change
    assert defect in rec.items[0].defect
    assert (rec.actions[0].rule_id if rec.actions else None) == action
    item = rec.items[0]
    assert item.current == LASER[material][item.parameter]
    assert item.new != item.current
    assert rec.window is not None
    lo, hi = rec.window.ranges[item.parameter].min, rec.window.ranges[item.parameter].max
    assert isinstance(item.new, float) and lo <= item.new <= hi


@pytest.mark.parametrize(
    ("process", "material", "params", "defect", "change", "action"),
    [
        (
            "mig_mag",
            "carbon_steel",
            {**MIG, "gas_type": "co2"},
            "spatter",
            "MG-SPATTER-CO2",
            "MG-SPATTER-CONTACT",
        ),
        ("mig_mag", "aluminium", {**MIG, "gas_type": "co2"}, "porosity", "MG-AL-ARGON", "MG-AL-OXIDE"),
        ("mig_mag", "galvanised", MIG, "porosity", "MG-GALV-SLOWER", "MG-GALV-ZINC"),
        ("mig_mag", "stainless", MIG, "spatter", "MG-SPATTER-VOLTAGE", "MG-SPATTER-CONTACT"),
        ("tig", "stainless", {**TIG, "gas_flow_l_min": 4.0}, "porosity", "TG-GAS-LOW", "TG-CLEAN"),
        ("tig", "galvanised", TIG, "spatter", "TG-SPATTER-CURRENT", "TG-GALV-ZINC"),
    ],
)
def test_arc_main_remedies(
    process: str, material: str, params: dict, defect: str, change: str, action: str
) -> None:
    grades = (2, 0) if defect == "porosity" else (0, 2)
    rec = _advise(process, material, params, *grades)
    assert rec.items[0].rule_id == change
    assert rec.actions[0].rule_id == action


def test_conditional_rule_uses_the_measured_setting() -> None:
    """Gas flow below 15 L/min triggers LW-GAS-LOW, which sets the cited 20 L/min."""
    rec = _advise("laser_wobble", "stainless", {**LASER_PARAMS, "gas_flow_l_min": 8.0}, 2, 0)
    assert (rec.items[0].rule_id, rec.items[0].new) == ("LW-GAS-LOW", 20.0)
    assert "gas_flow_l_min < 15" in rec.items[0].why
    assert rec.items[0].basis == "cited"
    assert [c.parameter for c in rec.compliance] == ["gas_flow_l_min"]


@pytest.mark.parametrize(("positions", "pattern"), [(AT_ENDS, "start_end"), (ALONG_WHOLE_SEAM, "whole_seam")])
def test_pore_pattern_selects_ramps_or_shielding(positions: tuple[float, ...], pattern: str) -> None:
    rec = recommend(
        result(2, 0, pores(positions)), LASER_PARAMS, process="laser", material="stainless", thickness_mm=2.0
    )
    assert rec.pattern == pattern == seam_pattern(pores(positions))
    ids = {i.rule_id for i in rec.items + rec.alternatives} | {a.rule_id for a in rec.actions}
    end_rules = {"LW-RAMP-UP", "LW-RAMP-DOWN", "LW-PREFLOW", "LW-POSTFLOW"}
    shield_rules = {"LW-SHIELD-CHECK", "LW-CLEAN"}
    if pattern == "start_end":
        assert rec.items[0].rule_id in end_rules
        assert end_rules <= ids and not ids & shield_rules
    else:
        assert shield_rules <= ids and not ids & end_rules


@pytest.mark.parametrize(
    ("positions", "pattern"),
    [((), "unknown"), ((0.5,), "scattered"), ((0.02, 0.98), "start_end"), ((0.1, 0.5, 0.9), "whole_seam")],
)
def test_seam_pattern(positions: tuple[float, ...], pattern: str) -> None:
    assert seam_pattern(pores(positions)) == pattern


def test_machine_limit_clamps_and_says_so() -> None:
    params = {**LASER_PARAMS, "laser_power_w": 2000.0}
    free = _advise("laser_wobble", "aluminium", params, 2, 0)
    limited = _advise(
        "laser_wobble", "aluminium", params, 2, 0, machine_limits={"laser_power_w": (500.0, 2100.0)}
    )
    assert free.items[0].new == 2200.0 and free.items[0].clamped == ""
    assert limited.items[0].rule_id == "LW-AL-POWER"
    assert limited.items[0].new == 2100.0
    assert "machine max 2100" in limited.items[0].clamped


def test_window_clamps_and_says_so() -> None:
    """120 mm/s is far too fast: -20 % gives 96, the 1.5-3 mm stainless window allows 40 at most."""
    rec = _advise("laser_wobble", "stainless", {**LASER_PARAMS, "speed_mm_s": 120.0}, 2, 0)
    item = rec.items[0]
    assert (item.rule_id, item.new) == ("LW-SPEED-HIGH", 40.0)
    assert "window max 40" in item.clamped and "96" in item.clamped


def test_change_at_the_limit_is_skipped_with_a_note() -> None:
    rec = _advise("laser_wobble", "aluminium", {**LASER_PARAMS, "laser_power_w": 2600.0}, 2, 0)
    assert "LW-AL-POWER" not in {i.rule_id for i in rec.items + rec.alternatives}
    assert any("LW-AL-POWER" in n and "limit" in n for n in rec.notes)


def test_all_changes_mode_lists_one_change_per_parameter() -> None:
    rec = _advise("laser_wobble", "galvanised", LASER_PARAMS, 2, 2, one_at_a_time=False)
    params = [i.parameter for i in rec.items]
    assert len(rec.items) > 1 and rec.alternatives == ()
    assert len(params) == len(set(params))
    scores = [i.score for i in rec.items]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("process", ["laser_wobble", "mig_mag", "tig"])
def test_grade_zero_keeps_settings(process: str) -> None:
    rec = recommend(result(0, 0), {}, process=process, material="stainless", thickness_mm=2.0)
    assert rec.status == "keep_settings" and rec.keep_settings
    assert rec.items == () and rec.actions == () and rec.missing == ()
    assert "keep settings" in rec.message


# (porosity, spatter, review reasons, expected status, defects the advice may name)
REVIEW_CASES = [
    (0, 0, ("abstain:porosity",), "review", ()),
    (0, 0, ("abstain:spatter",), "review", ()),
    (2, 0, ("abstain:porosity",), "review", ()),  # the only defect is the uncertain one
    (0, 0, ("quality:blurred",), "review", ()),
    (2, 1, ("quality:underexposed",), "review", ()),  # a failed gate makes every grade uncertain
    (1, 0, ("out_of_distribution",), "review", ()),
    (2, 0, ("abstain:spatter",), "change", ("porosity",)),  # confident porosity: advise on it only
    (0, 2, ("abstain:porosity",), "change", ("spatter",)),
]


@pytest.mark.parametrize(("porosity", "spatter", "reasons", "status", "defects"), REVIEW_CASES)
def test_uncertain_grades_wait_for_review_instead_of_keep_settings(
    porosity: int, spatter: int, reasons: tuple[str, ...], status: str, defects: tuple[str, ...]
) -> None:
    found = pores(ALONG_WHOLE_SEAM) if porosity else ()
    res = replace(result(porosity, spatter, found), needs_review=True, review_reasons=reasons)
    rec = recommend(res, LASER_PARAMS, process="laser", material="stainless", thickness_mm=2.0)
    assert rec.status == status
    assert not rec.keep_settings and "keep settings" not in rec.message
    assert rec.review_reasons == reasons and rec.to_dict()["review_reasons"] == list(reasons)
    if status == "review":
        assert rec.items == () and rec.alternatives == () and rec.actions == ()
        assert "uncertain" in rec.message and "human review" in rec.message
        assert all(r in rec.message for r in reasons)
    else:
        advised = {d for i in rec.items + rec.alternatives for d in i.defect.split("+")}
        advised |= {d for a in rec.actions for d in a.defect.split("+")}
        assert advised and advised <= set(defects)
        assert any("uncertain" in n and "human review" in n for n in rec.notes)


def test_needs_review_without_a_reason_is_review_too() -> None:
    res = replace(result(0, 0), needs_review=True, review_reasons=())
    rec = recommend(res, LASER_PARAMS, process="laser", material="stainless", thickness_mm=2.0)
    assert rec.status == "review" and rec.review_reasons == ("needs_review",)


def test_confident_result_has_no_review_reasons() -> None:
    rec = _advise("laser_wobble", "stainless", LASER_PARAMS, 2, 0)
    assert rec.status == "change" and rec.review_reasons == ()


def test_not_graded() -> None:
    rec = recommend(result(None, None), LASER_PARAMS, process="laser", material="stainless", thickness_mm=2.0)
    assert rec.status == "not_graded" and rec.items == ()


def test_missing_parameters_are_named() -> None:
    rec = recommend(
        result(2, 0, pores(ALONG_WHOLE_SEAM)),
        {"laser_power_w": 1500},
        process="laser_wobble",
        material="stainless",
        thickness_mm=2.0,
    )
    assert "wobble_width_mm" in rec.missing and "speed_mm_s" in rec.missing
    assert "laser_power_w" not in rec.missing
    assert "params lack" in rec.message and "wobble_width_mm" in rec.message
    # actions need no parameters and are still given
    assert rec.status == "change" and rec.items == () and rec.actions


def test_only_missing_parameters_gives_incomplete() -> None:
    rec = recommend(result(0, 2), {}, process="laser_wobble", material="stainless", thickness_mm=2.0)
    assert rec.status == "incomplete"
    assert set(rec.missing) == {
        "laser_power_w",
        "wobble_width_mm",
        "defocus_mm",
        "speed_mm_s",
        "gas_flow_l_min",
    }
    assert rec.items == () and rec.actions == ()


def test_strict_mode_raises_missing_parameters() -> None:
    with pytest.raises(MissingParameters) as err:
        recommend(result(0, 2), {}, process="mig_mag", material="stainless", thickness_mm=3.0, strict=True)
    assert set(err.value.missing) == {"voltage_v", "wire_feed_m_min"}
    assert "voltage_v" in str(err.value) and "MG-SPATTER-VOLTAGE" in str(err.value)


def test_bad_inputs_name_what_is_valid() -> None:
    with pytest.raises(InvalidParameters, match="laser_power_w"):
        recommend(
            result(2, 0), {"laser_power_w": "lots"}, process="laser", material="stainless", thickness_mm=2
        )
    with pytest.raises(ValueError, match=r"valid: .*laser_wobble"):
        recommend(result(2, 0), {}, process="plasma", material="stainless", thickness_mm=2)
    with pytest.raises(ValueError, match=r"valid: .*aluminium"):
        recommend(result(2, 0), {}, process="laser", material="wood", thickness_mm=2)
    with pytest.raises(ValueError, match="thickness_mm"):
        recommend(result(2, 0), {}, process="laser", material="stainless", thickness_mm=0)


def test_unknown_parameters_are_ignored_with_a_note() -> None:
    rec = _advise("laser_wobble", "stainless", {**LASER_PARAMS, "lazer_power": 1.0}, 2, 0)
    assert any("lazer_power" in n for n in rec.notes)


def test_thickness_without_window_falls_back_to_machine_limits() -> None:
    rec = recommend(result(0, 2), LASER_PARAMS, process="laser", material="stainless", thickness_mm=8.0)
    assert rec.window is None
    assert any("no parameter window" in n for n in rec.notes)
    assert rec.items  # still advises within machine limits


def test_to_dict_is_json_ready() -> None:
    rec = _advise("laser_wobble", "galvanised", LASER_PARAMS, 2, 1)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["status"] == "change"
    assert data["items"][0]["rule_id"] == rec.items[0].rule_id
    assert data["window"]["ranges"]["laser_power_w"]["unit"] == "W"
    assert data["db_version"] == load_expert_db().version
    assert data["grades"] == {"porosity": 2, "spatter": 1}


def test_check_compliance_kinds() -> None:
    window = load_expert_db().window("laser_wobble", "aluminium", 2.0)
    params = {"laser_power_w": 900, "speed_mm_s": 99, "gas_type": "nitrogen", "wobble_width_mm": "wide"}
    issues = {i.parameter: i.kind for i in check_compliance(params, window)}
    assert issues["laser_power_w"] == "below"
    assert issues["speed_mm_s"] == "above"
    assert issues["gas_type"] == "not_allowed"
    assert issues["wobble_width_mm"] == "invalid"
    assert issues["gas_flow_l_min"] == "missing"
    assert "gas_flow_l_min" not in {
        i.parameter for i in check_compliance(params, window, include_missing=False)
    }
    inside = {name: (r.min + r.max) / 2 for name, r in window.ranges.items()} | {"gas_type": "argon"}
    assert check_compliance(inside, window) == []


@pytest.mark.parametrize(
    ("positions", "expected", "absent"),
    [
        ((0.9, 0.93, 0.97), {"LW-RAMP-DOWN", "LW-POSTFLOW"}, {"LW-RAMP-UP", "LW-PREFLOW"}),
        ((0.01, 0.04, 0.08), {"LW-RAMP-UP", "LW-PREFLOW"}, {"LW-RAMP-DOWN", "LW-POSTFLOW"}),
    ],
)
def test_end_zone_rules_follow_the_end_with_pores(
    positions: tuple[float, ...], expected: set[str], absent: set[str]
) -> None:
    rec = recommend(
        result(2, 0, pores(positions)), LASER_PARAMS, process="laser", material="stainless", thickness_mm=2.0
    )
    ids = {i.rule_id for i in rec.items + rec.alternatives}
    assert expected <= ids and not ids & absent
    assert rec.items[0].rule_id in expected
