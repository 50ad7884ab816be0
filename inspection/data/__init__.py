"""Data sets: manifests, importers, reference grades, group splits, weld grouping, spatter, stats.

Light re-exports only (stdlib/numpy); OpenCV-heavy modules (``groups``, ``spatter``) and
matplotlib (``stats`` charts) are imported from their modules. ``torch_dataset`` (the torch
Dataset) is the model engineer's module and is not imported here.
"""

from __future__ import annotations

from inspection.data.grades import grade_from_count, reference_grades
from inspection.data.manifest import (
    REAL_POROSITY_LABEL_MAP,
    ManifestObject,
    ManifestProblem,
    ManifestRecord,
    ManifestReport,
    read_manifest,
    write_manifest,
)
from inspection.data.splits import Fold, group_split, leave_one_group_out

__all__ = [
    "REAL_POROSITY_LABEL_MAP",
    "Fold",
    "ManifestObject",
    "ManifestProblem",
    "ManifestRecord",
    "ManifestReport",
    "grade_from_count",
    "group_split",
    "leave_one_group_out",
    "read_manifest",
    "reference_grades",
    "write_manifest",
]
