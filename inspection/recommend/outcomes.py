"""Outcome tracking: did the advice work? (pure; scipy for the exact test).

Input: the inspection history of one machine (for one material and thickness; the caller filters)
as :class:`InspectionRecord` and the advice issued as :class:`IssuedRecommendation`.

For each issued change:

1. **Applied?** The first inspection at or after the issue time whose ``params[parameter]``
   equals the recommended value (numbers within ``rel_tol``/``abs_tol``, text case-insensitive).
2. **Before / after.** *Before*: up to ``window`` inspections before the issue time. *After*: up to
   ``window`` consecutive inspections from the application on, while the parameter keeps the new
   value. An inspection is *defective* when its grade for the rule's defect is >= 1 (either
   grade when the defect is not given); inspections without that grade are skipped.
3. **Test.** One-sided Fisher exact test on the 2x2 table (after / before x defective / not),
   alternative "the defect odds are lower after". ``p_value`` is reported.
4. **Verdict.** ``not_applied``; ``insufficient_data`` (fewer than ``min_samples`` on a side);
   ``worked`` (after rate < before rate and p <= ``alpha``); ``did_not_work`` (after rate >=
   before rate); ``inconclusive`` (lower but not significant).

:class:`RuleStats` aggregates verdicts per rule. ``success_rate`` is a Laplace-smoothed rate
``(worked + 0.5 * inconclusive + 1) / (evaluated + 2)`` (0.5 with no evidence) and
``ranking_factor = 0.5 + success_rate`` (1.0 neutral, 0.5..1.5) multiplies the rule's ranking
score in :func:`inspection.recommend.engine.recommend`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from scipy.stats import fisher_exact

OUTCOMES = ("not_applied", "insufficient_data", "worked", "did_not_work", "inconclusive")
DEFECT_FIELDS = {"porosity": "porosity_grade", "spatter": "spatter_grade"}


@dataclass(frozen=True)
class InspectionRecord:
    """One inspection of the machine: when, with which settings, and the grades (0..3 or None)."""

    timestamp: datetime
    params: Mapping[str, Any]
    porosity_grade: int | None
    spatter_grade: int | None

    def __post_init__(self) -> None:
        for name in ("porosity_grade", "spatter_grade"):
            g = getattr(self, name)
            if g is not None and not 0 <= g <= 3:
                msg = f"InspectionRecord.{name} must be 0..3 or None, got {g!r}"
                raise ValueError(msg)

    def defective(self, defect: str | None) -> bool | None:
        """Grade >= 1 for ``defect`` (either defect when None); None when that grade is unknown."""
        if defect is None:
            grades = [g for g in (self.porosity_grade, self.spatter_grade) if g is not None]
            return None if not grades else max(grades) >= 1
        grade = getattr(self, DEFECT_FIELDS[defect])
        return None if grade is None else grade >= 1


@dataclass(frozen=True)
class IssuedRecommendation:
    """A change that was recommended: ``parameter`` -> ``new_value`` by rule ``rule_id``."""

    timestamp: datetime
    rule_id: str
    parameter: str
    new_value: float | str
    defect: str | None = None  # "porosity", "spatter" or None (either)

    def __post_init__(self) -> None:
        if self.defect is not None and self.defect not in DEFECT_FIELDS:
            valid = sorted(DEFECT_FIELDS)
            msg = f"IssuedRecommendation.defect must be one of {valid} or None, got {self.defect!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class OutcomeRecord:
    """What happened after one issued recommendation (rates are fractions of inspections)."""

    rule_id: str
    parameter: str
    new_value: float | str
    issued_at: datetime
    applied_at: datetime | None
    outcome: str
    before_n: int = 0
    before_defective: int = 0
    after_n: int = 0
    after_defective: int = 0
    p_value: float | None = None
    test: str = "Fisher exact, one-sided (defect odds lower after)"

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            msg = f"OutcomeRecord.outcome must be one of {OUTCOMES}, got {self.outcome!r}"
            raise ValueError(msg)

    @property
    def before_rate(self) -> float | None:
        return self.before_defective / self.before_n if self.before_n else None

    @property
    def after_rate(self) -> float | None:
        return self.after_defective / self.after_n if self.after_n else None


@dataclass(frozen=True)
class RuleStats:
    """Per-rule outcome counts and the derived success rate / ranking factor."""

    rule_id: str
    issued: int = 0
    applied: int = 0
    worked: int = 0
    did_not_work: int = 0
    inconclusive: int = 0
    outcomes: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        counts = (self.issued, self.applied, self.worked, self.did_not_work, self.inconclusive)
        if min(counts) < 0:
            msg = f"RuleStats counts must be >= 0, got {counts}"
            raise ValueError(msg)
        if self.applied > self.issued or self.evaluated > self.applied:
            msg = (
                f"RuleStats needs evaluated ({self.evaluated}) <= applied ({self.applied}) "
                f"<= issued ({self.issued})"
            )
            raise ValueError(msg)

    @property
    def evaluated(self) -> int:
        return self.worked + self.did_not_work + self.inconclusive

    @property
    def success_rate(self) -> float:
        """Laplace-smoothed: (worked + 0.5 inconclusive + 1) / (evaluated + 2); 0.5 without evidence."""
        return (self.worked + 0.5 * self.inconclusive + 1.0) / (self.evaluated + 2.0)

    @property
    def ranking_factor(self) -> float:
        """Multiplier for the rule's ranking score: 0.5 + success_rate (1.0 = neutral)."""
        return 0.5 + self.success_rate


