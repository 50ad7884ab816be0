"""Schema and loader for the standards limit tables (``iso_limits.yaml``).

The tables are data, not code: each imperfection entry carries its source (standard, edition,
table, row) and an ``unconfirmed`` flag for values that could not be checked against the text of
the standard. :func:`load_tables` validates a file and raises :class:`TablesError` naming the file
and the offending field. Pure apart from reading the one file it is given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

LEVELS: tuple[str, ...] = ("B", "C", "D")
"""Quality levels from best (most stringent) to worst."""

BELOW_D = "below D"
NOT_ASSESSABLE = "not assessable"

DEFAULT_TABLES_PATH = Path(__file__).with_name("iso_limits.yaml")
SUPPORTED_SCHEMA_VERSIONS = (1,)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is present


class TablesError(ValueError):
    """A limit-table file is missing or invalid; the message names the file and field."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Frozen):
    """Where a value comes from: ``standard`` (e.g. ``ISO 5817``), ``edition``, ``table``, ``row``."""

    standard: str
    edition: str
    table: str
    row: str


class LevelLimit(_Frozen):
    """Limit for one quality level: ``not_permitted`` or ``min(factor * s, max_mm)`` in mm."""

    not_permitted: bool = False
    factor: float | None = Field(None, gt=0)
    max_mm: float | None = Field(None, gt=0)
    unconfirmed: bool | None = None  # overrides the entry's flag for this level when set

    @model_validator(mode="after")
    def _one_form(self) -> LevelLimit:
        if self.not_permitted and (self.factor is not None or self.max_mm is not None):
            msg = "a level limit is either not_permitted or factor/max_mm, not both"
            raise ValueError(msg)
        if not self.not_permitted and self.factor is None and self.max_mm is None:
            msg = "a level limit needs not_permitted: true, factor, or max_mm"
            raise ValueError(msg)
        return self

    def limit_mm(self, s_mm: float) -> float:
        """The limit in mm for thickness ``s_mm`` (0.0 when not permitted)."""
        if self.not_permitted:
            return 0.0
        candidates = []
        if self.factor is not None:
            candidates.append(self.factor * s_mm)
        if self.max_mm is not None:
            candidates.append(self.max_mm)
        return min(candidates)

    def formula(self) -> str:
        """The rule in words, e.g. ``d <= 0.2 s, max 2 mm``."""
        if self.not_permitted:
            return "not permitted"
        if self.factor is None:
            return f"d <= {_num(self.max_mm)} mm"
        text = f"d <= {_num(self.factor)} s"
        if self.max_mm is not None:
            text += f", max {_num(self.max_mm)} mm"
        return text


class ThicknessRange(_Frozen):
    """Limits per level for thickness ``t_min_mm <= t`` (and ``t <= t_max_mm`` when set)."""

    t_min_mm: float = Field(ge=0)
    t_max_mm: float | None = Field(None, gt=0)
    levels: dict[str, LevelLimit]

    @model_validator(mode="after")
    def _check(self) -> ThicknessRange:
        _check_level_keys(self.levels)
        if self.t_max_mm is not None and self.t_max_mm <= self.t_min_mm:
            msg = f"t_max_mm ({self.t_max_mm}) must be greater than t_min_mm ({self.t_min_mm})"
            raise ValueError(msg)
        return self

    def contains(self, t_mm: float) -> bool:
        return t_mm >= self.t_min_mm and (self.t_max_mm is None or t_mm <= self.t_max_mm)

    def describe(self) -> str:
        """E.g. ``t 0.5 to 3 mm`` or ``t from 3 mm`` (a shared boundary belongs to the first range)."""
        if self.t_max_mm is None:
            return f"t from {_num(self.t_min_mm)} mm"
        return f"t {_num(self.t_min_mm)} to {_num(self.t_max_mm)} mm"


