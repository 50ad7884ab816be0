"""Pore-level evaluation: matching rules, rates, FROC, false accepts, good-weld crops, and the
``scripts/eval_pores.py`` fold-artifact path on a tiny synthetic LOWO run."""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from inspection.train.pore_eval import (
    GROW_FRACTION,
    PhotoOutcome,
    Rate,
    box_hit_scores,
    clean_good_boxes,
    contains,
    crop_box,
    default_thresholds,
    false_accept_rate,
    findings_per_photo,
    fit_zero_rule,
    found_boxes,
    froc,
    graded_share,
    grow_box,
    overlaps,
    parse_yolo_labels,
    recall,
    select_good_crops,
    source_group,
    story_agreement,
    summarise,
    unmatched_findings,
    with_zero_rule,
)
from inspection.types import (
    Box,
    Defect,
    Finding,
    HeadResult,
    InspectionResult,
    ModelInfo,
    QualityVerdict,
)

REPO = Path(__file__).resolve().parents[2]


def pore(x: float, y: float, score: float = 0.9, kind: Defect = Defect.POROSITY) -> Finding:
    return Finding(kind=kind, x=x, y=y, diameter_px=5.0, score=score, along_seam=0.5)


def outcome(
    pores: tuple[Box, ...] = (),
    findings: tuple[Finding, ...] = (),
    grade: int | None = 0,
    review: bool = False,
    group: str = "w",
) -> PhotoOutcome:
    return PhotoOutcome("p.jpg", group, pores, findings, grade, review)


BOX = Box(100, 100, 140, 120)  # 40 x 20: grown by 10 px left/right and 5 px top/bottom -> (90, 95, 150, 125)


# ----------------------------------------------------------------------------------------------
# matching


def test_grow_box_adds_a_quarter_of_width_and_height_per_side() -> None:
    assert grow_box(BOX).as_tuple() == (90, 95, 150, 125)
    assert grow_box(BOX, 0.0) == BOX
    with pytest.raises(ValueError, match="grow fraction must be a finite number >= 0"):
        grow_box(BOX, -0.1)


@pytest.mark.parametrize(
    ("x", "y", "found"),
    [
        (120, 110, True),  # centre of the box
        (90, 110, True),  # on the grown left edge (edges count)
        (89.9, 110, False),  # just outside the grown left edge
        (150, 125, True),  # grown bottom-right corner
        (150.1, 110, False),  # just outside on the right
        (120, 94.9, False),  # just above
        (120, 125.1, False),  # just below
        (95, 97, True),  # in the grown margin, outside the labelled box itself
    ],
)
def test_finding_centre_inside_grown_box_finds_it(x: float, y: float, found: bool) -> None:
    assert contains(grow_box(BOX), x, y) is found
    assert found_boxes([BOX], [pore(x, y)], threshold=0.5) == (found,)
    assert recall([outcome((BOX,), (pore(x, y),))], 0.5) == Rate(int(found), 1)


@pytest.mark.parametrize(
    ("score", "threshold", "found"),
    [(0.5, 0.5, True), (0.4999, 0.5, False), (0.9, 0.0, True), (0.1, 1.0, False)],
)
def test_threshold_is_inclusive_on_the_score(score: float, threshold: float, found: bool) -> None:
    assert found_boxes([BOX], [pore(120, 110, score)], threshold) == (found,)


def test_one_finding_between_touching_pores_finds_both_boxes() -> None:
    left, right = Box(100, 100, 120, 120), Box(120, 100, 140, 120)
    far = Box(300, 300, 310, 310)
    o = outcome((left, right, far), (pore(120, 110),))
    assert found_boxes(o.pores, o.findings, 0.5) == (True, True, False)
    assert recall([o], 0.5) == Rate(2, 3)
    assert unmatched_findings(o.pores, o.findings, 0.5) == ()


def test_box_hit_score_is_the_best_finding_inside() -> None:
    hits = box_hit_scores(
        [BOX, Box(0, 0, 4, 4)], [pore(120, 110, 0.4), pore(121, 111, 0.7), pore(500, 5, 0.99)]
    )
    assert hits[0] == pytest.approx(0.7)
    assert hits[1] == -np.inf