def ranking_adjustment(stats: RuleStats | None) -> float:
    """The ranking multiplier for a rule (1.0 when there is no record)."""
    return 1.0 if stats is None else stats.ranking_factor


def values_match(value: Any, target: float | str, *, rel_tol: float = 0.02, abs_tol: float = 1e-6) -> bool:
    """True when a logged parameter value equals the recommended one (numbers within tolerance)."""
    if value is None:
        return False
    if isinstance(target, str):
        return str(value).strip().lower() == target.strip().lower()
    try:
        x = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(x) and math.isclose(x, float(target), rel_tol=rel_tol, abs_tol=abs_tol)


def evaluate_outcomes(
    history: Sequence[InspectionRecord],
    issued: Sequence[IssuedRecommendation],
    *,
    window: int = 20,
    min_samples: int = 3,
    alpha: float = 0.1,
    rel_tol: float = 0.02,
    abs_tol: float = 1e-6,
) -> tuple[OutcomeRecord, ...]:
    """One :class:`OutcomeRecord` per issued recommendation (see the module docstring)."""
    if window < 1 or min_samples < 1 or not 0 < alpha < 1:
        msg = f"need window >= 1, min_samples >= 1 and 0 < alpha < 1; got {window}, {min_samples}, {alpha}"
        raise ValueError(msg)
    records = sorted(history, key=lambda r: r.timestamp)
    out = []
    for rec in sorted(issued, key=lambda r: r.timestamp):

        def match(r: InspectionRecord, rec: IssuedRecommendation = rec) -> bool:
            return values_match(r.params.get(rec.parameter), rec.new_value, rel_tol=rel_tol, abs_tol=abs_tol)

        start = next((i for i, r in enumerate(records) if r.timestamp >= rec.timestamp and match(r)), None)
        if start is None:
            out.append(
                OutcomeRecord(rec.rule_id, rec.parameter, rec.new_value, rec.timestamp, None, "not_applied")
            )
            continue
        before = _flags([r for r in records if r.timestamp < rec.timestamp][-window:], rec.defect)
        after_records: list[InspectionRecord] = []
        for r in records[start:]:
            if not match(r) or len(after_records) >= window:
                break
            after_records.append(r)
        after = _flags(after_records, rec.defect)
        out.append(_judge(rec, records[start].timestamp, before, after, min_samples, alpha))
    return tuple(out)


def _flags(records: Iterable[InspectionRecord], defect: str | None) -> list[bool]:
    return [f for f in (r.defective(defect) for r in records) if f is not None]


def _judge(
    rec: IssuedRecommendation,
    applied_at: datetime,
    before: list[bool],
    after: list[bool],
    min_samples: int,
    alpha: float,
) -> OutcomeRecord:
    nb, db, na, da = len(before), sum(before), len(after), sum(after)
    p_value: float | None = None
    if nb < min_samples or na < min_samples:
        outcome = "insufficient_data"
    else:
        _, p = fisher_exact([[da, na - da], [db, nb - db]], alternative="less")
        p_value = float(p)
        if da / na >= db / nb:
            outcome = "did_not_work"
        elif p_value <= alpha:
            outcome = "worked"
        else:
            outcome = "inconclusive"
    return OutcomeRecord(
        rule_id=rec.rule_id,
        parameter=rec.parameter,
        new_value=rec.new_value,
        issued_at=rec.timestamp,
        applied_at=applied_at,
        outcome=outcome,
        before_n=nb,
        before_defective=db,
        after_n=na,
        after_defective=da,
        p_value=p_value,
    )


def rule_stats(outcomes: Iterable[OutcomeRecord]) -> dict[str, RuleStats]:
    """Aggregate outcome records into :class:`RuleStats` per rule id."""
    grouped: dict[str, list[str]] = {}
    for o in outcomes:
        grouped.setdefault(o.rule_id, []).append(o.outcome)
    return {
        rid: RuleStats(
            rule_id=rid,
            issued=len(results),
            applied=sum(r != "not_applied" for r in results),
            worked=results.count("worked"),
            did_not_work=results.count("did_not_work"),
            inconclusive=results.count("inconclusive"),
            outcomes=tuple(results),
        )
        for rid, results in grouped.items()
    }


def track_outcomes(
    history: Sequence[InspectionRecord], issued: Sequence[IssuedRecommendation], **kwargs: Any
) -> dict[str, RuleStats]:
    """:func:`evaluate_outcomes` then :func:`rule_stats` (keyword arguments go to the former)."""
    return rule_stats(evaluate_outcomes(history, issued, **kwargs))
