"""Reference grades from annotation counts (the labels the grader is trained and scored against).

Grade ``g`` (1..3) is reached when ``count >= thresholds[g - 1]``; below ``thresholds[0]`` the
grade is 0. Defaults (:class:`inspection.config.GradingConfig`):

* porosity ``(1, 2, 4)``: 0 pores -> 0, 1 -> 1, 2-3 -> 2, 4+ -> 3 (the DATA_CARD's rule);
* spatter ``(1, 6, 21)``: 0 droplets -> 0, 1-5 -> 1, 6-20 -> 2, 21+ -> 3.
"""

from __future__ import annotations

from collections.abc import Iterable

from inspection.config import GradingConfig
from inspection.data.manifest import ManifestRecord
from inspection.types import GRADED_DEFECTS, Defect, grade_from_count


def thresholds_for(defect: Defect | str, cfg: GradingConfig) -> tuple[int, int, int]:
    """The count thresholds ``cfg`` sets for ``defect`` (``porosity`` or ``spatter``)."""
    d = Defect(defect)
    return cfg.porosity_thresholds if d is Defect.POROSITY else cfg.spatter_thresholds


def reference_grades(
    record: ManifestRecord,
    cfg: GradingConfig | None = None,
    *,
    defects: Iterable[Defect | str] = GRADED_DEFECTS,
    prefer_explicit: bool = True,
) -> dict[str, int]:
    """Grades per defect (``{"porosity": g, "spatter": g}``) from the record's box counts.

    A defect's grade comes from the number of objects labelled with it (``porosity`` boxes,
    ``spatter`` boxes) through :func:`grade_from_count`. With ``prefer_explicit`` an explicit
    ``record.grades`` entry (image-level labels, e.g. folder-per-class data) wins over the count.
    Note: a data set that never labels spatter (weld-porosity) gets spatter grade 0 here; pass
    ``defects=("porosity",)`` when that would be a false "no spatter".
    """
    cfg = cfg or GradingConfig()
    out: dict[str, int] = {}
    for defect in defects:
        d = Defect(defect)
        if prefer_explicit and d.value in record.grades:
            out[d.value] = int(record.grades[d.value])
        else:
            out[d.value] = grade_from_count(record.count(d.value), thresholds_for(d, cfg))
    return out