def test_unmatched_findings_are_those_in_no_grown_box() -> None:
    inside, outside, weak = pore(120, 110), pore(300, 300), pore(400, 400, 0.2)
    assert unmatched_findings([BOX], [inside, outside, weak], 0.5) == (outside,)
    assert unmatched_findings([], [inside], 0.5) == (inside,)


# ----------------------------------------------------------------------------------------------
# rates and empty cases


def test_empty_inputs_give_undefined_rates_not_zero() -> None:
    assert recall([], 0.5).value is None
    assert findings_per_photo([], 0.5).value is None
    assert false_accept_rate([]).value is None
    assert graded_share([], 1).value is None
    [point] = froc([], [], [0.5])
    assert point.to_dict()["recall"] is None and point.to_dict()["findings_per_good_photo"] is None


def test_photo_without_findings_misses_its_boxes_and_photo_without_boxes_has_no_recall() -> None:
    assert recall([outcome((BOX, Box(0, 0, 5, 5)), ())], 0.3) == Rate(0, 2)
    no_boxes = outcome((), (pore(1, 1), pore(2, 2, 0.2)))
    assert recall([no_boxes], 0.3) == Rate(0, 0)
    assert findings_per_photo([no_boxes, outcome()], 0.3) == Rate(1, 2)
    assert findings_per_photo([no_boxes, outcome()], 0.3).value == 0.5


def test_threshold_out_of_range_is_an_error_naming_the_range() -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        recall([outcome()], 1.5)
    with pytest.raises(ValueError, match=r"min_grade must be in 0\.\.3"):
        graded_share([outcome()], 4)


@pytest.mark.parametrize(
    ("has_pores", "grade", "review", "false_accept"),
    [
        (True, 0, False, True),  # pores, graded clean, nobody looks: the miss that matters
        (True, 0, True, False),  # graded clean but sent to review
        (True, 1, False, False),  # graded as porous
        (True, None, True, False),  # not graded (quality gate): reviewed
        (True, None, False, False),  # not graded: nobody was told it is clean
        (False, 0, False, False),  # no pores: a correct clean call
    ],
)
def test_false_accept_counting(has_pores: bool, grade: int | None, review: bool, false_accept: bool) -> None:
    o = outcome((BOX,) if has_pores else (), (), grade, review)
    assert o.false_accept is false_accept
    rate = false_accept_rate([o, outcome((BOX,), (), 2, False)])
    assert rate == Rate(int(false_accept), 2 if has_pores else 1)


def test_graded_share_with_and_without_review() -> None:
    os_ = [
        outcome(grade=2, review=True),
        outcome(grade=2),
        outcome(grade=1),
        outcome(grade=None, review=True),
    ]
    assert graded_share(os_, 1) == Rate(3, 4)
    assert graded_share(os_, 2) == Rate(2, 4)
    assert graded_share(os_, 2, without_review=True) == Rate(1, 4)


def test_story_agreement_counts_only_accepted_photos_at_the_threshold() -> None:
    two = (pore(10, 10, 0.9), pore(50, 50, 0.4))
    os_ = [
        outcome(findings=two, grade=2),  # 2 findings >= 0.3 -> grade 2: agrees
        outcome(findings=two, grade=1),  # disagrees at 0.3, agrees at 0.5 (one finding)
        outcome(findings=(), grade=0),  # agrees
        outcome(findings=two, grade=0, review=True),  # sent to review: not counted
        outcome(findings=two, grade=None),  # not graded: not counted
    ]
    assert story_agreement(os_, 0.3) == Rate(2, 3)
    assert story_agreement(os_, 0.5) == Rate(2, 3)  # now the first row disagrees (1 finding, grade 2)
    assert story_agreement(os_[3:], 0.3) == Rate(0, 0)
    assert summarise("w", os_, 0.3, held_out=True).story_agreement == Rate(2, 3)


def _zero(p: float, pores: bool = True, review: bool = False) -> PhotoOutcome:
    return PhotoOutcome("p.jpg", "w", (BOX,) if pores else (), (), 0, review, p)


