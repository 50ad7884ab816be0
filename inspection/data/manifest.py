"""The data-set manifest (``annotations.jsonl``): records, a validating reader and a writer.

Format (one JSON object per line, see ``../shared/data/weld-porosity/DATA_CARD.md``)::

    {"image": "images/x.jpg", "width": 800, "height": 800, "group": "weld01",
     "objects": [{"label": "porosity", "box": [x0, y0, x1, y1]}], "source": "..."}

``image`` is relative to the manifest's folder; boxes are pixels ``(x0, y0, x1, y1)``, x right,
y down. Optional per-image fields: ``grades`` (``{"porosity": 0-3, "spatter": 0-3}``), ``params``
(welding parameters), ``material``, ``thickness_mm``, ``mm_per_px``, ``machine_serial`` and
``labels`` (image-level labels, for folder-per-class data without boxes). An object may carry
``raw_label``: the label as the original annotators wrote it, before mapping.

:func:`read_manifest` never raises on bad content: every problem is reported in a
:class:`ManifestReport` (line number, image, stable code, message) and the record is repaired or
skipped. Problem codes:

==================  =====================================================  ==================
code                meaning                                                action
==================  =====================================================  ==================
``bad_json``        the line is not valid JSON / not an object             line skipped
``bad_record``      a required field is missing or has a wrong type        line skipped
``bad_box``         a box is not 4 finite numbers                          object dropped
``box_swapped``     a box has x0 > x1 or y0 > y1                           corners sorted
``box_clipped``     a box extends outside the image                        clipped to image
``box_outside``     a box has no area inside the image                     object dropped
``unknown_label``   label (after ``label_map``) not in ``types.LABELS``    kept as ``other``
``missing_image``   the image file does not exist                          record skipped
``unreadable_image`` the image file cannot be decoded                      record skipped
``size_mismatch``   width/height differ from the image file's              file's size used
``duplicate_image`` same bytes (SHA-256) as an earlier record              later one skipped
``bad_field``       an optional field has a wrong type or value            field dropped
==================  =====================================================  ==================
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from inspection.types import GRADE_LEVELS, GRADED_DEFECTS, LABELS

log = logging.getLogger(__name__)

OTHER = "other"

REAL_POROSITY_LABEL_MAP: Mapping[str, str] = {
    "Surface_pores": "porosity",
    "Not_fully_soldered": "lack_of_fusion",
    "crater": "crater",
    # region markers, not defects:
    "good": OTHER,
    "Weld": OTHER,
    "wrong_size": OTHER,
}
"""Label map for ``../shared/data/weld-porosity`` onto :data:`inspection.types.LABELS`."""

BoxTuple = tuple[float, float, float, float]

_GRADE_KEYS = tuple(d.value for d in GRADED_DEFECTS)


@dataclass(frozen=True)
class ManifestObject:
    """One labelled box in image pixels ``(x0, y0, x1, y1)`` with x0 <= x1 and y0 <= y1.

    ``label`` is in our vocabulary (:data:`inspection.types.LABELS`); ``raw_label`` is the
    annotators' original label when it differed (None otherwise).
    """

    label: str
    box: BoxTuple
    raw_label: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            msg = f"ManifestObject.label must be a non-empty string, got {self.label!r}"
            raise ValueError(msg)
        if len(self.box) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in self.box):
            msg = f"ManifestObject.box must be 4 finite numbers (x0, y0, x1, y1), got {self.box!r}"
            raise ValueError(msg)
        x0, y0, x1, y1 = self.box
        if x1 < x0 or y1 < y0:
            msg = f"ManifestObject.box must satisfy x0 <= x1 and y0 <= y1, got {self.box!r}"
            raise ValueError(msg)
        object.__setattr__(self, "box", tuple(float(v) for v in self.box))

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)


@dataclass(frozen=True)
class ManifestRecord:
    """One image of a data set with its annotations.

    ``image`` is the path relative to ``root`` (the manifest's folder; None when the record was
    built in memory). ``width``/``height`` in pixels. ``grades`` maps a graded defect
    (``porosity``/``spatter``) to an explicit 0..3 grade when the data set states one.
    """

    image: str
    width: int
    height: int
    group: str | None = None
    objects: tuple[ManifestObject, ...] = ()
    source: str | None = None
    grades: Mapping[str, int] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    material: str | None = None
    thickness_mm: float | None = None
    mm_per_px: float | None = None
    machine_serial: str | None = None
    labels: tuple[str, ...] = ()
    root: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image:
            msg = f"ManifestRecord.image must be a non-empty path string, got {self.image!r}"
            raise ValueError(msg)
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                msg = f"ManifestRecord.{name} must be a positive int, got {v!r} (image {self.image})"
                raise ValueError(msg)
        for key, grade in self.grades.items():
            if key not in _GRADE_KEYS:
                msg = f"ManifestRecord.grades key {key!r} is not a graded defect; valid: {_GRADE_KEYS}"
                raise ValueError(msg)
            if not isinstance(grade, int) or isinstance(grade, bool) or not 0 <= grade < GRADE_LEVELS:
                msg = f"ManifestRecord.grades[{key!r}] must be an int in 0..{GRADE_LEVELS - 1}, got {grade!r}"
                raise ValueError(msg)
        for name in ("thickness_mm", "mm_per_px"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                msg = f"ManifestRecord.{name} must be a positive number or None, got {v!r}"
                raise ValueError(msg)
        object.__setattr__(self, "objects", tuple(self.objects))
        object.__setattr__(self, "labels", tuple(self.labels))

    def path(self, root: Path | str | None = None) -> Path:
        """The image file: ``root / image`` (``root`` defaults to the stored manifest folder)."""
        base = Path(root) if root is not None else self.root
        if base is None:
            msg = f"record {self.image!r} has no stored root; pass the manifest folder as root"
            raise ValueError(msg)
        return base / self.image

    def count(self, label: str) -> int:
        """Number of objects with ``label``."""
        return sum(1 for o in self.objects if o.label == label)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``annotations.jsonl`` (optional fields only when set)."""
        objects = []
        for o in self.objects:
            obj: dict[str, Any] = {"label": o.label, "box": [_num(v) for v in o.box]}
            if o.raw_label is not None and o.raw_label != o.label:
                obj["raw_label"] = o.raw_label
            objects.append(obj)
        out: dict[str, Any] = {
            "image": self.image,
            "width": self.width,
            "height": self.height,
            "group": self.group,
            "objects": objects,
            "source": self.source,
        }
        if self.grades:
            out["grades"] = dict(self.grades)
        if self.params:
            out["params"] = dict(self.params)
        for name in ("material", "thickness_mm", "mm_per_px", "machine_serial"):
            v = getattr(self, name)
            if v is not None:
                out[name] = v
        if self.labels:
            out["labels"] = list(self.labels)
        return out


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


