"""Label audit: where held-out predictions and the labels disagree, shown for a person to judge.

Two kinds of disagreement, each a candidate label error or a model error (a person decides,
following ``docs/labelling.md``, and records a correction in ``data/label-corrections/``):

* ``finding_outside_boxes``: a confident porosity finding whose centre lies in no labelled pore
  box grown by 25 % (an unboxed pore, or a false alarm on slag, a crater, a shadow ...);
* ``box_without_finding``: a labelled pore box with no finding at or above the threshold inside
  it (a missed pore, or a box around something that is not a pore).

Predictions must come from models that did not train on the photo (leave-one-weld-out folds:
``scripts/eval_pores.py --run`` writes ``held_out_findings.jsonl``), otherwise the audit only
shows what the model memorised. Pure: records and predictions in, items and contact-sheet arrays
out; the CLI (``weldinspect data audit``) reads and writes the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from inspection.data.manifest import ManifestRecord
from inspection.train.pore_eval import GROW_FRACTION, contains, grow_box
from inspection.types import Box, Defect, Finding

AuditKind = Literal["finding_outside_boxes", "box_without_finding"]
KINDS: tuple[AuditKind, ...] = ("finding_outside_boxes", "box_without_finding")


class AuditError(ValueError):
    """Predictions that cannot be audited (malformed line, unknown image); names file and line."""


@dataclass(frozen=True)
class Prediction:
    """A held-out model's porosity findings on one photo (``image`` relative to the manifest)."""

    image: str
    findings: tuple[Finding, ...]
    fold: str | None = None


@dataclass(frozen=True)
class AuditItem:
    """One disagreement: ``box`` is the labelled box or, for a finding, a square of its diameter."""

    kind: AuditKind
    image: str
    group: str | None
    box: tuple[float, float, float, float]
    score: float
    """The finding's score (``finding_outside_boxes``) or the best score inside the grown box
    (``box_without_finding``; 0 when there was none)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "image": self.image,
            "group": self.group,
            "box": [round(v, 1) for v in self.box],
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class AuditReport:
    """All disagreements, most suspicious first within each kind, and what was compared."""

    items: tuple[AuditItem, ...]
    photos: int
    boxes: int
    findings: int
    threshold: float

    def of(self, kind: AuditKind) -> tuple[AuditItem, ...]:
        return tuple(i for i in self.items if i.kind == kind)

    def summary(self) -> str:
        return (
            f"{self.photos} photos, {self.boxes} labelled pores, {self.findings} findings >= "
            f"{self.threshold:g}: {len(self.of('finding_outside_boxes'))} findings outside every box, "
            f"{len(self.of('box_without_finding'))} boxes without a finding"
        )


def _finding_from_json(data: Mapping[str, Any], where: str) -> Finding:
    try:
        return Finding(
            kind=Defect.POROSITY,
            x=float(data["x"]),
            y=float(data["y"]),
            diameter_px=float(data.get("diameter_px", 0.0)),
            score=float(data["score"]),
            along_seam=float(data.get("along_seam", 0.0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        msg = f"{where}: a finding needs numbers x, y and score ({exc})"
        raise AuditError(msg) from exc


def read_predictions(path: Path) -> list[Prediction]:
    """Predictions from a JSONL file: one object per photo with ``image`` and ``findings``
    (``[{x, y, score, diameter_px, kind?}]``; only porosity findings are kept) and an optional
    ``fold``. Raises :class:`AuditError` naming the file and line of a malformed entry."""
    out = []
    for lineno, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{where}: not valid JSON ({exc.msg})"
            raise AuditError(msg) from exc
        if not isinstance(data, dict) or not isinstance(data.get("image"), str):
            msg = f"{where}: each line must be an object with an 'image' path and 'findings'"
            raise AuditError(msg)
        raw = data.get("findings") or []
        if not isinstance(raw, list):
            msg = f"{where}: findings must be a list"
            raise AuditError(msg)
        findings = tuple(
            _finding_from_json(f, where)
            for f in raw
            if isinstance(f, dict) and f.get("kind", "porosity") == "porosity"
        )
        out.append(Prediction(data["image"], findings, data.get("fold")))
    return out


def pore_boxes(record: ManifestRecord) -> tuple[Box, ...]:
    """The record's porosity boxes as :class:`~inspection.types.Box`."""
    return tuple(Box(*o.box, "porosity") for o in record.objects if o.label == "porosity")


