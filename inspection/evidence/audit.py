"""Random audit of results accepted without review, and the miss-rate estimate it gives.

A result the model did not flag (``needs_review`` false) is accepted without a person looking at
it. To know how often such a result is wrong, a random share of them, the **audit rate** (2 % by
default, ``ServiceSettings.audit_rate``), is put in the review queue as an *audit sample*:

* **Selection** (:func:`is_audit_sample`): inspection ``i`` is drawn when
  ``u(i) = int(HMAC-SHA256(K, id_i)[:8]) / 2^64 < rate``. The inspection id is a random UUID made
  by the recorder, and ``K`` (:func:`audit_key`) is derived from the service's Ed25519 signing key,
  so a station can neither choose nor predict which of its welds are audited; the draw depends only
  on the key and the id, so restarting the service does not change it.
* **Wrong** (:func:`review_is_wrong`): an audited result counts as wrong when the reviewer flagged
  the photo not gradable, or set a final porosity or spatter grade that differs from the model's
  grade for that defect (a defect the reviewer left empty is not compared). Any disagreement counts,
  over- as well as under-grading: the figure bounds every kind of error, not only missed defects.
* **Estimate** (:func:`estimate_miss_rate`): with ``n`` reviewed audit samples of which ``k`` were
  wrong, the miss rate of unreviewed results is estimated as ``k / n`` with a two-sided 95 %
  Clopper-Pearson (exact binomial) interval; its upper end is the figure a guarantee fund can use:
  "of the welds accepted without review, at most x % were wrong" (95 % two-sided, so at least
  97.5 % one-sided). The Wilson score interval is available too (:func:`wilson_interval`);
  ``scripts/bench_miss_rate.py`` measures how often each covers a known injected rate.

The estimate holds for the population the samples were drawn from (results not flagged, while the
rate was in force) and only if the audit samples are reviewed regardless of what they show: the
review queue lists them first for that reason, and the drawn-but-unreviewed count is reported.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from scipy.stats import beta, binom, norm
from sqlalchemy import func, select

from inspection.evidence.keys import Signer
from inspection.store.db import Store
from inspection.store.models import InspectionRow, ReviewCandidateRow, ReviewRow

DEFAULT_AUDIT_RATE = 0.02
CONFIDENCE = 0.95
AUDIT_KEY_CONTEXT = b"weldinspect review audit sample key/1"
METHODS = ("clopper-pearson", "wilson")
WRONG_DEFINITION = (
    "the reviewer flagged the photo not gradable, or set a final porosity or spatter grade that "
    "differs from the model's grade for that defect (defects the reviewer left empty are not compared)"
)


def check_rate(rate: float, name: str = "audit rate") -> float:
    """``rate`` as a float in [0, 1], or ``ValueError`` naming ``name``."""
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
        msg = f"{name} must be a number in [0, 1] (0.02 = 2 %), got {rate!r}"
        raise ValueError(msg)
    return float(rate)


def audit_key(signer: Signer) -> bytes:
    """The 32-byte audit selection key, derived from ``signer``'s private key (HMAC-SHA256)."""
    raw = signer.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return hmac.new(raw, AUDIT_KEY_CONTEXT, hashlib.sha256).digest()


class AuditSampler:
    """Draws audit samples with one key at one rate: ``sampler(inspection_id) -> bool``."""

    def __init__(self, key: bytes, rate: float) -> None:
        if len(key) < 16:
            msg = f"the audit key must have at least 16 bytes, got {len(key)}"
            raise ValueError(msg)
        self.rate = check_rate(rate)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)  # keyed once, copied per draw

    def draw(self, inspection_id: str) -> float:
        """``u(i)`` in [0, 1): the first 8 bytes of HMAC-SHA256(key, inspection id) over 2^64."""
        mac = self._mac.copy()
        mac.update(inspection_id.encode("utf-8"))
        return int.from_bytes(mac.digest()[:8], "big") / 2.0**64

    def __call__(self, inspection_id: str) -> bool:
        return self.draw(inspection_id) < self.rate


def audit_draw(key: bytes, inspection_id: str) -> float:
    """``u(i)`` in [0, 1) for ``inspection_id`` under ``key`` (see :class:`AuditSampler`)."""
    return AuditSampler(key, 0.0).draw(inspection_id)


def is_audit_sample(key: bytes, inspection_id: str, rate: float) -> bool:
    """Whether the unflagged inspection ``inspection_id`` is an audit sample at ``rate``."""
    return AuditSampler(key, rate)(inspection_id)