def test_zero_rule_fit_keeps_false_accepts_within_the_target() -> None:
    # 100 photos with pores: 90 graded >= 1, 10 graded 0 (false accepts) with P(defect) 0.05..0.50
    os_ = [outcome((BOX,), (pore(120, 110),), 1) for _ in range(90)]
    os_ += [_zero(0.05 * (k + 1)) for k in range(10)]
    os_ += [_zero(0.9, pores=False), _zero(0.01, review=True)]  # a good photo; one already reviewed
    assert false_accept_rate(os_) == Rate(10, 101)
    rule = fit_zero_rule(os_, 0.02)  # 2 of 101 may stay: 0.05 and 0.10 accepted, 0.15 and up reviewed
    assert 0.10 <= rule < 0.15
    routed = with_zero_rule(os_, rule)
    assert false_accept_rate(routed) == Rate(2, 101)
    assert routed[-2].needs_review  # the good photo with P(defect) 0.9 is sent to review too
    assert fit_zero_rule(os_, 0.2) == 1.0  # already within 20 %: the rule never fires
    assert false_accept_rate(with_zero_rule(os_, 1.0)) == false_accept_rate(os_)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_zero_rule(os_, 1.5)


def test_zero_rule_with_a_zero_target_routes_every_false_accept() -> None:
    os_ = [_zero(0.3), _zero(0.6), outcome((BOX,), (pore(120, 110),), 1)]
    rule = fit_zero_rule(os_, 0.0)
    assert rule < 0.3
    assert false_accept_rate(with_zero_rule(os_, rule)) == Rate(0, 3)


def test_outcome_keeps_only_porosity_findings_from_a_result() -> None:
    result = InspectionResult(
        image_sha256="0" * 64,
        width=200,
        height=200,
        quality=QualityVerdict(True),
        seam=None,
        porosity=HeadResult(1, (0.1, 0.6, 0.2, 0.1), 0.6),
        spatter=None,
        findings=(pore(120, 110), pore(10, 10, kind=Defect.SPATTER)),
        standards=None,
        needs_review=True,
        review_reasons=("abstain:porosity",),
        model=ModelInfo("m", "1.0.0", "0" * 64),
        timings_ms={},
    )
    o = PhotoOutcome.from_result("a.jpg", "weld01", (BOX,), result)
    assert (o.grade, o.needs_review, len(o.findings)) == (1, True, 1)
    assert o.p_defect == pytest.approx(0.9)
    with pytest.raises(ValueError, match="must be porosity findings"):
        PhotoOutcome("a", "g", (), (pore(1, 1, kind=Defect.SPATTER),), 0, False)


# ----------------------------------------------------------------------------------------------
# FROC and summaries


def _random_outcomes(rng: np.random.Generator, n: int, with_pores: bool) -> list[PhotoOutcome]:
    out = []
    for _ in range(n):
        boxes = []
        if with_pores:
            for _ in range(int(rng.integers(0, 4))):
                x, y = rng.uniform(0, 180, 2)
                boxes.append(Box(x, y, x + rng.uniform(4, 20), y + rng.uniform(4, 20)))
        fs = [
            pore(float(xy[0]), float(xy[1]), score=round(float(rng.uniform(0.05, 0.99)), 3))
            for xy in rng.uniform(0, 200, (int(rng.integers(0, 6)), 2))
        ]
        fs += [  # most pores get a finding near their centre, at any score
            pore(*b.center, score=round(float(rng.uniform(0.05, 0.99)), 3))
            for b in boxes
            if rng.random() < 0.8
        ]
        out.append(outcome(tuple(boxes), tuple(fs)))
    return out


def test_froc_is_monotone_and_ends_at_zero(rng: np.random.Generator) -> None:
    labelled = _random_outcomes(rng, 30, with_pores=True)
    good = _random_outcomes(rng, 20, with_pores=False)
    ts = (*default_thresholds([*labelled, *good], 0.05), 1.0)
    points = froc(labelled, good, ts)
    assert [p.threshold for p in points] == sorted(set(ts))
    rec = [p.recall.value for p in points]
    fpp = [p.findings_per_good_photo.value for p in points]
    assert all(a is not None and b is not None and a >= b for a, b in itertools.pairwise(rec))
    assert all(a is not None and b is not None and a >= b for a, b in itertools.pairwise(fpp))
    assert points[0].recall == recall(labelled, 0.05)
    assert points[0].findings_per_good_photo == findings_per_photo(good, 0.05)
    assert rec[0] is not None and rec[0] > 0.5 and fpp[0] is not None and fpp[0] > 1.0
    assert rec[-1] == 0.0 and fpp[-1] == 0.0  # no score reaches 1.0 (all drawn below it)


