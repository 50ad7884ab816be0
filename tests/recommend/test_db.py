"""Expert database: the packaged file validates; every number has a basis; broken files name the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from inspection.recommend import ExpertDBError, load_expert_db
from inspection.recommend.schema import DEFAULT_DB_PATH

PROCESSES = ("laser_wobble", "mig_mag", "tig")
MATERIALS = ("stainless", "carbon_steel", "aluminium", "galvanised")


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_RAW: dict[str, Any] = yaml.load(DEFAULT_DB_PATH.read_text(encoding="utf-8"), Loader=_LOADER)


def _raw() -> dict[str, Any]:
    return copy.deepcopy(_RAW)


def test_packaged_db_loads_with_a_version() -> None:
    db = load_expert_db()
    assert db.version
    assert set(PROCESSES) <= set(db.processes)
    assert set(MATERIALS) <= set(db.materials)


@pytest.mark.parametrize("process", PROCESSES)
@pytest.mark.parametrize("material", MATERIALS)
def test_every_process_and_material_has_windows_with_basis(process: str, material: str) -> None:
    db = load_expert_db()
    t = 1.0 if process == "laser_wobble" else 3.0
    window = db.window(process, material, t)
    assert window.process == process and window.material == material
    assert window.thickness_mm[0] <= t <= window.thickness_mm[1]
    assert window.db_version == db.version
    for name, rng in window.ranges.items():
        assert name in db.processes[process].parameters
        assert rng.basis in ("cited", "judgement")
        assert rng.source in db.sources
        assert rng.min <= rng.max
        limits = db.machine_limits(process)[name]
        assert limits.min <= rng.min and rng.max <= limits.max, f"{name} window outside machine limits"
    assert "gas_type" in window.choices


def test_cited_numbers_from_the_brief() -> None:
    db = load_expert_db()
    gas = db.window("laser", "stainless", 2.0).ranges["gas_flow_l_min"]
    assert gas.basis == "cited" and gas.min <= 20 <= gas.max
    handheld = db.machine_limits("laser_wobble")["laser_power_w"]
    assert handheld.max == 3000


def test_rules_cover_both_defects_for_every_process() -> None:
    db = load_expert_db()
    for process in PROCESSES:
        rules = [r for r in db.rules if process in r.processes]
        for defect in ("porosity", "spatter"):
            assert any(defect in r.defects for r in rules), (process, defect)
        assert all(r.source in db.sources and r.basis in ("cited", "judgement") for r in rules)


def test_aliases_and_errors() -> None:
    db = load_expert_db()
    assert db.window("Laser", "Aluminum", 2.0).material == "aluminium"
    with pytest.raises(ValueError, match="covered"):
        db.window("tig", "stainless", 50.0)
    with pytest.raises(ValueError, match="valid"):
        db.window("oxyfuel", "stainless", 2.0)
    with pytest.raises(ValueError, match=r"ambiguous.*mig_mag"):
        db.window("arc", "stainless", 2.0)


def _first_rule(d: dict[str, Any], rule_id: str) -> dict[str, Any]:
    return next(r for r in d["rules"] if r["id"] == rule_id)


BROKEN = [
    (lambda d: d["windows"][0]["params"].update(laser_power_w=[1000, 400]), "windows.0.params.laser_power_w"),
    (
        lambda d: d["windows"][0]["params"].update(laser_power_w={"min": 1, "max": 2, "basis": "guess"}),
        "basis",
    ),
    (lambda d: _first_rule(d, "LW-GAS-LOW").pop("source"), "rules.1.source"),
    (lambda d: _first_rule(d, "LW-GAS-LOW").update(action="do something"), "exactly one of change or action"),
    (lambda d: _first_rule(d, "LW-GAS-LOW")["change"].update(parameter="laser_powr"), "change.parameter"),
    (lambda d: _first_rule(d, "LW-GAS-LOW").update(priority=0), "priority"),
    (lambda d: _first_rule(d, "LW-CLEAN").update(materials=["wood"]), "materials"),
    (lambda d: d["windows"][3].update(material="wood"), "windows.3.material"),
    (lambda d: d.update(schema_version=7), "schema_version"),
    (lambda d: d["sources"].pop("tig_gas_flow"), "tig_gas_flow"),
]


@pytest.mark.parametrize(("mutate", "field"), BROKEN)
def test_broken_db_names_file_and_field(tmp_path: Path, mutate: Any, field: str) -> None:
    data = _raw()
    mutate(data)
    path = tmp_path / "expert_db.yaml"
    path.write_text(yaml.dump(data, Dumper=_DUMPER, sort_keys=False), encoding="utf-8")
    with pytest.raises(ExpertDBError) as err:
        load_expert_db(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_unreadable_db_files(tmp_path: Path) -> None:
    with pytest.raises(ExpertDBError, match="does not exist"):
        load_expert_db(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed", encoding="utf-8")
    with pytest.raises(ExpertDBError, match="not valid YAML"):
        load_expert_db(bad)


def test_docs_list_every_rule_and_the_version(repo_root: Path) -> None:
    doc = (repo_root / "docs" / "recommendations.md").read_text(encoding="utf-8")
    db = load_expert_db()
    assert f"version {db.version}" in doc
    undocumented = [r.id for r in db.rules if f"| {r.id} |" not in doc]
    assert undocumented == []
