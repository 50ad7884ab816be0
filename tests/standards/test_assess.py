"""Standards verdicts: branch selection, level boundaries, missing context, notes, unconfirmed flags."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from inspection.standards import BELOW_D, NOT_ASSESSABLE, assess, load_tables, parse_tables
from inspection.standards.tables import DEFAULT_TABLES_PATH
from inspection.types import Defect, Finding, InspectionContext

SCALE = 0.01  # mm per px


def pore(d_mm: float, along: float = 0.5, *, use_mm: bool = False) -> Finding:
    """A surface pore of diameter ``d_mm`` (given in px at SCALE unless ``use_mm``)."""
    return Finding(
        kind=Defect.POROSITY,
        x=100.0,
        y=20.0,
        diameter_px=d_mm / SCALE,
        score=0.9,
        along_seam=along,
        diameter_mm=d_mm if use_mm else None,
    )


def spatter(n: int) -> list[Finding]:
    return [Finding(Defect.SPATTER, 10.0 * i, 5.0, 3.0, 0.8, 0.1 * (i % 10)) for i in range(n)]


def ctx(
    process: str = "arc", material: str = "carbon_steel", t: float = 4.0, level: str = "C"
) -> InspectionContext:
    return InspectionContext(
        process=process, material=material, thickness_mm=t, mm_per_px=SCALE, quality_level=level
    )


def raw_tables() -> dict[str, Any]:
    return yaml.safe_load(Path(DEFAULT_TABLES_PATH).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("process", "material", "standard"),
    [
        ("laser", "stainless", "ISO 13919-1:2019"),
        ("electron_beam", "titanium", "ISO 13919-1:2019"),
        ("laser_wobble", "nickel", "ISO 13919-1:2019"),
        ("laser", "aluminium", "ISO 13919-2:2021"),
        ("laser", "Aluminum", "ISO 13919-2:2021"),
        ("arc", "carbon_steel", "ISO 5817:2023"),
        ("mig_mag", "galvanised", "ISO 5817:2023"),
        ("tig", "stainless", "ISO 5817:2023"),
    ],
)
def test_standard_selected_by_process_and_material(process: str, material: str, standard: str) -> None:
    report = assess([pore(0.1)], ctx(process, material))
    assert report.assessable
    assert report.standard == standard
    assert {v.standard for v in report.verdicts} == {standard}
    assert [v.imperfection for v in report.verdicts] == ["2017", "602"]


# (process, material, thickness, level, limit in mm at that level); None = not permitted.
BOUNDARIES = [
    ("arc", "carbon_steel", 4.0, "C", 0.8),  # 0.2 s
    ("arc", "carbon_steel", 4.0, "D", 1.2),  # 0.3 s
    ("arc", "carbon_steel", 12.0, "C", 2.0),  # max 2 mm
    ("arc", "carbon_steel", 12.0, "D", 3.0),  # max 3 mm
    ("arc", "carbon_steel", 2.0, "D", 0.6),  # t 0.5..3: 0.3 s, C and B not permitted
    ("laser", "stainless", 4.0, "B", 0.4),  # 0.1 s
    ("laser", "stainless", 4.0, "C", 0.8),
    ("laser", "stainless", 4.0, "D", 1.2),
    ("laser", "stainless", 10.0, "B", 0.5),  # cap
    ("laser", "stainless", 10.0, "D", 2.0),  # cap
    ("laser", "aluminium", 4.0, "B", 0.4),
    ("laser", "aluminium", 4.0, "C", 0.8),
    ("laser", "aluminium", 20.0, "D", 3.0),  # cap
]
_NEXT = {"B": "C", "C": "D", "D": BELOW_D}


@pytest.mark.parametrize(("process", "material", "t", "level", "limit"), BOUNDARIES)
def test_level_boundaries_just_inside_and_just_outside(
    process: str, material: str, t: float, level: str, limit: float
) -> None:
    inside = assess([pore(limit - 0.005)], ctx(process, material, t, level))
    on_limit = assess([pore(limit)], ctx(process, material, t, level))
    outside = assess([pore(limit + 0.005)], ctx(process, material, t, level))
    v_in, v_on, v_out = (r.verdicts[0] for r in (inside, on_limit, outside))
    assert v_in.limit == pytest.approx(limit)
    assert v_in.passed and v_on.passed and not v_out.passed
    # inside may reach a better level than `level`, never a worse one
    assert "BCD".index(v_in.level_reached) <= "BCD".index(level)
    assert v_out.level_reached != level
    assert outside.level_reached == v_out.level_reached
    worse = _NEXT[level]
    if worse != BELOW_D:
        assert "BCD".index(v_out.level_reached) >= "BCD".index(worse)
    else:
        assert v_out.level_reached == BELOW_D


@pytest.mark.parametrize(("t", "expected"), [(2.0, "D"), (4.0, "C")])
def test_iso5817_not_permitted_levels_fail_any_pore(t: float, expected: str) -> None:
    """B never permits surface pores; in 0.5-3 mm neither does C."""
    report = assess([pore(0.01)], ctx("arc", "carbon_steel", t, "B"))
    verdict = report.verdicts[0]
    assert verdict.level_reached == expected
    assert not verdict.passed
    assert verdict.formula == "not permitted"
    assert verdict.limit == 0.0


def test_largest_pore_decides_and_all_pores_are_listed() -> None:
    findings = [pore(0.3), *spatter(2), pore(1.0), pore(0.5)]
    report = assess(findings, ctx("arc", "carbon_steel", 4.0, "C"))
    v = report.verdicts[0]
    assert v.measured == pytest.approx(1.0)
    assert v.level_reached == "D"
    assert v.finding_indices == (0, 3, 4)
    assert "finding 3" in v.note
    assert report.level_reached == "D"


def test_diameter_mm_is_used_when_given() -> None:
    f = Finding(Defect.POROSITY, 1.0, 1.0, diameter_px=500.0, score=0.9, along_seam=0.5, diameter_mm=0.5)
    assert assess([f], ctx()).verdicts[0].measured == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("process", "material"), [("arc", "carbon_steel"), ("laser", "stainless"), ("laser", "aluminium")]
)
@pytest.mark.parametrize("target", ["B", "C", "D"])
def test_no_findings_reaches_level_b(process: str, material: str, target: str) -> None:
    report = assess([], ctx(process, material, 4.0, target))
    assert report.assessable
    assert report.level_reached == "B"
    assert all(v.passed for v in report.verdicts)
    assert report.verdicts[0].measured == 0.0


@pytest.mark.parametrize("field", ["process", "material", "thickness_mm", "mm_per_px"])
def test_missing_context_field_is_named(field: str) -> None:
    full: dict[str, Any] = {
        "process": "laser",
        "material": "stainless",
        "thickness_mm": 2.0,
        "mm_per_px": SCALE,
    }
    del full[field]
    report = assess([pore(0.1)], InspectionContext(**full))
    assert not report.assessable
    assert report.missing == (field,)
    assert report.level_reached is None
    assert report.verdicts == ()


def test_no_context_names_every_field() -> None:
    report = assess([pore(0.1)], None)
    assert report.missing == ("process", "material", "thickness_mm", "mm_per_px")
    assert report.target_level == "C"


@pytest.mark.parametrize(("field", "value"), [("process", "plasma"), ("material", "wood")])
def test_unrecognised_process_or_material_is_missing_with_valid_values(field: str, value: str) -> None:
    kwargs: dict[str, Any] = {
        "process": "laser",
        "material": "stainless",
        "thickness_mm": 2.0,
        "mm_per_px": SCALE,
    }
    kwargs[field] = value
    report = assess([], InspectionContext(**kwargs))
    assert report.missing == (field,)
    assert any(value in n and "valid" in n for n in report.notes)


def test_arc_aluminium_is_not_covered_and_says_why() -> None:
    report = assess([pore(0.1)], ctx("arc", "aluminium"))
    assert not report.assessable
    assert report.missing == ()
    assert any("ISO 10042" in n for n in report.notes)


def test_thickness_below_scope_is_not_assessable() -> None:
    report = assess([pore(0.1)], ctx("arc", "carbon_steel", 0.3))
    assert not report.assessable
    assert report.standard == "ISO 5817:2023"
    assert any("below its scope" in n for n in report.notes)


def test_internal_porosity_is_noted_as_not_assessable() -> None:
    report = assess([pore(0.1)], ctx())
    internal = [n for n in report.notes if "2011" in n]
    assert len(internal) == 1
    assert "2012" in internal[0] and "2013" in internal[0]
    assert "not assessable from a surface image" in internal[0]


def test_spatter_has_no_numeric_limit_by_default() -> None:
    report = assess([*spatter(30)], ctx())
    v = next(v for v in report.verdicts if v.imperfection == "602")
    assert v.level_reached == NOT_ASSESSABLE
    assert v.limit is None
    assert v.measured == 30.0
    assert "application" in v.formula
    assert report.level_reached == "B"  # spatter does not enter the overall level


def test_site_spatter_rule_gives_a_numeric_verdict_marked_as_site_rule() -> None:
    data = raw_tables()
    data["site_rules"] = {"spatter_max_count_per_100mm": {"B": 2, "C": 5, "D": 10}}
    tables = parse_tables(data)
    # 100 mm of seam at 0.01 mm/px = 10_000 px
    few = assess(spatter(4), ctx(level="C"), seam_length_px=10_000, tables=tables)
    many = assess(spatter(12), ctx(level="C"), seam_length_px=10_000, tables=tables)
    unknown_length = assess(spatter(4), ctx(level="C"), tables=tables)
    v_few, v_many, v_unknown = (
        next(v for v in r.verdicts if v.imperfection == "602") for r in (few, many, unknown_length)
    )
    assert (v_few.level_reached, v_few.passed) == ("C", True)
    assert (v_many.level_reached, v_many.passed) == (BELOW_D, False)
    assert many.level_reached == BELOW_D
    assert "site rule" in v_few.formula and "SITE RULE" in v_few.note
    assert v_unknown.level_reached == NOT_ASSESSABLE
    assert "seam_length_px" in v_unknown.note


def test_unconfirmed_values_propagate_to_verdicts_and_report() -> None:
    laser = assess([pore(0.1)], ctx("laser", "stainless"))
    arc = assess([pore(0.1)], ctx("arc", "carbon_steel"))
    assert laser.unconfirmed and all(v.unconfirmed for v in laser.verdicts)
    assert any("UNCONFIRMED" in n for n in laser.notes)
    assert "UNCONFIRMED" in laser.verdicts[0].note
    assert not arc.unconfirmed and not any(v.unconfirmed for v in arc.verdicts)


def test_one_unconfirmed_level_marks_the_verdict_and_report() -> None:
    data = copy.deepcopy(raw_tables())
    iso5817 = next(s for s in data["standards"] if s["id"] == "iso_5817")
    iso5817["imperfections"][0]["ranges"][1]["levels"]["D"]["unconfirmed"] = True
    report = assess([pore(0.1)], ctx("arc", "carbon_steel", 4.0), tables=parse_tables(data))
    assert report.verdicts[0].unconfirmed
    assert report.unconfirmed
    # the spatter row did not use that value
    assert not report.verdicts[1].unconfirmed


def test_table_version_is_reported() -> None:
    assert assess([], ctx()).table_version == load_tables().table_version != ""
