"""Control charts for the dashboard: the maths (pure) and server-rendered SVG (no JavaScript).

Subgroups are UTC days or runs of ``size`` consecutive inspections (oldest first). Only graded
inspections (grade not None) count; a subgroup with no graded inspection is dropped from a chart.

**p-chart** of the defect rate (a defect = grade >= 1) per subgroup ``i`` with ``n_i`` graded
inspections of which ``d_i`` are defective::

    p_i = d_i / n_i,   centre  p_bar = sum(d) / sum(n)
    UCL_i = min(1, p_bar + 3 sqrt(p_bar (1 - p_bar) / n_i)),  LCL_i = max(0, p_bar - 3 sqrt(...))

so the limits vary with the subgroup size.

**EWMA** of the mean grade per subgroup ``x_i`` (grades 0..3), ``lambda = 0.2``, started at the
target ``mu0`` = the mean of all graded inspections, ``sigma`` = their population standard
deviation::

    z_0 = mu0,   z_i = lambda x_i + (1 - lambda) z_{i-1}
    Var(z_i) = sigma^2 lambda^2 sum_{j<=i} (1 - lambda)^(2 (i - j)) / n_j
    limits_i = mu0 +- L sqrt(Var(z_i)),  L = 3 (lower limit floored at 0)

(for a constant ``n`` the variance is the textbook ``sigma^2/n * lambda/(2 - lambda) * (1 - (1 -
lambda)^(2i))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from inspection.service.trend import BUCKETS, TrendPoint

EWMA_LAMBDA = 0.2
SIGMA_L = 3.0
DEFECTS = ("porosity", "spatter")


@dataclass(frozen=True)
class Subgroup:
    """One subgroup of one defect: ``n`` graded inspections, ``defective`` of them grade >= 1.

    ``grade_sum`` / ``grade_sq_sum`` are the sums of their grades (0..3 each) and of the squared
    grades; ``label`` is a day (``2026-11-25``) or a 1-based position range (``1-20``).
    """

    label: str
    n: int
    defective: int
    grade_sum: int
    grade_sq_sum: int

    def __post_init__(self) -> None:
        if (
            self.n < 1
            or not 0 <= self.defective <= self.n
            or not 0 <= self.grade_sum <= 3 * self.n
            or not self.grade_sum <= self.grade_sq_sum <= 9 * self.n
        ):
            msg = (
                f"Subgroup {self.label!r} needs n >= 1, 0 <= defective <= n, 0 <= grade_sum <= 3 n and "
                f"grade_sum <= grade_sq_sum <= 9 n; got n={self.n}, defective={self.defective}, "
                f"grade_sum={self.grade_sum}, grade_sq_sum={self.grade_sq_sum}"
            )
            raise ValueError(msg)

    @property
    def rate(self) -> float:
        return self.defective / self.n

    @property
    def mean_grade(self) -> float:
        return self.grade_sum / self.n


@dataclass(frozen=True)
class ChartPoint:
    """One plotted subgroup: the value, the centre line, the control limits and the verdict."""

    label: str
    n: int
    value: float
    centre: float
    lcl: float
    ucl: float

    @property
    def out_of_control(self) -> bool:
        return self.value > self.ucl + 1e-12 or self.value < self.lcl - 1e-12


@dataclass(frozen=True)
class ControlChart:
    """A p-chart or an EWMA chart of one defect (``kind`` is ``p`` or ``ewma``)."""

    kind: str
    defect: str
    title: str
    points: tuple[ChartPoint, ...]

    @property
    def out_of_control(self) -> tuple[ChartPoint, ...]:
        return tuple(p for p in self.points if p.out_of_control)


def subgroups(
    points: Sequence[TrendPoint], defect: str, *, bucket: str = "day", size: int = 20
) -> list[Subgroup]:
    """Group ``points`` (any order) oldest first into UTC days or runs of ``size`` inspections.

    Count buckets are runs of ``size`` inspections (graded or not), labelled by their 1-based
    positions; subgroups without a graded inspection are dropped.
    """
    if defect not in DEFECTS:
        msg = f"unknown defect {defect!r}; valid: {', '.join(DEFECTS)}"
        raise ValueError(msg)
    if bucket not in BUCKETS:
        msg = f"unknown subgroup bucket {bucket!r}; valid: {', '.join(BUCKETS)}"
        raise ValueError(msg)
    if size < 1:
        msg = f"subgroup size must be >= 1, got {size}"
        raise ValueError(msg)
    ordered = sorted(points, key=lambda p: p.created_at)
    groups: list[tuple[str, list[TrendPoint]]] = []
    if bucket == "count":
        for i in range(0, len(ordered), size):
            chunk = ordered[i : i + size]
            groups.append((f"{i + 1}-{i + len(chunk)}", chunk))
    else:
        days: dict[str, list[TrendPoint]] = {}
        for p in ordered:
            days.setdefault(p.created_at.date().isoformat(), []).append(p)
        groups = list(days.items())
    out = []
    for label, chunk in groups:
        grades = [g for g in (getattr(p, f"{defect}_grade") for p in chunk) if g is not None]
        if grades:
            out.append(
                Subgroup(
                    label,
                    len(grades),
                    sum(1 for g in grades if g >= 1),
                    sum(grades),
                    sum(g * g for g in grades),
                )
            )
    return out


def p_chart(groups: Sequence[Subgroup], defect: str = "porosity") -> ControlChart:
    """The p-chart of the defect rate with 3-sigma limits that vary with each subgroup's size."""
    total = sum(g.n for g in groups)
    p_bar = sum(g.defective for g in groups) / total if total else 0.0
    pts = []
    for g in groups:
        half = SIGMA_L * math.sqrt(p_bar * (1.0 - p_bar) / g.n)
        pts.append(ChartPoint(g.label, g.n, g.rate, p_bar, max(0.0, p_bar - half), min(1.0, p_bar + half)))
    return ControlChart("p", defect, f"{defect.capitalize()} defect rate (p-chart, grade >= 1)", tuple(pts))


