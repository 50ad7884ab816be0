"""Training orchestration: leave-one-weld-out validation, final training, calibration, artifact.

``run_training(cfg)`` dispatches on ``cfg.mode``:

* ``lowo``: for each held-out weld in ``cfg.data.folds`` (or ``cfg.folds_to_run``), train on the
  other welds plus the one-off photos with early stopping on the held-out weld; collect the
  out-of-fold predictions, fit per-head temperatures and the abstain threshold on them, and write
  ``runs/<name>/`` (``config.resolved.yaml``, ``metrics.json``, ``oof.npz``, ``calibration.json``,
  ``training_curve.png``, per-fold checkpoints);
* ``final``: train on all photos for a fixed number of epochs (the LOWO run's median best epoch
  when ``calibration_from`` is set), take the calibration from that LOWO run, fit OOD statistics,
  and save the artifact to ``models/weld-grader/<version>/`` through the model package;
* ``smoke``: like ``lowo`` on whatever data is given, for tests;
* ``pretrain``: self-supervised backbone pretraining on unlabelled photos
  (:func:`inspection.train.pretrain.run_pretrain`, writes ``runs/<name>/backbone.safetensors``).

With ``init_from`` set, every model trained here starts from that file's backbone tensors
(:func:`inspection.train.pretrain.init_backbone`); its path and SHA-256 go into ``metrics.json``.

Checkpoints are plain dicts saved with ``torch.save`` and loaded with ``weights_only=True``.
The building blocks (datasets, loaders, optimiser, ``train_model``) live in
:mod:`inspection.train.fit`; this module only orchestrates them.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inspection.data.torch_dataset import (
    StripSample,
    TileDataset,
)
from inspection.train.calibrate import (
    default_probs_fn,
    fit_temperature,
    select_abstain_threshold,
    select_peak_threshold,
    select_pore_free_floor,
)
from inspection.train.config import TrainConfig, write_resolved_config
from inspection.train.fit import (
    FoldResult,
    dataset_options,
    plot_curves,
    synthetic_samples,
    tempered_probs,
    train_model,
)
from inspection.train.metrics import head_report

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Image-level aggregation and calibration


def image_level(
    tile_probs: npt.NDArray[np.float64], tile_sample: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Combine per-tile class probabilities into per-photo ones (worst tile, as served).

    Returns ``(sample ids (M,), probs (M, 4))`` in ascending sample id order.
    """
    from inspection.model.postprocess import combine_tile_probs

    ids = np.unique(tile_sample)
    out = np.stack([combine_tile_probs(tile_probs[tile_sample == i]) for i in ids])
    return ids, out


def calibrate_oof(oof: dict[str, npt.NDArray[Any]], cfg: TrainConfig) -> dict[str, Any]:
    """Temperatures per head and the abstain rules, fitted on out-of-fold predictions."""
    probs_fn = default_probs_fn()
    por_t = fit_temperature(oof["porosity_logits"], oof["porosity_grade"], probs_fn)
    sp_mask = oof["spatter_grade"] >= 0
    sp_t = fit_temperature(oof["spatter_logits"][sp_mask], oof["spatter_grade"][sp_mask], probs_fn)
    ids, por_img = image_level(tempered_probs(oof["porosity_logits"], por_t), oof["sample"])
    img_grade = oof["image_grade_by_sample"][ids]
    por_rule = select_abstain_threshold(
        por_img,
        img_grade,
        max_severe_missed=cfg.calibration.max_severe_missed,
        min_confidence=cfg.calibration.min_confidence,
    )
    sp_probs = tempered_probs(oof["spatter_logits"][sp_mask], sp_t)
    sp_rule = select_abstain_threshold(
        sp_probs,
        oof["spatter_grade"][sp_mask],
        max_severe_missed=cfg.calibration.max_severe_missed,
        min_confidence=cfg.calibration.min_confidence,
    )
    peaks = {
        "porosity": select_peak_threshold(oof["heat_max"][:, 0], oof["porosity_grade"] > 0),
        "spatter": select_peak_threshold(oof["heat_max"][sp_mask, 1], oof["spatter_grade"][sp_mask] > 0),
    }
    peak_rule: dict[str, Any] = {
        "porosity": "presence F1 on out-of-fold tiles",
        "f1_porosity": peaks["porosity"],
    }
    limit = cfg.calibration.max_pore_free_flagged
    if limit is not None:
        tile_ids = oof["sample"]
        photo_ids = np.unique(tile_ids)
        photo_peak = np.array([oof["heat_max"][tile_ids == i, 0].max() for i in photo_ids])
        pore_free = oof["image_grade_by_sample"][photo_ids] == 0
        floor = select_pore_free_floor(photo_peak[pore_free], limit)
        peak_rule.update(
            {
                "max_pore_free_flagged": limit,
                "pore_free_photos": int(pore_free.sum()),
                "pore_free_floor": floor,
            }
        )
        if floor is not None and floor > peaks["porosity"]:
            peaks["porosity"] = floor
            peak_rule["porosity"] = (
                f"raised from the presence-F1 threshold so that <= {limit:.0%} of the out-of-fold "
                "pore-free photos have a peak at or above it"
            )
    return {
        "temperatures": {"porosity": por_t, "spatter": sp_t},
        "peak_thresholds": peaks,
        "peak_rule": peak_rule,
        "abstain": {
            "porosity": {
                "max_p_defect_for_zero": por_rule.max_p_defect_for_zero,
                "min_confidence": por_rule.min_confidence,
                "severe_missed_rate": por_rule.severe_missed_rate,
                "review_rate": por_rule.review_rate,
                "n_severe": por_rule.n_severe,
                "n": por_rule.n,
            },
            "spatter": {
                "max_p_defect_for_zero": sp_rule.max_p_defect_for_zero,
                "min_confidence": sp_rule.min_confidence,
                "severe_missed_rate": sp_rule.severe_missed_rate,
                "review_rate": sp_rule.review_rate,
                "n_severe": sp_rule.n_severe,
                "n": sp_rule.n,
            },
        },
    }


