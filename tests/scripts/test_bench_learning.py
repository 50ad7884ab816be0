"""``scripts/bench_learning.py``: the simulated station that reviews a held-out weld in rounds and
retrains after each one. End to end on synthetic welds (three "welds" of five photos) with the tiny
test model and a two-step training config; the pure parts (review order, rounds, FROC pick) table-driven.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from inspection.data.manifest import read_manifest
from inspection.data.synth import write_dataset as write_synth_dataset
from inspection.evidence.verify import verify_store
from inspection.model.artifact import read_config
from inspection.model.files import sha256_file
from inspection.store import Store
from inspection.store.models import ReviewRow
from inspection.types import grade_from_count

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "bench_learning.py"
WELDS = ("weldA", "weldB", "weldC")
PER_WELD = 5


def _script() -> ModuleType:
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location("bench_learning", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_learning"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


bl = _script()


def _data(root: Path) -> Path:
    """``root/weld-porosity``: 15 synthetic photos, five per weld group."""
    ds = root / "weld-porosity"
    write_synth_dataset(ds, len(WELDS) * PER_WELD, seed=11, width=192, height=192)
    ann = ds / "annotations.jsonl"
    lines = []
    for i, line in enumerate(ann.read_text().splitlines()):
        rec = json.loads(line)
        rec["group"] = WELDS[i % len(WELDS)]
        lines.append(json.dumps(rec))
    ann.write_text("\n".join(lines) + "\n")
    return ds


def _config(tmp: Path) -> Path:
    path = tmp / "tiny.yaml"
    path.write_text(
        "name: bench-learning-test\narch: tiny\nembed_dim: 16\nepochs: 1\nsteps_per_epoch: 2\nbatch_size: 2\n"
        f"warmup_steps: 1\nthreads: 1\nseed: 3\ndata:\n  cache_dir: {tmp / 'cache'}\n  cache_scale: 1.5\n"
        "spatter:\n  mm_per_px: 0.5\nloss:\n  balance_groups: true\n"
    )
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.helpers.artifacts import make_tiny_artifact

    tmp = tmp_path_factory.mktemp("bench")
    data = _data(tmp / "shared")
    thresholds = {"peak": {"porosity": 0.05, "spatter": 0.05}, "max_peaks": 2}
    champions = {
        w: make_tiny_artifact(tmp / f"start-{w}", seed=i, thresholds=thresholds) for i, w in enumerate(WELDS)
    }
    out = tmp / "out"
    argv = [
        "--data", str(tmp / "shared"), "--welds", "weldA,weldC", "--rounds", "1,3",
        "--config", str(_config(tmp)), "--out", str(out), "--plot", str(tmp / "curve.png"), "--threads", "1",
        "--champion", f"weldA={champions['weldA']}", "--champion", f"weldC={champions['weldC']}",
    ]  # fmt: skip
    code = bl.main(argv)
    return {"code": code, "out": out, "data": data, "champions": champions, "png": tmp / "curve.png"}


def test_rounds_review_retrain_and_measure_on_unreviewed_photos(bench: dict[str, Any]) -> None:
    assert bench["code"] == 0
    doc = json.loads((bench["out"] / "learning.json").read_text())
    assert [w["weld"] for w in doc["welds"]] == ["weldA", "weldC"]
    records, _ = read_manifest(bench["data"] / "annotations.jsonl", check_images=False)
    for w in doc["welds"]:
        assert [r["reviewed"] for r in w["rounds"]] == [0, 1, 3]
        assert w["station"]["photos"] == PER_WELD
        assert w["station"]["evaluated"] == PER_WELD - 3
        assert all(r["figures"]["photos"] == PER_WELD - 3 for r in w["rounds"])
        assert [r["reviewed_train_photos"] for r in w["rounds"][1:]] == [1, 3]
        assert w["rounds"][0]["train_wall_min"] is None
        assert all(r["train_cpu_min"] is not None and r["train_cpu_min"] >= 0 for r in w["rounds"][1:])
        assert w["ledger_verifies"]["ok"], w["ledger_verifies"]
        # each round's model is fine-tuned from the previous round's (taken as promoted)
        models = [Path(r["model"]) for r in w["rounds"]]
        assert models[0] == bench["champions"][w["weld"]]
        for prev, cur in itertools.pairwise(models):
            init = read_config(cur).provenance.init
            assert init is not None and init.sha256 == sha256_file(prev / "model.safetensors")
        # the pore boxes of the weld's photos are what the figures count
        boxes = {
            r.image: sum(o.label == "porosity" for o in r.objects) for r in records if r.group == w["weld"]
        }
        assert w["rounds"][0]["figures"]["pore_boxes"] <= sum(boxes.values())


def test_reviews_are_signed_marks_from_the_labels_and_never_evaluated(bench: dict[str, Any]) -> None:
    records, _ = read_manifest(bench["data"] / "annotations.jsonl", check_images=False)
    by_sha = {sha256_file(r.path()): r for r in records if r.group == "weldA"}
    home = bench["out"] / "weldA" / "station"
    store = Store.open(f"sqlite:///{home / 'weldinspect.db'}", home / "images")
    try:
        with store.session() as s:
            reviews = [(r.inspection_id, r.marks, r.porosity_grade) for r in s.query(ReviewRow)]
        assert len(reviews) == 3
        reviewed_sha = set()
        for inspection_id, marks, grade in reviews:
            inspection = store.get_inspection(inspection_id)
            assert inspection is not None
            rec = by_sha[inspection.image_sha256]
            reviewed_sha.add(inspection.image_sha256)
            pores = [list(o.box) for o in rec.objects if o.label == "porosity"]
            assert sorted(m["box"] for m in marks or []) == sorted([round(v, 1) for v in b] for b in pores)
            assert grade == grade_from_count(len(pores), (1, 2, 4))
        assert verify_store(store).ok
    finally:
        store.close()
    # the last round trained on exactly the reviewed photos (plus the other welds' photos)
    train = (bench["out"] / "weldA" / "round-003" / "data" / "train.jsonl").read_text().splitlines()
    assert {json.loads(line)["sha256"] for line in train} == reviewed_sha
    assert len(by_sha) - len(reviewed_sha) == PER_WELD - 3


def test_outputs_plot_and_table(bench: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert bench["png"].stat().st_size > 1000
    doc = json.loads((bench["out"] / "learning.json").read_text())
    table = bl.markdown_table(doc["welds"])
    assert table.count("\n| weldA |") + table.startswith("| weldA") == 3
    assert "| weldC | 3 |" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "5,3"], "strictly increasing"),
        (["--rounds", "a"], "whole numbers"),
        (["--welds", "weldZ", "--champion", "weldZ=/nonexistent"], "not a model artifact"),
        (["--welds", "weldA"], "give --run RUN"),
    ],
)
def test_usage_errors_name_the_problem(
    bench: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    base = [
        "--data",
        str(bench["data"].parent),
        "--out",
        str(tmp_path / "o"),
        "--plot",
        str(tmp_path / "p.png"),
    ]
    if "--champion" not in argv and "--welds" not in argv:
        base += ["--welds", "weldA", "--champion", f"weldA={bench['champions']['weldA']}"]
    assert bl.main(base + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_unknown_weld_is_refused(
    bench: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--data", str(bench["data"].parent), "--welds", "weldQ",
        "--champion", f"weldQ={bench['champions']['weldA']}", "--config", str(_config(tmp_path)),
        "--out", str(tmp_path / "o"), "--plot", str(tmp_path / "p.png"),
    ]  # fmt: skip
    assert bl.main(argv) == 2
    assert "weldQ: no such group" in capsys.readouterr().err


def test_skips_without_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bl.main(["--data", str(tmp_path / "absent")]) == 0
    assert "skipped" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("queue", "order", "first"),
    [
        (["c", "a"], "queue", ["c", "a"]),
        ([], "queue", []),
        (["c", "zz"], "queue", ["c"]),  # an id that is not a photo of the weld is ignored
    ],
)
def test_review_order_takes_the_queue_first_then_every_other_photo_once(
    queue: list[str], order: str, first: list[str]
) -> None:
    ids = ["a", "b", "c", "d", "e"]
    got = bl.review_order(queue, ids, order=order, seed=5)
    assert got[: len(first)] == first
    assert sorted(got) == ids
    assert got == bl.review_order(queue, ids, order=order, seed=5)


def test_random_order_depends_on_the_seed_only() -> None:
    ids = [str(i) for i in range(30)]
    a = bl.review_order(["5"], ids, order="random", seed=1)
    assert sorted(a) == sorted(ids)
    assert a == bl.review_order([], ids, order="random", seed=1)
    assert a != bl.review_order(["5"], ids, order="random", seed=2)


@pytest.mark.parametrize(
    ("text", "rounds"),
    [("10,20,50", (10, 20, 50)), ("1", (1,)), (" 5, 7 ", (5, 7))],
)
def test_parse_rounds(text: str, rounds: tuple[int, ...]) -> None:
    assert bl.parse_rounds(text) == rounds


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        (
            [
                {"recall": 0.9, "findings_per_good_photo": 1.5},
                {"recall": 0.7, "findings_per_good_photo": 0.9},
            ],
            0.7,
        ),
        ([{"recall": 0.9, "findings_per_good_photo": 1.0}], 0.9),
        ([{"recall": 0.9, "findings_per_good_photo": 1.01}], None),
        ([{"recall": None, "findings_per_good_photo": 0.0}], None),
    ],
)
def test_recall_at_one_finding_per_good_photo(points: list[dict[str, Any]], expected: float | None) -> None:
    assert bl.recall_at_findings(points) == expected
