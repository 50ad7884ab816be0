"""Core types: the one image contract and the results that flow through the pipeline.

Image contract (stated once, here):
    An ``Image`` is a numpy array of dtype ``uint8``, shape ``(H, W, 3)``, channel order **RGB**,
    C-contiguous, with H >= 1 and W >= 1. Pixel coordinates are ``(x, y)`` with x to the right and
    y down, origin at the top-left pixel's top-left corner. Boxes are ``(x0, y0, x1, y1)`` in that
    frame. Every decoder (``inspection.image.ingest``) returns this contract and every consumer may
    assume it; :func:`check_image` enforces it.

This module imports nothing from the rest of the package (it is the bottom layer).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
"""RGB uint8 array of shape (H, W, 3): the one image contract."""

SCHEMA_VERSION = "1.0"
"""Version of the serialised :class:`InspectionResult` (bump on any incompatible change)."""

GRADE_LEVELS = 4
"""Ordinal grades run 0 (none) .. 3 (severe) for every graded defect."""


def _check_thresholds(thresholds: tuple[int, ...]) -> None:
    if len(thresholds) != GRADE_LEVELS - 1 or not all(
        isinstance(t, int) and not isinstance(t, bool) for t in thresholds
    ):
        msg = f"thresholds must be {GRADE_LEVELS - 1} ints, got {thresholds!r}"
        raise ValueError(msg)
    if not 0 < thresholds[0] < thresholds[1] < thresholds[2]:
        msg = f"thresholds must be strictly increasing positive counts, got {thresholds!r}"
        raise ValueError(msg)


def grade_from_count(count: int, thresholds: tuple[int, int, int]) -> int:
    """The 0..3 grade for ``count`` objects: the number of thresholds that ``count`` reaches.

    >>> [grade_from_count(n, (1, 2, 4)) for n in (0, 1, 2, 3, 4, 9)]
    [0, 1, 2, 2, 3, 3]
    """
    _check_thresholds(thresholds)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        msg = f"count must be a non-negative int, got {count!r}"
        raise ValueError(msg)
    return sum(1 for t in thresholds if count >= t)


LABELS: tuple[str, ...] = (
    "porosity",
    "spatter",
    "crack",
    "undercut",
    "lack_of_fusion",
    "crater",
    "burn_through",
    "other",
)
"""The label vocabulary every importer maps onto."""


class Defect(enum.StrEnum):
    """The defects the grader grades (each on the 0-3 ordinal scale)."""

    POROSITY = "porosity"
    SPATTER = "spatter"


GRADED_DEFECTS: tuple[Defect, ...] = (Defect.POROSITY, Defect.SPATTER)


class ImageContractError(ValueError):
    """An array does not satisfy the image contract."""


def check_image(image: Any, name: str = "image") -> Image:
    """Return ``image`` if it satisfies the contract, else raise :class:`ImageContractError`.

    >>> check_image(np.zeros((2, 3, 3), np.uint8)).shape
    (2, 3, 3)
    """
    if not isinstance(image, np.ndarray):
        msg = f"{name} must be a numpy.ndarray, got {type(image).__name__}"
        raise ImageContractError(msg)
    if image.dtype != np.uint8:
        msg = f"{name} must have dtype uint8, got {image.dtype}"
        raise ImageContractError(msg)
    if image.ndim != 3 or image.shape[2] != 3:
        msg = f"{name} must have shape (H, W, 3) RGB, got {image.shape}"
        raise ImageContractError(msg)
    if image.shape[0] < 1 or image.shape[1] < 1:
        msg = f"{name} must be at least 1 x 1 pixels, got {image.shape[1]} x {image.shape[0]}"
        raise ImageContractError(msg)
    return image


def luma(image: Image) -> npt.NDArray[np.uint8]:
    """The BT.601 grey levels ``(H, W)`` uint8 of an RGB ``image`` (``cv2.COLOR_RGB2GRAY``): what the
    seam localiser and the quality gate both start from, so a caller can convert once for both."""
    import cv2  # here, not at the top: most users of this module never touch pixels

    return np.asarray(cv2.cvtColor(check_image(image), cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def check_luma(gray: Any, image: Image) -> npt.NDArray[np.uint8]:
    """Return ``gray`` if it can be :func:`luma` of ``image`` (uint8, the image's height and width),
    else raise :class:`ImageContractError`."""
    if not isinstance(gray, np.ndarray) or gray.dtype != np.uint8 or gray.shape != image.shape[:2]:
        got = f"{gray.dtype} {gray.shape}" if isinstance(gray, np.ndarray) else type(gray).__name__
        msg = f"gray must be the image's uint8 luma of shape {image.shape[:2]}, got {got}"
        raise ImageContractError(msg)
    return gray


@dataclass(frozen=True)
class Box:
    """An axis-aligned labelled box in image pixels (x0 <= x1, y0 <= y1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = "porosity"

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "x1", "y1"):
            v = getattr(self, name)
            if not math.isfinite(v):
                msg = f"Box.{name} must be finite, got {v!r}"
                raise ValueError(msg)
        if self.x1 < self.x0 or self.y1 < self.y0:
            msg = f"Box corners must satisfy x0 <= x1 and y0 <= y1, got {self.as_tuple()}"
            raise ValueError(msg)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0)

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


