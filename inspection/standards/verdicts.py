"""Pure standards verdicts: findings + context -> :class:`~inspection.types.StandardsReport`.

Surface pores (ISO 6520-1 ref. 2017) are judged on the largest pore diameter ``d`` in mm against
the limit for the part thickness ``s`` (mm) at each quality level; spatter (602) has no numeric
limit in the standards ("acceptance depends on application") unless a site rule is configured.
Internal porosity (2011-2013) is noted as not assessable from a surface image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from inspection.standards.tables import (
    BELOW_D,
    LEVELS,
    NOT_ASSESSABLE,
    Imperfection,
    LimitTables,
    StandardTable,
    load_tables,
)
from inspection.types import Finding, FindingVerdict, InspectionContext, StandardsReport

logger = logging.getLogger(__name__)

_RANK: dict[str, int] = {"B": 0, "C": 1, "D": 2, BELOW_D: 3}
_REL_TOL = 1e-9  # d equal to the limit (up to float noise) passes: the tables say "d <= limit"


def level_passes(level_reached: str, target: str) -> bool:
    """True when ``level_reached`` (B, C, D or 'below D') is at least as good as ``target``."""
    if level_reached not in _RANK or target not in LEVELS:
        return False
    return _RANK[level_reached] <= _RANK[target]


def worst_level(levels: Sequence[str]) -> str | None:
    """The worst of the given levels (B < C < D < 'below D'); None when none is a level."""
    ranked = [lv for lv in levels if lv in _RANK]
    return max(ranked, key=_RANK.__getitem__) if ranked else None


def assess(
    findings: Sequence[Finding],
    context: InspectionContext | None,
    *,
    seam_length_px: float | None = None,
    tables: LimitTables | None = None,
) -> StandardsReport:
    """Judge ``findings`` against the standard selected by ``context`` (pure).

    ``findings`` are in image pixels (``diameter_mm`` used when set, else ``diameter_px *
    context.mm_per_px``). ``seam_length_px`` (seam length in pixels) is only needed for per-length
    site rules. ``tables`` defaults to the packaged ``iso_limits.yaml``. Without process, material,
    thickness or scale the report is ``assessable=False`` with ``missing`` naming those fields.
    """
    tables = load_tables() if tables is None else tables
    ctx = context if context is not None else InspectionContext()
    target = ctx.quality_level
    missing, notes = _missing_fields(ctx, tables)
    if missing:
        return StandardsReport(
            assessable=False,
            standard=None,
            target_level=target,
            level_reached=None,
            missing=tuple(missing),
            notes=tuple(notes),
            table_version=tables.table_version,
        )
    # _missing_fields guarantees these are set and recognised.
    family = tables.process_family(ctx.process or "") or ""
    group = tables.material_group_of(ctx.material or "") or ""
    thickness = float(ctx.thickness_mm or 0.0)
    scale = float(ctx.mm_per_px or 0.0)
    std = tables.standard_for(family, group)
    if std is None:
        return _not_covered(
            tables,
            target,
            f"no limit table for process {ctx.process!r} ({family}) with material {ctx.material!r} "
            f"({tables.material_groups[group].label})"
            + ("; arc-welded aluminium is covered by ISO 10042, not included" if family == "arc" else ""),
        )
    if thickness < std.min_thickness_mm:
        return _not_covered(
            tables,
            target,
            f"{std.standard} applies from {std.min_thickness_mm:g} mm; "
            f"thickness {thickness:g} mm is below its scope",
            standard=std.standard,
        )

    verdicts: list[FindingVerdict] = []
    for imp in std.imperfections:
        indexed = [(i, f) for i, f in enumerate(findings) if str(f.kind) == imp.finding_kind]
        if imp.kind == "max_diameter":
            verdict = _diameter_verdict(std, imp, indexed, thickness, scale, target)
        else:
            verdict = _application_verdict(std, imp, indexed, tables, scale, seam_length_px, target)
        if verdict is not None:
            verdicts.append(verdict)

    notes = [
        f"s = thickness_mm = {thickness:g} mm (butt weld assumed; fillet welds would use the throat a)",
        f"scale {scale:g} mm/px: pores below a few pixels cannot be seen, so 'no pores' means none "
        "detected at this resolution",
    ]
    notes.extend(
        f"ISO 6520-1 {', '.join(na.refs)} ({na.name}): not assessable from a surface image. {na.reason}"
        for na in tables.not_assessable
    )
    level = worst_level([v.level_reached for v in verdicts])
    unconfirmed = any(v.unconfirmed for v in verdicts)
    if unconfirmed:
        notes.append(
            "some limits used here are UNCONFIRMED (not checked against the standard's text); "
            "see the verdicts marked unconfirmed and docs/standards.md"
        )
    logger.debug("standards %s: level %s (target %s)", std.standard, level, target)
    return StandardsReport(
        assessable=True,
        standard=std.standard,
        target_level=target,
        level_reached=level,
        verdicts=tuple(verdicts),
        notes=tuple(notes),
        unconfirmed=unconfirmed,
        table_version=tables.table_version,
    )


def _missing_fields(ctx: InspectionContext, tables: LimitTables) -> tuple[list[str], list[str]]:
    """Context fields that are absent or unrecognised (in field order) and notes explaining why."""
    missing: list[str] = []
    notes: list[str] = []
    if ctx.process is None:
        missing.append("process")
    elif tables.process_family(ctx.process) is None:
        missing.append("process")
        notes.append(f"process {ctx.process!r} not recognised; valid: {sorted(tables.process_aliases)}")
    if ctx.material is None:
        missing.append("material")
    elif tables.material_group_of(ctx.material) is None:
        missing.append("material")
        notes.append(f"material {ctx.material!r} not recognised; valid: {tables.known_materials()}")
    if ctx.thickness_mm is None:
        missing.append("thickness_mm")
    if ctx.mm_per_px is None:
        missing.append("mm_per_px")
    if missing:
        notes.append(f"not assessed: missing or unrecognised context field(s) {missing}")
    return missing, notes


def _not_covered(
    tables: LimitTables, target: str, reason: str, standard: str | None = None
) -> StandardsReport:
    return StandardsReport(
        assessable=False,
        standard=standard,
        target_level=target,
        level_reached=None,
        notes=(reason,),
        table_version=tables.table_version,
    )


def _diameter_mm(finding: Finding, scale: float) -> float:
    return finding.diameter_mm if finding.diameter_mm is not None else finding.diameter_px * scale


def _diameter_verdict(
    std: StandardTable,
    imp: Imperfection,
    indexed: Sequence[tuple[int, Finding]],
    thickness: float,
    scale: float,
    target: str,
) -> FindingVerdict | None:
    rng = imp.range_for(thickness)
    if rng is None:
        logger.warning("%s %s: no thickness range for %s mm", std.standard, imp.ref, thickness)
        return FindingVerdict(
            imperfection=imp.ref,
            name=imp.name,
            standard=std.standard,
            clause=imp.clause,
            formula="no limit for this thickness",
            measured=None,
            limit=None,
            unit="mm",
            level_reached=NOT_ASSESSABLE,
            passed=False,
            unconfirmed=imp.unconfirmed,
            finding_indices=tuple(i for i, _ in indexed),
            note=f"{std.standard} {imp.clause} defines no limit for thickness {thickness:g} mm",
        )
    diameters = [(_diameter_mm(f, scale), i) for i, f in indexed]
    d_max, i_max = max(diameters) if diameters else (0.0, -1)
    limits = {lv: rng.levels[lv].limit_mm(thickness) for lv in LEVELS}

    def ok(level: str) -> bool:
        if not diameters:
            return True
        if rng.levels[level].not_permitted:
            return False
        return d_max <= limits[level] * (1.0 + _REL_TOL)

    reached = next((lv for lv in LEVELS if ok(lv)), BELOW_D)
    target_rule = rng.levels[target]
    over = [i for d, i in diameters if target_rule.not_permitted or d > limits[target] * (1.0 + _REL_TOL)]
    per_level = "; ".join(
        f"{lv}: {rng.levels[lv].formula()}"
        + ("" if rng.levels[lv].not_permitted else f" = {limits[lv]:.3g} mm")
        for lv in LEVELS
    )
    if diameters:
        found = f"{len(diameters)} surface pore(s); largest d = {d_max:.3g} mm (finding {i_max})"
        found += f"; {len(over)} exceed the level {target} limit" if over else ""
    else:
        found = "no surface pores detected"
    note = f"{found}. Limits for {rng.describe()}, s = {thickness:g} mm: {per_level}."
    if imp.unconfirmed:
        note += f" UNCONFIRMED: {imp.unconfirmed_reason}"
    return FindingVerdict(
        imperfection=imp.ref,
        name=imp.name,
        standard=std.standard,
        clause=imp.clause,
        formula=target_rule.formula(),
        measured=d_max,
        limit=limits[target],
        unit="mm",
        level_reached=reached,
        passed=level_passes(reached, target),
        unconfirmed=any(imp.level_unconfirmed(lv, rng) for lv in LEVELS),
        finding_indices=tuple(i for i, _ in indexed),
        note=note,
    )


def _application_verdict(
    std: StandardTable,
    imp: Imperfection,
    indexed: Sequence[tuple[int, Finding]],
    tables: LimitTables,
    scale: float,
    seam_length_px: float | None,
    target: str,
) -> FindingVerdict:
    """Spatter-like rows: no numeric limit in the standard; a site rule may supply one."""
    count = len(indexed)
    indices = tuple(i for i, _ in indexed)
    rule = tables.site_rules.spatter_max_count_per_100mm if imp.finding_kind == "spatter" else None
    base = {
        "imperfection": imp.ref,
        "name": imp.name,
        "standard": std.standard,
        "clause": imp.clause,
        "unconfirmed": imp.unconfirmed,
        "finding_indices": indices,
    }
    suffix = f" UNCONFIRMED: {imp.unconfirmed_reason}" if imp.unconfirmed else ""
    if rule is None:
        return FindingVerdict(
            **base,  # type: ignore[arg-type]
            formula="acceptance depends on application (no numeric limit)",
            measured=float(count),
            limit=None,
            unit="count",
            level_reached=NOT_ASSESSABLE,
            passed=True,
            note=(
                f"{count} {imp.name} finding(s). {imp.note} The application decides; not counted in the "
                f"overall level and not failed against the standard.{suffix}"
            ),
        )
    formula = f"site rule (not ISO): {imp.name} count per 100 mm <= {rule[target]:g} at level {target}"
    if seam_length_px is None or seam_length_px <= 0:
        return FindingVerdict(
            **base,  # type: ignore[arg-type]
            formula=formula,
            measured=float(count),
            limit=None,
            unit="count",
            level_reached=NOT_ASSESSABLE,
            passed=True,
            note=(
                f"{count} {imp.name} finding(s); the site rule needs seam_length_px, "
                f"which was not given.{suffix}"
            ),
        )
    length_mm = seam_length_px * scale
    per_100 = count * 100.0 / length_mm
    reached = next((lv for lv in LEVELS if per_100 <= rule[lv] * (1.0 + _REL_TOL)), BELOW_D)
    return FindingVerdict(
        **base,  # type: ignore[arg-type]
        formula=formula,
        measured=per_100,
        limit=float(rule[target]),
        unit="count per 100 mm",
        level_reached=reached,
        passed=level_passes(reached, target),
        note=(
            f"{count} {imp.name} finding(s) on {length_mm:.3g} mm of seam = {per_100:.3g} per 100 mm. "
            f"{imp.note} This limit is a SITE RULE configured in the tables file, not part of "
            f"{std.standard}.{suffix}"
        ),
    )
