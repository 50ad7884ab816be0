"""A training data set from the store's reviewed inspections (``weldinspect train --from-store``).

Read (:func:`read_reviewed`): every inspection with at least one review, its **latest** review (a
later review supersedes an earlier one), the stored image and the model result it was reviewed on.

Labels (:func:`photo_labels`), in the image's own pixels (the result's ``width`` x ``height``):

* **marks** (the review carries marks, :mod:`inspection.store.marks`): every ``porosity`` and
  ``spatter`` mark is an object. A dragged box is kept as drawn; a model finding the reviewer kept,
  moved or resized (``origin: "model"``) is a mark like any other; a finding the reviewer deleted
  has no mark and is gone. A **point** (a click) becomes a square box of side
  ``point_fraction`` x the image's long side (default :data:`POINT_BOX_FRACTION` = 6 %: the median
  pore box of weld-porosity is 48 px on its 800 px photos), at least :data:`MIN_POINT_BOX_PX`,
  centred on the point and clipped to the image.
* **no marks** (a review that only set grades, e.g. through the API or without JavaScript):
  porosity grade 0 means "no pores"; a porosity grade equal to the binned count of the model's
  stored porosity findings means the reviewer confirmed those circles, so they become the pore
  boxes (the box around each circle, radius at least :data:`FINDING_MIN_RADIUS` px, as the review
  page draws them). Anything else is excluded: the reviewer says there are pores, but not where.
  Spatter objects come from marks only (training composites its spatter synthetically; the
  spatter grade is still kept for the evaluation's confusion matrix).

Excluded (counted by reason, :data:`EXCLUSIONS`): photos flagged ``not_gradable``, reviews without
grades or marks, unmarked pores (above), images missing from the store or not matching their
sha256, and later inspections of an image already used (same bytes: one record per image, so the
same photo can never be on both sides of the split).

Groups (:func:`group_of`): ``<machine serial>/<part id>`` (part id missing: ``station-<id>``), so
all photos of one part of one machine stay on one side of the split, never split by file.

Split (:func:`inspection.data.splits.stable_group_split`): a group is held out for evaluation
when ``sha256("<seed>:<group>")`` read as a fraction in [0, 1) is below ``eval_share``. The rule
depends on the group alone, so a group keeps its side as the store grows round after round (a
held-out group never becomes training data of a later challenger unless the seed changes); with
few groups at least one group is held out and at least one trains (the lowest / highest hash).

Written (:func:`write_dataset`) in the weld-porosity schema (:mod:`inspection.data.manifest`):
``annotations.jsonl`` (every usable photo) + ``images/<sha256>.<ext>``, and the two sides as
``train.jsonl`` / ``eval.jsonl`` (same schema, same ``images/``) plus ``split.json``. Extra keys per
record (ignored by the manifest reader): ``sha256``, ``inspection_id``, ``review_id``,
``reviewer``, ``reviewed_at``, ``label_source``, ``station_id``, ``part_id``, ``split``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from inspection.data.manifest import ManifestObject, ManifestRecord
from inspection.data.splits import stable_group_split
from inspection.store.db import Store
from inspection.store.images import EXTENSIONS
from inspection.store.models import InspectionRow, ReviewRow, StoredImageRow, as_utc
from inspection.types import grade_from_count

log = logging.getLogger(__name__)

POINT_BOX_FRACTION = 0.06
"""Side of the box a point mark becomes, as a share of the image's long side."""
MIN_POINT_BOX_PX = 4.0
"""Smallest side of a point mark's box (pixels)."""
FINDING_MIN_RADIUS = 2.0
"""Smallest half-side of a model finding's box (pixels), as the review page draws it."""
MANIFEST_SOURCE = "weldinspect-review"

EXCLUSIONS: Mapping[str, str] = {
    "not_gradable": "the reviewer flagged the photo not gradable",
    "no_labels": "the review set no grade and drew no marks",
    "unmarked_pores": (
        "no marks, and the porosity grade is missing or >= 1 without matching the model's circles: "
        "where the pores are is unknown"
    ),
    "image_missing": "the image file is not in the store's images directory",
    "image_corrupt": "the image file's bytes do not hash to its sha256",
    "duplicate_image": "the same image bytes were already used by a later reviewed inspection",
}
"""Why a reviewed inspection is left out of the data set (stable codes, reported with counts)."""


