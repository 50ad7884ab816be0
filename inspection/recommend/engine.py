"""The recommendation engine (pure): inspection result + current settings -> ranked advice.

Ranking score of a rule = sum over the defects it addresses of ``grade / 3`` x ``1 / priority`` x
pattern boost (``PATTERN_BOOST`` when the rule's pattern is the observed pore pattern; for rules
about one seam end also ``0.5 + share of the end-zone pores at that end``) x material
boost (``MATERIAL_BOOST`` for rules written for this one material only) x condition boost
(``CONDITION_BOOST`` when the rule has a ``when`` condition on the current settings and it holds,
e.g. gas flow below 15 L/min: a measured setting is stronger evidence than a generic cause) x the
rule's outcome ``ranking_factor`` (0.5..1.5, 1 without a record). Confidence = the rule's prior confidence x
``(0.5 + 0.5 * head confidence)`` x the ranking factor, clipped to [0, 1].

A result whose grades are uncertain (``review_reasons``: a head abstained, the quality gate
failed, out of distribution) gets status ``review`` instead of ``keep_settings`` or a change; when
only one head abstained and the other found a defect, the advice covers the confident head only.

New values are rounded to the parameter's step and clamped to the intersection of the window and
the machine limits; a clamp is reported in ``RecommendationItem.clamped``. A change that cannot
move in its direction (already at a limit) is skipped with a note.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from inspection.recommend.compliance import as_number, check_compliance
from inspection.recommend.models import (
    ActionItem,
    InvalidParameters,
    MissingParameters,
    NumericRange,
    ParameterWindow,
    Recommendation,
    RecommendationItem,
)
from inspection.recommend.outcomes import RuleStats, ranking_adjustment
from inspection.recommend.schema import ANY, Change, ExpertDB, Rule, load_expert_db
from inspection.types import Defect, Finding, HeadResult, InspectionResult

logger = logging.getLogger(__name__)

END_ZONE = 0.15
"""Pores with ``along_seam < END_ZONE`` or ``> 1 - END_ZONE`` are at the seam start/end."""
END_CLUSTER_FRACTION = 0.75
"""Pattern ``start_end`` when at least this fraction of the pores lie in the end zones."""
WHOLE_SEAM_MIN_PORES = 3
WHOLE_SEAM_MIN_SPAN = 0.5
"""Pattern ``whole_seam`` when >= 3 pores span at least half the seam (and are not end-clustered)."""

DEFECT_HEADS = ("porosity", "spatter")
"""Head names as used in ``abstain:<head>`` review reasons and in ``Recommendation.grades``."""

PATTERN_BOOST = 1.5
MATERIAL_BOOST = 2.0
CONDITION_BOOST = 2.0

_PATTERN_WORDS = {
    "start_end": "pores clustered at the seam start/end",
    "whole_seam": "pores along the whole seam",
    "scattered": "a few scattered pores",
    "unknown": "no localised pores",
}


def seam_pattern(findings: Sequence[Finding]) -> str:
    """Where the pores are along the seam: ``start_end``, ``whole_seam``, ``scattered`` or ``unknown``."""
    positions = [f.along_seam for f in findings if str(f.kind) == Defect.POROSITY.value]
    if not positions:
        return "unknown"
    at_ends = sum(p < END_ZONE or p > 1.0 - END_ZONE for p in positions)
    if at_ends / len(positions) >= END_CLUSTER_FRACTION:
        return "start_end"
    if len(positions) >= WHOLE_SEAM_MIN_PORES and max(positions) - min(positions) >= WHOLE_SEAM_MIN_SPAN:
        return "whole_seam"
    return "scattered"


def end_zone_shares(findings: Sequence[Finding]) -> dict[str, float]:
    """Of the pores in the end zones, the fraction at the ``start`` and at the ``end`` (0 when none)."""
    positions = [f.along_seam for f in findings if str(f.kind) == Defect.POROSITY.value]
    start = sum(p < END_ZONE for p in positions)
    end = sum(p > 1.0 - END_ZONE for p in positions)
    total = start + end
    return {"start": start / total if total else 0.0, "end": end / total if total else 0.0}


def _pattern_applies(rule_pattern: str, observed: str) -> bool:
    if rule_pattern == "any":
        return True
    if rule_pattern == "start_end":
        return observed == "start_end"
    return observed != "start_end"  # whole_seam rules: unless the pores sit at the ends


@dataclass(frozen=True)
class _Bound:
    lo: float | None
    hi: float | None
    lo_by: str
    hi_by: str
    conflict: str = ""


def _bounds(parameter: str, window: ParameterWindow | None, machine: Mapping[str, NumericRange]) -> _Bound:
    w = window.ranges.get(parameter) if window is not None else None
    m = machine.get(parameter)
    lo_opts = [(r.min, by) for r, by in ((w, "window"), (m, "machine")) if r is not None]
    hi_opts = [(r.max, by) for r, by in ((w, "window"), (m, "machine")) if r is not None]
    lo, lo_by = max(lo_opts) if lo_opts else (None, "")
    hi, hi_by = min(hi_opts) if hi_opts else (None, "")
    conflict = ""
    if lo is not None and hi is not None and lo > hi:
        conflict = (
            f"machine limits {m.min:g}-{m.max:g} and window {w.min:g}-{w.max:g} for {parameter} "
            "do not overlap"
            if w is not None and m is not None
            else f"empty range for {parameter}"
        )
    return _Bound(lo, hi, lo_by, hi_by, conflict)


@dataclass(frozen=True)
class _Candidate:
    rule: Rule
    defects: tuple[str, ...]
    score: float
    confidence: float
    why: str


def recommend(
    result: InspectionResult,
    params: Mapping[str, float | str],
    *,
    process: str,
    material: str,
    thickness_mm: float,
    machine_limits: Mapping[str, tuple[float, float]] | None = None,
    db: ExpertDB | None = None,
    one_at_a_time: bool = True,
    rule_stats: Mapping[str, RuleStats] | None = None,
    strict: bool = False,
) -> Recommendation:
    """Ranked advice for ``result`` given the current settings ``params`` (names as in the database,
    e.g. ``laser_power_w``, ``speed_mm_s``, ``gas_type``).

    ``machine_limits`` maps parameters to ``(min, max)`` of the actual machine and overrides the
    database defaults per parameter. With ``one_at_a_time`` (default) ``items`` holds the single
    best change and ``alternatives`` the rest. Parameters the applicable rules need but ``params``
    lacks are listed in ``Recommendation.missing``; with ``strict=True`` they raise
    :class:`MissingParameters` instead. Unknown process/material or a non-positive thickness
    raise ValueError naming the valid values; a non-numeric value for a numeric parameter raises
    :class:`InvalidParameters`.
    """
    db = load_expert_db() if db is None else db
    pid, mid = db.process_id(process), db.material_id(material)
    if not (isinstance(thickness_mm, int | float) and math.isfinite(thickness_mm) and thickness_mm > 0):
        msg = f"thickness_mm must be a positive number of millimetres, got {thickness_mm!r}"
        raise ValueError(msg)
    notes: list[str] = []
    values = _parse_params(params, db, pid, notes)
    window: ParameterWindow | None
    try:
        window = db.window(pid, mid, thickness_mm)
    except ValueError as exc:
        window = None
        notes.append(f"{exc}; changes are limited by the machine limits only")
    machine = _machine_limits(db, pid, machine_limits)
    compliance = tuple(check_compliance(values, window, include_missing=False)) if window is not None else ()
    grades = {"porosity": _grade(result.porosity), "spatter": _grade(result.spatter)}
    pattern = seam_pattern(result.findings)
    common: dict[str, Any] = {
        "process": pid,
        "material": mid,
        "thickness_mm": float(thickness_mm),
        "compliance": compliance,
        "pattern": pattern,
        "grades": grades,
        "window": window,
        "db_version": db.version,
        "one_at_a_time": one_at_a_time,
    }
    graded = {d: g for d, g in grades.items() if g is not None}
    if not graded:
        return Recommendation(
            status="not_graded",
            message="no porosity or spatter grade available (image not graded); no advice",
            notes=tuple(notes),
            **common,
        )
    if len(graded) < len(grades):
        notes.append(f"not graded: {sorted(set(grades) - set(graded))}; advice covers {sorted(graded)} only")
    review_reasons, uncertain = review_hold(result, graded)
    confident = {d: g for d, g in graded.items() if d not in uncertain}
    if uncertain and not any(g > 0 for g in confident.values()):
        return Recommendation(
            status="review",
            message=(
                f"{' and '.join(sorted(uncertain))} grade uncertain ({', '.join(review_reasons)}): "
                "advice waits for a human review of this inspection; do not change settings on this result"
            ),
            notes=tuple(notes),
            review_reasons=review_reasons,
            **common,
        )
    if uncertain:
        notes.append(
            f"{' and '.join(sorted(uncertain))} grade uncertain ({', '.join(review_reasons)}); "
            f"advice covers {sorted(confident)} only, the rest waits for a human review"
        )
        graded = confident
    if all(g == 0 for g in graded.values()):
        return Recommendation(
            status="keep_settings",
            message="keep settings: no porosity or spatter found (grade 0)",
            notes=tuple(notes),
            **common,
        )

    candidates = _candidates(db, result, pid, mid, graded, pattern, rule_stats or {})
    missing: dict[str, list[str]] = {}
    changes: list[RecommendationItem] = []
    actions: list[ActionItem] = []
    for cand in candidates:
        rule = cand.rule
        needed = [c.parameter for c in rule.when if c.parameter not in values]
        if rule.change is not None and rule.change.mode != "set" and rule.change.parameter not in values:
            needed.append(rule.change.parameter)
        if needed:
            for p in needed:
                missing.setdefault(p, []).append(rule.id)
            continue
        if not all(c.holds(values[c.parameter]) for c in rule.when):
            continue
        conditions = "; ".join(c.describe() for c in rule.when)
        why = cand.why + (f" (condition: {conditions})" if conditions else "")
        if rule.when:
            cand = replace(cand, score=round(cand.score * CONDITION_BOOST, 6))
        if rule.action is not None:
            actions.append(
                ActionItem(
                    rule_id=rule.id,
                    defect="+".join(cand.defects),
                    action=rule.action,
                    why=why,
                    expected_effect=rule.expected_effect,
                    confidence=cand.confidence,
                    score=cand.score,
                    basis=rule.basis,
                    source=rule.source,
                )
            )
            continue
        if rule.change is None:  # the schema guarantees change xor action; keeps the type checker informed
            continue
        item = _change_item(db, rule.change, cand, why, values, window, machine, notes)
        if item is not None:
            changes.append(item)

    ranked = _dedupe(sorted(changes, key=lambda i: (-i.score, i.rule_id)), notes)
    actions.sort(key=lambda a: (-a.score, a.rule_id))
    missing_names = tuple(sorted(missing))
    if missing_names and strict:
        raise MissingParameters(missing_names, tuple(sorted({r for rs in missing.values() for r in rs})))
    items, alternatives = (tuple(ranked[:1]), tuple(ranked[1:])) if one_at_a_time else (tuple(ranked), ())
    status, message = _status(items, actions, missing, graded)
    return Recommendation(
        status=status,
        message=message,
        items=items,
        alternatives=alternatives,
        actions=tuple(actions),
        missing=missing_names,
        notes=tuple(notes),
        review_reasons=review_reasons if uncertain else (),
        **common,
    )


def review_hold(
    result: InspectionResult, graded: Mapping[str, int]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The result's review reasons and the graded heads whose grade they make uncertain.

    ``abstain:<head>`` makes that head's grade uncertain; every other reason (``quality:<reason>``,
    ``out_of_distribution``, or an unknown code) makes all grades uncertain, and so does
    ``needs_review`` without any reason.
    """
    reasons = tuple(result.review_reasons)
    if result.needs_review and not reasons:
        reasons = ("needs_review",)
    heads: set[str] = set()
    for code in reasons:
        kind, _, head = code.partition(":")
        if kind == "abstain" and head in DEFECT_HEADS:
            heads.add(head)
        else:
            heads.update(graded)
    return reasons, frozenset(heads & set(graded))


