"""The comparison report as one self-contained HTML page (no external assets, no scripts).

:func:`render_html` turns the ``report.json`` document (:mod:`inspection.train.from_store`) into
tables (models, data, figures, verdict, confusion matrices, FROC points) and a FROC plot drawn by
matplotlib as inline SVG (a note instead when matplotlib is not installed). Every value is
HTML-escaped.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

log = logging.getLogger(__name__)

ROLES = ("champion", "challenger")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:70em;
color:#1d2329;line-height:1.4;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ccd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccd;padding:.25em .6em;text-align:right}
th{background:#eef1f5}td.l,th.l{text-align:left}code{font-size:.9em;background:#f3f4f6;padding:0 .2em}
.verdict{font-size:1.2em;padding:.6em 1em;border-radius:.3em;display:inline-block}
.better{background:#dff3e4;border:1px solid #3c9a5f}.notbetter{background:#fbe9e7;border:1px solid #c0504d}
.worse{color:#b00020;font-weight:600}.improved{color:#1b7a3c;font-weight:600}.muted{color:#667}
.pair{display:flex;gap:2em;flex-wrap:wrap}svg{max-width:100%;height:auto}
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _rate(rate: Mapping[str, Any] | None) -> str:
    if not rate:
        return "n/a"
    return f"{_fmt(rate.get('value'))} ({rate.get('count')} / {rate.get('total')})"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    th = "".join(
        f'<th class="l">{escape(h)}</th>' if i < left else f"<th>{escape(h)}</th>" for i, h in enumerate(head)
    )
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, _Raw) else escape(_fmt(cell))
            cells.append(f'<td class="l">{text}</td>' if i < left else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


FIGURE_ROWS: tuple[tuple[str, str], ...] = (
    ("recall", "pore recall (boxes grown 25 %)"),
    ("findings_per_pore_free_photo", "porosity findings per good photo"),
    ("unmatched_per_photo", "findings outside every marked pore, per photo"),
    ("false_accept", "false accept (pores marked, graded 0, not reviewed)"),
    ("review", "sent to review"),
    ("story_agreement", "grade = binned circle count (accepted photos)"),
    ("graded_ge1", "graded porosity >= 1"),
)


def froc_svg(report: Mapping[str, Any]) -> str | None:
    """Both models' FROC curves as an inline ``<svg>`` (None when matplotlib is missing or there
    are no measurable points)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: the HTML report has no FROC plot")
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    drawn = False
    for role in ROLES:
        model = report.get(role) or {}
        pts = [
            p
            for p in model.get("froc", [])
            if p["recall"] is not None and p["findings_per_good_photo"] is not None
        ]
        if not pts:
            continue
        label = f"{role} {model.get('version', '')}"
        (line,) = ax.plot(
            [p["findings_per_good_photo"] for p in pts], [p["recall"] for p in pts], label=label
        )
        op = model.get("operating_threshold", 0.0)
        at = min(pts, key=lambda p: abs(p["threshold"] - op))
        ax.plot([at["findings_per_good_photo"]], [at["recall"]], "o", color=line.get_color())
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("porosity findings per good photo (held out)")
    ax.set_ylabel("marked-pore recall (box grown 25 %)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("FROC on the held-out reviewed photos (dot: operating threshold)", fontsize=9)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else None


def _confusion_table(conf: Mapping[str, Any]) -> str:
    rows = [[f"reviewer {g}", *conf["matrix"][g]] for g in range(4)]
    head = ["final grade \\ model", *conf["columns"]]
    foot = (
        f'<p class="muted">{conf["total"]} photos with a final grade; exact agreement '
        f"{escape(_rate(conf['exact_agreement']))}; sent to review {conf['sent_to_review']}; graded lower "
        f"without review {escape(_rate(conf['graded_lower_without_review']))}</p>"
    )
    return _table(head, rows) + foot


def render_html(report: Mapping[str, Any]) -> str:
    """The whole page for a ``report.json`` document."""
    champ, chall = report["champion"], report["challenger"]
    verdict = report["verdict"]
    data = report["data"]
    cls = "better" if verdict["challenger_better"] else "notbetter"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Challenger report {escape(str(chall['version']))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Champion vs challenger on held-out reviewed photos</h1>",
        f'<p class="verdict {cls}">Verdict: <strong>{escape(verdict["text"])}</strong></p>',
        f'<p class="muted">Rule: {escape(verdict["rule"])}.</p>',
        "<ul>" + "".join(f"<li>{escape(r)}</li>" for r in verdict["reasons"]) + "</ul>",
        f"<p>Created {escape(report['created'])} by <code>{escape(report['command'])}</code> from the store "
        f"<code>{escape(report['store']['url'])}</code>.</p>",
        "<h2>Models</h2>",
        _table(
            ["role", "name", "version", "weights sha256", "path", "operating threshold"],
            [
                [
                    r,
                    m["name"],
                    m["version"],
                    _Raw(f"<code>{escape(m['sha256'])}</code>"),
                    m["path"],
                    m["operating_threshold"],
                ]
                for r, m in (("champion", champ), ("challenger", chall))
            ],
            left=5,
        ),
        f"<p>Challenger training: {escape(_fmt(chall['training'].get('epochs_run')))} epoch(s), "
        f"{escape(_fmt(chall['training'].get('train_minutes'), 1))} min, "
        f"{escape(_fmt(chall['training'].get('train_photos')))} training photos "
        f"({escape(report['training']['init'])}).</p>",
        "<h2>Data</h2>",
        _data_tables(data, report),
        "<h2>Figures at each model's operating threshold</h2>",
        _figures_table(champ, chall),
        "<h2>Verdict criteria</h2>",
        _table(
            ["figure", "better", "tolerance", "champion", "challenger", "holds", "strictly better"],
            [
                [
                    c["figure"],
                    c["better"],
                    c["tolerance"],
                    c["champion"],
                    c["challenger"],
                    _Raw('<span class="worse">no</span>') if c["holds"] is False else c["holds"],
                    _Raw('<span class="improved">yes</span>') if c["improved"] else c["improved"],
                ]
                for c in verdict["criteria"]
            ],
            left=2,
        ),
        "<h2>Confusion matrices (rows: reviewer's final grade; columns: model)</h2>",
    ]
    for head in ("porosity", "spatter"):
        parts.append(f'<h3>{escape(head)}</h3><div class="pair">')
        for role, model in (("champion", champ), ("challenger", chall)):
            parts.append(
                f"<div><p><strong>{role}</strong></p>{_confusion_table(model['confusion'][head])}</div>"
            )
        parts.append("</div>")
    parts.append("<h2>FROC</h2>")
    svg = froc_svg(report)
    parts.append(
        svg if svg else '<p class="muted">No FROC plot (matplotlib missing or nothing measurable).</p>'
    )
    for role, model in (("champion", champ), ("challenger", chall)):
        rows = [
            [
                p["threshold"],
                p["recall"],
                p["boxes_found"],
                p["boxes"],
                p["findings_per_good_photo"],
                p["good_findings"],
                p["good_photos"],
            ]
            for p in model["froc"]
        ]
        parts.append(
            f"<details><summary>{role} FROC points ({len(rows)})</summary>"
            + _table(
                [
                    "threshold",
                    "recall",
                    "boxes found",
                    "boxes",
                    "findings / good photo",
                    "findings",
                    "good photos",
                ],
                rows,
                left=0,
            )
            + "</details>"
        )
    commands = escape("\n".join(report.get("next", [])))
    parts.append(
        "<h2>Next</h2><p>If you approve the challenger, promote it with the commands in "
        f"<code>report.json</code> (<code>next</code>):</p><pre>{commands}</pre>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _data_tables(data: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    split = report["split"]
    rows = [
        ["inspections in the store", data["inspections_in_store"]],
        ["reviewed inspections (latest review each)", data["reviewed_inspections"]],
        ["usable reviewed photos", data["usable_photos"]],
        *[[f"excluded: {code}", n] for code, n in data["excluded"].items()],
        ["labels from marks / model circles confirmed / grade 0 without marks",
         " / ".join(str(data["label_sources"][k]) for k in ("marks", "model_findings", "grade_0"))],
        ["point marks turned into boxes", data["point_marks_as_boxes"]],
        ["model findings kept as marks", data["model_findings_kept"]],
        ["base data set photos (training only)", report["training"]["base_photos"]],
    ]  # fmt: skip
    sides = [
        [name, s["groups"], s["photos"], s["photos_with_pores"], s["pore_boxes"], s["spatter_boxes"]]
        for name, s in (("training (reviewed)", data["train"]), ("held out", data["held_out"]))
    ]
    groups = (
        f'<p class="muted">Split seed {escape(str(split["seed"]))}, eval share '
        f"{escape(str(split['eval_share']))}; held-out groups: {escape(', '.join(split['eval_groups']))}; "
        f"training groups: {escape(', '.join(split['train_groups']))}. Manifest sha256 "
        f"<code>{escape(report['manifest']['sha256'])}</code>.</p>"
    )
    return (
        _table(["", "count"], rows)
        + _table(["side", "groups", "photos", "photos with pores", "pore boxes", "spatter boxes"], sides)
        + groups
    )


def _figures_table(champ: Mapping[str, Any], chall: Mapping[str, Any]) -> str:
    rows = []
    for key, label in FIGURE_ROWS:
        rows.append([label, _rate(champ["figures"].get(key)), _rate(chall["figures"].get(key))])
    for head in ("porosity", "spatter"):
        rows.append(
            [
                f"{head} grade = reviewer's",
                _rate(champ["confusion"][head]["exact_agreement"]),
                _rate(chall["confusion"][head]["exact_agreement"]),
            ]
        )
    return _table(["figure (value, count / total)", "champion", "challenger"], rows)
