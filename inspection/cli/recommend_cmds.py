"""CLI commands: recommend (parameter advice for one inspection result, printed as JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import typer

_USAGE_ERROR = 2


def _fail(message: str) -> NoReturn:
    typer.echo(f"weldinspect recommend: {message}", err=True)
    raise typer.Exit(_USAGE_ERROR)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{what} file {path} does not exist")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"{what} file {path} cannot be read: {exc}")
    except json.JSONDecodeError as exc:
        _fail(f"{what} file {path} is not valid JSON: {exc}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""

    @app.command("recommend")
    def recommend_cmd(
        result: Path = typer.Option(
            ..., "--result", help="InspectionResult JSON (InspectionResult.to_dict())."
        ),
        params: Path | None = typer.Option(
            None,
            "--params",
            help='JSON object of current settings, e.g. {"laser_power_w": 1500, "gas_type": "argon"}. '
            "Default: the result's context.params.",
        ),
        material: str | None = typer.Option(None, "--material", help="Material (default: result context)."),
        thickness: float | None = typer.Option(
            None, "--thickness", help="Thickness in mm (default: result context)."
        ),
        process: str | None = typer.Option(
            None, "--process", help="laser_wobble, mig_mag or tig (default: result context)."
        ),
        machine_limits: Path | None = typer.Option(
            None,
            "--machine-limits",
            help="JSON object mapping parameter to a two-number list (min, max) of the actual machine.",
        ),
        db_path: Path | None = typer.Option(None, "--db", help="Expert database YAML (default: packaged)."),
        all_changes: bool = typer.Option(
            False, "--all-changes", help="List every change, not one at a time."
        ),
        strict: bool = typer.Option(
            False, "--strict", help="Fail (exit 2) when needed parameters are missing."
        ),
    ) -> None:
        """Advise setting changes for one inspection result; prints the recommendation as JSON."""
        from inspection.recommend import (
            ExpertDBError,
            InvalidParameters,
            MissingParameters,
            load_expert_db,
            recommend,
        )
        from inspection.types import InspectionResult

        raw = _read_json(result, "result")
        if not isinstance(raw, dict):
            _fail(f"result file {result} must hold a JSON object (InspectionResult.to_dict())")
        try:
            inspection = InspectionResult.from_dict(raw)
        except (KeyError, TypeError, ValueError) as exc:
            _fail(f"result file {result} is not a valid InspectionResult: {exc}")
        ctx = inspection.context
        settings: Any = (
            _read_json(params, "params") if params is not None else dict(ctx.params if ctx else {})
        )
        if not isinstance(settings, dict):
            _fail(f"params file {params} must hold a JSON object of parameter -> value")
        limits: dict[str, tuple[float, float]] | None = None
        if machine_limits is not None:
            loaded = _read_json(machine_limits, "machine limits")
            if not isinstance(loaded, dict) or not all(
                isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v)
                for v in loaded.values()
            ):
                _fail(f"machine limits file {machine_limits} must map parameter -> [min, max] numbers")
            limits = {str(k): (float(v[0]), float(v[1])) for k, v in loaded.items()}
        process = process or (ctx.process if ctx else None)
        material = material or (ctx.material if ctx else None)
        thickness = thickness if thickness is not None else (ctx.thickness_mm if ctx else None)
        absent = [
            n
            for n, v in (("--process", process), ("--material", material), ("--thickness", thickness))
            if v is None
        ]
        if absent:
            _fail(f"{', '.join(absent)} not given and not in the result's context")
        if process == "arc":
            _fail(
                "the result's context says process 'arc', which is ambiguous here: "
                "pass --process mig_mag or tig"
            )
        try:
            db = load_expert_db(db_path)
            rec = recommend(
                inspection,
                settings,
                process=str(process),
                material=str(material),
                thickness_mm=float(thickness or 0.0),
                machine_limits=limits,
                db=db,
                one_at_a_time=not all_changes,
                strict=strict,
            )
        except (ExpertDBError, MissingParameters, InvalidParameters, ValueError) as exc:
            _fail(str(exc))
        typer.echo(json.dumps(rec.to_dict(), indent=2))
