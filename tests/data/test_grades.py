"""Reference grades from counts (table-driven)."""

from __future__ import annotations

import pytest

from inspection.config import GradingConfig
from inspection.data.grades import grade_from_count, reference_grades
from inspection.data.manifest import ManifestObject, ManifestRecord


@pytest.mark.parametrize(
    ("count", "thresholds", "grade"),
    [
        (0, (1, 2, 4), 0),
        (1, (1, 2, 4), 1),
        (2, (1, 2, 4), 2),
        (3, (1, 2, 4), 2),
        (4, (1, 2, 4), 3),
        (40, (1, 2, 4), 3),
        (0, (1, 6, 21), 0),
        (5, (1, 6, 21), 1),
        (6, (1, 6, 21), 2),
        (20, (1, 6, 21), 2),
        (21, (1, 6, 21), 3),
        (2, (3, 5, 7), 0),
        (3, (3, 5, 7), 1),
    ],
)
def test_grade_from_count(count: int, thresholds: tuple[int, int, int], grade: int) -> None:
    assert grade_from_count(count, thresholds) == grade


@pytest.mark.parametrize(
    ("count", "thresholds"),
    [(-1, (1, 2, 4)), (1, (2, 2, 4)), (1, (0, 2, 4)), (1, (4, 2, 1)), (1.5, (1, 2, 4))],
)
def test_grade_from_count_rejects_bad_input(count: int, thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="must"):
        grade_from_count(count, thresholds)


def _record(n_pores: int, n_spatter: int, grades: dict[str, int] | None = None) -> ManifestRecord:
    objs = [ManifestObject("porosity", (1, 1, 3, 3))] * n_pores + [
        ManifestObject("spatter", (5, 5, 6, 6))
    ] * n_spatter
    objs.append(ManifestObject("other", (0, 0, 10, 10)))
    return ManifestRecord("x.jpg", 10, 10, objects=tuple(objs), grades=grades or {})


@pytest.mark.parametrize(
    ("pores", "droplets", "expected"),
    [
        (0, 0, {"porosity": 0, "spatter": 0}),
        (1, 5, {"porosity": 1, "spatter": 1}),
        (3, 6, {"porosity": 2, "spatter": 2}),
        (4, 21, {"porosity": 3, "spatter": 3}),
    ],
)
def test_reference_grades_default_thresholds(pores: int, droplets: int, expected: dict[str, int]) -> None:
    assert reference_grades(_record(pores, droplets), GradingConfig()) == expected


def test_reference_grades_custom_config_and_explicit_grades() -> None:
    cfg = GradingConfig(porosity_thresholds=(2, 3, 5))
    assert reference_grades(_record(2, 0), cfg)["porosity"] == 1
    explicit = _record(0, 0, grades={"porosity": 3})
    assert reference_grades(explicit, cfg)["porosity"] == 3
    assert reference_grades(explicit, cfg, prefer_explicit=False)["porosity"] == 0
    assert reference_grades(explicit, cfg, defects=("porosity",)) == {"porosity": 3}
