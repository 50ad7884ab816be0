"""Request and response models of the HTTP API (pydantic; they define ``docs/openapi.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from inspection.types import InspectionContext


class InspectionMetadata(BaseModel):
    """The ``metadata`` form field of ``POST /v1/inspections`` (a JSON object; every field optional).

    ``station_id`` defaults to the calling station key's station and must equal it when given.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    station_id: str | None = Field(None, max_length=128, description="Inspection station id")
    machine_serial: str | None = Field(None, max_length=128, description="Welding machine serial number")
    firmware: str | None = Field(None, max_length=128, description="Welding machine firmware version")
    part_id: str | None = Field(None, max_length=128)
    seam_id: str | None = Field(None, max_length=128)
    operator_id: str | None = Field(None, max_length=128)
    process: str | None = Field(None, description="laser, electron_beam or arc")
    material: str | None = Field(None, description="e.g. stainless, carbon_steel, aluminium")
    thickness_mm: float | None = Field(None, gt=0, description="Sheet thickness in mm")
    mm_per_px: float | None = Field(None, gt=0, description="Image scale in mm per pixel")
    quality_level: Literal["B", "C", "D"] = Field("C", description="Target quality level")
    params: dict[str, Any] = Field(default_factory=dict, description="Welding parameters, e.g. power_w")

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

    serial: str = Field(min_length=1, max_length=128)
    since: datetime | None = None
    until: datetime | None = None
    full_chain: bool = Field(False, description="include every record of the chain (proves completeness)")


class ApiKeyCreate(BaseModel):
    """Body of ``POST /v1/keys`` (admin)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    role: Literal["station", "auditor", "admin"]
    station_id: str | None = None


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


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
