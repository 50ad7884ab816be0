"""Data-set statistics: counts per label, per grade and per group; a PNG chart; a Markdown table.

:func:`compute_stats` is pure (records in, :class:`DataStats` out). :func:`write_chart` draws
with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inspection.config import GradingConfig
from inspection.data.grades import reference_grades
from inspection.data.manifest import ManifestRecord
from inspection.types import GRADE_LEVELS, GRADED_DEFECTS


@dataclass(frozen=True)
class DataStats:
    """Counts over a data set.

    * ``objects_per_label`` / ``images_per_label``: boxes, and images with >= 1 box, per label
      (our vocabulary); ``objects_per_raw_label``: boxes per original annotator label.
    * ``images_per_group``: images per group (``(none)`` for ungrouped images).
    * ``grades``: defect -> images per grade 0..3, for each graded defect the data labels
      (``graded_defects``); ``group_grades``: group -> defect -> images per grade.
    """

    n_images: int
    n_objects: int
    objects_per_label: dict[str, int]
    images_per_label: dict[str, int]
    objects_per_raw_label: dict[str, int]
    images_per_group: dict[str, int]
    graded_defects: tuple[str, ...]
    grades: dict[str, list[int]]
    group_grades: dict[str, dict[str, list[int]]] = field(default_factory=dict)


NO_GROUP = "(none)"


def labelled_defects(records: Sequence[ManifestRecord]) -> tuple[str, ...]:
    """Graded defects this data labels: any box with that label or any explicit grade for it."""
    found = {o.label for r in records for o in r.objects} | {k for r in records for k in r.grades}
    return tuple(d.value for d in GRADED_DEFECTS if d.value in found)


def compute_stats(
    records: Sequence[ManifestRecord],
    cfg: GradingConfig | None = None,
    *,
    defects: Sequence[str] | None = None,
) -> DataStats:
    """Count labels, grades (for ``defects``, default :func:`labelled_defects`) and groups."""
    cfg = cfg or GradingConfig()
    graded = tuple(defects) if defects is not None else labelled_defects(records)
    obj_label: Counter[str] = Counter()
    img_label: Counter[str] = Counter()
    raw: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    grades = {d: [0] * GRADE_LEVELS for d in graded}
    group_grades: dict[str, dict[str, list[int]]] = {}
    for r in records:
        g = r.group or NO_GROUP
        groups[g] += 1
        labels = [o.label for o in r.objects]
        obj_label.update(labels)
        img_label.update(set(labels))
        raw.update(o.raw_label or o.label for o in r.objects)
        if graded:
            ref = reference_grades(r, cfg, defects=graded)
            per_group = group_grades.setdefault(g, {d: [0] * GRADE_LEVELS for d in graded})
            for d, v in ref.items():
                grades[d][v] += 1
                per_group[d][v] += 1
    return DataStats(
        n_images=len(records),
        n_objects=sum(obj_label.values()),
        objects_per_label=dict(obj_label.most_common()),
        images_per_label=dict(img_label.most_common()),
        objects_per_raw_label=dict(raw.most_common()),
        images_per_group=dict(sorted(groups.items())),
        graded_defects=graded,
        grades=grades,
        group_grades=dict(sorted(group_grades.items())),
    )


def stats_markdown(stats: DataStats, title: str = "Data set") -> str:
    """Markdown tables of the counts."""
    out = [f"## {title}", "", f"{stats.n_images} images, {stats.n_objects} boxes.", ""]
    out += ["| label | boxes | images |", "|---|---:|---:|"]
    out += [f"| {k} | {v} | {stats.images_per_label.get(k, 0)} |" for k, v in stats.objects_per_label.items()]
    out += ["", "| original label | boxes |", "|---|---:|"]
    out += [f"| {k} | {v} |" for k, v in stats.objects_per_raw_label.items()]
    for d in stats.graded_defects:
        out += ["", f"| {d} grade | images |", "|---|---:|"]
        out += [f"| {g} | {n} |" for g, n in enumerate(stats.grades[d])]
    heads = " | ".join(f"{d} grade {g}" for d in stats.graded_defects for g in range(GRADE_LEVELS))
    out += ["", f"| group | images | {heads} |" if heads else "| group | images |"]
    out += ["|---|---:|" + "---:|" * (len(stats.graded_defects) * GRADE_LEVELS)]
    for grp, n in stats.images_per_group.items():
        cells = [str(v) for d in stats.graded_defects for v in stats.group_grades.get(grp, {}).get(d, [])]
        out.append(f"| {grp} | {n} | " + " | ".join(cells) + (" |" if cells else ""))
    return "\n".join(out) + "\n"


def write_chart(stats: DataStats, path: Path | str, title: str = "") -> Path:
    """A PNG with bar charts: boxes per label, images per grade, images per group (stacked by grade)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_panels = 2 + len(stats.graded_defects)
    fig, axes = plt.subplots(1, n_panels, figsize=(4.2 * n_panels, 3.8), dpi=90)
    ax = axes[0]
    labels = list(stats.objects_per_raw_label) or ["(none)"]
    ax.barh(labels[::-1], [stats.objects_per_raw_label.get(k, 0) for k in labels[::-1]], color="#4c72b0")
    ax.set_title("boxes per original label")
    for i, d in enumerate(stats.graded_defects, start=1):
        ax = axes[i]
        ax.bar([str(g) for g in range(GRADE_LEVELS)], stats.grades[d], color="#dd8452")
        ax.set_title(f"images per {d} grade")
        ax.set_xlabel("grade")
        for g, n in enumerate(stats.grades[d]):
            ax.text(g, n, str(n), ha="center", va="bottom", fontsize=8)
    ax = axes[-1]
    groups = list(stats.images_per_group)
    if stats.graded_defects:
        d = stats.graded_defects[0]
        bottom = [0] * len(groups)
        colors = ["#55a868", "#c4ad66", "#dd8452", "#c44e52"]
        for g in range(GRADE_LEVELS):
            vals = [stats.group_grades.get(k, {}).get(d, [0] * GRADE_LEVELS)[g] for k in groups]
            ax.bar(groups, vals, bottom=bottom, color=colors[g % len(colors)], label=f"{d} {g}")
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.legend(fontsize=7)
    else:
        ax.bar(groups, [stats.images_per_group[k] for k in groups], color="#55a868")
    ax.set_title("images per group")
    ax.tick_params(axis="x", labelrotation=70, labelsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
