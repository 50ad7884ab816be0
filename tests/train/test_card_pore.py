"""The model card's pore-level section: rows per run and held-out weld, FROC operating points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from inspection.train.card import load_pore_evals, pore_section, with_pore_section


def _rate(count: int, total: int) -> dict[str, Any]:
    return {"count": count, "total": total, "value": count / total if total else None}


def _eval(recall: int, fp_curve: list[tuple[float, float, float]]) -> dict[str, Any]:
    held = {
        "photos": 10, "recall": _rate(recall, 20), "findings_per_photo": {"value": 1.5},
        "false_accept": _rate(1, 8), "graded_ge1": _rate(9, 10), "review": _rate(2, 10),
    }  # fmt: skip
    good = {"findings_per_photo": {"value": 0.25}, "graded_ge2_without_review": _rate(0, 50)}
    return {
        "operating_threshold": 0.3,
        "per_fold": {"weld01": {"held_out": held, "good_weld_crops": good}},
        "froc_pooled": [
            {"threshold": t, "recall": r, "findings_per_good_photo": fp} for t, r, fp in fp_curve
        ],
    }


def test_pore_section_lists_every_run_and_the_best_recall_within_the_false_alarm_budget() -> None:
    curve_a = [(0.1, 0.9, 3.0), (0.2, 0.7, 0.9), (0.3, 0.5, 0.4)]
    curve_b = [(0.1, 0.6, 0.2)]
    text = pore_section({"new": _eval(14, curve_a), "old": _eval(8, curve_b)})
    assert "| new | weld01 | 10 | 0.700 (14/20) |" in text
    assert "| old | weld01 | 10 | 0.400 (8/20) |" in text
    # within 0.5/photo the best is t 0.3 (0.5); within 1.0 it is t 0.2 (0.7); never t 0.1 (3.0/photo)
    assert "| new | 0.300 | 0.500 (t 0.300, 0.40/photo) | 0.700 (t 0.200, 0.90/photo) |" in text
    assert "| old | 0.300 | 0.600 (t 0.100, 0.20/photo) | 0.600 (t 0.100, 0.20/photo) |" in text


def test_with_pore_section_inserts_once_then_replaces() -> None:
    card = "# Model card\n\nintro\n\n## Data\n\nstuff\n"
    first = with_pore_section(card, pore_section({"a": _eval(5, [(0.2, 0.3, 0.1)])}))
    assert first.index("Pore-level validation") < first.index("## Data")
    second = with_pore_section(first, pore_section({"b": _eval(6, [(0.2, 0.3, 0.1)])}))
    assert second.count("Pore-level validation") == 1
    assert "| b | weld01" in second and "| a | weld01" not in second
    assert second.endswith("## Data\n\nstuff\n")


def test_story_agreement_per_weld_and_pooled_and_n_a_for_older_evaluations() -> None:
    ev = _eval(14, [(0.2, 0.7, 0.9)])
    fold = ev["per_fold"]["weld01"]
    fold["held_out"]["story_agreement"] = _rate(7, 8)
    fold["good_weld_crops"]["story_agreement"] = _rate(48, 50)
    text = pore_section({"new": ev, "old": _eval(8, [(0.1, 0.6, 0.2)])})
    assert "| 0.200 (2/10) | 0.875 (7/8) | 0.250 |" in text  # review, one story, good-crop findings
    assert "new 0.948 (55/58); old n/a." in text


def test_corrected_label_runs_and_the_zero_rule_are_reported(tmp_path: Path) -> None:
    run = tmp_path / "lowo-x"
    run.mkdir()
    raw = _eval(10, [(0.2, 0.5, 0.9)])
    raw["zero_rule"] = {
        "pooled": 0.8,
        "per_fold": {
            "weld01": {"cross_fold_rule": 0.7, "cross_fold": {"held_out": {"false_accept": _rate(1, 8)}}}
        },
    }
    fixed = _eval(12, [(0.2, 0.6, 0.9)])
    fixed["label_corrections"] = {
        "sources": ["data/label-corrections"],
        "corrections": 3,
        "summary": "3 labels changed",
    }
    (run / "pore_eval.json").write_text(json.dumps(raw))
    evals = load_pore_evals([run, tmp_path / "absent"])
    assert list(evals) == ["lowo-x"]  # no corrected evaluation yet, an absent run is skipped
    (run / "pore_eval_corrected.json").write_text(json.dumps(fixed))
    evals = load_pore_evals([run])
    assert list(evals) == ["lowo-x", "lowo-x + corrected labels"]
    text = pore_section(evals)
    assert "| lowo-x | weld01 | 10 | 0.500 (10/20) |" in text
    assert "| lowo-x + corrected labels | weld01 | 10 | 0.600 (12/20) |" in text
    assert "3 corrections from data/label-corrections (3 labels changed)" in text
    assert "lowo-x pooled 0.800, cross-fold weld01 0.700 (false accept 0.125 (1/8))" in text


def test_scale_table_shows_recall_per_factor_and_the_largest_change() -> None:
    ev = _eval(10, [(0.2, 0.5, 0.9)])
    ev["per_fold"]["weld01"]["rescaled"] = {
        f: {"recall": _rate(n, 20), "findings_per_photo": {"value": 2.0}}
        for f, n in (("0.5", 8), ("1.0", 10), ("2.0", 11))
    }
    text = pore_section({"run": ev})
    assert "| run | held-out weld | boxes | x0.5 | x1.0 | x2.0 | largest change (points) |" in text
    assert "| run | weld01 | 20 | 0.400 (2.00) | 0.500 (2.00) | 0.550 (2.00) | 10.0 |" in text
    assert "Scale (issue 17" not in pore_section({"run": _eval(10, [(0.2, 0.5, 0.9)])})
