"""Self-supervised pretraining of the grader's backbone on unlabelled weld photos (``mode: pretrain``).

SimCLR-style: each step draws ``pretrain.batch_size`` photos of distinct source welds (so two
Roboflow copies of one photo are never each other's negatives), takes one random seam window of
``pretrain.window`` tiles from each photo's cached strip (the same ``inspection.image.preprocess`` seam
localisation and strip geometry as the labelled data, cached by
:func:`inspection.train.cache.load_or_build_unlabelled_cache`), augments it twice independently
(:func:`inspection.train.augment.contrastive_preset`) and trains backbone + projection head with the
NT-Xent loss (:func:`nt_xent`). The projection head is thrown away; the backbone's tensors are
written as ``runs/<name>/backbone.safetensors`` under their :class:`~inspection.model.net.GraderNet`
names (``backbone.*``), so ``init_from`` can load them into a fresh grader
(:func:`init_backbone`). The photos' coarse labels are never read.

``runs/<name>/`` also gets ``config.resolved.yaml``, ``metrics.json`` (loss per epoch, photos used
and skipped, minutes), ``loss_curve.png`` and ``last.pt`` (resume with ``--resume``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import safetensors
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from inspection.model.net import backbone_channels
from inspection.train.cache import DataMissingError, UnlabelledStrip, file_sha256
from inspection.train.config import TrainConfig, write_resolved_config
from inspection.train.loop import set_seed, warmup_cosine

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.safetensors"
BACKBONE_PREFIX = "backbone."
METADATA_KEY = "inspection_backbone"
CHECKPOINT = "last.pt"
CURVE_FILE = "loss_curve.png"


class InitFromMissingError(DataMissingError):
    """``init_from`` names a file or run directory that does not exist."""


class InitFromError(ValueError):
    """``init_from`` tensors do not fit the configured network."""


# ----------------------------------------------------------------------------------------------
# Loss and network


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent (normalised temperature-scaled cross entropy, SimCLR) for ``N`` positive pairs.

    ``z1``, ``z2``: ``(N, D)`` projections of the two views (row i of each is a pair). Every one of
    the ``2N`` projections must pick its partner among the other ``2N - 1`` by cosine similarity
    divided by ``temperature``. Returns the mean cross entropy (a scalar); ``log(2N - 1)`` is chance.
    """
    if z1.ndim != 2 or z1.shape != z2.shape:
        msg = f"nt_xent needs two (N, D) tensors of equal shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        raise ValueError(msg)
    n = int(z1.shape[0])
    if n < 2:
        msg = f"nt_xent needs at least 2 pairs (the other pairs are the negatives), got {n}"
        raise ValueError(msg)
    if not temperature > 0:
        msg = f"nt_xent temperature must be > 0, got {temperature}"
        raise ValueError(msg)
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = (z @ z.T) / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def pair_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> float:
    """Fraction of the ``2N`` projections whose nearest other projection is their partner."""
    n = int(z1.shape[0])
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
    sim = (z @ z.T).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return float((sim.argmax(dim=1) == targets).float().mean())


