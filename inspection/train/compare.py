"""Champion against challenger on held-out reviewed photos: figures, confusion matrices, verdict.

Both models grade the same held-out photos (groups the challenger never trained on) through
:class:`inspection.pipeline.Inspector` with the ``torch`` backend (the reference numbers; the
challenger has no ONNX export yet), each at its own operating peak threshold. The labels are the
reviewers': pore boxes from their marks (:mod:`inspection.train.review_data`) and their final
grades.

Figures (the pore-level rules of :mod:`inspection.train.pore_eval`, boxes grown by 25 %):
pore recall, porosity findings per pore-free photo ("good photo": the reviewer marked no pore),
unmatched findings per photo, false accepts (pores marked, graded 0, not sent to review), review
share, one-story agreement, and per model a FROC curve (recall against findings per good photo,
thresholds from the score floor to 0.95). Confusion matrices per head: rows the reviewer's final
grade 0-3, columns the model's grade 0-3 or ``not graded``; only photos the reviewer graded for
that head count, so a matrix's total is the number of held-out photos with that final grade.

**Verdict** (:func:`decide`), fixed before any run: the challenger is **better** only when

1. pore recall is measurable (the held-out photos hold at least one marked pore),
2. no figure is worse than the champion's beyond its tolerance -- pore recall (higher is better,
   tolerance 0), false accepts (lower, 0), findings per good photo (lower, +0.10 per photo),
   porosity grade agreement with the reviewer (higher, 0), and
3. at least one of them is strictly better.

Figures that are not measurable on the held-out photos (no pore-free photo, no photo with pores,
no porosity grade) are reported as such and skipped by 2 and 3. Otherwise the challenger is **not
better**. With few held-out photos one box decides a difference: the report gives every count,
and the verdict is a gate for the approver, not a proof.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspection.train.pore_eval import PhotoOutcome, Rate, froc, summarise, summarise_groups
from inspection.types import Box

log = logging.getLogger(__name__)

SCORE_FLOOR = 0.05
"""Lowest FROC threshold (findings are decoded down to it; headline figures use the model's own)."""
FINDINGS_TOLERANCE = 0.10
"""How many more findings per good photo the challenger may raise and still be better."""
GRADE_COLUMNS = ("0", "1", "2", "3", "not graded")
REPORT_SCHEMA = "challenger-report/1"


@dataclass(frozen=True)
class HeldOutPhoto:
    """One held-out photo: its file, group, marked pore boxes and the reviewer's final grades."""

    name: str
    group: str
    path: Path
    pores: tuple[Box, ...]
    porosity_grade: int | None
    spatter_grade: int | None


@dataclass(frozen=True)
class ModelRun:
    """One model's results on the held-out photos (same order as the photos)."""

    identity: Mapping[str, Any]
    operating_threshold: float
    floor: float
    outcomes: tuple[PhotoOutcome, ...]
    porosity: tuple[int | None, ...]
    spatter: tuple[int | None, ...]
    review: tuple[bool, ...]
    seconds: float


def run_model(
    directory: Path,
    photos: Sequence[HeldOutPhoto],
    *,
    floor: float = SCORE_FLOOR,
    threads: int | None = None,
    role: str = "model",
) -> ModelRun:
    """Grade ``photos`` with the artifact in ``directory`` (torch backend, findings decoded down
    to ``floor`` for the FROC sweep; grades and review flags are exactly what a station gets)."""
    from inspection.model.files import sha256_file
    from inspection.pipeline import Inspector

    t0 = time.perf_counter()
    inspector = Inspector.from_artifact(directory, backend="torch", threads=threads)
    operating = float(inspector.grader.config.thresholds.peak.porosity)
    used_floor = min(floor, operating)
    inspector.finding_floor = used_floor
    outcomes, por, spa, review = [], [], [], []
    for i, p in enumerate(photos):
        result = inspector.inspect(p.path)
        outcomes.append(PhotoOutcome.from_result(p.name, p.group, p.pores, result))
        por.append(None if result.porosity is None else result.porosity.grade)
        spa.append(None if result.spatter is None else result.spatter.grade)
        review.append(bool(result.needs_review))
        if (i + 1) % 50 == 0:
            log.info("%s: %d / %d held-out photos graded", role, i + 1, len(photos))
    info = inspector.grader.info
    identity = {
        "name": info.name,
        "version": info.version,
        "sha256": info.sha256,
        "config_sha256": sha256_file(Path(directory) / "config.json"),
        "path": str(directory),
    }
    return ModelRun(
        identity,
        operating,
        used_floor,
        tuple(outcomes),
        tuple(por),
        tuple(spa),
        tuple(review),
        time.perf_counter() - t0,
    )


# ---- figures (pure) ---------------------------------------------------------------------------------


def confusion(
    truth: Sequence[int | None], predicted: Sequence[int | None], review: Sequence[bool]
) -> dict[str, Any]:
    """The reviewer's final grade (rows 0-3) against the model's (columns 0-3, ``not graded``),
    over the photos with a final grade; plus exact agreement, photos sent to review and photos
    graded lower than the reviewer's grade *without* review (the misses nobody looks at)."""
    if not len(truth) == len(predicted) == len(review):
        msg = f"confusion needs equal lengths, got {len(truth)}, {len(predicted)}, {len(review)}"
        raise ValueError(msg)
    matrix = [[0] * len(GRADE_COLUMNS) for _ in range(4)]
    exact = total = to_review = under = 0
    for t, p, r in zip(truth, predicted, review, strict=True):
        if t is None:
            continue
        total += 1
        matrix[t][4 if p is None else p] += 1
        exact += int(p == t)
        to_review += int(r)
        under += int(p is not None and p < t and not r)
    return {
        "rows": "reviewer's final grade 0-3",
        "columns": list(GRADE_COLUMNS),
        "matrix": matrix,
        "total": total,
        "exact_agreement": Rate(exact, total).to_dict(),
        "sent_to_review": to_review,
        "graded_lower_without_review": Rate(under, total).to_dict(),
    }


def threshold_grid(floor: float, operating: float) -> list[float]:
    """FROC thresholds: ``floor`` to 0.95 in steps of 0.025, plus the operating threshold."""
    grid = {round(float(t), 4) for t in np.arange(0.0, 0.9501, 0.025) if t >= floor - 1e-9}
    return sorted(grid | {round(floor, 6), round(operating, 6)})


def model_figures(run: ModelRun, photos: Sequence[HeldOutPhoto]) -> dict[str, Any]:
    """Everything the report says about one model on the held-out photos (JSON-ready)."""
    outcomes = list(run.outcomes)
    op = run.operating_threshold
    labelled = [o for o in outcomes if o.pores]
    good = [o for o in outcomes if not o.pores]
    summary = summarise("held_out", outcomes, op, held_out=True).to_dict()
    return {
        **dict(run.identity),
        "operating_threshold": op,
        "score_floor": run.floor,
        "figures": summary,
        "per_group": {g: s.to_dict() for g, s in summarise_groups(outcomes, op, held_out=True).items()},
        "confusion": {
            "porosity": confusion([p.porosity_grade for p in photos], run.porosity, run.review),
            "spatter": confusion([p.spatter_grade for p in photos], run.spatter, run.review),
        },
        "froc": [pt.to_dict() for pt in froc(labelled, good, threshold_grid(run.floor, op))],
        "seconds": round(run.seconds, 1),
    }


def headline(figures: Mapping[str, Any]) -> dict[str, Any]:
    """The figures the verdict compares, as plain values (None = not measurable), plus counts."""
    f = figures["figures"]
    por = figures["confusion"]["porosity"]
    return {
        "pore_recall": f["recall"]["value"],
        "findings_per_good_photo": f["findings_per_pore_free_photo"]["value"],
        "false_accept": f["false_accept"]["value"],
        "porosity_grade_agreement": por["exact_agreement"]["value"],
        "spatter_grade_agreement": figures["confusion"]["spatter"]["exact_agreement"]["value"],
        "review_share": f["review"]["value"],
        "story_agreement": f["story_agreement"]["value"],
        "unmatched_findings_per_photo": f["unmatched_per_photo"]["value"],
        "operating_threshold": figures["operating_threshold"],
        "held_out_photos": f["photos"],
        "held_out_pore_boxes": f["recall"]["total"],
        "held_out_good_photos": f["findings_per_pore_free_photo"]["total"],
    }


# ---- the verdict (pure) -------------------------------------------------------------------------------

CRITERIA: tuple[tuple[str, str, float], ...] = (
    ("pore_recall", "higher", 0.0),
    ("false_accept", "lower", 0.0),
    ("findings_per_good_photo", "lower", FINDINGS_TOLERANCE),
    ("porosity_grade_agreement", "higher", 0.0),
)
"""(figure, which direction is better, tolerance) of the verdict rule (module docstring)."""


@dataclass(frozen=True)
class Criterion:
    """One figure of the verdict: both values, whether the challenger holds it (None = not
    measurable) and whether it is strictly better."""

    name: str
    better: str
    tolerance: float
    champion: float | None
    challenger: float | None
    holds: bool | None
    improved: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "better": self.better,
            "tolerance": self.tolerance,
            "champion": self.champion,
            "challenger": self.challenger,
            "holds": self.holds,
            "improved": self.improved,
        }


