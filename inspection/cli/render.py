"""Rich renderings shared by CLI commands."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from inspection.batch.runner import ScoreSummary


def summary_table(summary: ScoreSummary, out: Path) -> Table:
    """The end-of-run summary: counts per status and grade, review reasons, errors, speed."""
    table = Table(title=f"Scoring summary -> {out}", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("count / value", justify="right")
    table.add_row("images given", str(summary.total))
    table.add_row("skipped (already in results)", str(summary.skipped))
    table.add_row("scored this run", str(summary.scored))
    for status in ("ok", "review", "error"):
        table.add_row(f"status {status}", str(summary.status.get(status, 0)))
    for name, counter in (("porosity", summary.porosity_grades), ("spatter", summary.spatter_grades)):
        for grade in range(4):
            table.add_row(f"{name} grade {grade}", str(counter.get(grade, 0)))
    for reason, n in sorted(summary.review_reasons.items()):
        table.add_row(f"review: {reason}", str(n))
    for code, n in sorted(summary.errors.items()):
        table.add_row(f"error: {code}", str(n))
    table.add_row("images/s", f"{summary.images_per_s:.1f}")
    graded = max(1, summary.status.get("ok", 0) + summary.status.get("review", 0))
    for stage, ms in sorted(summary.stage_ms.items()):
        table.add_row(f"mean {stage} ms", f"{ms / graded:.1f}")
    if summary.interrupted:
        table.add_row("[yellow]interrupted[/yellow]", "run again to resume")
    return table
