"""The claim report for the warranty fund: built only from signed evidence records, rendered to HTML and PDF.

Pure core: :func:`build_claim_report` turns evidence records (inspection and review records)
into a :class:`ClaimReport`; :func:`trend_png`, :func:`render_html` and :func:`render_pdf` render it.

Definitions used in the report (also printed in it):

* **Effective grade**: the latest human review's grade when the inspection was reviewed, else
  the model's grade (grades 0 none .. 3 severe).
* **Defective**: an effective porosity or spatter grade >= ``defect_grade`` (default 2), or a
  standards verdict that failed the target quality level.
* **Compliance**: whether the welding parameters recorded with the inspection were inside the
  expert database's window for its process, material and thickness (``inside`` / ``outside`` /
  ``unknown`` when no window or no parameters).
* **Assessment**: among defective inspections with known compliance, when at least two thirds
  were made inside the window the defects point to the equipment; when at least two thirds
  were outside, to the settings; otherwise the evidence is mixed. The fund decides; the report
  gives the counts and the record ids behind each.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from inspection.evidence.ledger import KIND_INSPECTION, KIND_REVIEW, EvidenceRecord
from inspection.evidence.report_audit import (
    MissRateSummary,
    ModelApproval,
    miss_rate_summaries,
    model_approvals,
)

logger = logging.getLogger(__name__)

DEFECT_GRADE = 2
COMPLIANCE_STATUSES = ("inside", "outside", "unknown")
GRADE_NAMES = ("none", "slight", "moderate", "severe")


@dataclass(frozen=True)
class Compliance:
    """Whether one inspection's parameters were inside the recommended window."""

    status: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.status not in COMPLIANCE_STATUSES:
            msg = f"compliance status {self.status!r} is invalid; valid: {', '.join(COMPLIANCE_STATUSES)}"
            raise ValueError(msg)


ComplianceFn = Callable[[Mapping[str, Any]], Compliance]
"""Given an inspection record's ``context`` (process, material, thickness_mm, params), say inside/outside."""


@dataclass(frozen=True)
class ReportLine:
    """One inspection in the report (everything from its signed record, plus its latest review)."""

    seq: int
    record_id: str
    record_hash: str
    inspection_id: str
    created_at: str
    part_id: str | None
    seam_id: str | None
    station_id: str | None
    firmware: str | None
    porosity: int | None
    spatter: int | None
    reviewed: bool
    reviewer: str | None
    porosity_effective: int | None
    spatter_effective: int | None
    standards_level: str | None
    standards_passed: bool | None
    compliance: Compliance
    params: Mapping[str, Any]
    image_sha256: str
    defective: bool


@dataclass(frozen=True)
class ClaimAssessment:
    """Defective inspections split by settings compliance, with the record ids behind each count."""

    total: int
    defective: int
    inside: tuple[ReportLine, ...]
    outside: tuple[ReportLine, ...]
    unknown: tuple[ReportLine, ...]
    conclusion: str
    points_to: str  # "equipment" | "settings" | "mixed" | "no defects" | "undetermined"


@dataclass(frozen=True)
class ClaimReport:
    serial: str
    machine_model: str | None
    firmwares: tuple[str, ...]
    since: str | None
    until: str | None
    generated_at: str
    lines: tuple[ReportLine, ...]
    assessment: ClaimAssessment
    head_seq: int | None
    head_hash: str | None
    key_ids: tuple[str, ...]
    compliance_source: str
    defect_grade: int = DEFECT_GRADE
    scope_note: str = ""
    verify_steps: tuple[str, ...] = field(default=())
    miss_rate: tuple[MissRateSummary, ...] = ()
    """The miss-rate estimates of ``audit/miss_rate.json`` (this machine, all machines); () = not carried."""
    models: tuple[ModelApproval, ...] | None = None
    """The models the inspections name with their approval; None = the bundle has no models section."""

    @property
    def reviewed(self) -> int:
        """Inspections of the report that a person reviewed."""
        return sum(1 for ln in self.lines if ln.reviewed)


# ---- building (pure) ------------------------------------------------------------------------------


