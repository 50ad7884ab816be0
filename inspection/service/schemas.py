"""Request and response models of the HTTP API (pydantic; they define ``docs/openapi.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from inspection.service.auth import NAME_PATTERN
from inspection.service.validation import check_json_value, check_param_key, check_text
from inspection.types import InspectionContext

Text = Annotated[str, AfterValidator(check_text)]
"""A string that can be stored and signed: valid Unicode, no NUL character."""

Process = Literal["laser", "laser_wobble", "electron_beam", "ebw", "arc", "mig_mag", "mig", "mag", "tig"]
"""The welding processes the standards tables know (``process_aliases`` of ``iso_limits.yaml``)."""
PROCESSES: tuple[str, ...] = Process.__args__  # type: ignore[attr-defined]

MAX_THICKNESS_MM = 300.0
"""Largest sheet thickness accepted (mm): beyond the thickest electron-beam welds."""
MAX_MM_PER_PX = 10.0
"""Largest image scale accepted (mm per pixel): a seam close-up is far below 1."""


class InspectionMetadata(BaseModel):
    """The ``metadata`` form field of ``POST /v1/inspections`` (a JSON object; every field optional).

    ``station_id`` defaults to the calling station key's station and must equal it when given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    station_id: Text | None = Field(None, max_length=128, description="Inspection station id")
    machine_serial: Text | None = Field(None, max_length=128, description="Welding machine serial number")
    firmware: Text | None = Field(None, max_length=128, description="Welding machine firmware version")
    part_id: Text | None = Field(None, max_length=128)
    seam_id: Text | None = Field(None, max_length=128)
    operator_id: Text | None = Field(None, max_length=128)
    process: Process | None = Field(
        None,
        description=(
            "laser, laser_wobble, electron_beam (ebw): ISO 13919; arc, mig_mag (mig, mag), tig: ISO 5817"
        ),
    )
    material: Text | None = Field(None, max_length=128, description="e.g. stainless, carbon_steel, aluminium")
    thickness_mm: float | None = Field(
        None,
        gt=0,
        le=MAX_THICKNESS_MM,
        allow_inf_nan=False,
        description="Sheet thickness in mm, 0 < t <= 300",
    )
    mm_per_px: float | None = Field(
        None,
        gt=0,
        le=MAX_MM_PER_PX,
        allow_inf_nan=False,
        description="Image scale in mm per pixel, 0 < s <= 10",
    )
    quality_level: Literal["B", "C", "D"] = Field("C", description="Target quality level")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Welding parameters, e.g. power_w: keys of 1-128 characters; values JSON (numbers finite, "
            "integers within +-(2**53 - 1), strings up to 1024 characters, no NUL)"
        ),
    )

    @field_validator("params")
    @classmethod
    def _storable_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            check_param_key(key, "params")
            check_json_value(item, f"params.{key}")
        return value

    def to_context(self) -> InspectionContext:
        """The pipeline's :class:`InspectionContext` (raises ValueError for invalid combinations)."""
        return InspectionContext.from_dict(self.model_dump())


class EvidenceRef(BaseModel):
    """The evidence record an inspection was committed with."""

    seq: int
    record_id: str
    record_hash: str
    prev_hash: str
    signature: str | None
    key_id: str | None
    created_at: str


class InspectionOut(BaseModel):
    """One stored inspection: the full pipeline result, the recommendation and its evidence record."""

    id: str
    created_at: datetime
    station_id: str | None
    machine_serial: str | None
    part_id: str | None
    seam_id: str | None
    image_sha256: str
    porosity_grade: int | None
    spatter_grade: int | None
    needs_review: bool
    result: dict[str, Any] = Field(description="InspectionResult.to_dict() (schema_version 1.0)")
    recommendation: dict[str, Any] | None = Field(
        None, description="Parameter advice, or null when the context lacks what the engine needs"
    )
    evidence: EvidenceRef | None
    overlay_url: str


class InspectionSummary(BaseModel):
    """A list entry (no full result; fetch ``/v1/inspections/{id}`` for it)."""

    id: str
    created_at: datetime
    station_id: str | None
    machine_serial: str | None
    part_id: str | None
    seam_id: str | None
    image_sha256: str
    porosity_grade: int | None
    spatter_grade: int | None
    needs_review: bool
    evidence_seq: int | None


