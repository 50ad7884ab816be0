"""Pore-level evaluation: are the labelled pores found, and how many false findings on good welds?

Photo-level AUROC/QWK on count-derived grades says little about whether the model finds *pores*.
This module scores the porosity findings (heatmap peaks, :class:`~inspection.types.Finding`)
against the labelled pore boxes. Everything here is a pure function of dataclasses and arrays (no
file I/O); ``scripts/eval_pores.py`` runs the models and writes the figures.

Rules (stated once, here):

* **Found.** A labelled pore box is found at score threshold ``t`` when at least one porosity
  finding with ``score >= t`` has its centre ``(x, y)`` inside the box grown by
  :data:`GROW_FRACTION` (25 %) of its width on the left and on the right and of its height on the
  top and bottom (edges inclusive). A finding may count for *every* box whose grown box contains
  it: boxes of touching pores overlap once grown, and one peak between two touching pores is what
  the heatmap produces for them. Recall is therefore per box (boxes found / boxes labelled), and
  it is not a one-to-one assignment.
* **Findings per photo** count every porosity finding with ``score >= t``; on good-weld photos
  (no pores at all) each one is a false alarm. *Unmatched* findings are those whose centre lies in
  no grown pore box of their photo (false alarms on labelled photos, as far as the labels go).
* **FROC**: recall against findings per good photo, one point per threshold. Both only fall as the
  threshold rises, so the curve is monotone. Evaluating a model once with a low peak threshold and
  filtering by score gives the same findings as evaluating at each threshold (peaks are kept
  greedily in descending score order), which is how the script sweeps.
* **False accept**: a photo with at least one labelled pore whose porosity grade is 0 and that is
  *not* sent to review (``needs_review`` false). Photos the model did not grade (quality gate) are
  not false accepts: nobody was told they are clean.

Good-weld crops (``weld-photos-unlabelled``, coarse YOLO labels): a ``Good Weld`` box that no
``Bad Weld`` or ``Defect`` box of the same photo overlaps, grown by a margin and clamped to the
photo; at most one crop per source image (the file-name part before ``.rf.``, which groups the
Roboflow-augmented copies of one photo), the largest eligible box, ties by file name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from inspection.types import Box, Defect, Finding, InspectionResult, grade_from_count

GROW_FRACTION = 0.25
"""A pore box is grown by this share of its width/height on each side before matching."""

YOLO_CLASSES: tuple[str, ...] = ("Bad Weld", "Good Weld", "Defect")
"""``weld-photos-unlabelled/classes.txt``: class id -> name."""
GOOD_WELD = 1
BLOCKING_CLASSES = frozenset({0, 2})
"""Bad Weld and Defect: a Good Weld box overlapping one of these is not used as a good photo."""

CROP_MARGIN = 0.10
"""Default margin around a Good Weld box when cropping (share of its width/height per side)."""


# ----------------------------------------------------------------------------------------------
# Geometry and matching


def _check_fraction(value: float, name: str) -> float:
    if not (math.isfinite(value) and value >= 0):
        msg = f"{name} must be a finite number >= 0, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _check_threshold(threshold: float) -> float:
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        msg = f"score threshold must be a number in [0, 1], got {threshold!r}"
        raise ValueError(msg)
    return float(threshold)


def grow_box(box: Box, fraction: float = GROW_FRACTION) -> Box:
    """``box`` grown by ``fraction`` of its width on the left and right and of its height on the
    top and bottom (not clamped to any image), keeping its label."""
    f = _check_fraction(fraction, "grow fraction")
    dx, dy = box.width * f, box.height * f
    return Box(box.x0 - dx, box.y0 - dy, box.x1 + dx, box.y1 + dy, box.label)


def contains(box: Box, x: float, y: float) -> bool:
    """Whether the point ``(x, y)`` lies inside ``box`` (edges included)."""
    return box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def box_hit_scores(
    boxes: Sequence[Box], findings: Sequence[Finding], fraction: float = GROW_FRACTION
) -> npt.NDArray[np.float64]:
    """For every box, the highest score of a finding whose centre lies in the grown box
    (``-inf`` when none does): the box is found at threshold ``t`` exactly when its value is
    ``>= t``. Shape ``(len(boxes),)``."""
    out = np.full(len(boxes), -np.inf)
    if not boxes or not findings:
        return out
    grown = [grow_box(b, fraction) for b in boxes]
    for i, g in enumerate(grown):
        scores = [f.score for f in findings if contains(g, f.x, f.y)]
        if scores:
            out[i] = max(scores)
    return out


def found_boxes(
    boxes: Sequence[Box], findings: Sequence[Finding], threshold: float, fraction: float = GROW_FRACTION
) -> tuple[bool, ...]:
    """Per box, whether a finding with ``score >= threshold`` lies in its grown box."""
    t = _check_threshold(threshold)
    return tuple(bool(s >= t) for s in box_hit_scores(boxes, findings, fraction))


def unmatched_findings(
    boxes: Sequence[Box], findings: Sequence[Finding], threshold: float, fraction: float = GROW_FRACTION
) -> tuple[Finding, ...]:
    """The findings with ``score >= threshold`` whose centre lies in no grown box."""
    t = _check_threshold(threshold)
    grown = [grow_box(b, fraction) for b in boxes]
    return tuple(f for f in findings if f.score >= t and not any(contains(g, f.x, f.y) for g in grown))


# ----------------------------------------------------------------------------------------------
# One photo's outcome


@dataclass(frozen=True)
class PhotoOutcome:
    """What the model said about one photo, next to its labelled pores.

    ``group``: the weld (``weld01``) or the good-photo source; ``pores``: the labelled pore boxes
    (empty for good welds); ``findings``: porosity findings only; ``grade``: the porosity grade
    (None = not graded, e.g. the quality gate failed); ``needs_review`` as in the result;
    ``p_defect``: the porosity head's calibrated P(grade >= 1) (None when not graded or unknown).
    """

    name: str
    group: str
    pores: tuple[Box, ...]
    findings: tuple[Finding, ...]
    grade: int | None
    needs_review: bool
    p_defect: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pores", tuple(self.pores))
        object.__setattr__(self, "findings", tuple(self.findings))
        wrong = sorted({str(f.kind) for f in self.findings if f.kind is not Defect.POROSITY})
        if wrong:
            msg = f"PhotoOutcome {self.name!r}: findings must be porosity findings, got kinds {wrong}"
            raise ValueError(msg)
        if self.grade is not None and not 0 <= self.grade <= 3:
            msg = f"PhotoOutcome {self.name!r}: grade must be in 0..3 or None, got {self.grade!r}"
            raise ValueError(msg)

    @classmethod
    def from_result(
        cls, name: str, group: str, pores: Iterable[Box], result: InspectionResult
    ) -> PhotoOutcome:
        """The outcome of ``result`` (its porosity grade, review flag and porosity findings)."""
        return cls(
            name=name,
            group=group,
            pores=tuple(pores),
            findings=tuple(f for f in result.findings if f.kind is Defect.POROSITY),
            grade=None if result.porosity is None else result.porosity.grade,
            needs_review=result.needs_review,
            p_defect=None if result.porosity is None else 1.0 - float(result.porosity.probs[0]),
        )

    def n_findings(self, threshold: float) -> int:
        """Porosity findings with ``score >= threshold``."""
        t = _check_threshold(threshold)
        return sum(1 for f in self.findings if f.score >= t)

    @property
    def false_accept(self) -> bool:
        """Labelled pores, yet graded 0 and not sent to review."""
        return bool(self.pores) and self.grade == 0 and not self.needs_review


# ----------------------------------------------------------------------------------------------
# Rates


@dataclass(frozen=True)
class Rate:
    """``count`` out of ``total`` (``value`` is None when ``total`` is 0: undefined, not zero)."""

    count: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 0 or self.count < 0:
            msg = f"Rate count and total must be >= 0, got {self.count} / {self.total}"
            raise ValueError(msg)

    @property
    def value(self) -> float | None:
        return self.count / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "value": self.value}


def recall(outcomes: Sequence[PhotoOutcome], threshold: float, fraction: float = GROW_FRACTION) -> Rate:
    """Labelled pore boxes found / labelled pore boxes, over ``outcomes``."""
    t = _check_threshold(threshold)
    hits = [box_hit_scores(o.pores, o.findings, fraction) for o in outcomes]
    found = sum(int(np.count_nonzero(h >= t)) for h in hits)
    return Rate(found, sum(len(h) for h in hits))


def findings_per_photo(outcomes: Sequence[PhotoOutcome], threshold: float) -> Rate:
    """Porosity findings with ``score >= threshold`` / photos (``value`` = the mean per photo)."""
    return Rate(sum(o.n_findings(threshold) for o in outcomes), len(outcomes))


def unmatched_per_photo(
    outcomes: Sequence[PhotoOutcome], threshold: float, fraction: float = GROW_FRACTION
) -> Rate:
    """Findings in no grown pore box / photos."""
    n = sum(len(unmatched_findings(o.pores, o.findings, threshold, fraction)) for o in outcomes)
    return Rate(n, len(outcomes))


def false_accept_rate(outcomes: Sequence[PhotoOutcome]) -> Rate:
    """Photos with >= 1 labelled pore graded 0 without review / photos with >= 1 labelled pore."""
    with_pores = [o for o in outcomes if o.pores]
    return Rate(sum(o.false_accept for o in with_pores), len(with_pores))


def graded_share(outcomes: Sequence[PhotoOutcome], min_grade: int, *, without_review: bool = False) -> Rate:
    """Photos graded ``>= min_grade`` (and, with ``without_review``, not sent to review) / photos."""
    if not 0 <= min_grade <= 3:
        msg = f"min_grade must be in 0..3, got {min_grade!r}"
        raise ValueError(msg)
    n = sum(
        1
        for o in outcomes
        if o.grade is not None and o.grade >= min_grade and not (without_review and o.needs_review)
    )
    return Rate(n, len(outcomes))


def story_agreement(
    outcomes: Sequence[PhotoOutcome], threshold: float, bins: tuple[int, int, int] = (1, 2, 4)
) -> Rate:
    """Among photos graded and *not* sent to review: those whose porosity grade equals the binned
    count (``bins``: 0 / 1 / 2-3 / 4+ pores) of their porosity findings with ``score >= threshold``
    (issue 22: one story per photo; the target is >= 95 %)."""
    t = _check_threshold(threshold)
    accepted = [o for o in outcomes if o.grade is not None and not o.needs_review]
    n = sum(1 for o in accepted if o.grade == grade_from_count(o.n_findings(t), bins))
    return Rate(n, len(accepted))


# ----------------------------------------------------------------------------------------------
# The zero rule: "no circle, yet the head sees pores" goes to review


def with_zero_rule(outcomes: Sequence[PhotoOutcome], rule: float) -> list[PhotoOutcome]:
    """``outcomes`` as the pipeline would route them with ``max_p_defect_for_zero = rule``: a photo
    graded 0 whose ``p_defect`` exceeds ``rule`` goes to review (``abstain:porosity``)."""
    _check_threshold(rule)
    return [
        replace(o, needs_review=True)
        if o.grade == 0 and o.p_defect is not None and o.p_defect > rule and not o.needs_review
        else o
        for o in outcomes
    ]


def fit_zero_rule(outcomes: Sequence[PhotoOutcome], max_false_accept: float = 0.02) -> float:
    """The largest ``max_p_defect_for_zero`` for which at most ``max_false_accept`` of the photos
    with labelled pores are false accepts (graded 0 from the findings, not sent to review): the
    issue 17 target, fitted on the grade a station gets (the binned count of the findings), not on
    the ordinal head alone. 1.0 (the rule never fires) when the target already holds."""
    if not 0.0 <= max_false_accept <= 1.0:
        msg = f"max_false_accept must be in [0, 1], got {max_false_accept!r}"
        raise ValueError(msg)
    with_pores = [o for o in outcomes if o.pores]
    allowed = math.floor(max_false_accept * len(with_pores) + 1e-9)
    ps = sorted(o.p_defect if o.p_defect is not None else 1.0 for o in with_pores if o.false_accept)
    if len(ps) <= allowed:
        return 1.0
    # keep the `allowed` lowest accepted, send ps[allowed] and above to review: rule in [ps[a-1], ps[a])
    below = ps[allowed - 1] if allowed else 0.0
    return float((below + ps[allowed]) / 2.0)


# ----------------------------------------------------------------------------------------------
# FROC


@dataclass(frozen=True)
class FrocPoint:
    """One operating point: at ``threshold``, the ``recall`` of the labelled pores and the
    porosity findings per good-weld photo (each one a false alarm; ``value`` None without photos)."""

    threshold: float
    recall: Rate
    findings_per_good_photo: Rate

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "recall": self.recall.value,
            "boxes_found": self.recall.count,
            "boxes": self.recall.total,
            "findings_per_good_photo": self.findings_per_good_photo.value,
            "good_findings": self.findings_per_good_photo.count,
            "good_photos": self.findings_per_good_photo.total,
        }


def default_thresholds(outcomes: Iterable[PhotoOutcome], floor: float = 0.0) -> tuple[float, ...]:
    """Every distinct finding score ``>= floor`` (ascending), plus ``floor`` itself: the points
    where the FROC curve can change."""
    f = _check_threshold(floor)
    scores = {s for o in outcomes for s in (x.score for x in o.findings) if s >= f}
    return tuple(sorted(scores | {f}))


def froc(
    labelled: Sequence[PhotoOutcome],
    good: Sequence[PhotoOutcome],
    thresholds: Iterable[float],
    fraction: float = GROW_FRACTION,
) -> list[FrocPoint]:
    """FROC points (ascending threshold): pore recall on ``labelled`` against porosity findings per
    photo on ``good`` (photos of welds without pores). Both are non-increasing in the threshold."""
    ts = sorted({_check_threshold(t) for t in thresholds})
    hits = (
        np.concatenate([box_hit_scores(o.pores, o.findings, fraction) for o in labelled])
        if labelled
        else np.zeros(0)
    )
    good_scores = np.array([f.score for o in good for f in o.findings], dtype=np.float64)
    return [
        FrocPoint(
            threshold=t,
            recall=Rate(int(np.count_nonzero(hits >= t)), int(hits.size)),
            findings_per_good_photo=Rate(int(np.count_nonzero(good_scores >= t)), len(good)),
        )
        for t in ts
    ]


# ----------------------------------------------------------------------------------------------
# Per-weld summary


@dataclass(frozen=True)
class WeldSummary:
    """Pore-level figures of one group of photos at one threshold.

    ``held_out``: whether the model that graded them was trained without this group (False for a
    shipped artifact on its own training welds: those figures flatter the model).
    """

    group: str
    held_out: bool
    threshold: float
    photos: int
    graded: int
    review: Rate
    photos_with_pores: int
    recall: Rate
    findings_per_photo: Rate
    unmatched_per_photo: Rate
    findings_per_pore_free_photo: Rate
    false_accept: Rate
    graded_ge1: Rate
    graded_ge2: Rate
    graded_ge1_without_review: Rate
    graded_ge2_without_review: Rate
    story_agreement: Rate
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = v.to_dict() if isinstance(v, Rate) else (list(v) if isinstance(v, tuple) else v)
        return out


def summarise(
    group: str,
    outcomes: Sequence[PhotoOutcome],
    threshold: float,
    *,
    held_out: bool,
    fraction: float = GROW_FRACTION,
    notes: Sequence[str] = (),
) -> WeldSummary:
    """All pore-level figures of ``outcomes`` at ``threshold`` (findings with ``score >= threshold``)."""
    t = _check_threshold(threshold)
    pore_free = [o for o in outcomes if not o.pores]
    return WeldSummary(
        group=group,
        held_out=held_out,
        threshold=t,
        photos=len(outcomes),
        graded=sum(o.grade is not None for o in outcomes),
        review=Rate(sum(o.needs_review for o in outcomes), len(outcomes)),
        photos_with_pores=sum(bool(o.pores) for o in outcomes),
        recall=recall(outcomes, t, fraction),
        findings_per_photo=findings_per_photo(outcomes, t),
        unmatched_per_photo=unmatched_per_photo(outcomes, t, fraction),
        findings_per_pore_free_photo=findings_per_photo(pore_free, t),
        false_accept=false_accept_rate(outcomes),
        graded_ge1=graded_share(outcomes, 1),
        graded_ge2=graded_share(outcomes, 2),
        graded_ge1_without_review=graded_share(outcomes, 1, without_review=True),
        graded_ge2_without_review=graded_share(outcomes, 2, without_review=True),
        story_agreement=story_agreement(outcomes, t),
        notes=tuple(notes),
    )


def by_group(outcomes: Iterable[PhotoOutcome]) -> dict[str, list[PhotoOutcome]]:
    """``outcomes`` split by ``group`` (groups in sorted order, photos in input order)."""
    out: dict[str, list[PhotoOutcome]] = {}
    for o in outcomes:
        out.setdefault(o.group, []).append(o)
    return dict(sorted(out.items()))


def summarise_groups(
    outcomes: Iterable[PhotoOutcome],
    threshold: float,
    *,
    held_out: Mapping[str, bool] | bool,
    fraction: float = GROW_FRACTION,
) -> dict[str, WeldSummary]:
    """:func:`summarise` per group; ``held_out`` per group name, or one value for all."""
    groups = by_group(outcomes)
    return {
        g: summarise(
            g,
            items,
            threshold,
            held_out=held_out if isinstance(held_out, bool) else bool(held_out.get(g, False)),
            fraction=fraction,
        )
        for g, items in groups.items()
    }


# ----------------------------------------------------------------------------------------------
# Good-weld crops from coarse YOLO labels


def source_group(file_name: str) -> str:
    """The source image of a Roboflow export file: the name part before ``.rf.`` (the stem when
    there is none)."""
    base = file_name.rsplit("/", 1)[-1]
    head, sep, _ = base.partition(".rf.")
    return head if sep else base.rsplit(".", 1)[0]


def parse_yolo_labels(text: str, width: int, height: int, *, name: str = "<labels>") -> list[tuple[int, Box]]:
    """YOLO label lines ``class cx cy w h`` (normalised) as ``(class id, Box in pixels)``.

    Raises ValueError naming ``name``, the line and what is valid for a malformed line or a class
    id outside :data:`YOLO_CLASSES`. Boxes are clamped to the ``width`` x ``height`` image.
    """
    if width < 1 or height < 1:
        msg = f"{name}: image size must be positive, got {width} x {height}"
        raise ValueError(msg)
    out: list[tuple[int, Box]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) != 5:
                raise ValueError
            cls_id = int(parts[0])
            cx, cy, bw, bh = (float(p) for p in parts[1:])
        except ValueError:
            msg = f"{name} line {lineno}: expected 'class cx cy w h' (5 numbers), got {line.strip()!r}"
            raise ValueError(msg) from None
        if not 0 <= cls_id < len(YOLO_CLASSES):
            valid = ", ".join(f"{i} {n}" for i, n in enumerate(YOLO_CLASSES))
            msg = f"{name} line {lineno}: unknown class id {cls_id}; valid: {valid}"
            raise ValueError(msg)
        if not all(math.isfinite(v) for v in (cx, cy, bw, bh)) or bw < 0 or bh < 0:
            msg = f"{name} line {lineno}: box values must be finite with w, h >= 0, got {line.strip()!r}"
            raise ValueError(msg)
        x0 = min(max((cx - bw / 2) * width, 0.0), float(width))
        x1 = min(max((cx + bw / 2) * width, 0.0), float(width))
        y0 = min(max((cy - bh / 2) * height, 0.0), float(height))
        y1 = min(max((cy + bh / 2) * height, 0.0), float(height))
        out.append((cls_id, Box(x0, y0, x1, y1, YOLO_CLASSES[cls_id])))
    return out


def overlaps(a: Box, b: Box) -> bool:
    """Whether two boxes share a region of positive area (touching edges do not count)."""
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def clean_good_boxes(labels: Sequence[tuple[int, Box]]) -> list[Box]:
    """The Good Weld boxes that no Bad Weld or Defect box of the same photo overlaps."""
    blocking = [b for c, b in labels if c in BLOCKING_CLASSES]
    return [b for c, b in labels if c == GOOD_WELD and not any(overlaps(b, x) for x in blocking)]


def crop_box(box: Box, width: int, height: int, margin: float = CROP_MARGIN) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` per side, rounded outwards to whole pixels and clamped to the
    image: ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1`` (slice ``image[y0:y1, x0:x1]``)."""
    g = grow_box(box, _check_fraction(margin, "crop margin"))
    x0 = max(0, math.floor(g.x0))
    y0 = max(0, math.floor(g.y0))
    x1 = min(width, math.ceil(g.x1))
    y1 = min(height, math.ceil(g.y1))
    return x0, y0, max(x0, x1), max(y0, y1)


