"""The model card's runtime-agreement section (written by scripts/measure_runtimes.py)."""

from __future__ import annotations

from inspection.train.card import runtime_section, with_runtime_section


def _doc(porosity_same: float) -> dict[str, object]:
    agreement = {
        "images": 610,
        "grade_agreement": {"porosity": porosity_same, "spatter": 0.995},
        "review_agreement": 0.985,
        "max_prob_diff": {"porosity": 0.34, "spatter": 0.40},
        "mean_prob_diff": {"porosity": 0.0044, "spatter": 0.0036},
    }
    return {
        "measured": "2026-12-02",
        "calibration": {"tiles": 414},
        "comparisons": [{"name": "onnx-int8 vs onnx (full decode)", "datasets": {"images": agreement}}],
    }


def test_section_tabulates_every_comparison_and_data_set() -> None:
    text = runtime_section(_doc(0.987))
    assert "| onnx-int8 vs onnx (full decode) | images | 610 | 0.987 | 0.995 | 0.985 |" in text
    assert "414 tiles" in text and "2026-12-02" in text


def test_section_is_replaced_in_place_not_duplicated() -> None:
    card = "# Model card\n\n## Data\nx\n"
    once = with_runtime_section(card, runtime_section(_doc(0.9)))
    assert once.startswith(card.rstrip("\n")) and "| 0.900 |" in once
    twice = with_runtime_section(once + "\n## Later section\ny\n", runtime_section(_doc(0.8)))
    assert twice.count("runtime-agreement:begin") == 1
    assert "| 0.800 |" in twice and "| 0.900 |" not in twice
    assert twice.rstrip().endswith("## Later section\ny")


def test_reading_states_the_measured_share_of_changed_grades() -> None:
    doc = _doc(0.9)
    base = doc["comparisons"][0]["datasets"]["images"]  # type: ignore[index]
    doc["comparisons"] = [  # type: ignore[index]
        {"name": "default (onnx-int8, reduced decode) vs torch full decode", "datasets": {"images": base}},
        {
            "name": "re-encoded (q95) vs original (onnx, full decode)",
            "datasets": {"images": {**base, "grade_agreement": {"porosity": 0.98, "spatter": 1.0}}},
        },
    ]
    text = runtime_section(doc)
    assert "The default runtime changes 10.0 % (images) of the porosity grades against the reference" in text
    assert "against 2.0 % (images) for the re-encode." in text
    assert "The default runtime changes" not in runtime_section(_doc(0.9))  # no default row measured
