"""Were the settings inside the window? (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from inspection.recommend.models import ComplianceIssue, ParameterWindow


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a number (bools are not numbers)."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def check_compliance(
    params: Mapping[str, Any], window: ParameterWindow, *, include_missing: bool = True
) -> list[ComplianceIssue]:
    """Issues for each window parameter that is outside its range, not allowed, invalid or missing.

    Numeric parameters must satisfy ``min <= value <= max`` (units as in the window); categorical
    ones (``window.choices``) must be one of the allowed values (case-insensitive). Parameters not
    in the window are ignored. ``include_missing=False`` leaves out the ``missing`` issues.
    """
    issues: list[ComplianceIssue] = []
    for name, rng in window.ranges.items():
        expected = f"{rng.min:g}-{rng.max:g} {rng.unit}".rstrip()
        raw = params.get(name)
        if raw is None:
            if include_missing:
                issues.append(
                    ComplianceIssue(name, "missing", None, expected, f"{name} not given (window {expected})")
                )
            continue
        x = as_number(raw)
        if x is None:
            issues.append(
                ComplianceIssue(name, "invalid", str(raw), expected, f"{name}={raw!r} is not a number")
            )
        elif x < rng.min:
            issues.append(
                ComplianceIssue(name, "below", x, expected, f"{name} {x:g} is below the window {expected}")
            )
        elif x > rng.max:
            issues.append(
                ComplianceIssue(name, "above", x, expected, f"{name} {x:g} is above the window {expected}")
            )
    for name, allowed in window.choices.items():
        expected = f"one of {', '.join(allowed)}"
        raw = params.get(name)
        if raw is None:
            if include_missing:
                issues.append(
                    ComplianceIssue(name, "missing", None, expected, f"{name} not given ({expected})")
                )
            continue
        if str(raw).strip().lower() not in allowed:
            issues.append(
                ComplianceIssue(name, "not_allowed", str(raw), expected, f"{name} {raw!r} is not {expected}")
            )
    return issues