def test_summary_of_a_pore_free_weld_and_json_round_trip() -> None:
    os_ = [
        outcome(grade=0, findings=(pore(5, 5, 0.6),)),
        outcome(grade=1, findings=(pore(5, 5, 0.6), pore(50, 50, 0.2))),
        outcome(grade=2, review=True),
        outcome(grade=None, review=True),
    ]
    s = summarise("weld00", os_, 0.5, held_out=True)
    assert (s.photos, s.graded, s.photos_with_pores) == (4, 3, 0)
    assert s.graded_ge1 == Rate(2, 4) and s.graded_ge1_without_review == Rate(1, 4)
    assert s.findings_per_photo == Rate(2, 4) == s.findings_per_pore_free_photo
    assert s.recall.value is None and s.false_accept.value is None
    d = json.loads(json.dumps(s.to_dict(), allow_nan=False))
    assert d["graded_ge1"] == {"count": 2, "total": 4, "value": 0.5}
    assert d["held_out"] is True and d["threshold"] == 0.5


# ----------------------------------------------------------------------------------------------
# good-weld crops


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("abc_jpg.rf.05ff78.jpg", "abc_jpg"),
        ("images/x-1.rf.9.jpg", "x-1"),
        ("plain.jpg", "plain"),
    ],
)
def test_source_group_is_the_name_before_rf(name: str, group: str) -> None:
    assert source_group(name) == group


def test_parse_yolo_labels_to_pixels_and_errors() -> None:
    [(c, b)] = parse_yolo_labels("1 0.5 0.25 0.5 0.5\n\n", 200, 100)
    assert c == 1 and b.as_tuple() == (50, 0, 150, 50) and b.label == "Good Weld"
    with pytest.raises(ValueError, match=r"lab\.txt line 1: unknown class id 3; valid: 0 Bad Weld, 1 Good"):
        parse_yolo_labels("3 0.5 0.5 0.1 0.1", 10, 10, name="lab.txt")
    with pytest.raises(ValueError, match="line 2: expected 'class cx cy w h'"):
        parse_yolo_labels("1 0.5 0.5 0.1 0.1\n1 0.5 0.5", 10, 10)


def test_good_boxes_overlapping_bad_weld_or_defect_are_dropped() -> None:
    good_a, good_b = Box(0, 0, 100, 100), Box(200, 0, 300, 100)
    labels = [(1, good_a), (1, good_b), (2, Box(250, 50, 260, 60)), (0, Box(100, 0, 150, 100))]
    assert clean_good_boxes(labels) == [good_a]  # touching the Bad Weld box's edge is no overlap
    assert overlaps(good_b, Box(250, 50, 260, 60)) and not overlaps(good_a, Box(100, 0, 150, 100))


def test_crop_box_adds_margin_rounds_out_and_clamps() -> None:
    assert crop_box(Box(10.5, 20, 110.5, 60), 640, 640, 0.1) == (0, 16, 121, 64)
    assert crop_box(Box(600, 600, 640, 640), 640, 640, 0.1) == (596, 596, 640, 640)


def test_select_one_crop_per_source_group_largest_first() -> None:
    small, big = (1, Box(0, 0, 100, 100)), (1, Box(0, 0, 200, 200))
    rows = [
        ("a.rf.2.jpg", 640, 640, [small]),
        ("a.rf.1.jpg", 640, 640, [big, small]),
        ("b.rf.1.jpg", 640, 640, [big, (0, Box(10, 10, 20, 20))]),  # blocked by a Bad Weld box
        ("c.rf.1.jpg", 640, 640, [(1, Box(0, 0, 20, 300))]),  # too narrow once cropped
        ("d.rf.9.jpg", 640, 640, [small]),
        ("d.rf.1.jpg", 640, 640, [small]),  # same size: the earlier file name wins
    ]
    crops = select_good_crops(rows, margin=0.1, min_side=32)
    assert [(c.group, c.image, c.box) for c in crops] == [
        ("a", "a.rf.1.jpg", (0, 0, 200, 200)),
        ("d", "d.rf.1.jpg", (0, 0, 100, 100)),
    ]
    assert crops[0].crop == (0, 0, 220, 220)