@dataclass(frozen=True)
class ManifestProblem:
    """One problem found while reading: 1-based ``line`` (0 when not line-bound), stable ``code``."""

    line: int
    image: str | None
    code: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "-"
        img = f" [{self.image}]" if self.image else ""
        return f"{where}{img}: {self.code}: {self.message}"


@dataclass(frozen=True)
class ManifestReport:
    """What a reader found: the problems and counts (lines read, records kept, objects kept)."""

    source: str
    lines: int
    records: int
    objects: int
    problems: tuple[ManifestProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Number of problems per code."""
        return dict(Counter(p.code for p in self.problems))

    def by_code(self, code: str) -> list[ManifestProblem]:
        return [p for p in self.problems if p.code == code]

    def summary(self, max_examples: int = 3) -> str:
        """A human-readable multi-line summary (counts per code with a few examples)."""
        head = f"{self.source}: {self.lines} lines, {self.records} records, {self.objects} objects"
        if self.ok:
            return head + ", no problems"
        lines = [head + f", {len(self.problems)} problem(s):"]
        for code, n in sorted(self.counts().items()):
            lines.append(f"  {code}: {n}")
            lines.extend(f"    {p}" for p in self.by_code(code)[:max_examples])
        return "\n".join(lines)


class ProblemCollector:
    """Mutable helper that gathers problems while a reader runs."""

    def __init__(self) -> None:
        self.problems: list[ManifestProblem] = []

    def add(self, line: int, image: str | None, code: str, message: str) -> None:
        self.problems.append(ManifestProblem(line, image, code, message))


def map_label(
    raw: str, label_map: Mapping[str, str] | None, problems: ProblemCollector, line: int, image: str | None
) -> str:
    """``raw`` through ``label_map`` onto :data:`LABELS`; unknown ones reported and returned as other."""
    label = label_map.get(raw, raw) if label_map else raw
    if label in LABELS:
        return label
    problems.add(
        line,
        image,
        "unknown_label",
        f"label {raw!r} is not in the vocabulary {LABELS} (after label map); kept as 'other'",
    )
    return OTHER


def clean_box(
    raw: Any, width: int, height: int, problems: ProblemCollector, line: int, image: str | None
) -> BoxTuple | None:
    """Validate one ``[x0, y0, x1, y1]``: sort swapped corners, clip to the image, drop empty ones."""
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
    ):
        problems.add(
            line, image, "bad_box", f"box must be 4 finite numbers [x0, y0, x1, y1], got {raw!r}; dropped"
        )
        return None
    x0, y0, x1, y1 = (float(v) for v in raw)
    if x0 > x1 or y0 > y1:
        problems.add(line, image, "box_swapped", f"box {list(raw)} has x0 > x1 or y0 > y1; corners sorted")
        x0, x1 = sorted((x0, x1))
        y0, y1 = sorted((y0, y1))
    cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    if cx1 <= cx0 or cy1 <= cy0:
        problems.add(
            line,
            image,
            "box_outside",
            f"box {list(raw)} has no area inside the {width}x{height} image; dropped",
        )
        return None
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        problems.add(
            line, image, "box_clipped", f"box {list(raw)} extends outside the {width}x{height} image; clipped"
        )
    return (cx0, cy0, cx1, cy1)


def image_size(path: Path) -> tuple[int, int]:
    """Upright (width, height) from the file header (EXIF orientation applied, as
    ``inspection.image.ingest`` does); raises OSError/ValueError when not decodable."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        im.verify()
    with PILImage.open(path) as im:
        w, h = int(im.size[0]), int(im.size[1])
        orientation = im.getexif().get(0x0112, 1)  # EXIF orientation: 5-8 swap the axes
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _optional_fields(
    data: Mapping[str, Any], problems: ProblemCollector, line: int, image: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    grades = data.get("grades")
    if grades is not None:
        if not isinstance(grades, Mapping):
            problems.add(line, image, "bad_field", f"grades must be an object, got {grades!r}; dropped")
        else:
            kept: dict[str, int] = {}
            for key, g in grades.items():
                if (
                    key in _GRADE_KEYS
                    and isinstance(g, int)
                    and not isinstance(g, bool)
                    and 0 <= g < GRADE_LEVELS
                ):
                    kept[key] = g
                else:
                    problems.add(
                        line,
                        image,
                        "bad_field",
                        f"grades[{key!r}]={g!r} invalid (keys {_GRADE_KEYS}, ints 0..{GRADE_LEVELS - 1})"
                        "; dropped",
                    )
            out["grades"] = kept
    params = data.get("params")
    if params is not None:
        if isinstance(params, Mapping):
            out["params"] = dict(params)
        else:
            problems.add(line, image, "bad_field", f"params must be an object, got {params!r}; dropped")
    for name in ("material", "machine_serial", "source"):
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, str):
            out[name] = v
        else:
            problems.add(line, image, "bad_field", f"{name} must be a string, got {v!r}; dropped")
    for name in ("thickness_mm", "mm_per_px"):
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            out[name] = float(v)
        else:
            problems.add(line, image, "bad_field", f"{name} must be a positive number, got {v!r}; dropped")
    group = data.get("group")
    if group is not None:
        if isinstance(group, str | int) and not isinstance(group, bool):
            out["group"] = str(group)
        else:
            problems.add(line, image, "bad_field", f"group must be a string, got {group!r}; dropped")
    labels = data.get("labels")
    if labels is not None:
        if isinstance(labels, list) and all(isinstance(x, str) for x in labels):
            out["labels"] = tuple(labels)
        else:
            problems.add(
                line, image, "bad_field", f"labels must be a list of strings, got {labels!r}; dropped"
            )
    return out


def parse_record(
    data: Any,
    *,
    line: int,
    root: Path,
    label_map: Mapping[str, str] | None,
    check_images: bool,
    problems: ProblemCollector,
    seen_hashes: dict[str, str] | None = None,
) -> ManifestRecord | None:
    """Validate one decoded JSON line into a record (None when it must be skipped; see module doc)."""
    if not isinstance(data, Mapping):
        problems.add(line, None, "bad_json", f"line is not a JSON object but {type(data).__name__}; skipped")
        return None
    image = data.get("image")
    if not isinstance(image, str) or not image:
        problems.add(line, None, "bad_record", f"'image' must be a non-empty string, got {image!r}; skipped")
        return None
    width, height = data.get("width"), data.get("height")
    size_given = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height))
    objects_raw = data.get("objects", [])
    if not isinstance(objects_raw, list):
        problems.add(
            line, image, "bad_record", f"'objects' must be a list, got {type(objects_raw).__name__}; skipped"
        )
        return None
    if check_images:
        path = root / image
        if not path.is_file():
            problems.add(line, image, "missing_image", f"image file {path} does not exist; skipped")
            return None
        try:
            payload = path.read_bytes()
            real_w, real_h = image_size(path)
        except Exception as exc:  # any decoder failure (PIL raises many types) means unreadable
            problems.add(
                line, image, "unreadable_image", f"image file {path} cannot be decoded ({exc}); skipped"
            )
            return None
        if seen_hashes is not None:
            digest = hashlib.sha256(payload).hexdigest()
            first = seen_hashes.get(digest)
            if first is not None:
                problems.add(
                    line, image, "duplicate_image", f"same bytes (sha256 {digest[:16]}) as {first}; skipped"
                )
                return None
            seen_hashes[digest] = image
        if size_given and (width, height) != (real_w, real_h):
            problems.add(
                line,
                image,
                "size_mismatch",
                f"manifest says {width}x{height} but the file is {real_w}x{real_h}; using the file's size",
            )
        width, height = real_w, real_h
    elif not size_given:
        problems.add(
            line,
            image,
            "bad_record",
            f"width/height must be positive ints, got {width!r}x{height!r}; skipped",
        )
        return None
    width, height = int(cast(int, width)), int(cast(int, height))
    objects: list[ManifestObject] = []
    for raw_obj in objects_raw:
        if not isinstance(raw_obj, Mapping) or not isinstance(raw_obj.get("label"), str):
            problems.add(
                line,
                image,
                "bad_box",
                f"object must be {{'label': str, 'box': [...]}}, got {raw_obj!r}; dropped",
            )
            continue
        box = clean_box(raw_obj.get("box"), width, height, problems, line, image)
        if box is None:
            continue
        raw_label = raw_obj.get("raw_label") if isinstance(raw_obj.get("raw_label"), str) else None
        written = raw_obj["label"]
        label = map_label(written, label_map, problems, line, image)
        original = raw_label or written
        objects.append(ManifestObject(label, box, original if original != label else None))
    extra = _optional_fields(data, problems, line, image)
    return ManifestRecord(image=image, width=width, height=height, objects=tuple(objects), root=root, **extra)


