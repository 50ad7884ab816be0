"""Control-chart maths against hand-computed values, subgrouping, and the SVG rendering."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from inspection.service.trend import TrendPoint
from inspection.service.web.charts import Subgroup, ewma_chart, grade_sigma, p_chart, render_svg, subgroups


def _sg(label: str, grades: list[int]) -> Subgroup:
    return Subgroup(label, len(grades), sum(g >= 1 for g in grades), sum(grades), sum(g * g for g in grades))


def test_p_chart_limits_vary_with_subgroup_size() -> None:
    # p_bar = 20 / 200 = 0.1; n=100: 0.1 +- 3*sqrt(0.09/100) = 0.1 +- 0.09; n=50: +- 0.127279
    groups = [Subgroup("a", 100, 5, 5, 5), Subgroup("b", 50, 15, 15, 15), Subgroup("c", 50, 0, 0, 0)]
    chart = p_chart(groups, "porosity")
    a, b, c = chart.points
    assert [p.centre for p in chart.points] == pytest.approx([0.1, 0.1, 0.1])
    assert (a.lcl, a.ucl) == pytest.approx((0.01, 0.19))
    assert (b.lcl, b.ucl) == pytest.approx((0.0, 0.227279), abs=1e-6)  # LCL floored at 0
    assert [a.value, b.value, c.value] == pytest.approx([0.05, 0.3, 0.0])
    assert [p.label for p in chart.out_of_control] == ["b"]  # 0.3 > 0.2273


def test_p_chart_upper_limit_is_capped_at_one() -> None:
    chart = p_chart([Subgroup("x", 1, 1, 2, 4), Subgroup("y", 1, 0, 0, 0)])
    assert all(p.ucl <= 1.0 and p.lcl >= 0.0 for p in chart.points)
    assert chart.points[0].centre == pytest.approx(0.5)


def test_ewma_matches_hand_computation() -> None:
    # grades 0, 3, 0 (n = 1 each): mu0 = 1, sigma^2 = (0 + 9 + 0)/3 - 1 = 2
    # z = 0.8, 1.24, 0.992; Var factors sum (0.64^k): 1, 1.64, 2.0496
    chart = ewma_chart([_sg("1", [0]), _sg("2", [3]), _sg("3", [0])], "spatter")
    assert [p.value for p in chart.points] == pytest.approx([0.8, 1.24, 0.992])
    half = [3 * math.sqrt(2) * 0.2 * math.sqrt(a) for a in (1.0, 1.64, 2.0496)]
    assert half == pytest.approx([0.848528, 1.086646, 1.214789], abs=1e-6)
    assert [p.ucl for p in chart.points] == pytest.approx([1 + h for h in half])
    assert [p.lcl for p in chart.points] == pytest.approx([max(0.0, 1 - h) for h in half])
    assert chart.out_of_control == ()


def test_ewma_constant_n_matches_the_textbook_limit() -> None:
    groups = [_sg(str(i), [0, 1, 2, 1]) for i in range(30)]  # n = 4, sigma^2 = 6/4 - 1 = 0.5
    chart = ewma_chart(groups)
    sigma, lam, n = math.sqrt(0.5), 0.2, 4
    for i, p in enumerate(chart.points, start=1):
        expected = 3 * sigma / math.sqrt(n) * math.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
        assert p.ucl - p.centre == pytest.approx(expected)


def test_ewma_flags_a_sustained_shift() -> None:
    groups = [_sg(str(i), [0, 0, 1, 0, 0]) for i in range(10)] + [
        _sg(f"s{i}", [2, 3, 2, 2, 3]) for i in range(4)
    ]
    chart = ewma_chart(groups)
    assert chart.out_of_control and chart.out_of_control[-1].label == "s3"


def test_grade_sigma_is_the_population_sd_of_all_grades() -> None:
    grades = [[0, 1, 3], [2, 2]]
    flat = [g for grp in grades for g in grp]
    mu = sum(flat) / len(flat)
    expected = math.sqrt(sum((g - mu) ** 2 for g in flat) / len(flat))
    assert grade_sigma([_sg("a", grades[0]), _sg("b", grades[1])]) == pytest.approx(expected)


T0 = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)
POINTS = [
    TrendPoint(T0, 0, 1, False),
    TrendPoint(T0 + timedelta(hours=1), 2, None, False),  # next UTC day
    TrendPoint(T0 + timedelta(hours=3), None, None, True),  # ungraded
    TrendPoint(T0 + timedelta(hours=30), 1, 0, False),
]


@pytest.mark.parametrize(
    ("defect", "bucket", "size", "expected"),
    [
        ("porosity", "day", 20, [("2026-03-01", 1, 0, 0), ("2026-03-02", 1, 1, 2), ("2026-03-03", 1, 1, 1)]),
        ("spatter", "day", 20, [("2026-03-01", 1, 1, 1), ("2026-03-03", 1, 0, 0)]),
        ("porosity", "count", 2, [("1-2", 2, 1, 2), ("3-4", 1, 1, 1)]),
    ],
)
def test_subgroups(defect: str, bucket: str, size: int, expected: list[tuple[str, int, int, int]]) -> None:
    got = subgroups(list(reversed(POINTS)), defect, bucket=bucket, size=size)
    assert [(g.label, g.n, g.defective, g.grade_sum) for g in got] == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"defect": "crack"}, "unknown defect"),
        ({"bucket": "week"}, "unknown subgroup"),
        ({"size": 0}, ">= 1"),
    ],
)
def test_subgroups_refuse_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"defect": "porosity", "bucket": "day", "size": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        subgroups(POINTS, str(args["defect"]), bucket=str(args["bucket"]), size=int(args["size"]))  # type: ignore[call-overload]


def test_subgroup_validates_counts() -> None:
    with pytest.raises(ValueError, match="defective <= n"):
        Subgroup("x", 2, 3, 3, 3)


def test_svg_is_well_formed_and_escapes_labels() -> None:
    chart = p_chart([Subgroup("<b>&", 100, 2, 2, 2), Subgroup("2", 100, 90, 90, 90)], "porosity")
    svg = render_svg(chart)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "<b>&" not in svg and "&lt;b&gt;&amp;" in svg
    circles = root.findall(".//{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 2
    assert "OUT OF CONTROL" in svg  # p_bar 0.46, n = 100: UCL 0.61 < 0.9
    empty = ET.fromstring(render_svg(p_chart([], "spatter")))
    assert "no graded inspections" in ET.tostring(empty, encoding="unicode")