def review_is_wrong(
    model_grades: Mapping[str, int | None],
    review_grades: Mapping[str, int | None],
    *,
    not_gradable: bool = False,
) -> bool:
    """Whether a reviewed result counts as wrong (the definition is :data:`WRONG_DEFINITION`).

    ``model_grades`` / ``review_grades``: ``{"porosity": g, "spatter": g}`` (None = not graded / left
    empty). A model grade of None against a reviewer's grade counts as different.
    """
    if not_gradable:
        return True
    for defect in ("porosity", "spatter"):
        final = review_grades.get(defect)
        if final is not None and final != model_grades.get(defect):
            return True
    return False


# ---- intervals ----------------------------------------------------------------------------------


def _check_counts(k: int, n: int, confidence: float) -> None:
    if not (0 <= k <= n):
        msg = f"need 0 <= k <= n, got k={k}, n={n}"
        raise ValueError(msg)
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must be in (0, 1), got {confidence}"
        raise ValueError(msg)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``; ``(0, 1)`` when ``n`` is 0.

    ``centre = (k + z²/2) / (n + z²)``, ``half = z / (n + z²) · sqrt(k (n - k) / n + z² / 4)``,
    ``z`` the two-sided normal quantile of ``confidence`` (1.96 for 95 %).
    """
    _check_counts(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf(0.5 + confidence / 2.0))
    z2 = z * z
    centre = (k + z2 / 2.0) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
    return max(0.0, centre - half), min(1.0, centre + half)


def clopper_pearson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson (exact) interval of ``k / n``: beta quantiles; ``(0, 1)`` when ``n`` is 0.

    ``low = Beta(alpha/2; k, n - k + 1)`` (0 when k = 0), ``high = Beta(1 - alpha/2; k + 1, n - k)``
    (1 when k = n), ``alpha = 1 - confidence``. Coverage is at least ``confidence`` for every rate.
    """
    _check_counts(k, n, confidence)
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2.0, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - alpha / 2.0, k + 1, n - k))
    return low, high


