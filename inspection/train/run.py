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
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import yaml
from torch.utils.data import DataLoader, WeightedRandomSampler

from inspection.data.torch_dataset import (
    DatasetOptions,
    StripSample,
    TileDataset,
    collate,
    cut_pore_patches,
)
from inspection.train.calibrate import (
    default_probs_fn,
    fit_temperature,
    select_abstain_threshold,
    select_peak_threshold,
)
from inspection.train.config import TrainConfig
from inspection.train.loop import EvalOutputs, LossWeights, evaluate, train_one_epoch, warmup_cosine
from inspection.train.metrics import head_report

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
BEST = "best.pt"


# ----------------------------------------------------------------------------------------------
# Building blocks


def set_seed(seed: int) -> None:
    """Seed numpy's legacy RNG and torch (data randomness uses explicit generators)."""
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def loss_weights(cfg: TrainConfig) -> LossWeights:
    lw = cfg.loss
    return LossWeights(
        porosity_ordinal=lw.porosity_ordinal,
        spatter_ordinal=lw.spatter_ordinal,
        heatmap=lw.heatmap,
        size=lw.size,
        focal_alpha=lw.focal_alpha,
        focal_beta=lw.focal_beta,
    )


def dataset_options(cfg: TrainConfig, stride: int = 8) -> DatasetOptions:
    return DatasetOptions(
        strip_height=cfg.preprocess.strip_height,
        tile_length=cfg.preprocess.tile_length,
        stride=stride,
        mean=cfg.mean,
        std=cfg.std,
        porosity_thresholds=cfg.grading.porosity_thresholds,
        spatter_thresholds=cfg.grading.spatter_thresholds,
        spatter_grade_probs=cfg.spatter.prob_by_grade if cfg.spatter.enabled else None,
        transplant_prob=cfg.augment.transplant_prob,
        transplant_max=cfg.augment.transplant_max,
        cache_scale=cfg.data.cache_scale,
        seed=cfg.seed,
    )


class _Spatter:
    """Adapter from the data package's spatter helpers to the Dataset's ``SpatterFns``."""

    def __init__(self, mm_per_px: float, thresholds: tuple[int, int, int]) -> None:
        self.mm_per_px = mm_per_px
        self.thresholds = thresholds

    def composite(self, image: Any, rng: np.random.Generator, n_droplets: int, seam: Any) -> Any:
        from inspection.data.spatter import composite_spatter

        return composite_spatter(image, rng, n_droplets=n_droplets, seam=seam, mm_per_px=self.mm_per_px)

    def sample_count(self, grade: int, rng: np.random.Generator) -> int:
        from inspection.data.spatter import sample_spatter_count

        return sample_spatter_count(grade, rng, self.thresholds)


def make_datasets(
    cfg: TrainConfig, train: Sequence[StripSample], val: Sequence[StripSample]
) -> tuple[TileDataset, TileDataset | None]:
    """Training dataset (augmented, pore bank from the training welds) and evaluation dataset."""
    from inspection.augment import train_geometric, train_photometric

    opt = dataset_options(cfg)
    spatter = _Spatter(cfg.spatter.mm_per_px, cfg.grading.spatter_thresholds) if cfg.spatter.enabled else None
    geo = train_geometric(
        cfg.augment,
        strip_height=opt.strip_height,
        tile_length=opt.tile_length,
        cache_scale=cfg.data.cache_scale,
    )
    photo = train_photometric(cfg.augment)
    bank = (
        cut_pore_patches(train) if cfg.augment.transplant_prob > 0 and cfg.augment.transplant_max > 0 else []
    )
    train_ds = TileDataset(
        train, opt, train=True, geometric=geo, photometric=photo, spatter=spatter, pore_bank=bank
    )
    val_ds = TileDataset(val, opt, train=False, spatter=spatter) if val else None
    return train_ds, val_ds


def make_loader(ds: TileDataset, cfg: TrainConfig, epoch: int, *, balanced: bool) -> DataLoader[Any]:
    """Epoch loader: class-balanced (and, with ``loss.balance_groups``, group-balanced) sampling with
    replacement (training) or in order (eval)."""
    if not ds.train:
        return DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate)
    ds.set_epoch(epoch)
    gen = torch.Generator().manual_seed(cfg.seed * 1009 + epoch)
    n = cfg.steps_per_epoch * cfg.batch_size if cfg.steps_per_epoch else len(ds)
    if balanced:
        weights = torch.as_tensor(ds.sample_weights(by_group=cfg.loss.balance_groups), dtype=torch.double)
        sampler: Any = WeightedRandomSampler(
            weights,  # type: ignore[arg-type]
            num_samples=n,
            replacement=True,
            generator=gen,
        )
    else:
        sampler = torch.randperm(len(ds), generator=gen).tolist()[:n]
    return DataLoader(
        ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, drop_last=len(ds) > cfg.batch_size
    )