@dataclass(frozen=True)
class SeamRegion:
    """An oriented rectangle around the weld bead, in image pixels.

    ``center`` is (cx, cy); ``length`` runs along the seam, ``width`` across it; ``angle_deg`` is
    the seam direction measured from the +x axis towards +y (image y points down), in [-90, 90).
    ``score`` in [0, 1] says how confident the localiser is that a seam was found.
    """

    center: tuple[float, float]
    length: float
    width: float
    angle_deg: float
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.length <= 0 or self.width <= 0:
            msg = f"SeamRegion length and width must be > 0, got {self.length} x {self.width}"
            raise ValueError(msg)

    def corners(self) -> npt.NDArray[np.float64]:
        """The four corners as a (4, 2) array of (x, y), in drawing order."""
        a = math.radians(self.angle_deg)
        ux, uy = math.cos(a), math.sin(a)  # along the seam
        vx, vy = -uy, ux  # across the seam
        cx, cy = self.center
        hl, hw = self.length / 2.0, self.width / 2.0
        return np.array(
            [
                [cx - ux * hl - vx * hw, cy - uy * hl - vy * hw],
                [cx + ux * hl - vx * hw, cy + uy * hl - vy * hw],
                [cx + ux * hl + vx * hw, cy + uy * hl + vy * hw],
                [cx - ux * hl + vx * hw, cy - uy * hl + vy * hw],
            ]
        )


@dataclass(frozen=True)
class QualityVerdict:
    """Result of the image quality gate: ``ok`` is False when any reason applies.

    ``reasons`` are stable machine codes (``blurred``, ``underexposed``, ``overexposed``,
    ``no_seam``); ``measures`` holds the measured values each reason was decided on.
    """

    ok: bool
    reasons: tuple[str, ...] = ()
    measures: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DomainVerdict:
    """Result of the domain gate (``inspection.image.domain``): is the photo a seam close-up in the
    appearance range the grader learned? ``ok`` is False when any reason applies.

    ``reasons`` are stable review codes (``not_seam_closeup``, ``unfamiliar_appearance``);
    ``failed`` names the checks that gave them (``background_share``, ``colourfulness``, ...,
    ``ood_score`` for the model's embedding); ``measures`` holds every value they were decided on.
    """

    ok: bool
    reasons: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    measures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ok == bool(self.reasons):
            msg = (
                "DomainVerdict.ok must be True exactly when there are no reasons, "
                f"got ok={self.ok} with reasons {self.reasons}"
            )
            raise ValueError(msg)


@dataclass(frozen=True)
class HeadResult:
    """One ordinal head's output: grade 0..3, calibrated class probabilities, confidence."""

    grade: int
    probs: tuple[float, ...]
    confidence: float

    def __post_init__(self) -> None:
        if not 0 <= self.grade < GRADE_LEVELS:
            msg = f"grade must be in 0..{GRADE_LEVELS - 1}, got {self.grade}"
            raise ValueError(msg)
        if len(self.probs) != GRADE_LEVELS:
            msg = f"probs must have {GRADE_LEVELS} entries, got {len(self.probs)}"
            raise ValueError(msg)


