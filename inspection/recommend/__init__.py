"""Parameter recommendations (pure; the expert database is packaged data).

* :func:`load_expert_db` -> :class:`ExpertDB` (``version``, ``window(process, material,
  thickness_mm)``, ``machine_limits(process)``), validated on load (:class:`ExpertDBError`).
* :func:`check_compliance` - settings vs a :class:`ParameterWindow` -> :class:`ComplianceIssue` list.
* :func:`recommend` - :class:`~inspection.types.InspectionResult` + settings -> :class:`Recommendation`.
* :mod:`inspection.recommend.outcomes` - did the advice work? -> :class:`RuleStats` per rule.

See docs/recommendations.md.
"""

from __future__ import annotations

from inspection.recommend.compliance import check_compliance
from inspection.recommend.engine import recommend, seam_pattern
from inspection.recommend.models import (
    ActionItem,
    ComplianceIssue,
    InvalidParameters,
    MissingParameters,
    NumericRange,
    ParameterWindow,
    Recommendation,
    RecommendationItem,
)
from inspection.recommend.outcomes import (
    InspectionRecord,
    IssuedRecommendation,
    OutcomeRecord,
    RuleStats,
    evaluate_outcomes,
    rule_stats,
    track_outcomes,
)
from inspection.recommend.schema import ExpertDB, ExpertDBError, load_expert_db, parse_expert_db

__all__ = [
    "ActionItem",
    "ComplianceIssue",
    "ExpertDB",
    "ExpertDBError",
    "InspectionRecord",
    "InvalidParameters",
    "IssuedRecommendation",
    "MissingParameters",
    "NumericRange",
    "OutcomeRecord",
    "ParameterWindow",
    "Recommendation",
    "RecommendationItem",
    "RuleStats",
    "check_compliance",
    "evaluate_outcomes",
    "load_expert_db",
    "parse_expert_db",
    "recommend",
    "rule_stats",
    "seam_pattern",
    "track_outcomes",
]