def recalibrate_run(cfg: TrainConfig) -> dict[str, Any]:
    """Refit ``calibration.json`` of the finished LOWO run ``cfg.run_dir`` from its ``oof.npz`` with
    ``cfg``'s calibration section (no training). The previous file is kept as
    ``calibration.previous.json``; ``metrics.json``'s ``calibration`` is updated too. Returns the
    new calibration. Raises ``ValueError`` naming the missing file for an unfinished run."""
    run_dir = cfg.run_dir
    oof_path = run_dir / "oof.npz"
    if not oof_path.is_file():
        msg = f"{oof_path} does not exist: --recalibrate needs a finished LOWO run of this config"
        raise ValueError(msg)
    with np.load(oof_path, allow_pickle=False) as data:
        oof = {k: data[k] for k in data.files}
    calib = calibrate_oof(oof, cfg)
    path = run_dir / "calibration.json"
    if path.is_file():
        (run_dir / "calibration.previous.json").write_text(path.read_text())
    path.write_text(json.dumps(calib, indent=2))
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        metrics["calibration"] = calib
        metrics_path.write_text(json.dumps(metrics, indent=2))
    log.info("%s recalibrated: peak thresholds %s", run_dir, calib["peak_thresholds"])
    return calib


def fold_metrics(
    oof: dict[str, npt.NDArray[Any]], mask: npt.NDArray[np.bool_], temps: dict[str, float]
) -> dict[str, Any]:
    """Porosity (photo level, calibrated, worst tile) and spatter (tile level) reports for ``mask`` tiles."""
    ids, por_img = image_level(
        tempered_probs(oof["porosity_logits"][mask], temps["porosity"]), oof["sample"][mask]
    )
    por = head_report(oof["image_grade_by_sample"][ids], por_img)
    sp = oof["spatter_grade"][mask]
    spm = sp >= 0
    spat = head_report(sp[spm], tempered_probs(oof["spatter_logits"][mask][spm], temps["spatter"]))
    tile_por = head_report(
        oof["porosity_grade"][mask], tempered_probs(oof["porosity_logits"][mask], temps["porosity"])
    )
    return {"porosity": por, "spatter": spat, "porosity_tile": tile_por}


def _mean_defined(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.fmean(vals)) if vals else None


# ----------------------------------------------------------------------------------------------
# Modes


def load_samples(cfg: TrainConfig) -> tuple[list[StripSample], list[float], Any]:
    """The cached strip samples for the configured data (built on first use)."""
    from inspection.data.corrections import read_corrections
    from inspection.train.cache import load_or_build_cache

    paths = [cfg.resolve(p) for p in cfg.data.corrections]
    corrections = read_corrections(paths) if paths else []
    return load_or_build_cache(
        cfg.resolve(cfg.data.root),
        cfg.data.manifest,
        cfg.preprocess,
        cache_dir=cfg.resolve(cfg.data.cache_dir),
        cache_scale=cfg.data.cache_scale,
        porosity_thresholds=cfg.grading.porosity_thresholds,
        max_images=cfg.data.max_images,
        corrections=corrections,
    )