@dataclass(frozen=True)
class Finding:
    """One localised defect (a heatmap peak), in original-image pixels.

    ``along_seam`` is the position along the seam strip in [0, 1] (0 = strip start), used by
    recommendations (start/end clusters). ``*_mm`` fields are set only when the scale is known.
    """

    kind: Defect
    x: float
    y: float
    diameter_px: float
    score: float
    along_seam: float
    diameter_mm: float | None = None
    x_mm: float | None = None
    y_mm: float | None = None


@dataclass(frozen=True)
class InspectionContext:
    """What is known about the part and the photo (all optional).

    ``process``: ``laser`` or ``electron_beam`` (ISO 13919) or ``arc`` (ISO 5817).
    ``material``: e.g. ``stainless``, ``carbon_steel``, ``aluminium``, ``galvanised``,
    ``nickel``, ``titanium``. ``quality_level``: target level ``B``, ``C`` or ``D``.
    """

    process: str | None = None
    material: str | None = None
    thickness_mm: float | None = None
    mm_per_px: float | None = None
    quality_level: str = "C"
    machine_serial: str | None = None
    firmware: str | None = None
    station_id: str | None = None
    operator_id: str | None = None
    part_id: str | None = None
    seam_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("thickness_mm", "mm_per_px"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                msg = f"InspectionContext.{name} must be a positive number, got {v!r}"
                raise ValueError(msg)
        if self.quality_level not in ("B", "C", "D"):
            msg = f"InspectionContext.quality_level must be one of B, C, D; got {self.quality_level!r}"
            raise ValueError(msg)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InspectionContext:
        """Build from a JSON-like mapping; unknown keys are an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            msg = f"unknown context field(s) {unknown}; valid: {sorted(names)}"
            raise ValueError(msg)
        return cls(**dict(data))


@dataclass(frozen=True)
class FindingVerdict:
    """A standards verdict on one imperfection type (ISO 6520-1 reference number)."""

    imperfection: str  # ISO 6520-1 reference number, e.g. "2017" (surface pore), "602" (spatter)
    name: str
    standard: str  # e.g. "ISO 13919-1:2019"
    clause: str  # e.g. "Table 1, 1.6"
    formula: str  # e.g. "d <= 0.3 s, max 2 mm" (the rule applied, in words)
    measured: float | None
    limit: float | None
    unit: str
    level_reached: str  # "B", "C", "D" or "below D" (or "not assessable")
    passed: bool  # against the context's target level
    unconfirmed: bool = False
    finding_indices: tuple[int, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class StandardsReport:
    """The standards part of a result: verdicts, the overall level, or what is missing."""

    assessable: bool
    standard: str | None
    target_level: str
    level_reached: str | None
    verdicts: tuple[FindingVerdict, ...] = ()
    missing: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    unconfirmed: bool = False
    table_version: str = ""


@dataclass(frozen=True)
class ModelInfo:
    """Which model graded: artifact ``name`` and ``version``, ``sha256`` of its ``model.safetensors``
    and the ``runtime`` that ran it (``torch``, ``onnx`` or ``onnx-int8``; ``""`` = not recorded,
    and then omitted from serialised results)."""

    name: str
    version: str
    sha256: str
    runtime: str = ""


@dataclass(frozen=True)
class InspectionResult:
    """Everything one inspection produced. Serialises to JSON with ``schema_version``.

    * ``image_sha256``: hex SHA-256 of the image bytes as received (or of the pixel array when
      inspected from an array).
    * ``quality``: the quality gate verdict; ``seam``: the localised seam (None if not found).
    * ``domain``: the domain gate verdict (None when not assessed: quality gate failed or gate
      disabled, and no embedding flag); omitted from :meth:`to_dict` when None.
    * ``porosity`` / ``spatter``: grades with calibrated probabilities; None when not graded
      (the quality gate or the domain gate's image checks failed, so the model did not run). When
      present while ``needs_review`` is True they are provisional, to be confirmed by a reviewer.
    * ``findings``: localised pores and droplets; ``standards``: the standards verdicts.
    * ``needs_review`` with ``review_reasons`` (stable codes: ``quality:<reason>``,
      ``not_seam_closeup``, ``unfamiliar_appearance``, ``abstain:<head>``, ``out_of_distribution``).
    * ``timings_ms``: per stage (decode, quality, preprocess, domain, model, postprocess, standards).
    """

    image_sha256: str
    width: int
    height: int
    quality: QualityVerdict
    seam: SeamRegion | None
    porosity: HeadResult | None
    spatter: HeadResult | None
    findings: tuple[Finding, ...]
    standards: StandardsReport | None
    needs_review: bool
    review_reasons: tuple[str, ...]
    model: ModelInfo
    timings_ms: Mapping[str, float]
    ood_score: float | None = None
    context: InspectionContext | None = None
    domain: DomainVerdict | None = None
    schema_version: str = SCHEMA_VERSION

    def head(self, defect: Defect) -> HeadResult | None:
        return self.porosity if defect is Defect.POROSITY else self.spatter

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists, enums their values)."""
        d: dict[str, Any] = _jsonable(self)
        if not d["model"].get("runtime"):
            d["model"].pop("runtime", None)
        if d["domain"] is None:  # not assessed: omitted, as in records made before the gate existed
            del d["domain"]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InspectionResult:
        """Inverse of :meth:`to_dict`; refuses an unknown ``schema_version``."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            msg = f"unsupported InspectionResult schema_version {version!r}; supported: {SCHEMA_VERSION!r}"
            raise ValueError(msg)
        d = dict(data)

        def opt(key: str, fn: Any) -> Any:
            v = d.get(key)
            return None if v is None else fn(v)

        def head(v: Mapping[str, Any]) -> HeadResult:
            return HeadResult(int(v["grade"]), tuple(float(p) for p in v["probs"]), float(v["confidence"]))

        def finding(v: Mapping[str, Any]) -> Finding:
            return Finding(**{**v, "kind": Defect(v["kind"])})

        def standards(v: Mapping[str, Any]) -> StandardsReport:
            verdicts = tuple(
                FindingVerdict(**{**fv, "finding_indices": tuple(fv.get("finding_indices", ()))})
                for fv in v.get("verdicts", ())
            )
            return StandardsReport(
                **{
                    **v,
                    "verdicts": verdicts,
                    "missing": tuple(v.get("missing", ())),
                    "notes": tuple(v.get("notes", ())),
                }
            )

        def seam(v: Mapping[str, Any]) -> SeamRegion:
            return SeamRegion(**{**v, "center": tuple(v["center"])})

        def quality(v: Mapping[str, Any]) -> QualityVerdict:
            return QualityVerdict(bool(v["ok"]), tuple(v.get("reasons", ())), dict(v.get("measures", {})))

        def domain(v: Mapping[str, Any]) -> DomainVerdict:
            return DomainVerdict(
                bool(v["ok"]),
                tuple(v.get("reasons", ())),
                tuple(v.get("failed", ())),
                dict(v.get("measures", {})),
            )

        return cls(
            image_sha256=str(d["image_sha256"]),
            width=int(d["width"]),
            height=int(d["height"]),
            quality=quality(d["quality"]),
            seam=opt("seam", seam),
            porosity=opt("porosity", head),
            spatter=opt("spatter", head),
            findings=tuple(finding(f) for f in d.get("findings", ())),
            standards=opt("standards", standards),
            needs_review=bool(d["needs_review"]),
            review_reasons=tuple(d.get("review_reasons", ())),
            model=ModelInfo(**d["model"]),
            timings_ms=dict(d.get("timings_ms", {})),
            ood_score=d.get("ood_score"),
            context=opt("context", InspectionContext.from_dict),
            domain=opt("domain", domain),
            schema_version=str(version),
        )


_PLAIN = frozenset({type(None), bool, int, float, str})


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def _jsonable(value: Any) -> Any:
    """JSON-ready copy: what ``_jsonable(dataclasses.asdict(value))`` gives, without asdict's deep
    copies (results are converted once per image, so this is on the scoring hot path)."""
    kind = type(value)
    if kind in _PLAIN:  # most leaves: no abstract-base-class checks
        return value
    if kind is tuple or kind is list:
        return [_jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _jsonable(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
