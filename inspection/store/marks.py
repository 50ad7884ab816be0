"""Review marks: pores and spatter a reviewer marked on a photo (pure; stored with the review).

A mark is a JSON object in original-image pixels (x right, y down, origin at the top-left corner
of the top-left pixel, the convention of :mod:`inspection.types`)::

    {"label": "porosity" | "spatter", "box": [x0, y0, x1, y1]}      a dragged box (x0 < x1, y0 < y1)
    {"label": "porosity" | "spatter", "point": [x, y]}              a click

plus ``"origin": "reviewer"`` (drawn by the reviewer) or ``"origin": "model"`` with ``"finding": i``
(the model's finding ``i`` of the result, kept, moved or resized by the reviewer; a finding the
reviewer deleted has no mark). Boxes follow the data-set manifest (``annotations.jsonl``), so a
box mark is a training object as it stands.

:func:`parse_marks` validates what a client sent and returns the canonical list (numbers rounded to
0.1 px, keys in a fixed set) or raises :class:`MarkError` naming the field, e.g.
``marks[3].box: x1 = 700.0 is outside the image (width 640)``.

:func:`grades_with_marks` holds a review's final grades to its marks (the counts binned by the
``grading`` thresholds, :class:`inspection.config.GradingConfig`): the pore marks are every pore the
reviewer saw (training reads them so), so the porosity grade **equals** their binned count, and a
missing porosity grade is taken from it; a reviewer need not mark every spatter, so the spatter
grade is **at least** the binned count of the spatter marks, and a missing one stays missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from inspection.config import GradingConfig
from inspection.types import grade_from_count

MARK_LABELS = ("porosity", "spatter")
"""What a reviewer can mark (the graded defects, as in :data:`inspection.types.GRADED_DEFECTS`)."""
MARK_ORIGINS = ("reviewer", "model")
MAX_MARKS = 500
"""At most this many marks per review (a photo with more is not gradable)."""
MAX_MARKS_JSON_BYTES = 200_000
"""The ``marks`` form field is refused above this size (500 marks need about 50 kB)."""
_KEYS = {"label", "box", "point", "origin", "finding"}


class MarkError(ValueError):
    """Marks that cannot be stored; ``field`` names the offending field (``marks[3].box``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MarkError(field, f"must be a finite number, got {value!r}")
    return round(float(value), 1)


def _inside(values: Sequence[float], names: Sequence[str], width: int, height: int, field: str) -> None:
    for name, v in zip(names, values, strict=True):
        limit, side = (width, "width") if name.startswith("x") else (height, "height")
        if not 0.0 <= v <= limit:
            raise MarkError(field, f"{name} = {v} is outside the image ({side} {limit})")


def parse_mark(raw: Any, index: int, *, width: int, height: int, n_findings: int) -> dict[str, Any]:
    """One validated mark in canonical form (see the module docstring); ``MarkError`` otherwise."""
    where = f"marks[{index}]"
    if not isinstance(raw, Mapping):
        raise MarkError(where, f"must be an object with label and box or point, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise MarkError(where, f"unknown keys {unknown}; valid: {sorted(_KEYS)}")
    label = raw.get("label")
    if label not in MARK_LABELS:
        raise MarkError(f"{where}.label", f"unknown kind {label!r}; valid: {', '.join(MARK_LABELS)}")
    out: dict[str, Any] = {"label": label}
    if ("box" in raw) == ("point" in raw):
        raise MarkError(where, "must have exactly one of box [x0, y0, x1, y1] or point [x, y]")
    if "box" in raw:
        box = raw["box"]
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise MarkError(f"{where}.box", f"must be [x0, y0, x1, y1], got {box!r}")
        x0, y0, x1, y1 = (_number(v, f"{where}.box") for v in box)
        _inside((x0, y0, x1, y1), ("x0", "y0", "x1", "y1"), width, height, f"{where}.box")
        if not (x0 < x1 and y0 < y1):
            raise MarkError(f"{where}.box", f"must have x0 < x1 and y0 < y1, got {[x0, y0, x1, y1]}")
        out["box"] = [x0, y0, x1, y1]
    else:
        point = raw["point"]
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise MarkError(f"{where}.point", f"must be [x, y], got {point!r}")
        x, y = (_number(v, f"{where}.point") for v in point)
        _inside((x, y), ("x", "y"), width, height, f"{where}.point")
        out["point"] = [x, y]
    origin = raw.get("origin", "reviewer")
    if origin not in MARK_ORIGINS:
        raise MarkError(f"{where}.origin", f"must be one of {', '.join(MARK_ORIGINS)}, got {origin!r}")
    out["origin"] = origin
    if origin == "model":
        finding = raw.get("finding")
        if isinstance(finding, bool) or not isinstance(finding, int) or not 0 <= finding < n_findings:
            raise MarkError(
                f"{where}.finding",
                f"must be the index of one of the result's {n_findings} findings (0..{n_findings - 1}), "
                f"got {finding!r}",
            )
        out["finding"] = finding
    elif "finding" in raw:
        raise MarkError(f"{where}.finding", "only marks with origin 'model' name a finding")
    return out


def parse_marks(
    raw: Any, *, width: int | None, height: int | None, n_findings: int = 0
) -> list[dict[str, Any]]:
    """Validate a list of marks for a ``width`` x ``height`` photo with ``n_findings`` findings.

    ``raw`` is the decoded list, or the JSON text of it (the review form's ``marks`` field).
    Raises :class:`MarkError` (field ``marks`` or ``marks[i]...``) on the first problem.
    """
    if isinstance(raw, str | bytes):
        if len(raw) > MAX_MARKS_JSON_BYTES:
            raise MarkError("marks", f"is {len(raw)} bytes; at most {MAX_MARKS_JSON_BYTES}")
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise MarkError("marks", f"is not valid JSON ({exc})") from exc
    if not isinstance(raw, list):
        raise MarkError("marks", f"must be a JSON list of marks, got {type(raw).__name__}")
    if len(raw) > MAX_MARKS:
        raise MarkError("marks", f"has {len(raw)} marks; at most {MAX_MARKS} per review")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise MarkError("marks", f"the photo's size is unknown ({width!r} x {height!r}); marks need it")
    seen: set[int] = set()
    out = []
    for i, item in enumerate(raw):
        mark = parse_mark(item, i, width=width, height=height, n_findings=n_findings)
        finding = mark.get("finding")
        if finding is not None:
            if finding in seen:
                raise MarkError(f"marks[{i}].finding", f"finding {finding} already has a mark")
            seen.add(finding)
        out.append(mark)
    return out


def mark_counts(marks: Sequence[Mapping[str, Any]] | None) -> dict[str, int]:
    """Marks per label (every label present, zero when none)."""
    counts = dict.fromkeys(MARK_LABELS, 0)
    for m in marks or ():
        label = m.get("label")
        if label in counts:
            counts[label] += 1
    return counts


def _bins(thresholds: tuple[int, int, int]) -> str:
    return f"grade 1 from {thresholds[0]}, 2 from {thresholds[1]}, 3 from {thresholds[2]}"


def grades_with_marks(
    porosity_grade: int | None,
    spatter_grade: int | None,
    marks: Sequence[Mapping[str, Any]] | None,
    grading: GradingConfig | None = None,
) -> tuple[int | None, int | None]:
    """The final ``(porosity, spatter)`` grades of a review that carries ``marks`` (pure).

    ``marks`` None (no marks drawn): the grades unchanged. Otherwise, with ``grading``'s thresholds
    (default :class:`~inspection.config.GradingConfig`: porosity 1, 2, 4; spatter 1, 6, 21):

    * porosity: the grade binned from the number of porosity marks; a given grade must equal it;
    * spatter: a given grade must be at least the grade binned from the number of spatter marks
      (not every spatter needs a mark); a missing one stays missing.

    Raises :class:`MarkError` (field ``porosity_grade`` or ``spatter_grade``) naming both values.
    """
    if marks is None:
        return porosity_grade, spatter_grade
    cfg = grading or GradingConfig()
    counts = mark_counts(marks)
    n_por, n_spa = counts["porosity"], counts["spatter"]
    implied = grade_from_count(n_por, cfg.porosity_thresholds)
    if porosity_grade is None:
        porosity_grade = implied
    elif porosity_grade != implied:
        raise MarkError(
            "porosity_grade",
            f"is {porosity_grade}, but the review's porosity marks ({n_por}) give porosity grade "
            f"{implied} ({_bins(cfg.porosity_thresholds)} pores); set porosity grade {implied}, or mark "
            "every pore you graded",
        )
    floor = grade_from_count(n_spa, cfg.spatter_thresholds)
    if spatter_grade is not None and spatter_grade < floor:
        raise MarkError(
            "spatter_grade",
            f"is {spatter_grade}, but the review's spatter marks ({n_spa}) give at least spatter "
            f"grade {floor} ({_bins(cfg.spatter_thresholds)} spatter); set spatter grade {floor} or "
            "higher, or delete the spatter marks that are not spatter",
        )
    return porosity_grade, spatter_grade