@dataclass(frozen=True)
class Verdict:
    """``better``: the challenger passed the rule; ``reasons``: why (one line each)."""

    better: bool
    criteria: tuple[Criterion, ...]
    reasons: tuple[str, ...]

    @property
    def text(self) -> str:
        return "challenger better" if self.better else "challenger not better"

    def to_dict(self) -> dict[str, Any]:
        return {
            "challenger_better": self.better,
            "text": self.text,
            "rule": RULE_TEXT,
            "criteria": [c.to_dict() for c in self.criteria],
            "reasons": list(self.reasons),
        }


RULE_TEXT = (
    "challenger better only when pore recall is measurable on the held-out photos, no figure is worse than "
    "the champion's beyond its tolerance (pore recall: higher, 0; false accept: lower, 0; findings per good "
    f"photo: lower, +{FINDINGS_TOLERANCE:.2f}; porosity grade agreement: higher, 0) and at least one is "
    "strictly better; figures not measurable on the held-out photos are skipped"
)


def _defined(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def decide(champion: Mapping[str, Any], challenger: Mapping[str, Any]) -> Verdict:
    """The verdict of the rule above on two :func:`headline` dicts."""
    criteria: list[Criterion] = []
    reasons: list[str] = []
    for name, better, tol in CRITERIA:
        a, b = champion.get(name), challenger.get(name)
        if a is None or b is None or not (_defined(a) and _defined(b)):
            criteria.append(Criterion(name, better, tol, None, None, None, False))
            reasons.append(f"{name}: not measurable on the held-out photos")
            continue
        fa, fb = float(a), float(b)
        if better == "higher":
            holds, improved = fb >= fa - tol - 1e-12, fb > fa + 1e-12
        else:
            holds, improved = fb <= fa + tol + 1e-12, fb < fa - 1e-12
        criteria.append(Criterion(name, better, tol, fa, fb, holds, improved))
        word = "better" if improved else ("within tolerance" if holds else "WORSE")
        reasons.append(f"{name}: champion {fa:.4g}, challenger {fb:.4g} ({word})")
    by_name = {c.name: c for c in criteria}
    measurable = by_name["pore_recall"].holds is not None
    regressed = [c.name for c in criteria if c.holds is False]
    gains = [c.name for c in criteria if c.improved]
    if not measurable:
        reasons.append("pore recall is not measurable: no held-out photo has a marked pore")
    if regressed:
        reasons.append(f"worse than the champion: {', '.join(regressed)}")
    if not gains:
        reasons.append("no figure is strictly better than the champion's")
    return Verdict(measurable and not regressed and bool(gains), tuple(criteria), tuple(reasons))