def read_manifest(
    path: Path | str,
    *,
    label_map: Mapping[str, str] | None = None,
    check_images: bool = True,
) -> tuple[list[ManifestRecord], ManifestReport]:
    """Read and validate ``annotations.jsonl`` (or a folder holding one).

    Never raises on bad content (see the module doc for the problem codes); raises
    ``FileNotFoundError`` only when the manifest file itself does not exist. With
    ``check_images`` every image is opened (header only), its size checked and its bytes hashed
    to find duplicates. Records carry ``root`` = the manifest's folder (absolute), so
    ``record.path()`` is the image file wherever the caller runs.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.jsonl"
    if not path.is_file():
        msg = f"manifest {path} does not exist (expected an annotations.jsonl file or a folder holding one)"
        raise FileNotFoundError(msg)
    root = path.parent.absolute()
    problems = ProblemCollector()
    records: list[ManifestRecord] = []
    seen: dict[str, str] = {}
    n_lines = 0
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            n_lines += 1
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.add(
                    lineno, None, "bad_json", f"not valid JSON ({exc.msg} at column {exc.colno}); skipped"
                )
                continue
            rec = parse_record(
                data,
                line=lineno,
                root=root,
                label_map=label_map,
                check_images=check_images,
                problems=problems,
                seen_hashes=seen,
            )
            if rec is not None:
                records.append(rec)
    report = ManifestReport(
        source=str(path),
        lines=n_lines,
        records=len(records),
        objects=sum(len(r.objects) for r in records),
        problems=tuple(problems.problems),
    )
    if not report.ok:
        log.info("%s", report.summary())
    return records, report


def write_manifest(path: Path | str, records: Iterable[ManifestRecord]) -> Path:
    """Write records as ``annotations.jsonl`` (atomically: temp file then rename). Returns the path.

    ``path`` may be a folder (``annotations.jsonl`` is written inside it). Image paths are
    written as stored in each record (relative to the manifest's folder).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "annotations.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".annotations-", suffix=".jsonl", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec.to_json(), ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