def audit(
    records: Sequence[ManifestRecord],
    predictions: Iterable[Prediction],
    *,
    threshold: float,
    fraction: float = GROW_FRACTION,
) -> AuditReport:
    """Compare ``predictions`` with the records' pore boxes (see the module doc).

    Photos without a prediction are skipped (the report counts only compared photos); a
    prediction for an image not in ``records`` raises :class:`AuditError` (a wrong manifest would
    otherwise audit nothing and look clean).
    """
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        msg = f"threshold must be in [0, 1], got {threshold!r}"
        raise ValueError(msg)
    by_image = {r.image: r for r in records}
    items: list[AuditItem] = []
    photos = boxes = n_findings = 0
    for pred in predictions:
        rec = by_image.get(pred.image)
        if rec is None:
            msg = f"prediction for {pred.image!r} has no record in the manifest ({len(records)} records)"
            raise AuditError(msg)
        photos += 1
        pores = pore_boxes(rec)
        grown = [grow_box(b, fraction) for b in pores]
        confident = [f for f in pred.findings if f.score >= threshold]
        boxes += len(pores)
        n_findings += len(confident)
        for f in confident:
            if not any(contains(g, f.x, f.y) for g in grown):
                r = max(f.diameter_px / 2.0, 4.0)
                box = (f.x - r, f.y - r, f.x + r, f.y + r)
                items.append(AuditItem("finding_outside_boxes", rec.image, rec.group, box, f.score))
        for b, g in zip(pores, grown, strict=True):
            inside = [f.score for f in pred.findings if contains(g, f.x, f.y)]
            best = max(inside, default=0.0)
            if best < threshold:
                items.append(
                    AuditItem("box_without_finding", rec.image, rec.group, (b.x0, b.y0, b.x1, b.y1), best)
                )
    # most suspicious first: confident stray findings, and boxes the model saw least
    items.sort(key=lambda i: (KINDS.index(i.kind), -i.score if i.kind == KINDS[0] else i.score))
    return AuditReport(tuple(items), photos, boxes, n_findings, threshold)


def contact_sheet(
    items: Sequence[AuditItem],
    load: Callable[[str], npt.NDArray[np.uint8]],
    *,
    cell: int = 160,
    columns: int = 6,
    context: float = 2.0,
) -> npt.NDArray[np.uint8]:
    """A grid of RGB crops around ``items`` (``load(image)`` gives the photo as RGB uint8), each
    with the item's box drawn (green: labelled box; red: finding) and a caption (group, score).

    ``context``: how many box sizes of surroundings each crop shows (at least 48 px). Returns an
    ``(rows * (cell + 18), columns * cell, 3)`` image; an empty grid of one blank row without items.
    """
    if cell < 32 or columns < 1:
        msg = f"cell must be >= 32 px and columns >= 1, got {cell}, {columns}"
        raise ValueError(msg)
    rows = max(1, math.ceil(len(items) / columns))
    cap = 18
    sheet = np.full((rows * (cell + cap), columns * cell, 3), 255, np.uint8)
    cache: dict[str, npt.NDArray[np.uint8]] = {}
    for k, item in enumerate(items):
        img = cache.get(item.image)
        if img is None:
            img = cache[item.image] = load(item.image)
        h, w = img.shape[:2]
        x0, y0, x1, y1 = item.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half = max(24.0, context * max(x1 - x0, y1 - y0) / 2)
        a0, b0 = int(max(0, cx - half)), int(max(0, cy - half))
        a1, b1 = int(min(w, cx + half)), int(min(h, cy + half))
        region = img[b0:b1, a0:a1]
        if region.size == 0:
            continue
        scale = cell / max(region.shape[:2])
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        crop = np.ascontiguousarray(cv2.resize(region, size), dtype=np.uint8)
        colour = (220, 30, 30) if item.kind == "finding_outside_boxes" else (30, 180, 30)
        p0 = (round((x0 - a0) * scale), round((y0 - b0) * scale))
        p1 = (round((x1 - a0) * scale), round((y1 - b0) * scale))
        cv2.rectangle(crop, p0, p1, colour, 2)
        r, c = divmod(k, columns)
        top, left = r * (cell + cap), c * cell
        sheet[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        text = f"{item.group or '-'} {item.score:.2f}"
        cv2.putText(sheet, text, (left + 2, top + cell + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return sheet