def _grade(head: HeadResult | None) -> int | None:
    return None if head is None else int(head.grade)


def _parse_params(
    params: Mapping[str, float | str], db: ExpertDB, pid: str, notes: list[str]
) -> dict[str, float | str]:
    values: dict[str, float | str] = {}
    unknown = []
    for name, raw in params.items():
        spec = db.parameters.get(name)
        if spec is None:
            unknown.append(name)
            continue
        if raw is None:
            continue
        if spec.kind == "categorical":
            values[name] = str(raw).strip().lower()
            continue
        x = as_number(raw)
        if x is None:
            msg = f"parameter {name} must be a finite number in {spec.unit or 'its unit'}, got {raw!r}"
            raise InvalidParameters(msg)
        values[name] = x
    if unknown:
        notes.append(
            f"ignored unknown parameter(s) {sorted(unknown)}; "
            f"known for {pid}: {list(db.processes[pid].parameters)}"
        )
    return values


def _machine_limits(
    db: ExpertDB, pid: str, given: Mapping[str, tuple[float, float]] | None
) -> dict[str, NumericRange]:
    limits = db.machine_limits(pid)
    for name, pair in (given or {}).items():
        if name not in db.parameters:
            msg = f"machine_limits names unknown parameter {name!r}; known: {sorted(db.parameters)}"
            raise ValueError(msg)
        lo, hi = (float(v) for v in pair)
        limits[name] = NumericRange(lo, hi, db.unit(name), "judgement", "machine (given by caller)")
    return limits


