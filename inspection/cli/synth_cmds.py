"""CLI commands: synth (write a synthetic weld dataset with ``annotations.jsonl``)."""

from __future__ import annotations

from pathlib import Path

import typer


def synth(
    out: Path = typer.Argument(..., help="Output folder (created); gets images/ and annotations.jsonl."),
    n: int = typer.Option(50, "--n", help="Number of images (>= 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed; image i depends only on (seed, i)."),
    width: int = typer.Option(800, "--width", help="Image width in pixels (>= 16)."),
    height: int = typer.Option(800, "--height", help="Image height in pixels (>= 16)."),
    quality: int = typer.Option(90, "--quality", help="JPEG quality of the written files (1-100)."),
) -> None:
    """Write N procedural weld photos with porosity/spatter boxes and reference grades."""
    from inspection.synth import MIN_SIZE_PX, write_dataset

    problems = []
    if n < 1:
        problems.append(f"--n must be >= 1, got {n}")
    if width < MIN_SIZE_PX or height < MIN_SIZE_PX:
        problems.append(f"--width and --height must be >= {MIN_SIZE_PX}, got {width} x {height}")
    if not 1 <= quality <= 100:
        problems.append(f"--quality must be in 1..100, got {quality}")
    if out.exists() and not out.is_dir():
        problems.append(f"{out} exists and is not a folder")
    if problems:
        typer.echo("weldinspect synth: " + "; ".join(problems), err=True)
        raise typer.Exit(code=2)
    ann = write_dataset(out, n, seed, width=width, height=height, jpeg_quality=quality)
    typer.echo(f"wrote {n} synthetic welds ({width} x {height}, seed {seed}) to {out}; annotations: {ann}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("synth")(synth)