def _grade(head: Any) -> int | None:
    if isinstance(head, Mapping) and isinstance(head.get("grade"), int):
        return int(head["grade"])
    return None


def _standards(std: Any) -> tuple[str | None, bool | None]:
    if not isinstance(std, Mapping) or not std.get("assessable"):
        return None, None
    verdicts = std.get("verdicts") or []
    passed = all(bool(v.get("passed")) for v in verdicts if isinstance(v, Mapping))
    return std.get("level_reached"), passed


def _line(
    rec: EvidenceRecord, review: Mapping[str, Any] | None, compliance: ComplianceFn | None, defect_grade: int
) -> ReportLine:
    data = rec.data
    ctx = data.get("context") or {}
    grades = data.get("grades") or {}
    porosity, spatter = _grade(grades.get("porosity")), _grade(grades.get("spatter"))
    p_eff, s_eff = porosity, spatter
    if review is not None:
        rg = review.get("grades") or {}
        p_eff = rg.get("porosity", p_eff) if rg.get("porosity") is not None else p_eff
        s_eff = rg.get("spatter", s_eff) if rg.get("spatter") is not None else s_eff
    level, passed = _standards(data.get("standards"))
    if compliance is None:
        comp = Compliance("unknown", "no expert database available")
    else:
        try:
            comp = compliance(ctx)
        except Exception as exc:  # a compliance failure must not stop the report
            logger.warning("compliance check failed for record %d: %s", rec.seq, exc)
            comp = Compliance("unknown", f"compliance check failed: {exc}")
    worst = max((g for g in (p_eff, s_eff) if g is not None), default=None)
    defective = (worst is not None and worst >= defect_grade) or passed is False
    return ReportLine(
        seq=rec.seq,
        record_id=rec.record_id,
        record_hash=rec.record_hash,
        inspection_id=str(data.get("inspection_id", "")),
        created_at=rec.created_at,
        part_id=ctx.get("part_id"),
        seam_id=ctx.get("seam_id"),
        station_id=ctx.get("station_id"),
        firmware=ctx.get("firmware"),
        porosity=porosity,
        spatter=spatter,
        reviewed=review is not None,
        reviewer=None if review is None else review.get("reviewer"),
        porosity_effective=p_eff,
        spatter_effective=s_eff,
        standards_level=level,
        standards_passed=passed,
        compliance=comp,
        params=dict(ctx.get("params") or {}),
        image_sha256=str((data.get("image") or {}).get("sha256", "")),
        defective=defective,
    )


def assess(lines: Sequence[ReportLine]) -> ClaimAssessment:
    """Split defective lines by compliance and state what they point to (two-thirds rule)."""
    bad = [ln for ln in lines if ln.defective]
    inside = tuple(ln for ln in bad if ln.compliance.status == "inside")
    outside = tuple(ln for ln in bad if ln.compliance.status == "outside")
    unknown = tuple(ln for ln in bad if ln.compliance.status == "unknown")
    known = len(inside) + len(outside)
    if not bad:
        points, text = (
            "no defects",
            "No defective inspections in this period: the evidence gives no basis for a claim.",
        )
    elif known == 0:
        points = "undetermined"
        text = (
            f"{len(bad)} defective inspection(s), but none could be checked against a recommended window "
            "(parameters or expert database missing): the evidence cannot attribute the defects."
        )
    elif len(inside) * 3 >= known * 2:
        points = "equipment"
        text = (
            f"{len(inside)} of {known} defective inspections with known settings were welded with parameters "
            "INSIDE the recommended window: the defects point to the equipment."
        )
    elif len(outside) * 3 >= known * 2:
        points = "settings"
        text = (
            f"{len(outside)} of {known} defective inspections with known settings were welded with "
            "parameters OUTSIDE the recommended window: the defects point to the settings."
        )
    else:
        points = "mixed"
        text = (
            f"Mixed: {len(inside)} defective inspection(s) inside and {len(outside)} outside the recommended "
            "window; neither explains at least two thirds of the defects."
        )
    return ClaimAssessment(len(lines), len(bad), inside, outside, unknown, text, points)


