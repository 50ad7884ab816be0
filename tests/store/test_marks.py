"""A review's final grades held to its marks (:func:`inspection.store.marks.grades_with_marks`, pure)."""

from __future__ import annotations

from typing import Any

import pytest

from inspection.config import GradingConfig
from inspection.store.marks import MarkError, grades_with_marks


def _marks(pores: int, spatter: int) -> list[dict[str, Any]]:
    """``pores`` porosity marks (boxes and points, one kept model finding) and ``spatter`` spatter marks."""
    out: list[dict[str, Any]] = []
    for i in range(pores):
        if i == 0:
            out.append({"label": "porosity", "box": [1.0, 1.0, 4.0, 4.0], "origin": "model", "finding": 0})
        else:
            out.append({"label": "porosity", "point": [float(i), 2.0], "origin": "reviewer"})
    out += [{"label": "spatter", "point": [float(i), 9.0], "origin": "reviewer"} for i in range(spatter)]
    return out


@pytest.mark.parametrize(
    ("grades", "counts", "expected"),
    [
        ((3, 0), None, (3, 0)),  # no marks drawn: nothing to hold the grades to
        ((None, None), None, (None, None)),
        ((None, None), (0, 0), (0, None)),  # marked: nothing there -> porosity 0; spatter not judged
        ((0, 0), (0, 0), (0, 0)),
        ((1, 0), (1, 0), (1, 0)),
        ((2, None), (2, 0), (2, None)),
        ((2, 1), (3, 1), (2, 1)),  # 2-3 pores: grade 2
        ((None, 1), (4, 5), (3, 1)),  # porosity from the marks; 5 spatter marks: at least 1
        ((0, 3), (0, 1), (0, 3)),  # a reviewer need not mark every spatter
        ((0, 2), (0, 0), (0, 2)),
        ((0, 2), (0, 6), (0, 2)),
        ((0, 3), (0, 21), (0, 3)),
    ],
)
def test_grades_that_agree_with_the_marks_pass(
    grades: tuple[int | None, int | None],
    counts: tuple[int, int] | None,
    expected: tuple[int | None, int | None],
) -> None:
    marks = None if counts is None else _marks(*counts)
    assert grades_with_marks(*grades, marks) == expected


@pytest.mark.parametrize(
    ("grades", "counts", "field", "message"),
    [
        ((1, 0), (2, 0), "porosity_grade", "is 1, but the review's porosity marks (2) give porosity grade 2"),
        ((3, 0), (2, 0), "porosity_grade", "is 3, but the review's porosity marks (2) give porosity grade 2"),
        ((2, 0), (0, 0), "porosity_grade", "is 2, but the review's porosity marks (0) give porosity grade 0"),
        ((0, 0), (1, 0), "porosity_grade", "is 0, but the review's porosity marks (1) give porosity grade 1"),
        ((0, 0), (0, 1), "spatter_grade", "but the review's spatter marks (1) give at least spatter grade 1"),
        ((0, 1), (0, 6), "spatter_grade", "spatter marks (6) give at least spatter grade 2"),
        ((None, 2), (0, 21), "spatter_grade", "give at least spatter grade 3"),
    ],
)  # fmt: skip
def test_grades_that_contradict_the_marks_are_refused_naming_both(
    grades: tuple[int | None, int | None], counts: tuple[int, int], field: str, message: str
) -> None:
    with pytest.raises(MarkError) as info:
        grades_with_marks(*grades, _marks(*counts))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: is ") and message in str(info.value)


def test_the_thresholds_come_from_the_grading_config() -> None:
    wide = GradingConfig(porosity_thresholds=(1, 3, 5), spatter_thresholds=(2, 4, 8))
    assert grades_with_marks(1, 0, _marks(2, 1), wide) == (1, 0)  # 2 pores: grade 1 here, 2 by default
    assert grades_with_marks(None, None, _marks(5, 0), wide) == (3, None)
    with pytest.raises(MarkError, match=r"grade 1 from 1, 2 from 3, 3 from 5 pores"):
        grades_with_marks(2, 0, _marks(2, 0), wide)
    with pytest.raises(MarkError, match=r"porosity grade 2 \(grade 1 from 1, 2 from 2, 3 from 4 pores\)"):
        grades_with_marks(1, 0, _marks(2, 0))  # the defaults (1, 2, 4)
