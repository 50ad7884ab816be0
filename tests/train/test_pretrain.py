"""Self-supervised pretraining (mode ``pretrain``) and ``init_from`` on tiny synthetic photos."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import safetensors.torch
import torch
from pydantic import ValidationError

from inspection.config import ConfigError
from inspection.data.synth import generate_weld
from inspection.model.net import build_model
from inspection.train.cache import DataMissingError, source_group
from inspection.train.config import REPO_ROOT, TrainConfig, load_train_config
from inspection.train.fit import train_model
from inspection.train.pretrain import (
    BACKBONE_FILE,
    InitFromError,
    InitFromMissingError,
    init_backbone,
    nt_xent,
    pair_accuracy,
)
from inspection.train.run import run_training
from tests.train.helpers import SMALL_PRE, synth_samples

N_WELDS = 6


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unlabelled-set layout: ``images/`` (6 welds, one with a Roboflow-style copy, one blank
    photo with no seam) and a ``labels/`` folder that must never be read."""
    root = tmp_path_factory.mktemp("unlabelled")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    rng = np.random.default_rng(3)
    for i in range(N_WELDS):
        weld = generate_weld(rng, width=160, height=160, n_pores=int(rng.integers(0, 4)), n_spatter=0)
        bgr = cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(root / "images" / f"w{i}_jpg.rf.aaa.jpg"), bgr)
        (root / "labels" / f"w{i}_jpg.rf.aaa.txt").write_text("not a yolo label\n")
    cv2.imwrite(str(root / "images" / "w0_jpg.rf.bbb.jpg"), cv2.flip(bgr, 1))
    cv2.imwrite(str(root / "images" / "blank.jpg"), np.full((160, 160, 3), 128, np.uint8))
    return root


def _cfg(tmp: Path, photos: Path, **kw: object) -> TrainConfig:
    pretrain = {
        "root": str(photos),
        "epochs": 2,
        "steps_per_epoch": 2,
        "batch_size": 4,
        "warmup_steps": 1,
        "projection_dim": 16,
        "hidden_dim": 32,
    }
    pretrain.update(kw.pop("pretrain", {}))  # type: ignore[call-overload]
    data = {
        "name": "ssl",
        "mode": "pretrain",
        "arch": "tiny",
        "threads": 1,
        "embed_dim": 16,
        "output_dir": str(tmp / "runs"),
        "preprocess": SMALL_PRE.model_dump(),
        "data": {"cache_dir": str(tmp / "cache"), "folds": ["weldA", "weldB"]},
        "pretrain": pretrain,
    }
    data.update(kw)
    return TrainConfig.model_validate(data)


@pytest.fixture(scope="module")
def pretrained(
    tmp_path_factory: pytest.TempPathFactory, photos: Path
) -> tuple[TrainConfig, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("ssl")
    cfg = _cfg(tmp, photos)
    return cfg, run_training(cfg, command="pytest")


def test_pretrain_run_writes_backbone_metrics_and_curve(
    pretrained: tuple[TrainConfig, dict[str, object]],
) -> None:
    cfg, summary = pretrained
    run_dir = cfg.run_dir
    for name in (BACKBONE_FILE, "metrics.json", "config.resolved.yaml", "loss_curve.png", "last.pt"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["mode"] == "pretrain"
    assert len(metrics["loss_per_epoch"]) == 2 and metrics["steps"] == 4
    assert all(math.isfinite(v) and v > 0 for v in metrics["loss_per_epoch"])
    photos = metrics["photos"]
    assert photos["files"] == N_WELDS + 2
    assert photos["used"] == N_WELDS + 1
    assert photos["skipped"]["no_seam"] == 1
    assert photos["source_welds"] == N_WELDS  # the .rf. copy joins its source
    assert metrics["minutes"] > 0
    assert summary["artifact"] == str(run_dir / BACKBONE_FILE)
    tensors = safetensors.torch.load_file(str(run_dir / BACKBONE_FILE))
    assert tensors and all(k.startswith("backbone.") for k in tensors)
    assert len(tensors) == metrics["backbone_tensors"]


def test_backbone_loads_via_init_from_into_fresh_model(
    tmp_path: Path, photos: Path, pretrained: tuple[TrainConfig, dict[str, object]]
) -> None:
    cfg, _ = pretrained
    saved = safetensors.torch.load_file(str(cfg.run_dir / BACKBONE_FILE))
    fresh = build_model("tiny", embed_dim=16)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    lowo_cfg = _cfg(tmp_path, photos, mode="smoke", init_from=str(cfg.run_dir))
    info = init_backbone(fresh, lowo_cfg)
    assert info.tensors == len(saved) and len(info.sha256) == 64
    after = fresh.state_dict()
    for k, v in saved.items():
        assert torch.equal(after[k], v), k
    assert any(not torch.equal(before[k], saved[k]) for k in saved if saved[k].is_floating_point())
    # the heads are untouched
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("backbone."))
    # a file path works as well as the run directory
    file_cfg = _cfg(tmp_path, photos, mode="smoke", init_from=str(cfg.run_dir / BACKBONE_FILE))
    assert init_backbone(build_model("tiny", embed_dim=16), file_cfg).sha256 == info.sha256


def test_train_model_starts_from_init_from(
    tmp_path: Path,
    photos: Path,
    pretrained: tuple[TrainConfig, dict[str, object]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cfg, _ = pretrained
    samples = synth_samples(4, seed=2)
    smoke = _cfg(
        tmp_path,
        photos,
        mode="smoke",
        init_from=str(cfg.run_dir),
        epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        warmup_steps=1,
        spatter={"mm_per_px": 0.5},
    )
    n = len(safetensors.torch.load_file(str(cfg.run_dir / BACKBONE_FILE)))
    with caplog.at_level(logging.INFO, logger="inspection.train.pretrain"):
        res = train_model(smoke, samples[:3], samples[3:], tmp_path / "fold", epochs=1)
    assert f"loaded {n} backbone tensors" in caplog.text
    assert res.model is not None


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"width_mult": 0.5}, ["shape mismatches", "pretrained for arch 'tiny', width_mult 1.0"]),
        ({"arch": "resnet18"}, ["missing from the file", "arch 'resnet18'"]),
    ],
)
def test_init_from_mismatched_arch_is_a_clear_error(
    tmp_path: Path,
    photos: Path,
    pretrained: tuple[TrainConfig, dict[str, object]],
    overrides: dict[str, object],
    expected: list[str],
) -> None:
    cfg, _ = pretrained
    bad = _cfg(tmp_path, photos, mode="smoke", init_from=str(cfg.run_dir), **overrides)
    model = build_model(bad.arch, width_mult=bad.width_mult, embed_dim=16)
    with pytest.raises(InitFromError) as err:
        init_backbone(model, bad)
    for text in expected:
        assert text in str(err.value)