def build_claim_report(
    records: Sequence[EvidenceRecord],
    *,
    serial: str,
    generated_at: str,
    compliance: ComplianceFn | None = None,
    compliance_source: str = "",
    since: str | None = None,
    until: str | None = None,
    head: tuple[int, str] | None = None,
    machine_model: str | None = None,
    defect_grade: int = DEFECT_GRADE,
    scope_note: str = "",
    verify_steps: Sequence[str] = (),
    miss_rate: Mapping[str, Any] | None = None,
    models: Mapping[str, Any] | None = None,
    model_records: Sequence[EvidenceRecord] = (),
) -> ClaimReport:
    """A :class:`ClaimReport` from the bundle's inspection and review records (others are ignored).

    "Reviews and audit" (:mod:`inspection.evidence.report_audit`): ``miss_rate`` is the body of the
    bundle's ``audit/miss_rate.json``, ``models`` the manifest's ``models`` section and
    ``model_records`` the promotion/rollback records the bundle carries (None / empty: the report
    says the bundle does not carry them).
    """
    if not 1 <= defect_grade <= 3:
        msg = f"defect_grade must be in 1..3, got {defect_grade}"
        raise ValueError(msg)
    reviews: dict[str, Mapping[str, Any]] = {}
    for rec in sorted(records, key=lambda r: r.seq):
        if rec.kind == KIND_REVIEW:
            data = rec.data
            reviews[str(data.get("inspection_id"))] = data  # latest review wins
    lines = tuple(
        _line(rec, reviews.get(str(rec.data.get("inspection_id"))), compliance, defect_grade)
        for rec in sorted(records, key=lambda r: r.seq)
        if rec.kind == KIND_INSPECTION
    )
    firmwares = tuple(dict.fromkeys(ln.firmware for ln in lines if ln.firmware))
    key_ids = tuple(sorted({r.key_id for r in records if r.key_id}))
    return ClaimReport(
        serial=serial,
        machine_model=machine_model,
        firmwares=firmwares,
        since=since,
        until=until,
        generated_at=generated_at,
        lines=lines,
        assessment=assess(lines),
        head_seq=None if head is None else head[0],
        head_hash=None if head is None else head[1],
        key_ids=key_ids,
        compliance_source=compliance_source or "not available",
        defect_grade=defect_grade,
        scope_note=scope_note,
        verify_steps=tuple(verify_steps),
        miss_rate=miss_rate_summaries(miss_rate),
        models=model_approvals(models, model_records),
    )


# ---- compliance adapter ---------------------------------------------------------------------------


_OUT_OF_WINDOW = ("below", "above", "not_allowed", "invalid")


def _interpret(result: Any) -> Compliance:
    """Map what ``check_compliance`` returns onto :class:`Compliance`.

    Understood: a :class:`Compliance`; a bool (True = inside); a sequence of issues with ``kind``
    (``below``/``above``/``not_allowed``/``invalid`` = outside, ``missing`` = not recorded) and
    ``message``. Inside = no recorded parameter outside the window (unrecorded ones are listed in
    the detail); unknown when every windowed parameter is missing.
    """
    if isinstance(result, Compliance):
        return result
    if isinstance(result, bool):
        return Compliance("inside" if result else "outside")
    if isinstance(result, Sequence) and not isinstance(result, str):
        kinds = [(str(getattr(i, "kind", "")), str(getattr(i, "message", i))) for i in result]
        bad = [m for k, m in kinds if k in _OUT_OF_WINDOW]
        missing = [
            str(getattr(i, "parameter", m)) for i, (k, m) in zip(result, kinds, strict=True) if k == "missing"
        ]
        if bad:
            return Compliance("outside", "; ".join(bad))
        detail = f"{len(missing)} param(s) not recorded" if missing else ""
        return Compliance("inside", detail)
    return Compliance("unknown", f"unrecognised compliance result {type(result).__name__}")


def _nothing_recorded(result: Any, window: Any) -> bool:
    """True when every parameter of ``window`` came back as a ``missing`` issue."""
    names = set(getattr(window, "ranges", {}) or {}) | set(getattr(window, "choices", {}) or {})
    if not names or not isinstance(result, Sequence):
        return False
    missing = {getattr(i, "parameter", None) for i in result if getattr(i, "kind", "") == "missing"}
    return names <= missing


