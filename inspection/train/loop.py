"""One training epoch and one evaluation pass over a :class:`~inspection.data.torch_dataset.TileDataset`.

Losses (per batch of B tiles, heatmaps ``(B, 2, h, w)``):

* CenterNet penalty-reduced focal loss on the centre heatmaps (``alpha``, ``beta``), normalised
  by the number of object centres (at least 1); the spatter channel is masked for tiles where no
  spatter was composited (``spatter_grade == -1``: real photos carry no spatter labels);
* L1 on ``size / stride`` at object centres;
* CORAL loss on the porosity and spatter grade logits (``inspection.model.ordinal.coral_loss``;
  spatter ``-1`` = unknown, ignored).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from inspection.model.ordinal import coral_loss

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor per step for ``LambdaLR``: linear warm-up over ``min(warmup_steps, total_steps // 4)``
    steps (at least 1), then cosine decay from 1 to 0.05 at ``total_steps``."""
    warm = max(1, min(warmup_steps, total_steps // 4))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def make_optimizer(
    model: torch.nn.Module, *, lr: float, weight_decay: float, backbone_lr_mult: float = 1.0
) -> torch.optim.AdamW:
    """AdamW over all of ``model``'s parameters.

    With ``backbone_lr_mult == 1`` one parameter group at ``lr`` (exactly as before, so existing
    checkpoints resume); otherwise two groups: ``backbone.*`` parameters at ``lr * backbone_lr_mult``
    (gentler updates of pretrained features), everything else at ``lr``. A ``LambdaLR`` schedule
    (:func:`warmup_cosine`) scales both groups by the same factor.
    """
    if not backbone_lr_mult > 0:
        msg = f"backbone_lr_mult must be > 0, got {backbone_lr_mult}"
        raise ValueError(msg)
    if backbone_lr_mult == 1.0:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    if not backbone:
        msg = "backbone_lr_mult needs a model with backbone.* parameters"
        raise ValueError(msg)
    groups = [{"params": backbone, "lr": lr * backbone_lr_mult}, {"params": rest, "lr": lr}]
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms and focal-loss exponents (CenterNet defaults 2 and 4)."""

    porosity_ordinal: float = 1.0
    spatter_ordinal: float = 1.0
    heatmap: float = 1.0
    size: float = 0.1
    focal_alpha: float = 2.0
    focal_beta: float = 4.0

    def __post_init__(self) -> None:
        for name in ("porosity_ordinal", "spatter_ordinal", "heatmap", "size", "focal_alpha", "focal_beta"):
            if getattr(self, name) < 0:
                msg = f"LossWeights.{name} must be >= 0, got {getattr(self, name)}"
                raise ValueError(msg)


def focal_heatmap_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    channel_mask: torch.Tensor | None = None,
    *,
    alpha: float = 2.0,
    beta: float = 4.0,
) -> torch.Tensor:
    """CenterNet focal loss. ``logits``/``target`` ``(B, C, h, w)``; ``channel_mask`` ``(B, C)`` 0/1.

    Positives are cells with ``target == 1``; negatives are down-weighted by ``(1 - target)^beta``.
    Returns the summed loss divided by ``max(1, number of positives)`` (a scalar).
    """
    if logits.shape != target.shape:
        msg = f"heatmap logits {tuple(logits.shape)} and targets {tuple(target.shape)} must match"
        raise ValueError(msg)
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = (target >= 0.999).to(logits.dtype)
    neg = 1.0 - pos
    log_p = torch.nn.functional.logsigmoid(logits)
    log_1mp = torch.nn.functional.logsigmoid(-logits)
    pos_loss = -((1 - p) ** alpha) * log_p * pos
    neg_loss = -((1 - target) ** beta) * (p**alpha) * log_1mp * neg
    loss = pos_loss + neg_loss
    if channel_mask is not None:
        m = channel_mask.to(logits.dtype)[:, :, None, None]
        loss = loss * m
        pos = pos * m
    return loss.sum() / pos.sum().clamp(min=1.0)


def size_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Masked L1 between predicted and target diameters (in heatmap cells); ``(B, C, h, w)`` each."""
    diff = (pred - target).abs() / float(stride) * mask
    return diff.sum() / mask.sum().clamp(min=1.0)


def compute_losses(out: Any, batch: Batch, weights: LossWeights, stride: int = 8) -> dict[str, torch.Tensor]:
    """All loss terms for one batch and their weighted ``total`` (each a scalar tensor)."""
    sp_grade = batch["spatter_grade"]
    channel_mask = torch.ones(sp_grade.shape[0], 2, dtype=torch.float32)
    channel_mask[:, 1] = (sp_grade >= 0).to(torch.float32)
    hm = focal_heatmap_loss(
        out.heatmap_logits,
        batch["heatmap"],
        channel_mask,
        alpha=weights.focal_alpha,
        beta=weights.focal_beta,
    )
    sz = size_loss(out.size, batch["size"], batch["size_mask"] * channel_mask[:, :, None, None], stride)
    por = coral_loss(out.porosity_logits, batch["porosity_grade"])
    spa = coral_loss(out.spatter_logits, sp_grade, ignore_index=-1)
    total = (
        weights.heatmap * hm
        + weights.size * sz
        + weights.porosity_ordinal * por
        + weights.spatter_ordinal * spa
    )
    return {"total": total, "heatmap": hm, "size": sz, "porosity": por, "spatter": spa}


def train_one_epoch(
    model: torch.nn.Module,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    weights: LossWeights,
    *,
    scheduler: Any | None = None,
    max_steps: int = 0,
    grad_clip: float = 5.0,
) -> dict[str, float]:
    """Train for one pass over ``loader`` (or ``max_steps`` batches when > 0).

    Returns the mean of each loss term, ``steps``, ``seconds`` and ``samples_per_s``.
    """
    model.train()
    sums: dict[str, float] = {}
    steps = 0
    n = 0
    t0 = time.perf_counter()
    for batch in loader:
        out = model(batch["image"])
        losses = compute_losses(out, batch, weights, getattr(model, "stride", 8))
        if not torch.isfinite(losses["total"]):
            msg = f"non-finite training loss at step {steps}: { {k: float(v) for k, v in losses.items()} }"
            raise FloatingPointError(msg)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        steps += 1
        n += int(batch["image"].shape[0])
        if max_steps and steps >= max_steps:
            break
    secs = time.perf_counter() - t0
    result = {k: v / max(steps, 1) for k, v in sums.items()}
    result.update(steps=float(steps), seconds=secs, samples_per_s=n / secs if secs > 0 else math.nan)
    return result


@dataclass(frozen=True)
class EvalOutputs:
    """Raw per-tile outputs of :func:`evaluate` (numpy, in dataset order).

    ``porosity_logits``/``spatter_logits`` ``(N, 3)``; ``porosity_grade``/``spatter_grade`` ``(N,)``
    targets (-1 = unknown); ``embedding`` ``(N, D)``; ``heat_max`` ``(N, 2)`` max sigmoid heatmap;
    ``index`` ``(N,)`` dataset indices; ``loss`` mean total loss.
    """

    porosity_logits: npt.NDArray[np.float32]
    spatter_logits: npt.NDArray[np.float32]
    porosity_grade: npt.NDArray[np.int64]
    spatter_grade: npt.NDArray[np.int64]
    embedding: npt.NDArray[np.float32]
    heat_max: npt.NDArray[np.float32]
    index: npt.NDArray[np.int64]
    loss: float
    losses: dict[str, float]


@torch.inference_mode()
def evaluate(model: torch.nn.Module, loader: Iterable[Batch], weights: LossWeights) -> EvalOutputs:
    """Run the model over ``loader`` in eval mode and collect outputs and mean losses."""
    model.eval()
    keys = (
        "porosity_logits",
        "spatter_logits",
        "porosity_grade",
        "spatter_grade",
        "embedding",
        "heat_max",
        "index",
    )
    parts: dict[str, list[npt.NDArray[Any]]] = {k: [] for k in keys}
    sums: dict[str, float] = {}
    batches = 0
    for batch in loader:
        out = model(batch["image"])
        losses = compute_losses(out, batch, weights, getattr(model, "stride", 8))
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        batches += 1
        parts["porosity_logits"].append(out.porosity_logits.float().numpy())
        parts["spatter_logits"].append(out.spatter_logits.float().numpy())
        parts["porosity_grade"].append(batch["porosity_grade"].numpy())
        parts["spatter_grade"].append(batch["spatter_grade"].numpy())
        parts["embedding"].append(out.embedding.float().numpy())
        parts["heat_max"].append(torch.sigmoid(out.heatmap_logits).amax(dim=(2, 3)).float().numpy())
        parts["index"].append(batch["index"].numpy())
    if batches == 0:
        msg = "evaluate() got an empty loader"
        raise ValueError(msg)
    arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    losses_mean = {k: v / batches for k, v in sums.items()}
    return EvalOutputs(
        porosity_logits=arrays["porosity_logits"].astype(np.float32),
        spatter_logits=arrays["spatter_logits"].astype(np.float32),
        porosity_grade=arrays["porosity_grade"].astype(np.int64),
        spatter_grade=arrays["spatter_grade"].astype(np.int64),
        embedding=arrays["embedding"].astype(np.float32),
        heat_max=arrays["heat_max"].astype(np.float32),
        index=arrays["index"].astype(np.int64),
        loss=losses_mean["total"],
        losses=losses_mean,
    )


def set_seed(seed: int) -> None:
    """Seed numpy's legacy RNG and torch (data randomness uses explicit generators)."""
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