def test_init_from_missing_file_and_missing_photos(tmp_path: Path, photos: Path) -> None:
    cfg = _cfg(tmp_path, photos, mode="smoke", init_from=str(tmp_path / "nope"))
    with pytest.raises(InitFromMissingError, match="nope"):
        init_backbone(build_model("tiny", embed_dim=16), cfg)
    with pytest.raises(DataMissingError, match="unlabelled photos not found"):
        run_training(_cfg(tmp_path, photos, pretrain={"root": str(tmp_path / "absent")}))


def test_resume_continues_after_the_last_epoch(
    tmp_path: Path, photos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = run_training(_cfg(tmp_path, photos, pretrain={"epochs": 1}))
    with caplog.at_level(logging.INFO, logger="inspection.train.pretrain"):
        resumed = run_training(_cfg(tmp_path, photos, pretrain={"epochs": 2}), resume=True)
    assert "resumed" in caplog.text and "pretrain epoch 0:" not in caplog.text
    assert resumed["epochs_run"] == 2 and resumed["steps"] == 4
    assert resumed["history"][0] == first["history"][0]  # type: ignore[index]


def test_nt_xent_lower_for_matching_pairs_than_shuffled() -> None:
    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(16, 8, generator=gen)
    z2 = z1 + 0.1 * torch.randn(16, 8, generator=gen)
    shuffled = z2.roll(1, dims=0)  # every row paired with another sample's view
    matching = float(nt_xent(z1, z2, 0.2))
    wrong = float(nt_xent(z1, shuffled, 0.2))
    chance = math.log(2 * 16 - 1)
    assert matching < chance < wrong
    assert pair_accuracy(z1, z2) == 1.0
    assert pair_accuracy(z1, shuffled) < 0.5
    # gradients flow and the loss is symmetric in the two views
    a = z1.clone().requires_grad_(True)
    nt_xent(a, z2, 0.5).backward()  # type: ignore[no-untyped-call]
    assert a.grad is not None and torch.isfinite(a.grad).all()
    assert float(nt_xent(z2, z1, 0.2)) == pytest.approx(matching, rel=1e-5)
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent(z1, z2[:4], 0.2)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        nt_xent(z1[:1], z2[:1], 0.2)


def test_source_group_joins_roboflow_copies() -> None:
    assert (
        source_group("0e53-c23_jpg.rf.05ff.jpg") == source_group("0e53-c23_jpg.rf.26d4.jpg") == "0e53-c23_jpg"
    )
    assert source_group("plain.jpg") == "plain"


def test_config_rejects_unknown_keys(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="temprature"):
        TrainConfig.model_validate({"mode": "pretrain", "pretrain": {"temprature": 0.1}})
    with pytest.raises(ValidationError, match="temperature"):
        TrainConfig.model_validate({"pretrain": {"temperature": 0}})
    path = tmp_path / "bad.yaml"
    path.write_text("mode: pretrain\npretrain:\n  batch_size: 1\n  bogus: 2\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path)
    assert "pretrain.bogus" in str(err.value) and "pretrain.batch_size" in str(err.value)


def test_shipped_configs_parse_and_ablation_matches_comparison() -> None:
    configs = REPO_ROOT / "scripts" / "configs"
    ssl = load_train_config(configs / "pretrain_ssl.yaml")
    assert ssl.mode == "pretrain" and ssl.arch == "resnet18"
    assert (ssl.preprocess.strip_height, ssl.preprocess.tile_length) == (96, 192)
    ablate = load_train_config(configs / "ablate_ssl_init.yaml")
    base = load_train_config(configs / "compare_resnet18.yaml")
    assert ablate.name == "ablate-ssl-init" and ablate.init_from == Path("runs/pretrain-ssl")
    assert ablate.model_copy(update={"name": base.name, "init_from": None}) == base
    assert ablate.init_from is not None and ablate.resolve(ablate.init_from) == ssl.run_dir