class InspectionPage(BaseModel):
    """One page of inspections, newest first; ``total`` counts all that match the filters."""

    items: list[InspectionSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next page, null on the last page")


class TrendBucketOut(BaseModel):
    label: str
    start: datetime
    end: datetime
    inspections: int
    graded: int
    porosity_rate: float | None = Field(description="fraction of graded inspections with porosity grade >= 1")
    spatter_rate: float | None = Field(description="fraction of graded inspections with spatter grade >= 1")
    mean_porosity_grade: float | None
    mean_spatter_grade: float | None
    needs_review_rate: float


class TrendOut(BaseModel):
    serial: str
    bucket: Literal["day", "count"]
    size: int | None = Field(description="inspections per bucket when bucket=count")
    buckets: list[TrendBucketOut]


class ExportRequest(BaseModel):
    """Body of ``POST /v1/evidence/export``: machine serial and the period ``[since, until)``."""

    model_config = ConfigDict(extra="forbid")

    serial: Text = Field(min_length=1, max_length=128)
    since: datetime | None = None
    until: datetime | None = None
    full_chain: bool = Field(False, description="include every record of the chain (proves completeness)")


MARK_FORMAT = (
    'A mark in original-image pixels (x right, y down): {"label": "porosity" | "spatter", '
    '"box": [x0, y0, x1, y1]} (x0 < x1, y0 < y1) or {"label": ..., "point": [x, y]}, plus '
    '"origin": "reviewer" (default) or "origin": "model" with "finding": i (the result\'s '
    "finding i, kept, moved or resized; a deleted finding has no mark). Numbers are rounded to 0.1 px; "
    "at most 500 marks. See docs/dashboard.md, Review marks."
)


class ReviewCreate(BaseModel):
    """Body of ``POST /v1/inspections/{id}/reviews`` (auditor, admin): the final grades, the marks,
    or the not-gradable flag. The reviewer is the API key's name. Validated exactly as the
    dashboard's review form (docs/dashboard.md, Review marks)."""

    model_config = ConfigDict(extra="forbid")

    porosity_grade: int | None = Field(None, ge=0, le=3, description="final porosity grade 0-3")
    spatter_grade: int | None = Field(None, ge=0, le=3, description="final spatter grade 0-3")
    comment: Text = Field("", max_length=4000)
    marks: list[Any] | None = Field(
        None,
        description=(
            "the pores and spatter the reviewer marked; null = no marks drawn, [] = marked: nothing "
            "there. " + MARK_FORMAT
        ),
    )
    not_gradable_reason: Text | None = Field(
        None,
        min_length=1,
        max_length=1000,
        description="flags the photo not gradable, saying why (then no grades and no marks)",
    )


class ReviewOut(BaseModel):
    """One signed review of an inspection (the latest review of an inspection is the one that counts)."""

    id: str
    inspection_id: str
    reviewer: str = Field(description="the name of the API key (or dashboard login) that signed it")
    created_at: datetime
    porosity_grade: int | None
    spatter_grade: int | None
    comment: str
    marks: list[dict[str, Any]] | None = Field(
        description="the marks in canonical form; null = none drawn. " + MARK_FORMAT
    )
    not_gradable_reason: str | None
    audit: bool = Field(description="the inspection was a random audit sample when it was reviewed")
    evidence_seq: int | None = Field(description="seq of the signed review record in the ledger")


class ApiKeyCreate(BaseModel):
    """Body of ``POST /v1/keys`` (admin)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN,
        description="1-128 letters, digits, _ . : - (starting alphanumeric)",
    )
    role: Literal["station", "auditor", "admin"]
    station_id: Text | None = Field(
        None, min_length=1, max_length=128, description="the station a station key submits for"
    )


class ApiKeyOut(BaseModel):
    name: str
    role: str
    station_id: str | None
    created_at: datetime
    revoked_at: datetime | None
    key: str | None = Field(None, description="the plain key: returned once, on creation only")


class Problem(BaseModel):
    """Every error body: ``detail`` says what was wrong and what is valid."""

    detail: str
    code: str | None = None


class ModelStatus(BaseModel):
    """The model new requests use, and where it came from (``promotion``: ``current: promote record
    seq N by NAME``, ``no promotion record: configured model``, ``pinned: ...`` or ``refused: ...``
    when the store's current model could not be loaded and the running one stayed)."""

    name: str
    version: str
    sha256: str = Field(description="sha256 of the model's model.safetensors (as in every record)")
    runtime: str = ""
    promotion: str = ""


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    model: ModelStatus | None = None