def expert_db_compliance() -> tuple[ComplianceFn | None, str]:
    """A compliance function backed by ``inspection.recommend`` and a description of its source.

    Degrades to ``(None, reason)`` when the recommendation module or its database is unavailable.
    """
    try:
        from inspection import recommend
    except ImportError as exc:
        return None, f"expert database unavailable ({exc})"
    load = getattr(recommend, "load_expert_db", None)
    check = getattr(recommend, "check_compliance", None)
    if load is None or check is None:
        return (
            None,
            "expert database unavailable (inspection.recommend lacks load_expert_db/check_compliance)",
        )
    try:
        db = load()
    except Exception as exc:
        return None, f"expert database could not be loaded ({type(exc).__name__}: {exc})"
    version = getattr(db, "version", None)
    source = f"expert database {version}" if version else "expert database (inspection.recommend)"

    def fn(ctx: Mapping[str, Any]) -> Compliance:
        process, material, thickness = ctx.get("process"), ctx.get("material"), ctx.get("thickness_mm")
        params = ctx.get("params") or {}
        if not (process and material and thickness):
            return Compliance("unknown", "process, material or thickness not recorded")
        if not params:
            return Compliance("unknown", "no welding parameters recorded")
        try:
            window = db.window(process, material, float(thickness))
        except (ValueError, KeyError) as exc:
            return Compliance("unknown", f"no recommended window: {exc}")
        if window is None:
            return Compliance("unknown", f"no recommended window for {process}/{material}/{thickness} mm")
        result = check(params, window)
        if _nothing_recorded(result, window):
            return Compliance("unknown", "none of the window's parameters were recorded")
        return _interpret(result)

    return fn, source


# ---- rendering ------------------------------------------------------------------------------------


def _short(text: str, n: int = 8) -> str:
    return text[:n]


def _g(value: int | None) -> str:
    return "-" if value is None else str(value)


def _compliance_label(c: Compliance) -> str:
    return {"inside": "inside window", "outside": "OUTSIDE window", "unknown": "unknown"}[c.status]