def _candidates(
    db: ExpertDB,
    result: InspectionResult,
    pid: str,
    mid: str,
    graded: Mapping[str, int],
    pattern: str,
    stats: Mapping[str, RuleStats],
) -> list[_Candidate]:
    heads = {"porosity": result.porosity, "spatter": result.spatter}
    zones = end_zone_shares(result.findings)
    out = []
    for rule in db.rules:
        if ANY not in rule.processes and pid not in rule.processes:
            continue
        if ANY not in rule.materials and mid not in rule.materials:
            continue
        hits = [d for d in rule.defects if graded.get(d, 0) >= rule.min_grade]
        if "porosity" in hits and not _pattern_applies(rule.pattern, pattern):
            hits.remove("porosity")
        if "porosity" in hits and rule.zone is not None and zones[rule.zone] == 0.0:
            hits.remove("porosity")  # no pore at the end this rule is about
        if rule.pattern != "any" and "porosity" not in hits:
            continue  # pattern rules are about pores
        if not hits:
            continue
        factor = ranking_adjustment(stats.get(rule.id))
        boost = PATTERN_BOOST if rule.pattern == pattern else 1.0
        if rule.materials == (mid,):
            boost *= MATERIAL_BOOST
        if rule.zone is not None:
            boost *= 0.5 + zones[rule.zone]
        score = sum(graded[d] / 3.0 for d in hits) * boost * factor / rule.priority
        head_conf = max(float(h.confidence) for d in hits if (h := heads[d]) is not None)
        confidence = min(1.0, max(0.0, rule.confidence * (0.5 + 0.5 * head_conf) * factor))
        described = []
        for d in hits:
            text = f"{d} grade {graded[d]}/3"
            if d == "porosity":
                text += f" ({_PATTERN_WORDS.get(pattern, pattern)})"
            described.append(text)
        why = f"{', '.join(described)}: {rule.cause}"
        if rule.id in stats:
            s = stats[rule.id]
            why += f" [outcome record: {s.worked} worked of {s.evaluated} evaluated]"
        out.append(_Candidate(rule, tuple(hits), round(score, 6), round(confidence, 3), why))
    return out