class ContrastiveNet(nn.Module):
    """A grader backbone plus a projection head: global average pools of the stride-8 and stride-16
    features, concatenated -> Linear -> BatchNorm -> ReLU -> Linear -> ``(B, projection_dim)``."""

    def __init__(self, backbone: nn.Module, *, hidden_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        features = sum(backbone_channels(backbone))
        self.projection = nn.Sequential(
            nn.Linear(features, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, projection_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c8, c16 = self.backbone(x)
        pooled = torch.cat([c8.mean(dim=(2, 3)), c16.mean(dim=(2, 3))], dim=1)
        out: torch.Tensor = self.projection(pooled)
        return out


# ----------------------------------------------------------------------------------------------
# Backbone file: save and init_from


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` tensors of a :class:`GraderNet` or :class:`ContrastiveNet` (CPU, contiguous)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        msg = f"{type(model).__name__} has no backbone module"
        raise TypeError(msg)
    return {BACKBONE_PREFIX + k: v.detach().cpu().contiguous() for k, v in backbone.state_dict().items()}


def save_backbone(model: nn.Module, path: Path, *, arch: str, width_mult: float) -> None:
    """Write the backbone tensors to ``path`` (safetensors) with ``arch``/``width_mult`` metadata."""
    meta = json.dumps({"arch": arch, "width_mult": float(width_mult), "format": "pt"}, sort_keys=True)
    data = safetensors.torch.save(backbone_state(model), metadata={METADATA_KEY: meta})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def resolve_init_from(cfg: TrainConfig) -> Path:
    """The safetensors file ``cfg.init_from`` names (a run directory means its ``backbone.safetensors``).

    Raises :class:`InitFromMissingError` naming the path when it does not exist.
    """
    if cfg.init_from is None:
        msg = "init_from is not set"
        raise ValueError(msg)
    path = cfg.resolve(cfg.init_from)
    if path.is_dir():
        path = path / BACKBONE_FILE
    if not path.is_file():
        msg = (
            f"init_from: {path} does not exist (give a finished pretrain run directory holding "
            f"{BACKBONE_FILE}, or a .safetensors file with backbone.* tensors)"
        )
        raise InitFromMissingError(msg)
    return path


@dataclass(frozen=True)
class BackboneInit:
    """What :func:`init_backbone` loaded: the file, its SHA-256 and the number of tensors."""

    path: Path
    sha256: str
    tensors: int
    source_arch: str | None


def _file_arch(path: Path) -> tuple[str | None, float | None]:
    try:
        with safetensors.safe_open(str(path), framework="pt") as fh:  # type: ignore[no-untyped-call]
            meta = fh.metadata() or {}
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        msg = f"init_from: {path} is not a readable safetensors file: {exc}"
        raise InitFromError(msg) from exc
    raw = meta.get(METADATA_KEY)
    if raw is None:
        return None, None
    info = json.loads(raw)
    return str(info.get("arch")), float(info.get("width_mult", 1.0))


def _listing(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" ... ({len(items)} in all)" if len(items) > limit else "")


def init_backbone(model: nn.Module, cfg: TrainConfig) -> BackboneInit:
    """Load the ``backbone.*`` tensors of ``cfg.init_from`` into ``model.backbone`` (in place).

    Reads safetensors only (no pickle). Every backbone tensor of the configured network must be in
    the file with the same shape; other tensors in the file (e.g. heads of a full grader artifact)
    are ignored. Raises :class:`InitFromError` listing missing, extra and mis-shaped tensors (and the
    architecture the file was pretrained for, when recorded), :class:`InitFromMissingError` when the
    file is absent.
    """
    path = resolve_init_from(cfg)
    src_arch, src_width = _file_arch(path)
    loaded = safetensors.torch.load_file(str(path), device="cpu")
    mine = backbone_state(model)
    theirs = {k: v for k, v in loaded.items() if k.startswith(BACKBONE_PREFIX)}
    missing = sorted(set(mine) - set(theirs))
    extra = sorted(set(theirs) - set(mine))
    shapes = sorted(
        f"{k} file {tuple(theirs[k].shape)} vs network {tuple(mine[k].shape)}"
        for k in set(mine) & set(theirs)
        if tuple(theirs[k].shape) != tuple(mine[k].shape)
    )
    arch_differs = src_arch is not None and (src_arch != cfg.arch or src_width != float(cfg.width_mult))
    if missing or extra or shapes or arch_differs:
        parts = [
            f"init_from {path} does not fit the configured network (arch {cfg.arch!r}, "
            f"width_mult {cfg.width_mult})"
        ]
        if src_arch is not None:
            parts.append(f"it was pretrained for arch {src_arch!r}, width_mult {src_width}")
        if not theirs:
            parts.append(f"it holds no {BACKBONE_PREFIX}* tensors ({len(loaded)} tensors in all)")
        if missing:
            parts.append(f"{len(missing)} backbone tensors missing from the file: {_listing(missing)}")
        if extra:
            parts.append(f"{len(extra)} file tensors the network does not have: {_listing(extra)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_listing(shapes)}")
        parts.append("pretrain with the same arch and width_mult, or unset init_from")
        raise InitFromError("; ".join(parts))
    backbone = model.backbone
    if not isinstance(backbone, nn.Module):  # pragma: no cover - backbone_state checked it
        msg = "model has no backbone"
        raise TypeError(msg)
    backbone.load_state_dict({k[len(BACKBONE_PREFIX) :]: v for k, v in theirs.items()}, strict=True)
    sha = file_sha256(path)
    n_ignored = len(loaded) - len(theirs)
    log.info(
        "init_from %s: loaded %d backbone tensors (sha256 %s)%s",
        path,
        len(theirs),
        sha[:12],
        f", ignored {n_ignored} non-backbone tensors" if n_ignored else "",
    )
    return BackboneInit(path, sha, len(theirs), src_arch)


# ----------------------------------------------------------------------------------------------
# Views


class ViewSampler:
    """Builds the two augmented views of a batch (deterministic for ``(seed, epoch, step)``).

    ``view``: an albumentations-style image transform (cached strip window -> one model tile).
    Photos are drawn one per source group, groups without replacement when there are enough.
    """

    def __init__(
        self,
        strips: Sequence[UnlabelledStrip],
        view: Callable[..., dict[str, Any]],
        *,
        window_px: int,
        mean: Sequence[float],
        std: Sequence[float],
        seed: int,
    ) -> None:
        if len(strips) < 2:
            msg = f"contrastive pretraining needs at least 2 photos with a seam, got {len(strips)}"
            raise ValueError(msg)
        self.strips = list(strips)
        self.view = view
        self.window_px = int(window_px)
        self.mean, self.std = tuple(mean), tuple(std)
        self.seed = int(seed)
        by_group: dict[str, list[int]] = {}
        for i, s in enumerate(self.strips):
            by_group.setdefault(s.group, []).append(i)
        self.groups = [by_group[g] for g in sorted(by_group)]

    def _window(self, strip: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
        length = strip.shape[1]
        if length <= self.window_px:
            return strip
        o = int(rng.integers(0, length - self.window_px + 1))
        return np.ascontiguousarray(strip[:, o : o + self.window_px])

    def _apply(self, image: npt.NDArray[np.uint8], seed: int) -> npt.NDArray[np.uint8]:
        setter = getattr(self.view, "set_random_seed", None)
        if setter is not None:
            setter(seed)
        return np.ascontiguousarray(self.view(image=image)["image"], dtype=np.uint8)

    def batch(self, batch_size: int, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Two float32 ``(B, 3, H, W)`` normalised view batches; row i of each comes from one photo."""
        from inspection.model.net import normalize_tiles

        rng = np.random.default_rng([self.seed, 7_919, epoch, step])
        replace = len(self.groups) < batch_size
        picks = rng.choice(len(self.groups), size=batch_size, replace=replace)
        v1, v2 = [], []
        for g in picks:
            members = self.groups[int(g)]
            strip = self.strips[members[int(rng.integers(0, len(members)))]].strip
            window = self._window(strip, rng)
            s1, s2 = (int(x) for x in rng.integers(0, 2**31 - 1, size=2))
            v1.append(self._apply(window, s1))
            v2.append(self._apply(window, s2))
        x1 = torch.from_numpy(normalize_tiles(np.stack(v1), self.mean, self.std))
        x2 = torch.from_numpy(normalize_tiles(np.stack(v2), self.mean, self.std))
        return x1, x2


# ----------------------------------------------------------------------------------------------
# The run


def plot_loss(history: list[dict[str, float]], step_loss: list[float], chance: float, path: Path) -> None:
    """NT-Xent loss per step (thin) and per epoch (dots), with the chance level ``log(2B - 1)``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if step_loss:
        ax.plot(np.arange(1, len(step_loss) + 1), step_loss, lw=0.6, alpha=0.6, label="step")
    ends = np.cumsum([h["steps"] for h in history])
    ax.plot(ends, [h["loss"] for h in history], "o-", label="epoch mean")
    ax.axhline(chance, color="grey", ls="--", lw=0.8, label="chance log(2B-1)")
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run_pretrain(cfg: TrainConfig, *, resume: bool = False, command: str = "") -> dict[str, Any]:
    """Contrastive pretraining of ``cfg.arch``'s backbone on ``cfg.pretrain.root``; returns the summary.

    Raises :class:`~inspection.train.cache.DataMissingError` when the photo folder is absent.
    """
    from inspection.model.net import build_model
    from inspection.train.augment import contrastive_preset
    from inspection.train.cache import load_or_build_unlabelled_cache

    p = cfg.pretrain
    t_start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    run_dir = cfg.run_dir
    write_resolved_config(cfg, run_dir)
    data = load_or_build_unlabelled_cache(
        cfg.resolve(p.root),
        p.images_dir,
        cfg.preprocess,
        cache_dir=cfg.resolve(cfg.data.cache_dir),
        cache_scale=p.cache_scale,
        max_images=p.max_images,
    )
    strips, skipped = data.select(p.min_seam_score)
    log.info(
        "pretrain: %d of %d photos used (%d source welds); skipped %s",
        len(strips),
        data.n_files,
        len({s.group for s in strips}),
        skipped,
    )
    cache_minutes = (time.perf_counter() - t_start) / 60.0

    set_seed(cfg.seed)
    grader = build_model(
        cfg.arch, width_mult=cfg.width_mult, embed_dim=cfg.embed_dim, pretrained=cfg.pretrained
    )
    init = init_backbone(grader, cfg) if cfg.init_from is not None else None
    net = ContrastiveNet(grader.backbone, hidden_dim=p.hidden_dim, projection_dim=p.projection_dim)
    del grader
    view = contrastive_preset(
        p,
        strip_height=cfg.preprocess.strip_height,
        tile_length=cfg.preprocess.tile_length,
        cache_scale=p.cache_scale,
    )
    window_px = round(p.window * cfg.preprocess.tile_length * p.cache_scale)
    sampler = ViewSampler(strips, view, window_px=window_px, mean=cfg.mean, std=cfg.std, seed=cfg.seed)
    if len(sampler.groups) < p.batch_size:
        log.warning(
            "only %d source welds for batches of %d: some batches hold two photos of one weld",
            len(sampler.groups),
            p.batch_size,
        )
    total_steps = p.epochs * p.steps_per_epoch
    optimizer = torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(p.warmup_steps, total_steps))

    history: list[dict[str, float]] = []
    step_loss: list[float] = []
    start_epoch = 0
    ckpt = run_dir / CHECKPOINT
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = json.loads(state["history"])
        step_loss = json.loads(state["step_loss"])
        start_epoch = int(state["epoch"]) + 1
        log.info("pretrain: resumed %s after epoch %d", ckpt, start_epoch - 1)

    budget = p.time_budget_min or cfg.time_budget_min
    chance = math.log(2 * p.batch_size - 1)
    t0 = time.perf_counter()
    out_of_time = False
    for epoch in range(start_epoch, p.epochs):
        net.train()
        te = time.perf_counter()
        losses: list[float] = []
        accs: list[float] = []
        for step in range(p.steps_per_epoch):
            x1, x2 = sampler.batch(p.batch_size, epoch, step)
            z = net(torch.cat([x1, x2], dim=0))
            z1, z2 = z[: p.batch_size], z[p.batch_size :]
            loss = nt_xent(z1, z2, p.temperature)
            if not torch.isfinite(loss):
                msg = f"non-finite NT-Xent loss at epoch {epoch} step {step}: {float(loss)}"
                raise FloatingPointError(msg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            accs.append(pair_accuracy(z1.detach(), z2.detach()))
            if budget and (time.perf_counter() - t0) / 60.0 > budget:
                out_of_time = True
                break
        step_loss.extend(losses)
        secs = time.perf_counter() - te
        row = {
            "epoch": float(epoch),
            "loss": float(np.mean(losses)),
            "pair_accuracy": float(np.mean(accs)),
            "steps": float(len(losses)),
            "seconds": secs,
            "lr": float(scheduler.get_last_lr()[0]),
            "tiles_per_s": 2 * p.batch_size * len(losses) / secs if secs > 0 else math.nan,
        }
        history.append(row)
        log.info("pretrain epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        save_backbone(net, run_dir / BACKBONE_FILE, arch=cfg.arch, width_mult=cfg.width_mult)
        torch.save(
            {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": json.dumps(history),
                "step_loss": json.dumps(step_loss),
            },
            ckpt,
        )
        if out_of_time:
            log.warning("pretrain: time budget of %.1f min reached in epoch %d", budget, epoch)
            break
    backbone_path = run_dir / BACKBONE_FILE
    if not backbone_path.is_file():  # resumed a finished run: nothing left to train
        save_backbone(net, backbone_path, arch=cfg.arch, width_mult=cfg.width_mult)
    plot_loss(history, step_loss, chance, run_dir / CURVE_FILE)
    summary: dict[str, Any] = {
        "mode": "pretrain",
        "arch": cfg.arch,
        "width_mult": cfg.width_mult,
        "method": "SimCLR NT-Xent, two augmented views of one seam window per photo",
        "photos": {
            "root": str(p.root),
            "files": data.n_files,
            "used": len(strips),
            "source_welds": len(sampler.groups),
            "skipped": skipped,
            "min_seam_score": p.min_seam_score,
        },
        "batch_size": p.batch_size,
        "temperature": p.temperature,
        "projection_dim": p.projection_dim,
        "chance_loss": chance,
        "epochs_run": len(history),
        "steps": int(sum(h["steps"] for h in history)),
        "loss_per_epoch": [h["loss"] for h in history],
        "final_loss": history[-1]["loss"] if history else None,
        "history": history,
        "stopped_by_time_budget": out_of_time,
        "cache": {"path": str(data.path), "key": data.key, "minutes": cache_minutes},
        "train_minutes": (time.perf_counter() - t0) / 60.0,
        "minutes": (time.perf_counter() - t_start) / 60.0,
        "artifact": str(backbone_path),
        "backbone_sha256": file_sha256(backbone_path),
        "backbone_tensors": len(backbone_state(net)),
        "command": command,
    }
    if init is not None:
        summary["init_from"] = str(cfg.init_from)
        summary["init_from_sha256"] = init.sha256
    (run_dir / "metrics.json").write_text(json.dumps(summary, indent=2))
    log.info("pretrain: wrote %s (%d tensors)", backbone_path, summary["backbone_tensors"])
    return summary
