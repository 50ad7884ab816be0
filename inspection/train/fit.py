"""Training building blocks: datasets, loaders, the optimiser and ``train_model`` (one model).

Used by the LOWO orchestration (:mod:`inspection.train.run`) and the final training
(:mod:`inspection.train.final`); imports neither. Checkpoints are plain dicts saved with
``torch.save`` and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from inspection.data.torch_dataset import (
    DatasetOptions,
    StripSample,
    TileDataset,
    collate,
    cut_pore_patches,
)
from inspection.train.config import TrainConfig
from inspection.train.loop import (
    EvalOutputs,
    LossWeights,
    evaluate,
    make_optimizer,
    set_seed,
    train_one_epoch,
    warmup_cosine,
)
from inspection.train.metrics import head_report

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
BEST = "best.pt"


def nan_if_none(v: float | None) -> float:
    """``v`` as a float, NaN for an undefined metric (``None``)."""
    return math.nan if v is None else float(v)


def tempered_probs(logits: npt.NDArray[Any], temperature: float) -> npt.NDArray[np.float64]:
    """CORAL grade probabilities ``(N, 4)`` from cumulative logits at ``temperature``."""
    from inspection.model.ordinal import coral_probs

    return np.asarray(coral_probs(np.asarray(logits, dtype=np.float64), temperature), dtype=np.float64)


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
    from inspection.train.augment import train_geometric, train_photometric

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
    opt = make_optimizer(
        model, lr=cfg.lr, weight_decay=cfg.weight_decay, backbone_lr_mult=cfg.backbone_lr_mult
    )
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
    initial_state: Mapping[str, torch.Tensor] | None = None,
) -> FoldResult:
    """Train one model; with ``val`` early-stop on its total loss (patience ``cfg.patience``).

    Writes ``out_dir/last.pt`` every epoch (resumable) and ``out_dir/best.pt``; returns the best
    model (by validation loss, or the last one without ``val``) and its validation outputs.
    ``initial_state``: a full state dict of the same network (e.g. a shipped artifact's weights)
    loaded strictly before training: incremental fine-tuning (``weldinspect train --from-store``).
    """
    from inspection.model.net import build_model

    out_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)
    model = build_model(
        cfg.arch, width_mult=cfg.width_mult, embed_dim=cfg.embed_dim, pretrained=cfg.pretrained
    )
    if cfg.init_from is not None:
        from inspection.train.pretrain import init_backbone

        init_backbone(model, cfg)
    if initial_state is not None:
        model.load_state_dict(dict(initial_state), strict=True)
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
            rep = head_report(ev.porosity_grade, tempered_probs(ev.porosity_logits, 1.0))
            row["val_porosity_qwk"] = nan_if_none(rep["qwk"])
            row["val_porosity_auroc"] = nan_if_none(rep["presence_auroc"])
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


def synthetic_samples(cfg: TrainConfig) -> list[StripSample]:
    """``cfg.augment.synth_bank`` procedural welds (group ``synth``) preprocessed like real photos.

    Deterministic for ``cfg.seed``; pores only (spatter comes from compositing, as for real photos).
    """
    from inspection.data.grades import grade_from_count
    from inspection.data.synth import generate_weld
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