def _change_item(
    db: ExpertDB,
    change: Change,
    cand: _Candidate,
    why: str,
    values: Mapping[str, float | str],
    window: ParameterWindow | None,
    machine: Mapping[str, NumericRange],
    notes: list[str],
) -> RecommendationItem | None:
    rule, name = cand.rule, change.parameter
    spec = db.parameters[name]
    current = values.get(name)
    unit = spec.unit
    clamped = ""
    if spec.kind == "categorical":
        new: float | str = str(change.amount)
        allowed = window.choices.get(name) if window is not None else None
        if allowed is not None and new not in allowed:
            notes.append(
                f"{rule.id}: {name}={new} is not allowed by the window ({', '.join(allowed)}); skipped"
            )
            return None
        if current == new:
            notes.append(f"{rule.id}: {name} is already {new}; skipped")
            return None
    else:
        bound = _bounds(name, window, machine)
        if bound.conflict:
            notes.append(f"{rule.id}: {bound.conflict}; skipped")
            return None
        cur = float(current) if isinstance(current, float | int) else None
        if change.mode == "set":
            target = float(change.amount)
        elif cur is None:  # pragma: no cover - guarded by the missing-parameter check
            return None
        elif change.mode == "relative":
            target = cur * (1.0 + float(change.amount))
        else:
            target = cur + float(change.amount)
        x = _round(target, spec.step)
        if bound.hi is not None and x > bound.hi:
            clamped = f"clamped to the {bound.hi_by} max {bound.hi:g} {unit} (the rule's step gives {x:g})"
            x = bound.hi
        if bound.lo is not None and x < bound.lo:
            clamped = f"clamped to the {bound.lo_by} min {bound.lo:g} {unit} (the rule's step gives {x:g})"
            x = bound.lo
        if cur is not None:
            moved = x - cur
            if change.mode != "set" and moved * float(change.amount) <= 1e-9:
                limit = bound.hi if float(change.amount) > 0 else bound.lo
                by = bound.hi_by if float(change.amount) > 0 else bound.lo_by
                notes.append(
                    f"{rule.id}: {name} {cur:g} {unit} already at or beyond the {by} limit {limit:g}; skipped"
                )
                return None
            if abs(moved) <= 1e-9:
                notes.append(f"{rule.id}: {name} is already {cur:g} {unit}; skipped")
                return None
        new = x
    return RecommendationItem(
        rule_id=rule.id,
        defect="+".join(cand.defects),
        parameter=name,
        current=current,
        new=new,
        unit=unit,
        why=why,
        expected_effect=rule.expected_effect,
        confidence=cand.confidence,
        score=cand.score,
        basis=change.basis if rule.basis == change.basis else f"rule {rule.basis}, step {change.basis}",
        source=rule.source if rule.source == change.source else f"{rule.source}; step: {change.source}",
        clamped=clamped,
        side_effects=rule.side_effects,
    )


