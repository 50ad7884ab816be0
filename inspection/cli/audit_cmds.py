"""``weldinspect data audit``: held-out predictions against the labels, as contact sheets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

DEFAULT_CORRECTIONS = Path("data/label-corrections")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"weldinspect data audit: {message}", err=True)
    return typer.Exit(code=2)


def audit_cmd(
    manifest: Path = typer.Argument(..., help="annotations.jsonl (or its folder) of the labelled photos."),
    predictions: Path = typer.Option(
        ...,
        "--predictions",
        "-p",
        help="Held-out predictions JSONL (scripts/eval_pores.py --run writes "
        "runs/<name>/held_out_findings.jsonl).",
    ),
    out: Path = typer.Option(
        Path("runs/audit"), "--out", help="Folder for audit.jsonl and the contact sheets."
    ),
    threshold: float = typer.Option(
        0.5, "--min-score", help="A finding at or above this score is confident."
    ),
    corrections: list[Path] = typer.Option(
        [],
        "--corrections",
        help="Label corrections (.jsonl files or folders) applied over the manifest first "
        f"(default {DEFAULT_CORRECTIONS} when it exists; --no-corrections to audit the raw labels).",
    ),
    no_corrections: bool = typer.Option(False, "--no-corrections", help="Audit the manifest as it is."),
    max_items: int = typer.Option(60, "--max-items", help="Crops per contact sheet (most suspicious first)."),
) -> None:
    """Compare leave-one-weld-out predictions with the pore boxes: confident findings outside every
    box and boxes with no finding, each as a list (audit.jsonl) and a contact sheet (PNG) for a
    person to judge with docs/labelling.md; corrections go to data/label-corrections/."""
    import cv2

    from inspection.data.corrections import CorrectionError, apply_corrections, read_corrections
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
    from inspection.image.ingest import IngestError, read_image
    from inspection.model.files import sha256_file
    from inspection.train.audit import KINDS, AuditError, audit, contact_sheet, read_predictions

    if not 0.0 <= threshold <= 1.0:
        raise _fail(f"--min-score must be in [0, 1], got {threshold}")
    if max_items < 1:
        raise _fail(f"--max-items must be >= 1, got {max_items}")
    try:
        records, report = read_manifest(manifest, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
        preds = read_predictions(predictions)
    except (FileNotFoundError, AuditError) as exc:
        raise _fail(str(exc)) from exc
    default = [DEFAULT_CORRECTIONS] if DEFAULT_CORRECTIONS.is_dir() else []
    sources = [] if no_corrections else (corrections or default)
    if sources:
        try:
            fixes = read_corrections(sources)
        except (FileNotFoundError, CorrectionError) as exc:
            raise _fail(str(exc)) from exc
        records, fixed = apply_corrections(records, fixes, lambda r: sha256_file(r.path()))
        typer.echo(f"corrections: {fixed.summary()}")
    try:
        result = audit(records, preds, threshold=threshold)
    except AuditError as exc:
        raise _fail(f"{exc} (is {manifest} the manifest the predictions were made on?)") from exc
    by_image = {r.image: r for r in records}

    def load(image: str) -> Any:
        try:
            return read_image(by_image[image].path())
        except IngestError as exc:
            raise _fail(str(exc)) from exc

    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.jsonl").write_text("".join(json.dumps(i.to_json()) + "\n" for i in result.items))
    for kind in KINDS:
        items = result.of(kind)[:max_items]
        sheet = contact_sheet(items, load)
        path = out / f"{kind}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        typer.echo(f"{kind}: {len(result.of(kind))} items, sheet of the first {len(items)}: {path}")
    typer.echo(result.summary())
    typer.echo(f"list: {out / 'audit.jsonl'}  (manifest: {report.records} records)")
