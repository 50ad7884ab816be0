"""``weldinspect recommend``: JSON out, context fallbacks, exit code 2 with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from inspection.cli import recommend_cmds
from inspection.types import InspectionContext
from tests.recommend.factories import ALONG_WHOLE_SEAM, LASER_PARAMS, pores, result


@pytest.fixture
def app() -> typer.Typer:
    """A root app with only this area's commands (isolated from other areas' modules)."""
    root = typer.Typer()

    @root.callback()
    def _root() -> None:
        pass

    recommend_cmds.register(root)
    return root


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _result_file(tmp_path: Path, context: InspectionContext | None) -> Path:
    res = result(2, 0, pores(ALONG_WHOLE_SEAM), context=context)
    return _write(tmp_path, "result.json", res.to_dict())


def test_recommend_prints_json_using_the_result_context(tmp_path: Path, app: typer.Typer) -> None:
    ctx = InspectionContext(process="laser", material="aluminium", thickness_mm=2.0)
    res, params = (
        _result_file(tmp_path, ctx),
        _write(tmp_path, "params.json", {**LASER_PARAMS, "laser_power_w": 2000}),
    )
    out = CliRunner().invoke(app, ["recommend", "--result", str(res), "--params", str(params)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert (data["process"], data["material"], data["thickness_mm"]) == ("laser_wobble", "aluminium", 2.0)
    assert data["items"][0]["rule_id"] == "LW-AL-POWER"
    assert len(data["items"]) == 1


def test_options_override_the_context(tmp_path: Path, app: typer.Typer) -> None:
    res = _result_file(tmp_path, None)
    params = _write(tmp_path, "params.json", LASER_PARAMS)
    argv = ["recommend", "--result", str(res), "--params", str(params), "--process", "laser_wobble"]
    argv += ["--material", "galvanised", "--thickness", "2", "--all-changes"]
    out = CliRunner().invoke(app, argv)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["material"] == "galvanised" and len(data["items"]) > 1
    assert data["actions"][0]["rule_id"] == "LW-GALV-GAP"


@pytest.mark.parametrize(
    ("context", "extra", "message"),
    [
        (None, [], "--process, --material, --thickness not given"),
        (
            InspectionContext(process="arc", material="stainless", thickness_mm=3.0),
            [],
            "--process mig_mag or tig",
        ),
        (
            InspectionContext(process="laser", material="wood", thickness_mm=3.0),
            [],
            "unknown material 'wood'",
        ),
    ],
)
def test_bad_usage_exits_2_with_a_message(
    tmp_path: Path, app: typer.Typer, context: InspectionContext | None, extra: list[str], message: str
) -> None:
    res = _result_file(tmp_path, context)
    params = _write(tmp_path, "params.json", LASER_PARAMS)
    out = CliRunner().invoke(app, ["recommend", "--result", str(res), "--params", str(params), *extra])
    assert out.exit_code == 2
    assert message in out.output


def test_unreadable_files_are_named(tmp_path: Path, app: typer.Typer) -> None:
    bad = tmp_path / "result.json"
    bad.write_text("{not json", encoding="utf-8")
    out = CliRunner().invoke(app, ["recommend", "--result", str(bad)])
    assert out.exit_code == 2 and str(bad) in out.output and "not valid JSON" in out.output
    missing = tmp_path / "nope.json"
    out = CliRunner().invoke(app, ["recommend", "--result", str(missing)])
    assert out.exit_code == 2 and "does not exist" in out.output


def test_strict_missing_parameters_exit_2(tmp_path: Path, app: typer.Typer) -> None:
    ctx = InspectionContext(process="laser", material="stainless", thickness_mm=2.0)
    res, params = _result_file(tmp_path, ctx), _write(tmp_path, "params.json", {"laser_power_w": 1500})
    out = CliRunner().invoke(app, ["recommend", "--result", str(res), "--params", str(params), "--strict"])
    assert out.exit_code == 2
    assert "params lack" in out.output and "wobble_width_mm" in out.output