def ewma_chart(
    groups: Sequence[Subgroup], defect: str = "porosity", *, lam: float = EWMA_LAMBDA, L: float = SIGMA_L
) -> ControlChart:
    """The EWMA of the mean grade per subgroup with its time-varying limits (module docstring).

    ``mu0`` and ``sigma`` are estimated from the same data (a phase-I chart): the grand mean and the
    population standard deviation of all graded inspections' grades.
    """
    if not 0.0 < lam <= 1.0 or L <= 0:
        msg = f"EWMA needs 0 < lambda <= 1 and L > 0, got lambda={lam}, L={L}"
        raise ValueError(msg)
    total = sum(g.n for g in groups)
    mu0 = sum(g.grade_sum for g in groups) / total if total else 0.0
    sigma = grade_sigma(groups)
    z = mu0
    acc = 0.0  # sum_j (1 - lam)^(2 (i - j)) / n_j, updated recursively
    pts = []
    for g in groups:
        z = lam * g.mean_grade + (1.0 - lam) * z
        acc = acc * (1.0 - lam) ** 2 + 1.0 / g.n
        half = L * sigma * lam * math.sqrt(acc)
        pts.append(ChartPoint(g.label, g.n, z, mu0, max(0.0, mu0 - half), mu0 + half))
    title = f"{defect.capitalize()} mean grade (EWMA, lambda {lam:g}, {L:g} sigma)"
    return ControlChart("ewma", defect, title, tuple(pts))


def grade_sigma(groups: Sequence[Subgroup]) -> float:
    """Population standard deviation of all the individual grades in ``groups`` (0 when empty)."""
    total = sum(g.n for g in groups)
    if total == 0:
        return 0.0
    mu = sum(g.grade_sum for g in groups) / total
    return math.sqrt(max(0.0, sum(g.grade_sq_sum for g in groups) / total - mu * mu))


# ---- SVG ----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 720, 260
PAD_L, PAD_R, PAD_T, PAD_B = 52, 16, 30, 46