def interval(
    k: int, n: int, method: str = "clopper-pearson", confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The ``method`` interval (one of :data:`METHODS`)."""
    if method == "clopper-pearson":
        return clopper_pearson_interval(k, n, confidence)
    if method == "wilson":
        return wilson_interval(k, n, confidence)
    msg = f"unknown interval method {method!r}; valid: {', '.join(METHODS)}"
    raise ValueError(msg)


# ---- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissRateEstimate:
    """The miss rate of results accepted without review, from reviewed audit samples.

    ``audited``: reviewed audit samples (n); ``wrong``: of them wrong (k); ``low``/``high``: the
    ``confidence`` interval by ``method``; ``drawn``: audit samples drawn so far (reviewed or not);
    ``serial``: the machine it is restricted to (None = every machine).
    """

    audited: int
    wrong: int
    low: float
    high: float
    drawn: int = 0
    method: str = "clopper-pearson"
    confidence: float = CONFIDENCE
    serial: str | None = None

    @property
    def rate(self) -> float | None:
        """``wrong / audited`` (None before the first reviewed audit sample)."""
        return None if self.audited == 0 else self.wrong / self.audited

    @property
    def pending(self) -> int:
        """Audit samples drawn but not reviewed yet."""
        return max(0, self.drawn - self.audited)

    def sentence(self) -> str:
        """The figure in words, e.g. "of the welds accepted without review, at most 4.1 % were wrong"."""
        if self.audited == 0:
            return "no audit sample has been reviewed yet: the miss rate of unreviewed results is unknown"
        return (
            f"of the welds accepted without review, at most {100.0 * self.high:.1f} % were wrong "
            f"({self.wrong} of {self.audited} audited; {100.0 * self.confidence:.0f} % {self.method} "
            f"interval {100.0 * self.low:.1f}-{100.0 * self.high:.1f} %)"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON object for claim bundles and the API (fractions, not percent)."""
        return {
            "format": "weldinspect-miss-rate/1",
            "serial": self.serial,
            "audited": self.audited,
            "wrong": self.wrong,
            "drawn": self.drawn,
            "pending": self.pending,
            "estimate": self.rate,
            "low": self.low,
            "high": self.high,
            "confidence": self.confidence,
            "method": self.method,
            "population": "inspections not flagged for review (accepted without review)",
            "wrong_means": WRONG_DEFINITION,
            "statement": self.sentence(),
        }


def estimate_miss_rate(
    outcomes: Iterable[bool],
    *,
    drawn: int = 0,
    method: str = "clopper-pearson",
    confidence: float = CONFIDENCE,
    serial: str | None = None,
) -> MissRateEstimate:
    """The estimate from the wrong/right outcome of each reviewed audit sample (pure)."""
    flags = [bool(x) for x in outcomes]
    n, k = len(flags), sum(flags)
    low, high = interval(k, n, method, confidence)
    return MissRateEstimate(n, k, low, high, max(drawn, n), method, confidence, serial)


def miss_rate_from_store(
    store: Store, *, serial: str | None = None, method: str = "clopper-pearson"
) -> MissRateEstimate:
    """The estimate over the store's reviewed audit samples (latest review of each), optionally of
    one machine ``serial``. Model grades are the inspection's; final grades the review's."""
    stmt = (
        select(
            ReviewRow.inspection_id,
            ReviewRow.porosity_grade,
            ReviewRow.spatter_grade,
            ReviewRow.not_gradable_reason,
            InspectionRow.porosity_grade,
            InspectionRow.spatter_grade,
        )
        .join(InspectionRow, InspectionRow.id == ReviewRow.inspection_id)
        .where(ReviewRow.audit.is_(True))
        .order_by(ReviewRow.created_at, ReviewRow.id)
    )
    drawn_stmt = (
        select(func.count())
        .select_from(ReviewCandidateRow)
        .join(InspectionRow, InspectionRow.id == ReviewCandidateRow.inspection_id)
        .where(ReviewCandidateRow.audit.is_(True))
    )
    if serial is not None:
        stmt = stmt.where(InspectionRow.machine_serial == serial)
        drawn_stmt = drawn_stmt.where(InspectionRow.machine_serial == serial)
    latest: dict[str, bool] = {}
    with store.session() as s:
        for iid, r_por, r_spa, reason, m_por, m_spa in s.execute(stmt):
            latest[iid] = review_is_wrong(
                {"porosity": m_por, "spatter": m_spa},
                {"porosity": r_por, "spatter": r_spa},
                not_gradable=reason is not None,
            )
        drawn = int(s.scalar(drawn_stmt) or 0)
    return estimate_miss_rate(latest.values(), drawn=drawn, method=method, serial=serial)


# ---- checking the interval in simulation ---------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    """How often the interval covered the injected rate over ``trials`` simulated audits."""

    miss_rate: float
    inspections: int
    audit_rate: float
    method: str
    trials: int
    covered: float  # fraction of trials whose interval held the injected rate
    mean_audited: float  # mean number of audit samples per trial
    mean_high: float  # mean upper end of the interval
    exact: float  # the exact coverage for n = round(mean_audited): sum of P(k) over covering k


def simulate_coverage(
    miss_rate: float,
    *,
    inspections: int,
    audit_rate: float = DEFAULT_AUDIT_RATE,
    trials: int = 1000,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
) -> dict[str, Coverage]:
    """Inject ``miss_rate`` into ``trials`` simulated runs of ``inspections`` unflagged results.

    Each trial draws a fresh audit key and random inspection ids, makes each result wrong with
    probability ``miss_rate``, selects audit samples with :class:`AuditSampler`, has the reviewer
    see exactly which audited results were wrong, and checks whether each of ``methods``' intervals
    (:func:`estimate_miss_rate`) holds ``miss_rate``. Every method sees the same trials.
    """
    check_rate(miss_rate, "miss_rate")
    check_rate(audit_rate)
    for method in methods:
        interval(0, 1, method)  # unknown methods fail before the simulation
    rng = np.random.default_rng(seed)
    covered = dict.fromkeys(methods, 0)
    highs: dict[str, list[float]] = {m: [] for m in methods}
    audited: list[int] = []
    for _ in range(trials):
        sampler = AuditSampler(rng.bytes(32), audit_rate)
        raw = rng.bytes(16 * inspections).hex()  # 32 hex digits per inspection id
        wrong = rng.random(inspections) < miss_rate
        picked = [bool(wrong[j]) for j in range(inspections) if sampler(raw[32 * j : 32 * j + 32])]
        audited.append(len(picked))
        for method in methods:
            est = estimate_miss_rate(picked, method=method)
            covered[method] += est.low <= miss_rate <= est.high
            highs[method].append(est.high)
    mean_n = float(np.mean(audited))
    out = {}
    for m in methods:
        exact = exact_coverage(miss_rate, round(mean_n), m)
        out[m] = Coverage(
            miss_rate, inspections, audit_rate, m, trials, covered[m] / trials, mean_n,
            float(np.mean(highs[m])), exact,
        )  # fmt: skip
    return out


def exact_coverage(miss_rate: float, n: int, method: str = "clopper-pearson") -> float:
    """The coverage of the ``method`` interval for ``n`` samples at ``miss_rate``, summed exactly."""
    total = 0.0
    for k in range(n + 1):
        low, high = interval(k, n, method)
        if low <= miss_rate <= high:
            total += float(binom.pmf(k, n, miss_rate))
    return total