def _parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def trend_png(report: ClaimReport, *, dpi: int = 110) -> bytes:
    """PNG (about 880 x 440 px): weekly defect rate (bars) above effective grades over time (dots)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.0), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_rate, ax_grade = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    lines = report.lines
    if not lines:
        ax_grade.text(
            0.5, 0.5, "no inspections in this period", ha="center", va="center", transform=ax_grade.transAxes
        )
    else:
        times = [_parse_time(ln.created_at) for ln in lines]
        weeks: dict[datetime, list[bool]] = {}
        for t, ln in zip(times, lines, strict=True):
            monday = datetime(t.year, t.month, t.day) - timedelta(days=t.weekday())
            weeks.setdefault(monday, []).append(ln.defective)
        starts = sorted(weeks)
        rates = [100.0 * sum(weeks[w]) / len(weeks[w]) for w in starts]
        ax_rate.bar([w + timedelta(days=3.5) for w in starts], rates, width=6.0, color="#c0504d", alpha=0.85)
        for w, r, n in zip(starts, rates, (len(weeks[w]) for w in starts), strict=True):
            ax_rate.text(
                w + timedelta(days=3.5), r + 2, f"n={n}", ha="center", va="bottom", fontsize=6, color="#444"
            )
        ax_rate.set_ylim(0, 115)
        ax_rate.set_ylabel("defective %\n(per week)", fontsize=8)
        for offset, name, colour, attr in ((-0.08, "porosity", "#1f77b4", "porosity_effective"),
                                           (0.08, "spatter", "#ff7f0e", "spatter_effective")):  # fmt: skip
            pts = [
                (t, getattr(ln, attr) + offset)
                for t, ln in zip(times, lines, strict=True)
                if getattr(ln, attr) is not None
            ]
            if pts:
                ax_grade.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    "o",
                    ms=3.5,
                    alpha=0.75,
                    color=colour,
                    label=name,
                )
        ax_grade.axhline(
            report.defect_grade - 0.5, color="#c0504d", lw=0.8, ls="--", label="defect threshold"
        )
        ax_grade.set_yticks(range(4), [f"{i} {GRADE_NAMES[i]}" for i in range(4)], fontsize=7)
        ax_grade.set_ylim(-0.5, 3.5)
        ax_grade.legend(fontsize=7, loc="upper left", ncols=3, frameon=False)
    ax_rate.set_title(f"Machine {report.serial}: defect trend", fontsize=10)
    for ax in (ax_rate, ax_grade):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


TEMPLATE = "claim_report.html"
"""Jinja2 template beside this module (package data), rendered with autoescaping on."""


def render_html(report: ClaimReport, trend: bytes) -> str:
    """The report as one self-contained HTML page (trend PNG embedded; every value autoescaped)."""
    from jinja2 import Environment

    env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
    a = report.assessment
    groups = [
        ("Settings inside the recommended window (points to the equipment)", a.inside),
        ("Settings outside the recommended window (points to the settings)", a.outside),
        ("Settings unknown", a.unknown),
    ]
    template = resources.files("inspection.evidence").joinpath(TEMPLATE).read_text(encoding="utf-8")
    return env.from_string(template).render(
        r=report,
        a=a,
        groups=groups,
        trend_b64=base64.b64encode(trend).decode("ascii"),
        g=_g,
        clabel=_compliance_label,
        grade_names=GRADE_NAMES,
    )


def _font_names() -> tuple[str, str, str]:
    """Register DejaVu Sans (shipped with matplotlib; covers far more than Latin-1) with reportlab."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        if "DejaVuSans" not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont("DejaVuSans", str(ttf / "DejaVuSans.ttf")))
            pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(ttf / "DejaVuSans-Bold.ttf")))
            pdfmetrics.registerFont(TTFont("DejaVuSansMono", str(ttf / "DejaVuSansMono.ttf")))
        return "DejaVuSans", "DejaVuSans-Bold", "DejaVuSansMono"
    except Exception as exc:  # fall back to the built-in Latin-1 fonts
        logger.warning("DejaVu fonts unavailable for the PDF (%s); using Helvetica", exc)
        return "Helvetica", "Helvetica-Bold", "Courier"


