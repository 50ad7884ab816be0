"""``weldinspect train --from-store``: reviewed inspections -> data set -> challenger -> comparison report.

A SQLite store is filled once per module with synthetic welds (``inspection.data.synth``) that the
tiny test model inspected, signed in the ledger, and reviewed with marks (boxes, points, a kept model
finding), grades only, a not-gradable flag, a second review that supersedes a first, and one
inspection left unreviewed. The command runs end to end on it with a two-step training config.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.cli import app
from inspection.data.manifest import read_manifest
from inspection.data.splits import stable_group_split as split_groups
from inspection.data.synth import generate_weld
from inspection.data.synth import write_dataset as write_synth_dataset
from inspection.evidence.keys import init_key, load_signer
from inspection.evidence.ledger import Ledger, record_inspection, record_review
from inspection.model.files import sha256_file
from inspection.pipeline import Inspector
from inspection.store import Store
from inspection.train.compare import GRADE_COLUMNS, confusion, decide
from inspection.train.review_data import (
    POINT_BOX_FRACTION,
    ReviewedPhoto,
    finding_object,
    group_of,
    photo_labels,
    point_box,
)
from inspection.types import InspectionContext, grade_from_count

SIZE = 160
PHOTOS_PER_PART = 3
PARTS = (("M-1", "P-1"), ("M-1", "P-2"), ("M-1", "P-3"), ("M-2", "P-1"), ("M-2", "P-7"), ("M-3", None))
SEED = 7


def _jpeg(image: np.ndarray) -> bytes:
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return enc.tobytes()


@dataclass
class Photo:
    """What the fixture recorded for one inspection (the expected labels)."""

    inspection_id: str
    group: str
    stored_porosity: int | None
    porosity_grade: int | None = None
    spatter_grade: int | None = None
    pores: list[list[float]] = field(default_factory=list)
    spatter: list[list[float]] = field(default_factory=list)
    excluded: str | None = None
    reviewed: bool = True


@dataclass
class StoreFixture:
    home: Path
    url: str
    photos: list[Photo]
    points_marked: int
    model_kept: int
    from_findings: int


def _fill(home: Path, champion: Path) -> StoreFixture:
    init_key(home / "keys", station_id="S1")
    url = f"sqlite:///{home / 'weldinspect.db'}"
    store = Store.open(url, home / "images")
    ledger = Ledger(store, load_signer(home / "keys"))
    inspector = Inspector.from_artifact(champion, backend="torch", threads=1)
    rng = np.random.default_rng(SEED)
    photos: list[Photo] = []
    points = kept = 0
    k = 0
    for serial, part in PARTS:
        for j in range(PHOTOS_PER_PART):
            n_pores = 0 if j == 0 else int(rng.integers(1, 4))  # every part has a photo of a good weld
            weld = generate_weld(
                rng, width=SIZE, height=SIZE, n_pores=n_pores, n_spatter=int(rng.integers(0, 3))
            )
            data = _jpeg(weld.image)
            ctx = InspectionContext(machine_serial=serial, part_id=part, station_id="S1")
            result = inspector.inspect(data, ctx)
            iid, _ = record_inspection(store, ledger, result, data, config_sha256=inspector.config_sha256)
            stored = None if result.porosity is None else result.porosity.grade
            photo = Photo(iid, group_of(serial, part, "S1"), stored)
            pores = [[b.x0, b.y0, b.x1, b.y1] for b in weld.boxes if b.label == "porosity"]
            spatter = [[b.x0, b.y0, b.x1, b.y1] for b in weld.boxes if b.label == "spatter"]
            por, spa = grade_from_count(len(pores), (1, 2, 4)), grade_from_count(len(spatter), (1, 6, 21))
            marks: list[dict[str, Any]] | None = []
            reason = None
            if k == 1:  # not gradable
                photo.excluded, reason, por, spa, marks = (
                    "not_gradable",
                    "glare over the seam",
                    None,
                    None,
                    None,
                )
            elif k == 2:  # grades only, no pores: usable, no boxes
                marks, por, pores = None, 0, []
            elif k == 7:  # grades only, equal to the model's circles: the circles become the pores
                circles = [
                    finding_object(
                        {"kind": f.kind.value, "x": f.x, "y": f.y, "diameter_px": f.diameter_px}, SIZE, SIZE
                    )
                    for f in result.findings
                ]
                pores = [list(o.box) for o in circles if o is not None and o.label == "porosity"]
                marks, por = None, grade_from_count(len(pores), (1, 2, 4))
            elif k == 4:  # says pores, marks none, and the model's circles are not that grade
                model_pores = sum(1 for f in result.findings if f.kind.value == "porosity")
                por = 3 if grade_from_count(model_pores, (1, 2, 4)) != 3 else 1
                marks, photo.excluded = None, "unmarked_pores"
            elif k == 13:  # never reviewed
                photo.reviewed, photo.excluded = False, "unreviewed"
            else:
                assert marks is not None
                for i, b in enumerate(pores):
                    if k % 2 == 0 and i == 0:  # a click on the pore's centre
                        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                        marks.append({"label": "porosity", "point": [round(cx, 1), round(cy, 1)]})
                        pores[i] = list(point_box(round(cx, 1), round(cy, 1), SIZE, SIZE))
                        points += 1
                    else:
                        marks.append({"label": "porosity", "box": [round(v, 1) for v in b]})
                        pores[i] = [round(v, 1) for v in b]
                marks += [{"label": "spatter", "box": [round(v, 1) for v in b]} for b in spatter]
                spatter = [[round(v, 1) for v in b] for b in spatter]
                if k == 5 and result.findings:  # a model finding the reviewer kept (moved) as a pore
                    f = result.findings[0]
                    box = [round(max(0.0, f.x - 3), 1), round(max(0.0, f.y - 3), 1)]
                    box += [round(min(SIZE, f.x + 3), 1), round(min(SIZE, f.y + 3), 1)]
                    marks.append({"label": "porosity", "box": box, "origin": "model", "finding": 0})
                    pores.append(box)
                    kept += 1
                por = grade_from_count(len(pores), (1, 2, 4))
            if k == 6:  # a first review, superseded by the one below
                record_review(
                    store, ledger, inspection_id=iid, reviewer="early", porosity_grade=3, spatter_grade=3
                )
            if photo.reviewed:
                record_review(
                    store,
                    ledger,
                    inspection_id=iid,
                    reviewer="qa",
                    porosity_grade=por,
                    spatter_grade=spa,
                    marks=marks,
                    not_gradable_reason=reason,
                )
            photo.porosity_grade, photo.spatter_grade = por, spa
            photo.pores, photo.spatter = pores, spatter if marks else []
            photos.append(photo)
            k += 1
    store.close()
    from_findings = int(bool(photos[7].pores))
    return StoreFixture(home, url, photos, points, kept, from_findings)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test model with a low peak threshold, so that its random heatmaps give findings."""
    from tests.helpers.artifacts import make_tiny_artifact

    thresholds = {"peak": {"porosity": 0.05, "spatter": 0.05}, "max_peaks": 2}
    return make_tiny_artifact(tmp_path_factory.mktemp("champion"), thresholds=thresholds)


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, champion: Path) -> StoreFixture:
    return _fill(tmp_path_factory.mktemp("store"), champion)