# ----------------------------------------------------------------------------------------------
# the script: fold artifacts of a tiny synthetic LOWO run


def _script() -> ModuleType:
    name = "eval_pores_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "eval_pores.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write_synthetic_data(shared: Path) -> list[dict[str, Any]]:
    """``shared/weld-porosity`` (8 photos, welds weldA/weldB, known pores) and
    ``shared/weld-photos-unlabelled`` (2 pore-free photos with a Good Weld box each)."""
    from PIL import Image as PILImage

    from inspection.data.synth import annotation_record, generate_weld

    rng = np.random.default_rng(17)
    labelled = shared / "weld-porosity"
    (labelled / "images").mkdir(parents=True)
    records = []
    for i in range(8):
        weld = generate_weld(rng, width=160, height=160, n_pores=i % 4, n_spatter=0, jpeg_quality=0)
        rel = f"images/s{i}.png"
        PILImage.fromarray(weld.image).save(labelled / rel)
        records.append(annotation_record(weld, rel, ("weldA", "weldB")[i % 2], f"synth:{i}"))
    (labelled / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    unlabelled = shared / "weld-photos-unlabelled"
    for sub in ("images", "labels"):
        (unlabelled / sub).mkdir(parents=True)
    for i in range(2):
        weld = generate_weld(rng, width=160, height=160, n_pores=0, n_spatter=0, jpeg_quality=0)
        PILImage.fromarray(weld.image).save(unlabelled / "images" / f"good{i}.rf.x.png")
        (unlabelled / "labels" / f"good{i}.rf.x.txt").write_text("1 0.5 0.5 0.9 0.9\n")
    return records


def test_script_evaluates_fold_artifacts_of_a_lowo_run(tmp_path: Path) -> None:
    import torch

    from inspection.model.artifact import load_artifact
    from inspection.pipeline import Inspector
    from inspection.train.config import TrainConfig
    from inspection.train.run import run_training
    from tests.train.helpers import SMALL_PRE

    shared = tmp_path / "shared"
    records = _write_synthetic_data(shared)
    cfg = TrainConfig.model_validate(
        {
            "name": "lowo-synth",
            "mode": "smoke",
            "arch": "tiny",
            "epochs": 1,
            "steps_per_epoch": 2,
            "batch_size": 2,
            "warmup_steps": 1,
            "threads": 1,
            "embed_dim": 16,
            "output_dir": str(tmp_path / "runs"),
            "preprocess": SMALL_PRE.model_dump(),
            "data": {
                "root": str(shared / "weld-porosity"),
                "folds": ["weldA", "weldB"],
                "cache_dir": str(tmp_path / "cache"),
            },
            "spatter": {"mm_per_px": 0.5},
        }
    )
    run_training(cfg)
    run_dir = cfg.run_dir
    ep = _script()
    rc = ep.main(
        [
            "--run", str(run_dir), "--data", str(shared), "--good-manifest", str(tmp_path / "absent.jsonl"),
            "--score-floor", "0.05", "--threads", "1", "--plot",
        ]
    )  # fmt: skip
    assert rc == 0
    res = json.loads((run_dir / "pore_eval.json").read_text())
    assert (run_dir / "pore_eval.froc.png").stat().st_size > 0
    calib = json.loads((run_dir / "calibration.json").read_text())
    assert set(res["per_fold"]) == {"weldA", "weldB"} and res["good_crops"]["n"] == 2
    assert res["operating_threshold"] == pytest.approx(calib["peak_thresholds"]["porosity"])
    assert res["grow_fraction"] == GROW_FRACTION
    zero = res["zero_rule"]
    assert set(zero["per_fold"]) == {"weldA", "weldB"} and 0.0 <= zero["pooled"] <= 1.0
    for fold, zr in zero["per_fold"].items():  # a rule only adds reviews: false accepts never rise
        fitted = zr["cross_fold"]["held_out"]["false_accept"]["count"]
        assert fitted <= res["per_fold"][fold]["held_out"]["false_accept"]["count"]
    for fold, fr in res["per_fold"].items():
        mine = [r for r in records if r["group"] == fold]
        n_pores = sum(o["label"] == "porosity" for r in mine for o in r["objects"])
        held = fr["held_out"]
        assert held["held_out"] is True and held["photos"] == len(mine)
        assert held["recall"]["total"] == n_pores == fr["froc"][0]["boxes"]
        assert fr["good_weld_crops"]["photos"] == 2
        # the fold artifact: the fold's best weights, the run's calibration, fitted OOD statistics
        art = Path(fr["artifact"])
        model, config, _ = load_artifact(art)
        best = torch.load(run_dir / f"fold-{fold}" / "best.pt", map_location="cpu", weights_only=True)[
            "model"
        ]
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in best.items() if not k.startswith("ood_"))
        assert int(model.ood_count) > 0
        assert config.temperatures.porosity == pytest.approx(calib["temperatures"]["porosity"])
        assert config.thresholds.abstain.porosity.max_p_defect_for_zero == pytest.approx(
            calib["abstain"]["porosity"]["max_p_defect_for_zero"]
        )
        # the headline figures equal what the artifact outputs when served as shipped
        served = Inspector.from_artifact(art, backend="torch")
        results = [served.inspect(shared / "weld-porosity" / r["image"]) for r in mine]
        n_found = sum(f.kind is Defect.POROSITY for r in results for f in r.findings)
        assert held["findings_per_photo"]["count"] == n_found
        assert held["review"]["count"] == sum(r.needs_review for r in results)
        assert held["graded_ge1"]["count"] == sum(
            r.porosity is not None and r.porosity.grade >= 1 for r in results
        )
        for key in ("recall", "findings_per_good_photo"):
            vals = [p[key] for p in fr["froc"] if p[key] is not None]
            assert vals == sorted(vals, reverse=True), key
    assert res["good_weld_crops_mean_over_folds"]["photos"] == 4  # 2 crops x 2 fold models
    assert res["held_out_pooled"]["photos"] == len(records)
    assert res["pore_free_weld"] is None  # no weld00 in this run