class ReviewDataError(ValueError):
    """The store cannot give a data set (no inspections, no reviews, too few groups); the message
    names what is missing and what is needed."""


@dataclass(frozen=True)
class ReviewedPhoto:
    """One reviewed inspection with its latest review (what :func:`read_reviewed` returns)."""

    inspection_id: str
    review_id: str
    reviewer: str
    reviewed_at: str
    image_sha256: str
    image_relpath: str
    media_type: str
    width: int
    height: int
    machine_serial: str | None
    part_id: str | None
    station_id: str | None
    porosity_grade: int | None
    spatter_grade: int | None
    marks: tuple[Mapping[str, Any], ...] | None
    not_gradable_reason: str | None
    findings: tuple[Mapping[str, Any], ...] = ()
    material: str | None = None
    thickness_mm: float | None = None
    mm_per_px: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return group_of(self.machine_serial, self.part_id, self.station_id)


@dataclass(frozen=True)
class StoreCounts:
    """What the store holds: inspections, reviewed inspections and reviews in all."""

    inspections: int
    reviewed: int
    reviews: int


def group_of(machine_serial: str | None, part_id: str | None, station_id: str | None) -> str:
    """``<machine serial>/<part id>``; without a part id ``station-<station id>`` stands in, and
    ``no-machine`` / ``no-part`` name what is unknown."""
    machine = (machine_serial or "").strip() or "no-machine"
    part = (part_id or "").strip()
    if not part:
        station = (station_id or "").strip()
        part = f"station-{station}" if station else "no-part"
    return f"{machine}/{part}"


def read_reviewed(store: Store) -> tuple[list[ReviewedPhoto], StoreCounts]:
    """Every reviewed inspection with its latest review (oldest review first) and the counts."""
    with store.session() as s:
        inspections = int(s.scalar(select(func.count()).select_from(InspectionRow)) or 0)
        rows = s.execute(
            select(ReviewRow, InspectionRow, StoredImageRow)
            .join(InspectionRow, InspectionRow.id == ReviewRow.inspection_id)
            .join(StoredImageRow, StoredImageRow.sha256 == InspectionRow.image_sha256)
            .order_by(ReviewRow.created_at, ReviewRow.id)
        ).all()
        latest: dict[str, ReviewedPhoto] = {}
        for review, insp, image in rows:
            result = insp.result or {}
            ctx = result.get("context") or {}
            latest.pop(insp.id, None)  # re-inserted: the order follows the latest review
            latest[insp.id] = ReviewedPhoto(
                inspection_id=insp.id,
                review_id=review.id,
                reviewer=review.reviewer,
                reviewed_at=as_utc(review.created_at).isoformat(),
                image_sha256=insp.image_sha256,
                image_relpath=image.path,
                media_type=image.media_type,
                width=int(result.get("width") or image.width or 0),
                height=int(result.get("height") or image.height or 0),
                machine_serial=insp.machine_serial,
                part_id=insp.part_id,
                station_id=insp.station_id,
                porosity_grade=review.porosity_grade,
                spatter_grade=review.spatter_grade,
                marks=None if review.marks is None else tuple(dict(m) for m in review.marks),
                not_gradable_reason=review.not_gradable_reason,
                findings=tuple(dict(f) for f in result.get("findings") or ()),
                material=insp.material,
                thickness_mm=insp.thickness_mm,
                mm_per_px=ctx.get("mm_per_px") if isinstance(ctx, Mapping) else None,
                params=dict(insp.params or {}),
            )
    return list(latest.values()), StoreCounts(inspections, len(latest), len(rows))


# ---- labels (pure) --------------------------------------------------------------------------------


def point_box(
    x: float, y: float, width: int, height: int, fraction: float = POINT_BOX_FRACTION
) -> tuple[float, float, float, float]:
    """The square box a point mark at ``(x, y)`` becomes (see the module docstring), clipped."""
    if not (math.isfinite(fraction) and 0 < fraction <= 1):
        msg = f"point box fraction must be in (0, 1], got {fraction!r}"
        raise ValueError(msg)
    half = max(MIN_POINT_BOX_PX, fraction * max(width, height)) / 2.0
    return _clip((x - half, y - half, x + half, y + half), width, height)