class Imperfection(_Frozen):
    """One table row: ISO 6520-1 reference ``ref``, how it is judged (``kind``), its limits."""

    ref: str
    name: str
    kind: Literal["max_diameter", "application"]
    finding_kind: Literal["porosity", "spatter"]
    clause: str
    source: Source
    unconfirmed: bool
    unconfirmed_reason: str = ""
    source_note: str = ""
    note: str = ""
    ranges: tuple[ThicknessRange, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Imperfection:
        if self.kind == "max_diameter" and not self.ranges:
            msg = f"imperfection {self.ref} of kind max_diameter needs at least one thickness range"
            raise ValueError(msg)
        if self.unconfirmed and not self.unconfirmed_reason:
            msg = f"imperfection {self.ref} is unconfirmed: give unconfirmed_reason"
            raise ValueError(msg)
        return self

    def range_for(self, t_mm: float) -> ThicknessRange | None:
        """The first range containing ``t_mm`` (ranges may share a boundary; the first wins)."""
        return next((r for r in self.ranges if r.contains(t_mm)), None)

    def level_unconfirmed(self, level: str, rng: ThicknessRange) -> bool:
        override = rng.levels[level].unconfirmed
        return self.unconfirmed if override is None else override


class StandardTable(_Frozen):
    """One standard: which processes and material group it covers, and its imperfection rows."""

    id: str
    standard: str
    title: str
    processes: tuple[str, ...]
    material_group: str
    min_thickness_mm: float = Field(0.0, ge=0)
    imperfections: tuple[Imperfection, ...]

    def imperfection(self, ref: str) -> Imperfection | None:
        return next((i for i in self.imperfections if i.ref == ref), None)


class MaterialGroup(_Frozen):
    label: str
    materials: tuple[str, ...]


class NotAssessable(_Frozen):
    refs: tuple[str, ...]
    name: str
    reason: str


class SiteRules(_Frozen):
    """Site rules (not part of any standard): spatter count per 100 mm of seam allowed per level."""

    spatter_max_count_per_100mm: dict[str, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> SiteRules:
        rule = self.spatter_max_count_per_100mm
        if rule is not None:
            _check_level_keys(rule)
            if not rule["B"] <= rule["C"] <= rule["D"]:
                msg = f"spatter_max_count_per_100mm must satisfy B <= C <= D, got {rule}"
                raise ValueError(msg)
            if any(v < 0 or not math.isfinite(v) for v in rule.values()):
                msg = f"spatter_max_count_per_100mm values must be finite and >= 0, got {rule}"
                raise ValueError(msg)
        return self


class LimitTables(_Frozen):
    """The whole tables file (see ``iso_limits.yaml``)."""

    schema_version: int
    table_version: str
    material_groups: dict[str, MaterialGroup]
    process_aliases: dict[str, str]
    material_aliases: dict[str, str] = Field(default_factory=dict)
    standards: tuple[StandardTable, ...]
    not_assessable: tuple[NotAssessable, ...] = ()
    site_rules: SiteRules = Field(default_factory=SiteRules)

    @model_validator(mode="after")
    def _check(self) -> LimitTables:
        if self.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
            supported = list(SUPPORTED_SCHEMA_VERSIONS)
            msg = f"schema_version {self.schema_version} not supported; supported: {supported}"
            raise ValueError(msg)
        for std in self.standards:
            if std.material_group not in self.material_groups:
                msg = (
                    f"standard {std.id}: material_group {std.material_group!r} is not defined; "
                    f"defined: {sorted(self.material_groups)}"
                )
                raise ValueError(msg)
        families = set(self.process_aliases.values())
        for std in self.standards:
            unknown = sorted(set(std.processes) - families)
            if unknown:
                msg = f"standard {std.id}: processes {unknown} are not targets of process_aliases"
                raise ValueError(msg)
        return self

    def process_family(self, process: str) -> str | None:
        return self.process_aliases.get(process.strip().lower())

    def material_group_of(self, material: str) -> str | None:
        name = material.strip().lower()
        name = self.material_aliases.get(name, name)
        return next((g for g, grp in self.material_groups.items() if name in grp.materials), None)

    def known_materials(self) -> list[str]:
        return sorted(
            {m for g in self.material_groups.values() for m in g.materials} | set(self.material_aliases)
        )

    def standard_for(self, family: str, group: str) -> StandardTable | None:
        return next((s for s in self.standards if family in s.processes and s.material_group == group), None)


def parse_tables(data: Mapping[str, Any], source: str = "<tables>") -> LimitTables:
    """Validate a mapping into :class:`LimitTables`; errors name ``source`` and each field path."""
    try:
        return LimitTables.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"invalid limit tables in {source}: {problems}"
        raise TablesError(msg) from exc


def load_tables(path: Path | None = None) -> LimitTables:
    """Load and validate a tables file (default: the packaged ``iso_limits.yaml``, cached)."""
    if path is None:
        return _default_tables()
    return _read(Path(path))


@functools.lru_cache(maxsize=1)
def _default_tables() -> LimitTables:
    return _read(DEFAULT_TABLES_PATH)


def _read(path: Path) -> LimitTables:
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except FileNotFoundError as exc:
        msg = f"limit tables file {path} does not exist"
        raise TablesError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"limit tables file {path} is not valid YAML: {exc}"
        raise TablesError(msg) from exc
    if not isinstance(loaded, dict):
        msg = f"limit tables file {path} must hold a mapping, got {type(loaded).__name__}"
        raise TablesError(msg)
    return parse_tables(loaded, str(path))


def _check_level_keys(levels: Mapping[str, object]) -> None:
    """Raise ValueError unless the keys are exactly the levels B, C and D."""
    missing = [lv for lv in LEVELS if lv not in levels]
    extra = sorted(set(levels) - set(LEVELS))
    if missing or extra:
        msg = f"levels must be exactly B, C and D; missing {missing}, unknown {extra}"
        raise ValueError(msg)


def _num(value: float | None) -> str:
    """Format a number without a trailing ``.0`` (0.3 -> '0.3', 2.0 -> '2')."""
    if value is None:
        return "?"
    return f"{value:g}"
