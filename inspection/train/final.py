"""Final training on all labelled photos and the shipped artifact.

The calibration (temperatures, abstain thresholds) and the reported metrics come from a finished
leave-one-weld-out run (``cfg.calibration_from``, a ``runs/<name>/`` directory); the final model
itself is trained on every photo for ``cfg.epochs`` epochs (no held-out data left to stop on).
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from inspection.data.torch_dataset import StripSample, TileDataset, collate
from inspection.train.cache import CacheInfo
from inspection.train.card import (
    RUNTIME_FILE,
    build_card,
    flat_metrics,
    load_pore_evals,
    load_run_summaries,
    pore_section,
    runtime_section,
    with_pore_section,
    with_runtime_section,
)
from inspection.train.config import TrainConfig
from inspection.train.fit import dataset_options, loss_weights, plot_curves, synthetic_samples, train_model
from inspection.train.loop import evaluate

log = logging.getLogger(__name__)


class CalibrationMissingError(FileNotFoundError):
    """The final config names no finished LOWO run to take calibration and metrics from."""


def git_commit(repo: Path) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` (read-only), or None when unavailable."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def load_lowo(run_dir: Path) -> dict[str, Any]:
    """The ``metrics.json`` of a finished LOWO run (raises naming the file when absent)."""
    path = run_dir / "metrics.json"
    if not path.is_file():
        msg = f"calibration_from: {path} does not exist (run the LOWO config first)"
        raise CalibrationMissingError(msg)
    data: dict[str, Any] = json.loads(path.read_text())
    if "calibration" not in data:
        msg = f"{path} holds no calibration (is it a finished LOWO run?)"
        raise CalibrationMissingError(msg)
    return data


def measure_speed(
    model: torch.nn.Module, height: int, width: int, threads: int, repeats: int = 20
) -> dict[str, float]:
    """Median forward time (ms) for 1 tile and a batch of 4 tiles, torch CPU, ``threads`` threads."""
    torch.set_num_threads(threads)
    model.eval()
    out: dict[str, float] = {}
    with torch.inference_mode():
        for n in (1, 4):
            x = torch.randn(n, 3, height, width)
            for _ in range(3):
                model(x)
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t) * 1000.0)
            out[f"torch_ms_batch{n}"] = float(np.median(times))
    return out


def fit_ood(model: Any, cfg: TrainConfig, samples: Sequence[StripSample]) -> tuple[float, int]:
    """Fit the model's OOD statistics on the un-augmented tiles of ``samples`` (its training
    photos) and return the OOD threshold (``cfg.calibration.ood_percentile`` of their scores) and
    the number of tiles."""
    from inspection.model.postprocess import OodStats

    ds = TileDataset(list(samples), dataset_options(cfg), train=False)
    ev = evaluate(model, DataLoader(ds, batch_size=cfg.batch_size, collate_fn=collate), loss_weights(cfg))
    stats = OodStats.fit(ev.embedding)
    model.set_ood_stats(stats)
    return float(np.percentile(stats.score(ev.embedding), cfg.calibration.ood_percentile)), len(ds)


def calibrated_config(
    cfg: TrainConfig,
    calib: dict[str, Any],
    ood_threshold: float,
    *,
    name: str,
    version: str,
    provenance: Any,
    metrics: dict[str, float] | None = None,
) -> Any:
    """The artifact's :class:`~inspection.model.artifact.ModelConfig`: the training config's
    network and preprocessing, the LOWO run's calibration ``calib`` (temperatures, abstain rules,
    peak thresholds) and the OOD threshold; used by the final model and by fold artifacts."""
    from inspection.model.artifact import (
        AbstainPerHead,
        InputSpec,
        ModelConfig,
        ProbabilityPerHead,
        TemperaturePerHead,
        Thresholds,
    )
    from inspection.model.postprocess import AbstainRule

    temps = calib["temperatures"]
    peaks = calib.get("peak_thresholds", {})
    rules = {
        head: AbstainRule(
            min_confidence=float(calib["abstain"][head]["min_confidence"]),
            max_p_defect_for_zero=float(calib["abstain"][head]["max_p_defect_for_zero"]),
            grade_by="argmax",
        )
        for head in ("porosity", "spatter")
    }
    return ModelConfig(
        name=name,
        version=version,
        arch=cfg.arch,
        width_mult=cfg.width_mult,
        embed_dim=cfg.embed_dim,
        input=InputSpec(strip_height=cfg.preprocess.strip_height, tile_length=cfg.preprocess.tile_length),
        mean=cfg.mean,
        std=cfg.std,
        preprocess=cfg.preprocess.model_dump(mode="json"),
        temperatures=TemperaturePerHead(porosity=float(temps["porosity"]), spatter=float(temps["spatter"])),
        thresholds=Thresholds(
            abstain=AbstainPerHead(porosity=rules["porosity"], spatter=rules["spatter"]),
            peak=ProbabilityPerHead(
                porosity=float(peaks.get("porosity", cfg.calibration.peak_threshold)),
                spatter=float(peaks.get("spatter", cfg.calibration.peak_threshold)),
            ),
            ood=max(ood_threshold, 1e-6),
        ),
        provenance=provenance,
        metrics=metrics or {},
    )


def run_final(
    cfg: TrainConfig, samples: list[StripSample], info: CacheInfo, *, resume: bool = False, command: str = ""
) -> dict[str, Any]:
    """Train on all photos, fit OOD statistics, write the artifact; returns the run summary."""
    from inspection.model.artifact import (
        InitSource,
        Provenance,
        load_artifact,
        save_artifact,
    )
    from inspection.model.net import pretrained_weights

    if cfg.calibration_from is None:
        msg = "mode 'final' needs calibration_from: the runs/<name> directory of a finished LOWO run"
        raise CalibrationMissingError(msg)
    lowo = load_lowo(cfg.resolve(cfg.calibration_from))
    run_dir = cfg.run_dir
    t0 = time.perf_counter()
    synth = synthetic_samples(cfg) if cfg.augment.synth_bank else []
    res = train_model(cfg, samples + synth, [], run_dir / "final", epochs=cfg.epochs, resume=resume)
    train_minutes = (time.perf_counter() - t0) / 60.0
    model = res.model
    if model is None:
        msg = "final training returned no model"
        raise RuntimeError(msg)
    plot_curves({"final": res.history}, run_dir / "training_curve.png")

    ood_threshold, _ = fit_ood(model, cfg, samples)
    speed = measure_speed(model, cfg.preprocess.strip_height, cfg.preprocess.tile_length, cfg.threads)
    comparisons = load_run_summaries([cfg.resolve(Path(p)) for p in cfg.comparison_runs])
    ablations = load_run_summaries([cfg.resolve(Path(p)) for p in cfg.ablation_runs])
    flat = flat_metrics(lowo)
    welds = sorted({s.group for s in samples if s.group in cfg.data.folds})
    config = calibrated_config(
        cfg,
        lowo["calibration"],
        ood_threshold,
        name=cfg.resolve(cfg.artifact_root).name,
        version=cfg.version,
        provenance=Provenance(
            training_manifest_sha256=info.manifest_sha256,
            git_commit=git_commit(cfg.resolve(Path("."))),
            command=command,
            data=(
                f"{len(samples)} photos of weld-porosity ({', '.join(welds)} + one-offs), manifest sha256 "
                "above; synthetic spatter composited during training"
                + (
                    f"; label corrections {', '.join(str(p) for p in cfg.data.corrections)} applied over it "
                    f"({info.corrections_summary}; sha256 {info.corrections_sha256})"
                    if info.corrections_sha256
                    else ""
                )
            ),
            init=InitSource.from_pretrained(pretrained_weights(cfg.arch)) if cfg.pretrained else None,
        ),
        metrics=flat,
    )
    summary: dict[str, Any] = {
        "mode": "final",
        "arch": cfg.arch,
        "epochs": res.epochs_run,
        "train_minutes": train_minutes,
        "ood_threshold": ood_threshold,
        "speed": speed,
        "lowo": {k: lowo[k] for k in ("average", "per_fold", "pooled_oof", "calibration") if k in lowo},
        "history": res.history,
    }
    card = with_pore_figures(build_card(cfg, config, lowo, summary, comparisons, ablations), cfg)
    out_dir = cfg.resolve(cfg.artifact_root) / cfg.version
    metrics = _json_safe(summary)
    model_info = save_artifact(out_dir, model, config, card, metrics, overwrite=True)  # type: ignore[arg-type]
    loaded, _, info2 = load_artifact(out_dir)
    x = torch.randn(2, 3, cfg.preprocess.strip_height, cfg.preprocess.tile_length)
    with torch.inference_mode():
        model.eval()
        diff = float((loaded(x).porosity_logits - model(x).porosity_logits).abs().max())
    if diff > 1e-5 or info2.sha256 != model_info.sha256:
        msg = f"artifact round trip failed: max logit diff {diff}, sha {info2.sha256} vs {model_info.sha256}"
        raise RuntimeError(msg)
    summary["artifact"] = str(out_dir)
    summary["artifact_sha256"] = model_info.sha256
    log.info("artifact written to %s (sha256 %s)", out_dir, model_info.sha256[:12])
    return _json_safe(summary)


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf by None recursively (artifact metrics are strict JSON)."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def with_pore_figures(card: str, cfg: TrainConfig) -> str:
    """``card`` with the pore-level section of the calibration run and the comparison runs (their
    ``pore_eval.json``, from ``scripts/eval_pores.py --run``); unchanged when none was measured."""
    runs = [cfg.resolve(Path(p)) for p in cfg.comparison_runs]
    if cfg.calibration_from is not None:
        runs.insert(0, cfg.resolve(cfg.calibration_from))
    pore = load_pore_evals(runs)
    return with_pore_section(card, pore_section(pore)) if pore else card


def rebuild_card(cfg: TrainConfig) -> Path:
    """Rewrite ``MODEL_CARD.md`` of the artifact that ``cfg`` (mode ``final``) produced, from its
    ``config.json`` and ``metrics.json``, the LOWO run and the comparison/ablation runs as they are
    now (for runs that finished after the final training). The weights are not touched, so the
    model's sha256 and every evidence record that names it stay valid. Returns the card's path."""
    from inspection.model.artifact import CARD_FILE, METRICS_FILE, read_config

    if cfg.calibration_from is None:
        msg = "rebuilding a model card needs calibration_from: the LOWO run the model was calibrated on"
        raise CalibrationMissingError(msg)
    out_dir = cfg.resolve(cfg.artifact_root) / cfg.version
    metrics_path = out_dir / METRICS_FILE
    if not metrics_path.is_file():
        msg = f"{metrics_path} does not exist: train the final model first (mode 'final')"
        raise FileNotFoundError(msg)
    config = read_config(out_dir)
    summary = json.loads(metrics_path.read_text())
    lowo = load_lowo(cfg.resolve(cfg.calibration_from))
    comparisons = load_run_summaries([cfg.resolve(Path(p)) for p in cfg.comparison_runs])
    ablations = load_run_summaries([cfg.resolve(Path(p)) for p in cfg.ablation_runs])
    card = build_card(cfg, config, lowo, summary, comparisons, ablations)
    runtimes = out_dir / RUNTIME_FILE
    if runtimes.is_file():
        card = with_runtime_section(card, runtime_section(json.loads(runtimes.read_text())))
    card = with_pore_figures(card, cfg)
    path = out_dir / CARD_FILE
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(card)
    tmp.replace(path)
    log.info(
        "model card rewritten: %s (%d comparisons, %d ablations)", path, len(comparisons), len(ablations)
    )
    return path