def _config(tmp: Path) -> Path:
    path = tmp / "tiny.yaml"
    path.write_text(
        "name: from-store-test\narch: tiny\nembed_dim: 16\nepochs: 1\nsteps_per_epoch: 2\nbatch_size: 2\n"
        f"warmup_steps: 1\nthreads: 1\nseed: 3\ndata:\n  cache_dir: {tmp / 'cache'}\n  cache_scale: 1.5\n"
        "spatter:\n  mm_per_px: 0.5\n"
    )
    return path


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["train", *args])


@dataclass
class Run:
    out: Path
    output: str
    report: dict[str, Any]
    base: Path


@pytest.fixture(scope="module")
def run(filled: StoreFixture, champion: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("run")
    base = tmp / "base"
    write_synth_dataset(base, 3, seed=11, width=SIZE, height=SIZE)
    out = tmp / "out"
    result = _invoke(
        "--from-store", filled.url, "--config", str(_config(tmp)), "--champion", str(champion),
        "--out", str(out), "--base", str(base), "--seed", str(SEED), "--models-root", str(tmp / "models"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    return Run(out, result.output, json.loads((out / "report.json").read_text()), base)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- the data set --------------------------------------------------------------------------------


def test_manifest_holds_the_usable_reviews_with_marks_as_boxes(run: Run, filled: StoreFixture) -> None:
    rows = {r["inspection_id"]: r for r in _lines(run.out / "annotations.jsonl")}
    usable = [p for p in filled.photos if p.excluded is None]
    assert set(rows) == {p.inspection_id for p in usable}  # not gradable, unmarked, unreviewed left out
    for p in usable:
        row = rows[p.inspection_id]
        pores = [o["box"] for o in row["objects"] if o["label"] == "porosity"]
        spatter = [o["box"] for o in row["objects"] if o["label"] == "spatter"]
        assert np.allclose(sorted(pores), sorted(p.pores), atol=0.051) or pores == p.pores == [], p
        assert np.allclose(sorted(spatter), sorted(p.spatter), atol=0.051) or spatter == p.spatter == [], p
        assert row["group"] == p.group and row["reviewer"] == "qa"  # the later review wins
        assert row["grades"] == {"porosity": p.porosity_grade, "spatter": p.spatter_grade}
        image = run.out / row["image"]
        assert sha256_file(image) == row["sha256"]  # the stored bytes, unchanged
    records, report = read_manifest(run.out / "annotations.jsonl", check_images=True)
    assert report.ok and len(records) == len(usable)  # the weld-porosity schema, readable as it is
    data = run.report["data"]
    expected = Counter(p.excluded for p in filled.photos if p.excluded not in (None, "unreviewed"))
    assert {k: v for k, v in data["excluded"].items() if v} == dict(expected)
    assert data["reviewed_inspections"] == len(filled.photos) - 1
    assert data["inspections_in_store"] == len(filled.photos)
    assert data["point_marks_as_boxes"] == filled.points_marked >= 1
    assert data["model_findings_kept"] == filled.model_kept + len(filled.photos[7].pores) >= 1
    assert data["label_sources"]["grade_0"] == 2 - filled.from_findings
    assert data["label_sources"]["model_findings"] == filled.from_findings
    assert run.report["manifest"]["sha256"] == sha256_file(run.out / "annotations.jsonl")


def test_point_marks_become_boxes_of_the_documented_size() -> None:
    x0, y0, x1, y1 = point_box(80.0, 50.0, SIZE, SIZE)
    assert (x1 - x0, y1 - y0) == pytest.approx((POINT_BOX_FRACTION * SIZE,) * 2, abs=0.11)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((80.0, 50.0), abs=0.06)
    assert point_box(1.0, 1.0, 640, 480)[:2] == (0.0, 0.0)  # clipped to the image
    assert point_box(10.0, 10.0, 20, 20)[2] - point_box(10.0, 10.0, 20, 20)[0] == pytest.approx(
        4.0
    )  # min side


def test_groups_are_never_split(run: Run, filled: StoreFixture) -> None:
    train = _lines(run.out / "train.jsonl")
    held = _lines(run.out / "eval.jsonl")
    train_groups, eval_groups = {r["group"] for r in train}, {r["group"] for r in held}
    assert train_groups and eval_groups and not train_groups & eval_groups
    split = json.loads((run.out / "split.json").read_text())
    assert set(split["eval_groups"]) == eval_groups and set(split["train_groups"]) == train_groups
    assert "M-3/station-S1" in train_groups | eval_groups  # no part id: the station stands in
    base_names = {r["image"] for r in _lines(run.base / "annotations.jsonl")}
    assert not base_names & {r["image"] for r in held}  # base photos train only
    assert run.report["training"]["base_photos"] == 3
    assert run.report["training"]["reviewed_train_photos"] == len(train)


@pytest.mark.parametrize(
    ("marks", "por", "not_gradable", "findings", "expected"),
    [
        (None, None, "glare", (), "not_gradable"),
        (None, None, None, (), "no_labels"),
        (None, 0, None, (), ("grade_0", 0)),
        (
            None,
            1,
            None,
            ({"kind": "porosity", "x": 5.0, "y": 5.0, "diameter_px": 4.0},),
            ("model_findings", 1),
        ),
        (None, 2, None, ({"kind": "porosity", "x": 5.0, "y": 5.0, "diameter_px": 4.0},), "unmarked_pores"),
        ([], 2, None, (), ("marks", 0)),  # marked: no pores, whatever the grade says
        (
            [{"label": "porosity", "point": [9.0, 9.0]}, {"label": "spatter", "box": [1, 1, 3, 3]}],
            1,
            None,
            (),
            ("marks", 1),
        ),
    ],
)
def test_photo_labels_rules(
    marks: Any, por: int | None, not_gradable: str | None, findings: Any, expected: Any
) -> None:
    photo = ReviewedPhoto(
        "i", "r", "qa", "t", "0" * 64, "x", "image/jpeg", 20, 20, "M", "P", "S", por, None,
        None if marks is None else tuple(marks), not_gradable, tuple(findings),
    )  # fmt: skip
    got = photo_labels(photo)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert not isinstance(got, str) and (got.source, got.count("porosity")) == expected


def test_split_is_per_group_deterministic_and_stable_as_groups_arrive() -> None:
    groups = [f"M-{i}/P-{j}" for i in range(4) for j in range(5)]
    train, held = split_groups(groups, eval_share=0.3, seed=1)
    assert (train, held) == split_groups(list(reversed(groups)), eval_share=0.3, seed=1)
    assert held and train and not set(train) & set(held) and 2 <= len(held) <= 12
    more_train, more_held = split_groups([*groups, "M-9/P-1", "M-9/P-2"], eval_share=0.3, seed=1)
    assert set(held) <= set(more_held) and set(train) <= set(more_train)  # nobody changes side
    assert (
        split_groups(["a", "b"], eval_share=0.01, seed=1)[1]
        and split_groups(["a", "b"], eval_share=0.99, seed=1)[0]
    )
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_groups(["a"], eval_share=0.3, seed=1)


# ---- the report ---------------------------------------------------------------------------------


def test_report_numbers_come_from_the_held_out_data(run: Run, filled: StoreFixture, champion: Path) -> None:
    rep = run.report
    held = _lines(run.out / "eval.jsonl")
    by_id = {p.inspection_id: p for p in filled.photos}
    n_boxes = sum(1 for r in held for o in r["objects"] if o["label"] == "porosity")
    n_good = sum(1 for r in held if not any(o["label"] == "porosity" for o in r["objects"]))
    for role in ("champion", "challenger"):
        m = rep[role]
        assert m["confusion"]["porosity"]["total"] == len(held) == m["figures"]["photos"]
        assert m["confusion"]["spatter"]["total"] == len(held)
        assert sum(map(sum, m["confusion"]["porosity"]["matrix"])) == len(held)
        assert m["figures"]["recall"]["total"] == n_boxes
        assert m["figures"]["findings_per_pore_free_photo"]["total"] == n_good
        assert all(p["boxes"] == n_boxes and p["good_photos"] == n_good for p in m["froc"])
        recalls = [p["recall"] for p in m["froc"] if p["recall"] is not None]
        assert recalls == sorted(recalls, reverse=True)  # FROC: non-increasing in the threshold
        assert m["confusion"]["porosity"]["columns"] == list(GRADE_COLUMNS)
    # the champion is the model that made the stored results: its column is the stored grade
    expected = [[0] * 5 for _ in range(4)]
    for r in held:
        p = by_id[r["inspection_id"]]
        assert p.porosity_grade is not None
        expected[p.porosity_grade][4 if p.stored_porosity is None else p.stored_porosity] += 1
    assert rep["champion"]["confusion"]["porosity"]["matrix"] == expected
    assert rep["champion"]["sha256"] == sha256_file(champion / "model.safetensors")
    challenger = run.out / "challenger"
    assert (
        rep["challenger"]["sha256"]
        == sha256_file(challenger / "model.safetensors")
        != rep["champion"]["sha256"]
    )
    # the verdict is the documented rule applied to the headline figures
    verdict = decide(rep["champion"]["headline"], rep["challenger"]["headline"])
    assert rep["verdict"]["challenger_better"] == verdict.better
    assert rep["verdict"]["text"] in ("challenger better", "challenger not better")
    assert rep["metrics"] == rep["challenger"]["metrics"]
    assert rep["metrics"]["held_out_pore_boxes"] == n_boxes
    assert rep["metrics"]["held_out_pore_recall"] == rep["challenger"]["figures"]["recall"]["value"]
    # the challenger is a loadable artifact, fine-tuned from the champion
    inspector = Inspector.from_artifact(challenger, backend="torch", threads=1)
    assert inspector.grader.info.version.startswith("0.0.1+review.")
    config = json.loads((challenger / "config.json").read_text())
    assert config["provenance"]["init"]["sha256"] == rep["champion"]["sha256"]
    assert config["provenance"]["training_manifest_sha256"] == rep["manifest"]["train_sha256"]
    assert inspector.inspect(run.out / held[0]["image"]).model.sha256 == rep["challenger"]["sha256"]


def test_html_report_is_self_contained_with_tables_and_froc(run: Run) -> None:
    html = (run.out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "<table>" in html
    assert run.report["verdict"]["text"] in html and run.report["challenger"]["sha256"] in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<script" not in html and "<link" not in html
    assert "report.json" in run.output and "weldinspect model promote" in run.output
    assert run.report["next"][1] in run.output


def test_model_promote_accepts_the_report(run: Run, filled: StoreFixture, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(filled.home, home)
    url = f"sqlite:///{home / 'weldinspect.db'}"
    rep = run.report
    root = tmp_path / "models"
    target = root / rep["challenger"]["name"] / rep["challenger"]["version"]
    shutil.copytree(run.out / "challenger", target)
    result = CliRunner().invoke(
        app,
        ["model", "promote", str(target), "--models-root", str(root), "--db", url, "--home", str(home),
         "--report", str(run.out / "report.json"), "--approved-by", "qa-lead"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    from inspection.evidence.promotion import current_model

    with Store.open(url, home / "images") as store:
        decision = current_model(store)
    assert decision is not None and decision.model.sha256 == rep["challenger"]["sha256"]
    assert decision.report is not None and decision.report["sha256"] == sha256_file(run.out / "report.json")
    assert decision.data["metrics"] == json.loads(json.dumps(rep["metrics"]))
    # the next round's champion is the promoted model, found through the store
    out = tmp_path / "round2"
    again = _invoke(
        "--from-store", url, "--home", str(home), "--models-root", str(root), "--config",
        str(_config(tmp_path)), "--out", str(out), "--seed", str(SEED), "--eval-share", "0.5",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "the store's current model" in again.output
    assert json.loads((out / "report.json").read_text())["champion"]["sha256"] == rep["challenger"]["sha256"]


# ---- verdict and confusion (pure) ----------------------------------------------------------------


def _head(
    recall: float | None, fpg: float | None = 0.2, fa: float | None = 0.1, agree: float | None = 0.5
) -> dict[str, Any]:
    return {
        "pore_recall": recall,
        "findings_per_good_photo": fpg,
        "false_accept": fa,
        "porosity_grade_agreement": agree,
    }


@pytest.mark.parametrize(
    ("champion", "challenger", "better", "reason"),
    [
        (_head(0.5), _head(0.6), True, "pore_recall: champion 0.5, challenger 0.6 (better)"),
        (_head(0.5), _head(0.6, fpg=0.29), True, "within tolerance"),
        (_head(0.5), _head(0.6, fpg=0.31), False, "worse than the champion: findings_per_good_photo"),
        (_head(0.5), _head(0.4, fa=0.0), False, "worse than the champion: pore_recall"),
        (_head(0.5), _head(0.5), False, "no figure is strictly better"),
        (_head(None), _head(None, fa=0.0), False, "pore recall is not measurable"),
        (
            _head(0.5, fpg=None),
            _head(0.5, fpg=None, agree=0.7),
            True,
            "findings_per_good_photo: not measurable",
        ),
    ],
)
def test_verdict_rule(
    champion: dict[str, Any], challenger: dict[str, Any], better: bool, reason: str
) -> None:
    verdict = decide(champion, challenger)
    assert verdict.better is better
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_confusion_counts_only_graded_photos_and_silent_misses() -> None:
    c = confusion([0, 2, 3, None, 1], [0, 1, None, 2, 1], [False, False, True, False, True])
    assert c["total"] == 4 and c["matrix"][2][1] == 1 and c["matrix"][3][4] == 1
    assert c["exact_agreement"] == {"count": 2, "total": 4, "value": 0.5}
    assert c["graded_lower_without_review"]["count"] == 1 and c["sent_to_review"] == 2


# ---- errors: one line, exit 2, never a traceback --------------------------------------------------


def _fresh(tmp: Path, name: str) -> str:
    url = f"sqlite:///{tmp / name / 'weldinspect.db'}"
    (tmp / name).mkdir()
    Store.open(url, tmp / name / "images").close()
    return url


def test_errors_name_what_is_missing(tmp_path: Path, champion: Path, filled: StoreFixture) -> None:
    cfg = str(_config(tmp_path))
    common = ["--config", cfg, "--champion", str(champion)]
    url = filled.url

    def out(name: str) -> list[str]:
        return ["--out", str(tmp_path / name)]

    cases: list[tuple[list[str], str]] = [
        (["--from-store", str(tmp_path / "absent.db"), *common], "does not exist"),
        (["--from-store", _fresh(tmp_path, "empty"), *common, *out("o1")], "no inspections"),
        (["--from-store", url, *common, "--min-groups", "9", *out("o2")], "at least 9 are needed"),
        (["--from-store", url, *common, "--eval-share", "1.5", *out("o3")], "--eval-share"),
        (
            ["--from-store", url, *common, "--base", str(tmp_path / "nobase"), *out("o4")],
            "annotations.jsonl is",
        ),
        (
            ["--from-store", url, "--config", cfg, "--champion", str(tmp_path / "nomodel")],
            "is not a directory",
        ),
        (["--from-store", url, "--config", str(tmp_path / "nocfg.yaml")], "does not exist"),
        ([], "--from-store DB_URL"),
    ]
    for args, message in cases:
        result = _invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_store_without_reviews_or_with_one_part(tmp_path: Path, champion: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    init_key(home / "keys", station_id="S1")
    url = f"sqlite:///{home / 'weldinspect.db'}"
    store = Store.open(url, home / "images")
    ledger = Ledger(store, load_signer(home / "keys"))
    inspector = Inspector.from_artifact(champion, backend="torch", threads=1)
    ids = []
    for seed in (1, 2):
        data = _jpeg(
            generate_weld(np.random.default_rng(seed), width=64, height=64, n_pores=1, n_spatter=0).image
        )
        result = inspector.inspect(data, InspectionContext(machine_serial="M-1", part_id="P-1"))
        ids.append(record_inspection(store, ledger, result, data, config_sha256=inspector.config_sha256)[0])
    args = ["--from-store", url, "--config", str(_config(tmp_path)), "--champion", str(champion)]
    result = _invoke(*args, "--out", str(tmp_path / "a"))
    assert result.exit_code == 2 and "2 inspection(s) but no reviewed ones" in result.output
    for iid in ids:
        record_review(
            store, ledger, inspection_id=iid, reviewer="qa", porosity_grade=0, spatter_grade=0, marks=[]
        )
    store.close()
    result = _invoke(*args, "--out", str(tmp_path / "b"))
    assert result.exit_code == 2 and "1 group(s) (M-1/P-1)" in result.output
    out = tmp_path / "c"
    out.mkdir()
    (out / "report.json").write_text("{}")
    result = _invoke(*args, "--out", str(out))
    assert result.exit_code == 2 and "already holds a report.json" in result.output