def _fmt(v: float) -> str:
    return f"{v:.1f}"


def render_svg(chart: ControlChart) -> str:
    """The chart as a standalone SVG document (720 x 260 px, escaped text, no script)."""
    title = escape(chart.title)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{title}" '
        'font-family="system-ui, sans-serif" font-size="11">'
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>'
        f'<text x="{PAD_L}" y="18" font-size="13" font-weight="600" fill="#1f2933">{title}</text>'
    )
    if not chart.points:
        return (
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#667">'
            "no graded inspections</text></svg>"
        )
    pts = chart.points
    top = max(max(p.ucl for p in pts), max(p.value for p in pts))
    top = 1.0 if chart.kind == "p" else max(top * 1.1, 0.1)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    step = plot_w / max(1, len(pts))

    def x(i: int) -> float:
        return PAD_L + step * (i + 0.5)

    def y(v: float) -> float:
        return PAD_T + plot_h * (1.0 - min(max(v, 0.0), top) / top)

    parts = [head]
    for k in range(5):  # horizontal grid with y labels
        v = top * k / 4
        text = f"{v:.0%}" if chart.kind == "p" else f"{v:.2f}"
        parts.append(
            f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{_fmt(y(v))}" y2="{_fmt(y(v))}" stroke="#e4e7eb"/>'
            f'<text x="{PAD_L - 6}" y="{_fmt(y(v) + 4)}" text-anchor="end" fill="#52606d">{text}</text>'
        )

    def steps(attr: str) -> str:  # limits drawn as steps (they vary with n)
        segs = []
        for i, p in enumerate(pts):
            v = getattr(p, attr)
            segs.append(
                f"{'M' if i == 0 else 'L'}{_fmt(x(i) - step / 2)},{_fmt(y(v))}H{_fmt(x(i) + step / 2)}"
            )
        return "".join(segs)

    parts.append(f'<path d="{steps("ucl")}" fill="none" stroke="#d64545" stroke-dasharray="5 3"/>')
    parts.append(f'<path d="{steps("lcl")}" fill="none" stroke="#d64545" stroke-dasharray="5 3"/>')
    parts.append(f'<path d="{steps("centre")}" fill="none" stroke="#3e7c17"/>')
    line = "".join(f"{'M' if i == 0 else 'L'}{_fmt(x(i))},{_fmt(y(p.value))}" for i, p in enumerate(pts))
    parts.append(f'<path d="{line}" fill="none" stroke="#1f6feb" stroke-width="1.6"/>')
    label_every = max(1, math.ceil(len(pts) / 10))
    for i, p in enumerate(pts):
        colour = "#d64545" if p.out_of_control else "#1f6feb"
        tip = escape(
            f"{p.label}: {p.value:.3f} (n={p.n}, limits {p.lcl:.3f}..{p.ucl:.3f})"
            + (" OUT OF CONTROL" if p.out_of_control else "")
        )
        parts.append(
            f'<circle cx="{_fmt(x(i))}" cy="{_fmt(y(p.value))}" r="{4 if p.out_of_control else 3}" '
            f'fill="{colour}"><title>{tip}</title></circle>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{_fmt(x(i))}" y="{HEIGHT - PAD_B + 16}" text-anchor="middle" fill="#52606d">'
                f"{escape(p.label)}</text>"
            )
    legend_y = HEIGHT - 10
    legend = (
        ("rate" if chart.kind == "p" else "EWMA", 'stroke="#1f6feb" stroke-width="1.6"', 0),
        ("centre", 'stroke="#3e7c17"', 80),
        ("3-sigma limits", 'stroke="#d64545" stroke-dasharray="5 3"', 160),
    )
    for name, style, dx in legend:
        x0 = PAD_L + dx
        parts.append(
            f'<line x1="{x0}" x2="{x0 + 18}" y1="{legend_y - 4}" y2="{legend_y - 4}" {style}/>'
            f'<text x="{x0 + 22}" y="{legend_y}" fill="#52606d">{name}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