def _round(x: float, step: float | None) -> float:
    if step is None:
        return x
    return round(round(x / step) * step, 6)


def _direction(item: RecommendationItem) -> int:
    if isinstance(item.new, str) or not isinstance(item.current, float | int):
        return 0
    return 1 if item.new > item.current else -1


def _dedupe(ranked: list[RecommendationItem], notes: list[str]) -> list[RecommendationItem]:
    """Keep the best change per parameter; note lower-ranked changes pulling the other way."""
    kept: dict[str, RecommendationItem] = {}
    out = []
    for item in ranked:
        best = kept.get(item.parameter)
        if best is None:
            kept[item.parameter] = item
            out.append(item)
            continue
        d1, d2 = _direction(best), _direction(item)
        if d1 and d2 and d1 != d2:
            notes.append(
                f"conflict on {item.parameter}: {best.rule_id} ({best.new}) outranks "
                f"{item.rule_id} ({item.new}), "
                "which pulls the other way; watch both defects after the change"
            )
    return out


def _status(
    items: Sequence[RecommendationItem],
    actions: Sequence[ActionItem],
    missing: Mapping[str, list[str]],
    graded: Mapping[str, int],
) -> tuple[str, str]:
    found = ", ".join(f"{d} grade {g}" for d, g in graded.items() if g > 0)
    lack = ""
    if missing:
        rules = sorted({r for rs in missing.values() for r in rs})
        lack = f"params lack {', '.join(sorted(missing))} (needed by {', '.join(rules)})"
    if items:
        first = items[0]
        cur = "unknown" if first.current is None else f"{_fmt(first.current)}"
        text = (
            f"{found}: change {first.parameter} from {cur} to {_fmt(first.new)} {first.unit} "
            f"({first.rule_id}), "
            "then re-inspect before changing anything else"
        )
        if actions:
            text += f"; also {len(actions)} action(s)"
        return "change", text + (f"; {lack}" if lack else "")
    if actions:
        return "change", f"{found}: {len(actions)} action(s), no parameter change" + (
            f"; {lack}" if lack else ""
        )
    if missing:
        return "incomplete", f"{found}: cannot advise: {lack}"
    return "no_advice", f"{found}: no applicable rule could change a setting (see notes)"


def _fmt(v: float | str) -> str:
    return v if isinstance(v, str) else f"{v:g}"
