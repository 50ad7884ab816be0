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
    sheet: Path | None = typer.Option(
        None, "--sheet", help="Also write a contact sheet (JPEG) of the first 12 images with boxes drawn."
    ),
) -> None:
    """Write N procedural weld photos with porosity/spatter boxes and reference grades."""
    from inspection.data.synth import MIN_SIZE_PX, write_dataset

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
    if sheet is not None:
        _write_sheet(ann, sheet)
        typer.echo(f"wrote contact sheet {sheet}")


def _write_sheet(ann: Path, sheet: Path, count: int = 12) -> None:
    """Contact sheet of the first ``count`` records of ``ann`` (boxes drawn) as a JPEG."""
    import json

    from PIL import Image as PILImage

    from inspection.data.synth import contact_sheet
    from inspection.image.ingest import read_image
    from inspection.types import Box

    items = []
    lines = ann.read_text(encoding="utf-8").splitlines()
    for line in lines[:count]:
        rec = json.loads(line)
        # annotation corners are inclusive pixels; Box corners are pixel edges
        boxes = [
            Box(float(x0), float(y0), float(x1) + 1.0, float(y1) + 1.0, str(o["label"]))
            for o in rec["objects"]
            for x0, y0, x1, y1 in [o["box"]]
        ]
        items.append((read_image(ann.parent / rec["image"]), boxes))
    sheet.parent.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(contact_sheet(items)).save(sheet, format="JPEG", quality=80, optimize=True)


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.command("synth")(synth)
