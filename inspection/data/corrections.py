"""Label corrections: an overlay on a shared manifest, never an edit of it.

Corrections live in ``data/label-corrections/*.jsonl`` (committed), one JSON object per line::

    {"image_sha256": "<64 hex>", "action": "add" | "remove", "label": "porosity",
     "box": [x0, y0, x1, y1], "reason": "unboxed cavity, same as the boxed pore ...",
     "who": "initials or name", "date": "2026-12-05"}

* ``add``: the box is added to the image's objects with ``label`` (our vocabulary, see
  :data:`inspection.types.LABELS`).
* ``remove``: the object of ``label`` whose box overlaps ``box`` best (IoU >= :data:`MIN_IOU`) is
  removed; a ``remove`` that matches nothing is reported, never silently dropped.

Images are named by the SHA-256 of their bytes, so a correction follows the photo wherever the
manifest puts it. :func:`apply_corrections` returns new records and a report of what changed;
the protocol for deciding a correction is in ``docs/labelling.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from inspection.data.manifest import BoxTuple, ManifestObject, ManifestRecord
from inspection.types import LABELS

MIN_IOU = 0.5
"""A ``remove`` correction names the labelled box it removes by overlapping it at least this much."""

ACTIONS: tuple[str, ...] = ("add", "remove")
_REQUIRED = ("image_sha256", "action", "label", "box", "reason", "who")


class CorrectionError(ValueError):
    """A correction file or line is malformed; the message names the file, the line and the field."""


@dataclass(frozen=True)
class LabelCorrection:
    """One reviewed change to one image's labels (see the module doc)."""

    image_sha256: str
    action: Literal["add", "remove"]
    label: str
    box: BoxTuple
    reason: str
    who: str
    date: str | None = None
    where: str = ""
    """``file:line`` the correction was read from (for messages)."""


@dataclass(frozen=True)
class CorrectionReport:
    """What applying corrections changed."""

    added: int
    removed: int
    images_changed: int
    unmatched: tuple[LabelCorrection, ...]
    """``remove`` corrections with no labelled box to remove, and corrections for images not in
    the manifest."""

    @property
    def labels_changed(self) -> int:
        return self.added + self.removed

    def summary(self) -> str:
        text = (
            f"{self.labels_changed} labels changed ({self.added} added, {self.removed} removed) "
            f"on {self.images_changed} images"
        )
        if self.unmatched:
            text += f"; {len(self.unmatched)} corrections matched nothing: " + ", ".join(
                f"{c.where} ({c.action} {c.image_sha256[:12]})" for c in self.unmatched[:5]
            )
        return text


def _box(value: object, where: str) -> BoxTuple:
    if not (isinstance(value, list | tuple) and len(value) == 4):
        msg = f"{where}: box must be [x0, y0, x1, y1], got {value!r}"
        raise CorrectionError(msg)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        msg = f"{where}: box must hold 4 numbers, got {value!r}"
        raise CorrectionError(msg)
    x0, y0, x1, y1 = (float(v) for v in value)
    if x1 <= x0 or y1 <= y0:
        msg = f"{where}: box must have x0 < x1 and y0 < y1, got {value!r}"
        raise CorrectionError(msg)
    return (x0, y0, x1, y1)


def parse_correction(data: object, where: str) -> LabelCorrection:
    """One correction from its JSON object; raises :class:`CorrectionError` naming ``where``."""
    if not isinstance(data, dict):
        msg = f"{where}: a correction must be a JSON object, got {type(data).__name__}"
        raise CorrectionError(msg)
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        msg = f"{where}: missing field(s) {', '.join(missing)}; required: {', '.join(_REQUIRED)}"
        raise CorrectionError(msg)
    sha = data["image_sha256"]
    if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        msg = f"{where}: image_sha256 must be 64 lowercase hex digits, got {sha!r}"
        raise CorrectionError(msg)
    action = data["action"]
    if action not in ACTIONS:
        msg = f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}"
        raise CorrectionError(msg)
    label = data["label"]
    if label not in LABELS:
        msg = f"{where}: label {label!r} is not in our vocabulary; valid: {', '.join(LABELS)}"
        raise CorrectionError(msg)
    for key in ("reason", "who"):
        if not (isinstance(data[key], str) and data[key].strip()):
            msg = f"{where}: {key} must be a non-empty string (every correction says why and who)"
            raise CorrectionError(msg)
    date = data.get("date")
    if date is not None and not isinstance(date, str):
        msg = f"{where}: date must be a string (YYYY-MM-DD) or absent, got {date!r}"
        raise CorrectionError(msg)
    return LabelCorrection(
        image_sha256=sha,
        action=action,
        label=label,
        box=_box(data["box"], where),
        reason=data["reason"].strip(),
        who=data["who"].strip(),
        date=date,
        where=where,
    )


def read_corrections(paths: Iterable[Path | str]) -> list[LabelCorrection]:
    """Every correction in the given ``.jsonl`` files or folders of them (sorted by file name).

    Raises :class:`CorrectionError` (file, line, reason) on the first malformed line, and
    ``FileNotFoundError`` for a path that does not exist: a correction set is read whole or not at
    all, so a metric "with corrections" never silently uses half of them.
    """
    files: list[Path] = []
    for p in (Path(p) for p in paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*.jsonl")))
        elif p.is_file():
            files.append(p)
        else:
            msg = f"label corrections {p} do not exist (expected a .jsonl file or a folder of them)"
            raise FileNotFoundError(msg)
    out: list[LabelCorrection] = []
    for f in files:
        for lineno, text in enumerate(f.read_text(encoding="utf-8").splitlines(), start=1):
            if not text.strip():
                continue
            where = f"{f}:{lineno}"
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                msg = f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
                raise CorrectionError(msg) from exc
            out.append(parse_correction(data, where))
    return out


def iou(a: BoxTuple, b: BoxTuple) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def apply_corrections(
    records: Sequence[ManifestRecord],
    corrections: Sequence[LabelCorrection],
    sha256_of: Callable[[ManifestRecord], str],
) -> tuple[list[ManifestRecord], CorrectionReport]:
    """New records with the corrections applied in order (the input records are not changed).

    ``sha256_of(record)`` gives the SHA-256 of the record's image bytes (the caller hashes the
    files, or looks them up). Corrections for images not in ``records`` and ``remove`` corrections
    that match no labelled box (IoU >= :data:`MIN_IOU`, same label) are returned in
    ``report.unmatched``.
    """
    by_sha: dict[str, list[LabelCorrection]] = {}
    for c in corrections:
        by_sha.setdefault(c.image_sha256, []).append(c)
    added = removed = changed = 0
    unmatched: list[LabelCorrection] = []
    out: list[ManifestRecord] = []
    seen: set[str] = set()
    for rec in records:
        sha = sha256_of(rec)
        todo = by_sha.get(sha)
        if not todo:
            out.append(rec)
            continue
        seen.add(sha)
        objects = list(rec.objects)
        n_before = (added, removed)
        for c in todo:
            if c.action == "add":
                objects.append(ManifestObject(c.label, c.box))
                added += 1
                continue
            candidates = [(iou(o.box, c.box), i) for i, o in enumerate(objects) if o.label == c.label]
            best = max(candidates, default=(0.0, -1))
            if best[0] >= MIN_IOU:
                del objects[best[1]]
                removed += 1
            else:
                unmatched.append(c)
        if (added, removed) != n_before:
            changed += 1
        out.append(replace(rec, objects=tuple(objects)))
    unmatched.extend(c for sha, cs in by_sha.items() if sha not in seen for c in cs)
    return out, CorrectionReport(added, removed, changed, tuple(unmatched))