def _optimizer(
    model: torch.nn.Module, cfg: TrainConfig, total_steps: int
) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, total_steps))


@dataclass
class FoldResult:
    """What one training run (fold or final) produced."""

    name: str
    best_epoch: int
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    val: EvalOutputs | None = None
    seconds: float = 0.0
    model: torch.nn.Module | None = None


def train_model(
    cfg: TrainConfig,
    train: Sequence[StripSample],
    val: Sequence[StripSample],
    out_dir: Path,
    *,
    epochs: int,
    resume: bool = False,
) -> FoldResult:
    """Train one model; with ``val`` early-stop on its total loss (patience ``cfg.patience``).

    Writes ``out_dir/last.pt`` every epoch (resumable) and ``out_dir/best.pt``; returns the best
    model (by validation loss, or the last one without ``val``) and its validation outputs.
    """
    from inspection.model.net import build_model

    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    model = build_model(cfg.arch, width_mult=cfg.width_mult, embed_dim=cfg.embed_dim)
    if cfg.init_from is not None:
        from inspection.train.pretrain import init_backbone

        init_backbone(model, cfg)
    train_ds, val_ds = make_datasets(cfg, train, val)
    steps_per_epoch = cfg.steps_per_epoch or max(1, len(train_ds) // cfg.batch_size)
    optimizer, scheduler = _optimizer(model, cfg, steps_per_epoch * epochs)
    weights = loss_weights(cfg)
    history: list[dict[str, float]] = []
    start_epoch, best_loss, best_epoch, bad = 0, math.inf, -1, 0
    ckpt = out_dir / CHECKPOINT
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = int(state["epoch"]) + 1
        best_loss, best_epoch, bad = float(state["best_loss"]), int(state["best_epoch"]), int(state["bad"])
        history = list(json.loads(state["history"]))
        log.info("resumed %s at epoch %d", out_dir, start_epoch)
    t0 = time.perf_counter()
    best_val: EvalOutputs | None = None
    epoch = start_epoch
    for epoch in range(start_epoch, epochs):
        loader = make_loader(train_ds, cfg, epoch, balanced=cfg.loss.balance_porosity)
        tr = train_one_epoch(
            model, loader, optimizer, weights, scheduler=scheduler, max_steps=steps_per_epoch
        )
        row: dict[str, float] = {"epoch": float(epoch), **{f"train_{k}": v for k, v in tr.items()}}
        improved = False
        if val_ds is not None:
            ev = evaluate(model, make_loader(val_ds, cfg, epoch, balanced=False), weights)
            row.update({f"val_{k}": v for k, v in ev.losses.items()})
            rep = head_report(ev.porosity_grade, _probs(ev.porosity_logits, 1.0))
            row["val_porosity_qwk"] = _nan(rep["qwk"])
            row["val_porosity_auroc"] = _nan(rep["presence_auroc"])
            if ev.loss < best_loss:
                best_loss, best_epoch, bad, improved, best_val = ev.loss, epoch, 0, True, ev
            else:
                bad += 1
        else:
            best_epoch, improved = epoch, True
        history.append(row)
        log.info("%s epoch %d: %s", out_dir.name, epoch, {k: round(v, 4) for k, v in row.items()})
        if improved:
            torch.save({"model": model.state_dict(), "epoch": epoch}, out_dir / BEST)
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_loss": best_loss,
                "best_epoch": best_epoch,
                "bad": bad,
                "history": json.dumps(history),
            },
            ckpt,
        )
        if val_ds is not None and bad >= cfg.patience:
            log.info("%s: early stop at epoch %d (best %d)", out_dir.name, epoch, best_epoch)
            break
        if cfg.time_budget_min and (time.perf_counter() - t0) / 60.0 > cfg.time_budget_min:
            log.warning(
                "%s: time budget of %.1f min reached at epoch %d", out_dir.name, cfg.time_budget_min, epoch
            )
            break
    best = torch.load(out_dir / BEST, map_location="cpu", weights_only=True)
    model.load_state_dict(best["model"])
    if val_ds is not None and best_val is None:  # resumed after the best epoch: re-evaluate
        best_val = evaluate(model, make_loader(val_ds, cfg, 0, balanced=False), weights)
    return FoldResult(
        name=out_dir.name,
        best_epoch=int(best["epoch"]),
        epochs_run=epoch + 1,
        history=history,
        val=best_val,
        seconds=time.perf_counter() - t0,
        model=model,
    )


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _probs(logits: npt.NDArray[Any], temperature: float) -> npt.NDArray[np.float64]:
    from inspection.model.ordinal import coral_probs

    return np.asarray(coral_probs(np.asarray(logits, dtype=np.float64), temperature), dtype=np.float64)


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
    ids, por_img = image_level(_probs(oof["porosity_logits"], por_t), oof["sample"])
    img_grade = oof["image_grade_by_sample"][ids]
    por_rule = select_abstain_threshold(
        por_img,
        img_grade,
        max_severe_missed=cfg.calibration.max_severe_missed,
        min_confidence=cfg.calibration.min_confidence,
    )
    sp_probs = _probs(oof["spatter_logits"][sp_mask], sp_t)
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
    return {
        "temperatures": {"porosity": por_t, "spatter": sp_t},
        "peak_thresholds": peaks,
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


def fold_metrics(
    oof: dict[str, npt.NDArray[Any]], mask: npt.NDArray[np.bool_], temps: dict[str, float]
) -> dict[str, Any]:
    """Porosity (photo level, calibrated, worst tile) and spatter (tile level) reports for ``mask`` tiles."""
    ids, por_img = image_level(_probs(oof["porosity_logits"][mask], temps["porosity"]), oof["sample"][mask])
    por = head_report(oof["image_grade_by_sample"][ids], por_img)
    sp = oof["spatter_grade"][mask]
    spm = sp >= 0
    spat = head_report(sp[spm], _probs(oof["spatter_logits"][mask][spm], temps["spatter"]))
    tile_por = head_report(
        oof["porosity_grade"][mask], _probs(oof["porosity_logits"][mask], temps["porosity"])
    )
    return {"porosity": por, "spatter": spat, "porosity_tile": tile_por}


def _mean_defined(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(statistics.fmean(vals)) if vals else None


# ----------------------------------------------------------------------------------------------
# Modes


def load_samples(cfg: TrainConfig) -> tuple[list[StripSample], list[float], Any]:
    """The cached strip samples for the configured data (built on first use)."""
    from inspection.train.cache import load_or_build_cache

    return load_or_build_cache(
        cfg.resolve(cfg.data.root),
        cfg.data.manifest,
        cfg.preprocess,
        cache_dir=cfg.resolve(cfg.data.cache_dir),
        cache_scale=cfg.data.cache_scale,
        porosity_thresholds=cfg.grading.porosity_thresholds,
        max_images=cfg.data.max_images,
    )


def synthetic_samples(cfg: TrainConfig) -> list[StripSample]:
    """``cfg.augment.synth_bank`` procedural welds (group ``synth``) preprocessed like real photos.

    Deterministic for ``cfg.seed``; pores only (spatter comes from compositing, as for real photos).
    """
    from inspection.data.grades import grade_from_count
    from inspection.synth import generate_weld
    from inspection.train.cache import strip_sample

    n = cfg.augment.synth_bank
    rng = np.random.default_rng([cfg.seed, 77])
    out = []
    size = cfg.augment.synth_size
    for i in range(n):
        weld = generate_weld(rng, width=size, height=size, n_pores=int(rng.integers(0, 7)), n_spatter=0)
        pores = [b for b in weld.boxes if b.label == "porosity"]
        s, _ = strip_sample(
            weld.image,
            pores,
            key=f"synth-{i}",
            group="synth",
            grade=grade_from_count(len(pores), cfg.grading.porosity_thresholds),
            cfg=cfg.preprocess,
            cache_scale=cfg.data.cache_scale,
        )
        out.append(s)
    return out


def write_resolved_config(cfg: TrainConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False))


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


def plot_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> None:
    """Training/validation loss and validation porosity QWK per epoch, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, hist in histories.items():
        ep = [h["epoch"] for h in hist]
        axes[0].plot(ep, [h["train_total"] for h in hist], label=f"{name} train")
        if hist and "val_total" in hist[0]:
            axes[0].plot(ep, [h["val_total"] for h in hist], "--", label=f"{name} val")
            axes[1].plot(ep, [h.get("val_porosity_qwk", math.nan) for h in hist], label=f"{name}")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("held-out porosity QWK (tile, T=1)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


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
    summary["command"] = command
    summary.update(init_from)
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    return summary