def test_script_skips_cleanly_without_data(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _script().main(["--artifact", str(tiny_model_dir), "--data", str(tmp_path)]) == 0
    assert "skipped: no evaluation data under" in capsys.readouterr().err


def test_script_names_a_missing_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared"
    (shared / "weld-porosity").mkdir(parents=True)
    (shared / "weld-porosity" / "annotations.jsonl").write_text("")
    assert _script().main(["--run", str(tmp_path / "run"), "--data", str(shared)]) == 2
    assert "config.resolved.yaml does not exist: --run needs a finished LOWO run" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# real data (skipped when absent)


@pytest.mark.realdata
def test_committed_good_crop_manifest_matches_the_data(unlabelled_data: Path) -> None:
    ep = _script()
    committed = ep.read_good_manifest(ep.GOOD_MANIFEST, unlabelled_data)  # also checks every sha256
    assert committed == ep.build_good_crops(unlabelled_data)
    assert len({c.group for c in committed}) == len(committed) > 100


@pytest.mark.realdata
def test_shipped_artifact_on_a_few_real_photos_is_marked_not_held_out(porosity_data: Path) -> None:
    ep = _script()
    art = REPO / "models" / "weld-grader" / "2026.12.1"
    res = ep.evaluate_artifact(
        art, crops=[], unlabelled=None, labelled_root=porosity_data, limit=2, threads=2
    )
    dev = res["dev_welds_not_held_out"]
    assert {"weld00", "weld01", "weld04"} <= set(dev)
    assert all(s["held_out"] is False for s in dev.values())
    records = ep.labelled_records(porosity_data, None, 2)
    n_pores = sum(len(ep.pores_of(r)) for r in records)
    assert sum(s["recall"]["total"] for s in dev.values()) == n_pores > 0
    assert dev["weld00"]["photos_with_pores"] == 0
    assert res["pore_free_weld"]["weld00"]["held_out"] is False