def run_lowo(cfg: TrainConfig, samples: list[StripSample], *, resume: bool = False) -> dict[str, Any]:
    """Leave-one-weld-out validation; writes metrics, OOF predictions, calibration and curves."""
    run_dir = cfg.run_dir
    folds = list(cfg.folds_to_run or cfg.data.folds)
    groups = {s.group for s in samples}
    missing = [f for f in folds if f not in groups]
    if missing:
        msg = f"fold group(s) {missing} not in the data; groups present: {sorted(groups)}"
        raise ValueError(msg)
    synth = synthetic_samples(cfg) if cfg.augment.synth_bank else []
    parts: dict[str, list[npt.NDArray[Any]]] = {}
    results: dict[str, FoldResult] = {}
    speed: dict[str, float] = {}
    t0 = time.perf_counter()
    for fold in folds:
        train = [s for s in samples if s.group != fold] + synth
        val = [s for s in samples if s.group == fold]
        val_ids = np.array([i for i, s in enumerate(samples) if s.group == fold])
        log.info("fold %s: %d train / %d held-out photos", fold, len(train), len(val))
        res = train_model(cfg, train, val, run_dir / f"fold-{fold}", epochs=cfg.epochs, resume=resume)
        results[fold] = res
        ev = res.val
        if ev is None:
            msg = f"fold {fold} produced no validation outputs"
            raise RuntimeError(msg)
        val_ds = TileDataset(val, dataset_options(cfg), train=False)
        tile_sample = np.array([val_ids[val_ds.tile_index[int(k)][0]] for k in ev.index], np.int64)
        fold_parts: dict[str, npt.NDArray[Any]] = {
            "porosity_logits": ev.porosity_logits,
            "spatter_logits": ev.spatter_logits,
            "porosity_grade": ev.porosity_grade,
            "spatter_grade": ev.spatter_grade,
            "embedding": ev.embedding,
            "heat_max": ev.heat_max,
            "sample": tile_sample,
            "fold": np.array([fold] * len(tile_sample)),
        }
        for k, v in fold_parts.items():
            parts.setdefault(k, []).append(v)
        if res.model is not None and not speed:
            from inspection.train.final import measure_speed

            speed = measure_speed(
                res.model, cfg.preprocess.strip_height, cfg.preprocess.tile_length, cfg.threads
            )
        res.model = None
    oof = {k: np.concatenate(v) for k, v in parts.items()}
    oof["image_grade_by_sample"] = np.array([s.grade for s in samples], np.int64)
    np.savez(run_dir / "oof.npz", **oof)  # type: ignore[arg-type]
    calib = calibrate_oof(oof, cfg)
    temps = calib["temperatures"]
    per_fold = {}
    for fold in folds:
        m = fold_metrics(oof, oof["fold"] == fold, temps)
        m["best_epoch"] = results[fold].best_epoch
        m["epochs_run"] = results[fold].epochs_run
        m["train_minutes"] = results[fold].seconds / 60.0
        per_fold[fold] = m
    pooled = fold_metrics(oof, np.ones(len(oof["sample"]), bool), temps)
    uncal = fold_metrics(oof, np.ones(len(oof["sample"]), bool), {"porosity": 1.0, "spatter": 1.0})

    def avg(head: str, key: str) -> float | None:
        return _mean_defined([per_fold[f][head][key] for f in folds])

    summary = {
        "arch": cfg.arch,
        "folds": folds,
        "epochs": cfg.epochs,
        "per_fold": per_fold,
        "pooled_oof": pooled,
        "pooled_oof_uncalibrated_nll_note": "temperature 1.0 metrics for comparison",
        "pooled_oof_uncalibrated": uncal,
        "average": {
            "porosity_qwk": avg("porosity", "qwk"),
            "porosity_presence_auroc": avg("porosity", "presence_auroc"),
            "porosity_macro_f1": avg("porosity", "macro_f1"),
            "spatter_qwk": avg("spatter", "qwk"),
            "spatter_macro_f1": avg("spatter", "macro_f1"),
        },
        "calibration": calib,
        "median_best_epoch": int(statistics.median([results[f].best_epoch for f in folds])),
        "speed": speed,
        "augment": cfg.augment.model_dump(mode="json"),
        "minutes": (time.perf_counter() - t0) / 60.0,
    }
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    (run_dir / "calibration.json").write_text(json.dumps(calib, indent=2))
    plot_curves({f: results[f].history for f in folds}, run_dir / "training_curve.png")
    return summary


def run_training(cfg: TrainConfig, *, resume: bool = False, command: str = "") -> dict[str, Any]:
    """Entry point for ``weldinspect train`` / ``scripts/train.py``; returns the run summary."""
    torch.set_num_threads(cfg.threads)
    run_dir = cfg.run_dir
    write_resolved_config(cfg, run_dir)
    if cfg.mode == "pretrain":
        from inspection.train.pretrain import run_pretrain

        return run_pretrain(cfg, resume=resume, command=command)
    init_from: dict[str, str] = {}
    if cfg.init_from is not None:  # fail before loading data when the file is missing
        from inspection.train.cache import file_sha256
        from inspection.train.pretrain import resolve_init_from

        init_path = resolve_init_from(cfg)
        init_from = {"init_from": str(cfg.init_from), "init_from_sha256": file_sha256(init_path)}
    t0 = time.perf_counter()
    samples, _scores, info = load_samples(cfg)
    log.info("data: %d photos (%s), cache %s", len(samples), info.report.splitlines()[0], info.path)
    if cfg.mode in ("lowo", "smoke"):
        summary = run_lowo(cfg, samples, resume=resume)
    else:
        from inspection.train.final import run_final

        summary = run_final(cfg, samples, info, resume=resume, command=command)
    summary["total_minutes"] = (time.perf_counter() - t0) / 60.0
    summary["manifest_sha256"] = info.manifest_sha256
    if info.corrections_sha256:
        summary["label_corrections"] = {
            "sources": [str(p) for p in cfg.data.corrections],
            "sha256": info.corrections_sha256,
            "summary": info.corrections_summary,
        }
    summary["command"] = command
    summary.update(init_from)
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