def render_pdf(report: ClaimReport, trend: bytes) -> bytes:
    """The report as an A4 PDF (reportlab): summary, assessment, trend, inspections, how to verify."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Image as RLImage
    from reportlab.platypus import ListFlowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    regular, bold, mono = _font_names()
    base = ParagraphStyle("base", fontName=regular, fontSize=8.5, leading=11)
    small = ParagraphStyle("small", parent=base, fontSize=7, leading=8.5)
    tiny_mono = ParagraphStyle("mono", parent=base, fontName=mono, fontSize=6, leading=7.5)
    id_mono = ParagraphStyle("id", parent=base, fontName=mono, fontSize=7, leading=8.5)
    h1 = ParagraphStyle("h1", parent=base, fontName=bold, fontSize=15, leading=19, spaceAfter=6)
    h2 = ParagraphStyle(
        "h2", parent=base, fontName=bold, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4
    )
    h3 = ParagraphStyle(
        "h3", parent=base, fontName=bold, fontSize=9.5, leading=12, spaceBefore=6, spaceAfter=3
    )
    verdict = ParagraphStyle(
        "verdict", parent=base, fontName=bold, fontSize=9.5, leading=12.5,
        backColor=colors.HexColor("#f4f4f4"), borderPadding=5, spaceBefore=2, spaceAfter=8,
    )  # fmt: skip
    a = report.assessment

    def p(text: str, style: ParagraphStyle = base) -> Paragraph:
        return Paragraph(escape(text), style)

    def links(group: Sequence[ReportLine], limit: int = 40) -> Paragraph:
        parts = [f'<a href="#rec-{ln.record_id}" color="#1f4e9a">{ln.seq}</a>' for ln in group[:limit]]
        more = f" … and {len(group) - limit} more" if len(group) > limit else ""
        return Paragraph(("seq " + ", ".join(parts) + escape(more)) if parts else "-", small)

    grid = TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), regular), ("FONTSIZE", (0, 0), (-1, -1), 7.5),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")), ("FONTNAME", (0, 0), (-1, 0), bold),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ])  # fmt: skip
    width = A4[0] - 30 * mm
    meta_rows = [
        ["Machine serial", p(report.serial + (f" ({report.machine_model})" if report.machine_model else ""))],
        ["Firmware seen", p(", ".join(report.firmwares) or "-")],
        ["Period (UTC)", p(f"{report.since or 'first record'} to {report.until or 'export'}")],
        ["Inspections", p(f"{a.total} ({a.defective} defective)")],
        ["Generated (UTC)", p(report.generated_at)],
        ["Chain head at export", Paragraph(escape(f"seq {report.head_seq}  {report.head_hash}"), tiny_mono)],
        ["Signing keys", Paragraph(escape(", ".join(report.key_ids) or "-"), tiny_mono)],
        ["Compliance source", p(report.compliance_source)],
    ]
    meta = Table(meta_rows, colWidths=[38 * mm, width - 38 * mm])
    meta.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (0, -1), bold), ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f0f0")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))  # fmt: skip
    assess_rows = [
        ["Defective inspections", "Count", "Evidence records"],
        [
            p("Settings inside the window: points to the equipment", small),
            str(len(a.inside)),
            links(a.inside),
        ],
        [
            p("Settings outside the window: points to the settings", small),
            str(len(a.outside)),
            links(a.outside),
        ],
        [p("Settings unknown", small), str(len(a.unknown)), links(a.unknown)],
    ]
    assess_table = Table(assess_rows, colWidths=[62 * mm, 14 * mm, width - 76 * mm])
    assess_table.setStyle(grid)
    img = RLImage(io.BytesIO(trend), width=width, height=width / 2.0)
    header = [
        "Time (UTC)",
        "Seq",
        "Part / seam",
        "Por.",
        "Spat.",
        "Review",
        "ISO level",
        "Settings",
        "Record",
    ]
    rows: list[list[Any]] = [header]
    for ln in report.lines:
        review = (
            f"{_g(ln.porosity_effective)}/{_g(ln.spatter_effective)} {ln.reviewer or ''}"
            if ln.reviewed
            else "-"
        )
        iso = (ln.standards_level or "-") + (" fail" if ln.standards_passed is False else "")
        settings = _compliance_label(ln.compliance) + (
            f": {ln.compliance.detail}" if ln.compliance.detail else ""
        )
        rows.append([
            ln.created_at[:16].replace("T", " "), str(ln.seq),
            p(f"{ln.part_id or '-'} / {ln.seam_id or '-'}", small), _g(ln.porosity), _g(ln.spatter),
            p(review, small), p(iso, small), p(settings, small),
            Paragraph(f'<a name="rec-{escape(ln.record_id)}"/>' + escape(_short(ln.record_id)), id_mono),
        ])  # fmt: skip
    col = [28 * mm, 10 * mm, 26 * mm, 10 * mm, 10 * mm, 17 * mm, 17 * mm]
    col.append(width - sum(col) - 17 * mm)
    col.append(17 * mm)
    table = Table(rows, colWidths=col, repeatRows=1)
    style = TableStyle(grid.getCommands())
    for i, ln in enumerate(report.lines, start=1):
        if ln.defective:
            style.add("BACKGROUND", (0, i), (-1, i), colors.HexColor("#fdecea"))
    table.setStyle(style)
    audit = _audit_story(report, p, small, bold, h3, grid, width)
    steps = ListFlowable(
        [p(s) for s in report.verify_steps],
        bulletType="1",
        bulletFormat="%s.",
        bulletFontName=regular,
        bulletFontSize=8,
    )

    story: list[Any] = [
        p(f"Warranty claim evidence: machine {report.serial}", h1),
        meta,
        p("Claim assessment", h2),
        p(a.conclusion, verdict),
        assess_table,
        Spacer(1, 3),
        p(
            f"Defective = effective porosity or spatter grade ≥ {report.defect_grade} "
            f"({GRADE_NAMES[report.defect_grade]}) or a failed standards verdict; a reviewer's grade "
            "replaces the model's. Rows shaded red in the table below are defective. Records are named by "
            "seq and the first 8 characters of their record id (full ids: records.jsonl, HTML report).",
            small,
        ),
        p("Defect trend", h2),
        img,
        p("Reviews and audit", h2),
        *audit,
        p("Inspections", h2),
        table,
        p("How to verify", h2),
    ]
    if report.scope_note:
        story.append(p(report.scope_note))
    story.append(steps)

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 7)
        canvas.drawString(
            15 * mm,
            8 * mm,
            f"weldinspect claim report · machine {report.serial} · head seq {report.head_seq}",
        )
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm, bottomMargin=14 * mm,
        title=f"Warranty claim evidence {report.serial}", author="weldinspect",
    )  # fmt: skip
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buf.getvalue()


def _audit_story(
    report: ClaimReport,
    p: Callable[..., Any],
    small: Any,
    bold: str,
    h3: Any,
    grid: Any,
    width: float,
) -> list[Any]:
    """The PDF's "Reviews and audit" flowables: reviewed count, miss-rate sentences, model approvals."""
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Table, TableStyle

    strong = ParagraphStyle("strong", parent=small, fontName=bold, fontSize=8.5, leading=11, spaceBefore=3)
    out: list[Any] = [
        p(
            f"{report.reviewed} of {len(report.lines)} inspections in this report were reviewed by a person "
            "(their signed review records are in this bundle); a reviewer's grade replaces the model's."
        )
    ]
    if report.miss_rate:
        for est in report.miss_rate:
            out.append(p(est.sentence(), strong))
            if est.detail():
                out.append(p(est.detail(), small))
        wrong = report.miss_rate[0].wrong_means or "the reviewer disagreed with the model"
        out.append(
            p(
                "Audit samples are a random share of the results the model did not flag, put in the review "
                f"queue whatever they show. Wrong means: {wrong}. The upper bound is the upper end of the "
                "two-sided interval (a 97.5 % one-sided bound). Computed at export from the store's "
                "reviewed audit samples: audit/miss_rate.json, hashed in the signed manifest.",
                small,
            )
        )
    else:
        out.append(
            p(
                "This bundle carries no miss-rate estimate (audit/miss_rate.json): it was exported before "
                "audit sampling existed."
            )
        )
    out.append(p("Model approvals", h3))
    if report.models is None:
        out.append(
            p(
                "This bundle carries no model approvals (no models section in its manifest): it was exported "
                "before promotion records existed."
            )
        )
        return out
    if not report.models:
        out.append(p("The inspections of this report name no model."))
        return out
    rows: list[list[Any]] = [
        [
            "Model version",
            "Weights sha256",
            "Approved by",
            "When (UTC)",
            "Record",
            "Report sha256",
            "Rollback",
        ]
    ]
    for m in report.models:
        record = f"{m.action} seq {m.seq}" if m.seq is not None else "-"
        report_cell = (m.report_sha256[:12] if m.report_sha256 else "-") + (f" ({m.note})" if m.note else "")
        rows.append([
            p(m.label, small), p(m.sha256[:12], small), p(m.approved_by or "not promoted", small),
            p(m.approved_at or "-", small), p(record, small), p(report_cell, small),
            p(m.rollback or "-", small),
        ])  # fmt: skip
    col = [24 * mm, 25 * mm, 22 * mm, 22 * mm, 20 * mm, 32 * mm]
    col.append(width - sum(col))
    table = Table(rows, colWidths=col, repeatRows=1)
    table.setStyle(TableStyle(grid.getCommands()))
    out[-1] = KeepTogether([out[-1], table])  # the heading stays with the table
    return out


def pdf_page_png(pdf: bytes, page: int = 0, scale: float = 1.5) -> bytes:
    """Render one PDF page to PNG bytes with pypdfium2 (``scale`` 1.0 = 72 dpi)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    try:
        if not 0 <= page < len(doc):
            msg = f"page {page} out of range; the PDF has {len(doc)} page(s)"
            raise ValueError(msg)
        pil = doc[page].render(scale=scale).to_pil()
        buf = io.BytesIO()
        pil.convert("RGB").save(buf, format="PNG", optimize=True)
        return buf.getvalue()
    finally:
        doc.close()