@dataclass(frozen=True)
class GoodCrop:
    """One good-weld photo: ``crop`` (pixels, exclusive end) of ``image`` (file name), cut around
    the clean Good Weld ``box`` of that photo (pixels, rounded to 0.01); ``group`` = its source image."""

    image: str
    group: str
    box: tuple[float, float, float, float]
    crop: tuple[int, int, int, int]
    width: int
    height: int

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.crop[2] - self.crop[0], self.crop[3] - self.crop[1]


def select_good_crops(
    photos: Iterable[tuple[str, int, int, Sequence[tuple[int, Box]]]],
    *,
    margin: float = CROP_MARGIN,
    min_side: int = 32,
) -> list[GoodCrop]:
    """One crop per source group from ``(file name, width, height, labels)`` rows: the largest
    clean Good Weld box of the group (ties: the earlier file name, then the earlier box), kept only
    when its crop is at least ``min_side`` pixels on both sides. Sorted by group."""
    best: dict[str, tuple[tuple[float, str, int], GoodCrop]] = {}
    for name, width, height, labels in photos:
        for k, box in enumerate(clean_good_boxes(labels)):
            crop = crop_box(box, width, height, margin)
            if min(crop[2] - crop[0], crop[3] - crop[1]) < min_side:
                continue
            group = source_group(name)
            key = (-(box.width * box.height), name, k)
            rounded = (round(box.x0, 2), round(box.y0, 2), round(box.x1, 2), round(box.y1, 2))
            item = GoodCrop(name, group, rounded, crop, width, height)
            if group not in best or key < best[group][0]:
                best[group] = (key, item)
    return [best[g][1] for g in sorted(best)]
