"""A 2-step training run of the ``tiny`` arch on synthetic photos: checkpoint, resume, LOWO, artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from inspection.config import ConfigError
from inspection.data.torch_dataset import StripSample
from inspection.model.artifact import load_artifact
from inspection.train.config import TrainConfig, load_train_config
from inspection.train.final import run_final
from inspection.train.fit import CHECKPOINT, train_model
from inspection.train.run import run_lowo
from tests.train.helpers import SMALL_PRE, synth_samples


@pytest.fixture(scope="module")
def samples() -> list[StripSample]:
    return synth_samples(8, seed=5)


def _cfg(tmp: Path, **kw: object) -> TrainConfig:
    data = {
        "name": "smoke",
        "mode": "smoke",
        "arch": "tiny",
        "epochs": 1,
        "steps_per_epoch": 2,
        "batch_size": 2,
        "warmup_steps": 1,
        "threads": 1,
        "embed_dim": 16,
        "output_dir": str(tmp / "runs"),
        "artifact_root": str(tmp / "models" / "weld-grader"),
        "preprocess": SMALL_PRE.model_dump(),
        "data": {"folds": ["weldA", "weldB"], "cache_scale": 2.0},
        "spatter": {"mm_per_px": 0.5},
    }
    data.update(kw)
    return TrainConfig.model_validate(data)


def test_checkpoint_and_resume(tmp_path: Path, samples: list[StripSample]) -> None:
    cfg = _cfg(tmp_path)
    train, val = samples[:6], samples[6:]
    out = tmp_path / "fold"
    first = train_model(cfg, train, val, out, epochs=1)
    assert (out / CHECKPOINT).is_file()
    state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)
    assert state["epoch"] == 0
    resumed = train_model(cfg, train, val, out, epochs=2, resume=True)
    assert [h["epoch"] for h in resumed.history] == [0.0, 1.0]
    assert resumed.history[0]["train_total"] == first.history[0]["train_total"]
    assert torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True)["epoch"] == 1


def test_lowo_then_final_artifact_round_trip(tmp_path: Path, samples: list[StripSample]) -> None:
    cfg = _cfg(tmp_path)
    summary = run_lowo(cfg, samples)
    run_dir = cfg.run_dir
    for name in ("metrics.json", "calibration.json", "oof.npz", "training_curve.png"):
        assert (run_dir / name).is_file(), name
    assert set(summary["per_fold"]) == {"weldA", "weldB"}
    calib = json.loads((run_dir / "calibration.json").read_text())

    final_cfg = _cfg(
        tmp_path, name="weld-grader", mode="final", calibration_from=str(run_dir), version="0.0.1"
    )
    from inspection.train.cache import CacheInfo

    info = CacheInfo("0" * 64, "k", tmp_path / "c.npz", "synthetic", len(samples), 0.0)
    final = run_final(final_cfg, samples, info, command="pytest")
    art = Path(final["artifact"])
    model, config, model_info = load_artifact(art)
    assert config.name == "weld-grader" and art.name == "0.0.1"
    assert model_info.sha256 == final["artifact_sha256"]
    assert config.temperatures.porosity == pytest.approx(calib["temperatures"]["porosity"])
    assert config.input.strip_height == SMALL_PRE.strip_height
    from inspection.data.torch_dataset import TileDataset
    from inspection.train.fit import dataset_options

    n_tiles = len(TileDataset(samples, dataset_options(final_cfg), train=False))
    assert int(model.ood_count) == n_tiles >= len(samples)  # OOD statistics over every eval tile
    assert (art / "MODEL_CARD.md").read_text().startswith("# Model card")

    # a comparison run that finishes after the final training: rewrite the card, keep the weights
    from inspection.train.final import rebuild_card

    late = tmp_path / "runs" / "compare-late"
    late.mkdir(parents=True)
    late_metrics = {"arch": "tiny", "folds": ["weldB"], "epochs": 6, "average": {"porosity_qwk": 0.123}}
    (late / "metrics.json").write_text(json.dumps(late_metrics))
    weights_before = (art / "model.safetensors").read_bytes()
    card = rebuild_card(final_cfg.model_copy(update={"comparison_runs": (str(late),)})).read_text()
    assert "| compare-late | tiny | weldB | 0.123 |" in card
    assert "held-out weldB, 6 epochs" in card
    assert (art / "model.safetensors").read_bytes() == weights_before
    out = model(torch.zeros(1, 3, SMALL_PRE.strip_height, SMALL_PRE.tile_length))
    assert out.heatmap_logits.shape == (1, 2, SMALL_PRE.strip_height // 8, SMALL_PRE.tile_length // 8)

    # refit the calibration from oof.npz with a bound on flagged pore-free photos (no training)
    from inspection.train.run import recalibrate_run

    assert calib["peak_rule"]["porosity"] == "presence F1 on out-of-fold tiles"
    strict = cfg.model_copy(
        update={"calibration": cfg.calibration.model_copy(update={"max_pore_free_flagged": 0.01})}
    )
    new = recalibrate_run(strict)
    rule = new["peak_rule"]
    assert rule["pore_free_photos"] == sum(s.grade == 0 for s in samples) > 0
    assert new["peak_thresholds"]["porosity"] == pytest.approx(
        max(rule["f1_porosity"], rule["pore_free_floor"])
    )
    assert new["peak_thresholds"]["porosity"] >= calib["peak_thresholds"]["porosity"]
    assert new["temperatures"] == pytest.approx(calib["temperatures"])
    assert json.loads((run_dir / "calibration.previous.json").read_text()) == calib
    assert json.loads((run_dir / "calibration.json").read_text()) == new
    with pytest.raises(ValueError, match=r"oof\.npz does not exist"):
        recalibrate_run(_cfg(tmp_path, name="never-ran"))


def test_final_without_lowo_run_is_an_error(tmp_path: Path, samples: list[StripSample]) -> None:
    from inspection.train.cache import CacheInfo
    from inspection.train.final import CalibrationMissingError

    cfg = _cfg(tmp_path, mode="final", calibration_from=str(tmp_path / "nope"))
    with pytest.raises(CalibrationMissingError, match="does not exist"):
        run_final(cfg, samples, CacheInfo("0" * 64, "k", tmp_path, "", 0, 0.0))


def test_config_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("arch: vgg\nepochs: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown arch 'vgg'"):
        load_train_config(path)
    path.write_text("epochz: 2\n")
    with pytest.raises(ConfigError, match="epochz"):
        load_train_config(path)
