"""Result types of the recommendation engine (frozen dataclasses, validated on construction)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STATUSES = ("change", "keep_settings", "not_graded", "review", "incomplete", "no_advice")
"""``Recommendation.status`` values (see :class:`Recommendation`)."""


class MissingParameters(ValueError):
    """Raised in strict mode when rules that apply need parameters absent from ``params``.

    ``missing`` holds the parameter names; ``rules`` the ids of the rules that needed them.
    """

    def __init__(self, missing: tuple[str, ...], rules: tuple[str, ...] = ()) -> None:
        self.missing = missing
        self.rules = rules
        by = f" (needed by rules {', '.join(rules)})" if rules else ""
        super().__init__(f"params lack {', '.join(missing)}{by}; add their current values to params")


class InvalidParameters(ValueError):
    """A parameter value has the wrong type (e.g. text for a numeric parameter)."""


@dataclass(frozen=True)
class NumericRange:
    """``min <= x <= max`` in ``unit``; ``basis`` is ``cited`` or ``judgement``; ``source`` an id."""

    min: float
    max: float
    unit: str = ""
    basis: str = "judgement"
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min > self.max:
            msg = f"NumericRange needs finite min <= max, got {self.min}, {self.max}"
            raise ValueError(msg)
        if self.basis not in ("cited", "judgement"):
            msg = f"NumericRange.basis must be 'cited' or 'judgement', got {self.basis!r}"
            raise ValueError(msg)

    def contains(self, x: float) -> bool:
        return self.min <= x <= self.max


@dataclass(frozen=True)
class ParameterWindow:
    """Recommended settings for one process / material / thickness range (mm, inclusive).

    ``ranges`` maps numeric parameters to their window; ``choices`` maps categorical ones (e.g.
    ``gas_type``) to the allowed values.
    """

    process: str
    material: str
    thickness_mm: tuple[float, float]
    ranges: Mapping[str, NumericRange]
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    db_version: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        lo, hi = self.thickness_mm
        if not 0 < lo < hi:
            msg = f"ParameterWindow.thickness_mm must satisfy 0 < lo < hi, got {self.thickness_mm}"
            raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        return jsonable(dataclasses.asdict(self))


@dataclass(frozen=True)
class ComplianceIssue:
    """One parameter outside its window. ``kind``: below, above, not_allowed, missing, invalid."""

    parameter: str
    kind: str
    value: float | str | None
    expected: str
    message: str

    def __post_init__(self) -> None:
        if self.kind not in ("below", "above", "not_allowed", "missing", "invalid"):
            msg = f"ComplianceIssue.kind must be below/above/not_allowed/missing/invalid, got {self.kind!r}"
            raise ValueError(msg)


@dataclass(frozen=True)
class RecommendationItem:
    """One concrete parameter change: ``parameter`` from ``current`` to ``new`` (in ``unit``).

    ``why`` names the defect, grade, pattern and cause; ``clamped`` says which limit (window or
    machine) cut the step, empty when none did. ``confidence`` in [0, 1]; ``score`` is the
    ranking score (higher first).
    """

    rule_id: str
    defect: str
    parameter: str
    current: float | str | None
    new: float | str
    unit: str
    why: str
    expected_effect: str
    confidence: float
    score: float
    basis: str
    source: str
    clamped: str = ""
    side_effects: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            msg = f"RecommendationItem.confidence must be in [0, 1], got {self.confidence}"
            raise ValueError(msg)


@dataclass(frozen=True)
class ActionItem:
    """A non-parameter action (clean the surface, check gas and nozzle, fit-up gap)."""

    rule_id: str
    defect: str
    action: str
    why: str
    expected_effect: str
    confidence: float
    score: float
    basis: str
    source: str

    def __post_init__(self) -> None:
        if not 0.0 <= self.confidence <= 1.0:
            msg = f"ActionItem.confidence must be in [0, 1], got {self.confidence}"
            raise ValueError(msg)


@dataclass(frozen=True)
class Recommendation:
    """Advice for one inspection.

    ``status``: ``change`` (items or actions to do), ``keep_settings`` (all grades 0),
    ``not_graded`` (no grade available), ``review`` (the grades the advice would rest on are
    uncertain -- a head abstained, the quality gate failed or the image is out of distribution --
    so advice waits for a human review; ``review_reasons`` names why), ``incomplete`` (defects
    found but the parameters the rules need are missing, see ``missing``), ``no_advice`` (no
    applicable rule could change anything, e.g. everything already at its limits). ``items`` are
    the parameter changes to make now (one when ``one_at_a_time``), ``alternatives`` the next ones
    in rank order; ``actions`` the non-parameter tasks. ``compliance`` lists current settings
    outside the window. ``review_reasons`` holds the result's review reasons that held advice back
    (also set when a change is advised for the confident head while the other head abstained).
    """

    status: str
    message: str
    process: str
    material: str
    thickness_mm: float
    items: tuple[RecommendationItem, ...] = ()
    alternatives: tuple[RecommendationItem, ...] = ()
    actions: tuple[ActionItem, ...] = ()
    missing: tuple[str, ...] = ()
    compliance: tuple[ComplianceIssue, ...] = ()
    notes: tuple[str, ...] = ()
    pattern: str = "unknown"
    grades: Mapping[str, int | None] = field(default_factory=dict)
    window: ParameterWindow | None = None
    db_version: str = ""
    one_at_a_time: bool = True
    review_reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            msg = f"Recommendation.status must be one of {STATUSES}, got {self.status!r}"
            raise ValueError(msg)

    @property
    def keep_settings(self) -> bool:
        return self.status == "keep_settings"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return jsonable(dataclasses.asdict(self))


def jsonable(value: Any) -> Any:
    """Tuples/lists -> lists, mappings -> dicts with str keys, floats kept (non-finite -> None)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
