"""CLI commands: ``weldinspect inspect``."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``inspect`` to ``app``."""
    app.command("inspect")(inspect_cmd)


def _load_context(path: Path | None) -> object:
    from inspection.types import InspectionContext

    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        typer.echo(f"error: context file {path} could not be read: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(data, dict):
        typer.echo(f"error: context file {path} must hold a JSON object", err=True)
        raise typer.Exit(2)
    try:
        return InspectionContext.from_dict(data)
    except (TypeError, ValueError) as exc:
        typer.echo(f"error: context file {path}: {exc}", err=True)
        raise typer.Exit(2) from exc


def inspect_cmd(
    image: Path = typer.Argument(..., help="Seam photo (JPEG, PNG, BMP, TIFF)."),
    context: Path | None = typer.Option(
        None, "--context", help="JSON: process, material, thickness_mm, mm_per_px, quality_level, params, ..."
    ),
    overlay: Path | None = typer.Option(None, "--overlay", help="Write the overlay PNG here."),
    model: Path | None = typer.Option(
        None, "--model", help="Model artifact folder (default: the shipped model)."
    ),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="torch, onnx, onnx-int8, or auto (the fastest the model ships: int8, onnx, torch).",
    ),
) -> None:
    """Inspect one image and print the result as JSON (grades, findings, standards, advice)."""
    from inspection.image.ingest import IngestError, path_problem
    from inspection.model.artifact import ArtifactError
    from inspection.pipeline import Inspector, recommendation_for

    ctx = _load_context(context)
    problem = path_problem(image)  # names a symlink loop, dangling symlink, folder or FIFO as such
    if problem is not None:
        typer.echo(f"error: image {problem}", err=True)
        raise typer.Exit(2 if problem.code == "not_found" else 1)
    try:
        inspector = Inspector.from_artifact(model, backend=backend)
    except ArtifactError as exc:
        where = f"model {model}" if model is not None else "the default model"
        typer.echo(
            f"error: cannot load {where}: {exc} "
            "(pass --model DIR or set $WELDINSPECT_MODEL to a model artifact folder)",
            err=True,
        )
        raise typer.Exit(2) from exc
    try:
        detailed = inspector.inspect_detailed(image, ctx)  # type: ignore[arg-type]
    except IngestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    out = detailed.result.to_dict()
    out["recommendation"] = recommendation_for(detailed.result)
    if overlay is not None:
        import cv2

        from inspection.image.ingest import read_image
        from inspection.image.overlay import draw_overlay

        drawn = draw_overlay(read_image(image), detailed.result, detailed.heatmaps)
        overlay.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(overlay), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
            typer.echo(f"error: could not write overlay {overlay}", err=True)
            raise typer.Exit(1)
        out["overlay"] = str(overlay)
    typer.echo(json.dumps(out, indent=2))