def _clip(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (
        round(min(max(x0, 0.0), width), 1),
        round(min(max(y0, 0.0), height), 1),
        round(min(max(x1, 0.0), width), 1),
        round(min(max(y1, 0.0), height), 1),
    )


def mark_object(
    mark: Mapping[str, Any], width: int, height: int, fraction: float = POINT_BOX_FRACTION
) -> ManifestObject | None:
    """The manifest object of one stored mark (None when it has no area inside the image)."""
    if "box" in mark:
        box = _clip(mark["box"], width, height)
    else:
        px, py = mark["point"]
        box = point_box(float(px), float(py), width, height, fraction)
    if not (box[0] < box[2] and box[1] < box[3]):
        return None
    return ManifestObject(str(mark["label"]), box)


def finding_object(finding: Mapping[str, Any], width: int, height: int) -> ManifestObject | None:
    """The box around a stored model finding (radius ``diameter_px / 2``, at least
    :data:`FINDING_MIN_RADIUS`), clipped; None when it has no area inside the image."""
    r = max(FINDING_MIN_RADIUS, float(finding.get("diameter_px") or 0.0) / 2.0)
    x, y = float(finding["x"]), float(finding["y"])
    box = _clip((x - r, y - r, x + r, y + r), width, height)
    if not (box[0] < box[2] and box[1] < box[3]):
        return None
    return ManifestObject(str(finding["kind"]), box)


@dataclass(frozen=True)
class PhotoLabels:
    """The objects of one reviewed photo and where they came from: ``marks``, ``model_findings``
    (no marks; the reviewer's grade equals the binned count of the model's circles) or ``grade_0``
    (no marks; porosity grade 0). ``points``: point marks turned into boxes; ``model_kept``: marks
    of model findings the reviewer kept (or moved)."""

    objects: tuple[ManifestObject, ...]
    source: str
    points: int = 0
    model_kept: int = 0

    def count(self, label: str) -> int:
        return sum(1 for o in self.objects if o.label == label)


def photo_labels(
    photo: ReviewedPhoto,
    *,
    point_fraction: float = POINT_BOX_FRACTION,
    porosity_thresholds: tuple[int, int, int] = (1, 2, 4),
) -> PhotoLabels | str:
    """The labels of ``photo`` by the rules of the module docstring, or the exclusion code
    (a key of :data:`EXCLUSIONS`)."""
    if photo.not_gradable_reason is not None:
        return "not_gradable"
    w, h = photo.width, photo.height
    if photo.marks is not None:
        objects = [mark_object(m, w, h, point_fraction) for m in photo.marks]
        return PhotoLabels(
            tuple(o for o in objects if o is not None),
            "marks",
            points=sum(1 for m in photo.marks if "point" in m),
            model_kept=sum(1 for m in photo.marks if m.get("origin") == "model"),
        )
    if photo.porosity_grade is None:
        return "no_labels" if photo.spatter_grade is None else "unmarked_pores"
    if photo.porosity_grade == 0:
        return PhotoLabels((), "grade_0")
    pores = [finding_object(f, w, h) for f in photo.findings if f.get("kind") == "porosity"]
    kept = tuple(o for o in pores if o is not None)
    if grade_from_count(len(kept), porosity_thresholds) == photo.porosity_grade:
        return PhotoLabels(kept, "model_findings", model_kept=len(kept))
    return "unmarked_pores"


# ---- the data set on disk ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledPhoto:
    """A usable reviewed photo: its manifest record (image path relative to the data set folder)
    and the labels' provenance."""

    photo: ReviewedPhoto
    record: ManifestRecord
    labels: PhotoLabels


@dataclass(frozen=True)
class ReviewDataset:
    """What :func:`write_dataset` wrote into ``root``."""

    root: Path
    manifest_sha256: str
    photos: tuple[LabelledPhoto, ...]
    train_groups: tuple[str, ...]
    eval_groups: tuple[str, ...]
    excluded: Mapping[str, int]
    counts: StoreCounts
    split_seed: int
    eval_share: float
    point_fraction: float

    @property
    def train(self) -> list[LabelledPhoto]:
        held = set(self.eval_groups)
        return [p for p in self.photos if p.record.group not in held]

    @property
    def held_out(self) -> list[LabelledPhoto]:
        held = set(self.eval_groups)
        return [p for p in self.photos if p.record.group in held]

    def summary(self) -> dict[str, Any]:
        """Counts for the report (JSON-ready)."""

        def side(items: Sequence[LabelledPhoto], groups: Sequence[str]) -> dict[str, Any]:
            return {
                "groups": len(groups),
                "photos": len(items),
                "photos_with_pores": sum(1 for p in items if p.labels.count("porosity")),
                "pore_boxes": sum(p.labels.count("porosity") for p in items),
                "spatter_boxes": sum(p.labels.count("spatter") for p in items),
            }

        sources = Counter(p.labels.source for p in self.photos)
        return {
            "inspections_in_store": self.counts.inspections,
            "reviewed_inspections": self.counts.reviewed,
            "reviews": self.counts.reviews,
            "usable_photos": len(self.photos),
            "excluded": {code: int(self.excluded.get(code, 0)) for code in EXCLUSIONS},
            "excluded_total": int(sum(self.excluded.values())),
            "label_sources": {k: int(sources.get(k, 0)) for k in ("marks", "model_findings", "grade_0")},
            "point_marks_as_boxes": sum(p.labels.points for p in self.photos),
            "model_findings_kept": sum(p.labels.model_kept for p in self.photos),
            "train": side(self.train, self.train_groups),
            "held_out": side(self.held_out, self.eval_groups),
        }


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_image(store: Store, photo: ReviewedPhoto, images_out: Path) -> tuple[str, bool]:
    """Copy the stored image to ``images_out/<sha256><ext>``: ``(file name, True)``, or
    ``(exclusion code, False)`` when it is missing or its bytes do not match."""
    source = store.images.root / photo.image_relpath
    if not source.is_file():
        return "image_missing", False
    name = photo.image_sha256 + EXTENSIONS.get(photo.media_type, ".bin")
    target = images_out / name
    if not (target.is_file() and _file_sha256(target) == photo.image_sha256):
        tmp = target.with_name(f".{name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    if _file_sha256(target) != photo.image_sha256:
        target.unlink(missing_ok=True)
        return "image_corrupt", False
    return name, True


def _record(photo: ReviewedPhoto, name: str, labels: PhotoLabels) -> ManifestRecord:
    grades = {
        k: v
        for k, v in (("porosity", photo.porosity_grade), ("spatter", photo.spatter_grade))
        if v is not None
    }
    mm = photo.mm_per_px
    return ManifestRecord(
        image=f"images/{name}",
        width=photo.width,
        height=photo.height,
        group=photo.group,
        objects=labels.objects,
        source=MANIFEST_SOURCE,
        grades=grades,
        params=dict(photo.params),
        material=photo.material,
        thickness_mm=photo.thickness_mm if photo.thickness_mm and photo.thickness_mm > 0 else None,
        mm_per_px=float(mm) if isinstance(mm, int | float) and mm > 0 else None,
        machine_serial=photo.machine_serial,
    )


def _line(item: LabelledPhoto, split: str) -> str:
    p = item.photo
    data = item.record.to_json()
    data.update(
        {
            "sha256": p.image_sha256,
            "inspection_id": p.inspection_id,
            "review_id": p.review_id,
            "reviewer": p.reviewer,
            "reviewed_at": p.reviewed_at,
            "label_source": item.labels.source,
            "split": split,
        }
    )
    if p.station_id:
        data["station_id"] = p.station_id
    if p.part_id:
        data["part_id"] = p.part_id
    return json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_dataset(
    store: Store,
    out_dir: Path,
    *,
    eval_share: float = 0.3,
    seed: int = 1234,
    min_groups: int = 2,
    point_fraction: float = POINT_BOX_FRACTION,
    porosity_thresholds: tuple[int, int, int] = (1, 2, 4),
    hold_out: bool = True,
) -> ReviewDataset:
    """Read the store's reviewed inspections and write the data set into ``out_dir`` (see the
    module docstring). Raises :class:`ReviewDataError` naming what is missing when the store holds
    no inspections, none reviewed, none usable, or fewer than ``min_groups`` groups.

    ``hold_out=False``: every usable photo trains (``eval.jsonl`` is empty, ``min_groups`` is not
    checked); for callers that evaluate on photos outside the store, such as the simulated station
    of ``scripts/bench_learning.py``."""
    if hold_out and min_groups < 2:
        msg = f"min_groups must be at least 2 (one group to train on, one held out), got {min_groups}"
        raise ValueError(msg)
    photos, counts = read_reviewed(store)
    if counts.inspections == 0:
        msg = f"the store at {store.url} holds no inspections: nothing was inspected and reviewed there yet"
        raise ReviewDataError(msg)
    if not photos:
        msg = (
            f"the store at {store.url} holds {counts.inspections} inspection(s) but no reviewed ones: "
            "review some in the dashboard (final grades, pore and spatter marks) first"
        )
        raise ReviewDataError(msg)
    images_out = Path(out_dir) / "images"
    images_out.mkdir(parents=True, exist_ok=True)
    excluded: Counter[str] = Counter()
    usable: list[LabelledPhoto] = []
    seen: set[str] = set()
    for photo in reversed(photos):  # newest review first: it wins an image used twice
        labels = photo_labels(photo, point_fraction=point_fraction, porosity_thresholds=porosity_thresholds)
        if isinstance(labels, str):
            excluded[labels] += 1
            continue
        if photo.image_sha256 in seen:
            excluded["duplicate_image"] += 1
            continue
        name, copied = _copy_image(store, photo, images_out)
        if not copied:
            excluded[name] += 1
            continue
        seen.add(photo.image_sha256)
        usable.append(LabelledPhoto(photo, _record(photo, name, labels), labels))
    usable.reverse()
    reasons = ", ".join(f"{n} {code}" for code, n in sorted(excluded.items())) or "none"
    if not usable:
        msg = (
            f"none of the {counts.reviewed} reviewed inspection(s) in {store.url} is usable for training "
            f"(excluded: {reasons}); images are read from {store.images.root}"
        )
        raise ReviewDataError(msg)
    groups = sorted({p.record.group or "" for p in usable})
    if hold_out and len(groups) < min_groups:
        msg = (
            f"the reviewed photos come from {len(groups)} group(s) ({', '.join(groups)}); at least "
            f"{min_groups} are needed (a group is a machine serial + part id, or + station when the part "
            "id is missing): review photos of more parts, so that whole parts can be held out"
        )
        raise ReviewDataError(msg)
    if hold_out:
        train_groups, eval_groups = stable_group_split(groups, eval_share=eval_share, seed=seed)
    else:
        train_groups, eval_groups = list(groups), []
    held = set(eval_groups)
    out = Path(out_dir)
    lines = [
        (_line(p, "eval" if p.record.group in held else "train"), p.record.group in held) for p in usable
    ]
    _write_text(out / "annotations.jsonl", "".join(text for text, _ in lines))
    _write_text(out / "train.jsonl", "".join(text for text, is_eval in lines if not is_eval))
    _write_text(out / "eval.jsonl", "".join(text for text, is_eval in lines if is_eval))
    manifest_sha = _file_sha256(out / "annotations.jsonl")
    dataset = ReviewDataset(
        root=out,
        manifest_sha256=manifest_sha,
        photos=tuple(usable),
        train_groups=tuple(train_groups),
        eval_groups=tuple(eval_groups),
        excluded=dict(excluded),
        counts=counts,
        split_seed=seed,
        eval_share=eval_share,
        point_fraction=point_fraction,
    )
    split = {
        "rule": "held out when sha256('<seed>:<group>') as a fraction in [0, 1) < eval_share "
        "(at least one group on each side)"
        if hold_out
        else "nothing held out: every usable photo trains",
        "seed": seed,
        "eval_share": eval_share,
        "train_groups": train_groups,
        "eval_groups": eval_groups,
        "manifest_sha256": manifest_sha,
        "train_sha256": _file_sha256(out / "train.jsonl"),
        "eval_sha256": _file_sha256(out / "eval.jsonl"),
    }
    _write_text(out / "split.json", json.dumps(split, indent=2) + "\n")
    log.info(
        "review data set: %d usable photos (%d excluded: %s), %d training / %d held-out groups, manifest %s",
        len(usable),
        sum(excluded.values()),
        reasons,
        len(train_groups),
        len(eval_groups),
        manifest_sha[:12],
    )
    return dataset
