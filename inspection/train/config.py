"""The training configuration (parsed once from YAML into a frozen pydantic model).

Paths in the YAML are relative to the repository root unless absolute. Unknown keys are errors
naming the valid ones (pydantic ``extra="forbid"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from inspection.config import ConfigError, GradingConfig, PreprocessConfig

REPO_ROOT = Path(__file__).resolve().parents[2]

ARCHS = ("mobilenet_v3_large", "resnet18", "efficientnet_b0", "efficientnet_lite0", "tiny")
"""``inspection.model.net.ARCHITECTURES`` (repeated so parsing a config does not import torch)."""

PRETRAINED_NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": ((127 / 255, 127 / 255, 127 / 255), (128 / 255, 128 / 255, 128 / 255)),
}
"""Archs with shipped ImageNet weights -> the (mean, std) their inputs must be normalised with
(``inspection.model.net.pretrained_weights(arch).mean/.std``; EfficientNet-Lite: 127/128 per channel)."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSection(_Section):
    """Where the labelled photos are and how folds are made.

    ``root``: folder with ``annotations.jsonl`` and ``images/``. ``folds``: the weld groups
    rotated as held-out folds (leave-one-weld-out); other groups (one-offs) always train.
    ``max_images``: cap for quick smoke runs (0 = all). ``corrections``: label-correction overlays
    (``data/label-corrections/*.jsonl`` files or folders, see ``docs/labelling.md``) applied over
    the manifest before training; the shared manifest is never edited.
    """

    root: Path = Path("../shared/data/weld-porosity")
    manifest: str = "annotations.jsonl"
    corrections: tuple[Path, ...] = ()
    folds: tuple[str, ...] = ("weld00", "weld01", "weld04")
    max_images: int = Field(0, ge=0)
    cache_dir: Path = Path("runs/cache")
    cache_scale: float = Field(2.0, ge=1.0, le=4.0)


class AugmentSection(_Section):
    """Augmentation strengths (0 disables a family). See :mod:`inspection.train.augment`.

    ``transplant_prob``/``transplant_max``: chance and maximum number of pores (cut from the other
    training welds) pasted onto a training strip. ``synth_bank``: number of procedural synthetic
    welds (``inspection.data.synth``, ``synth_size`` px square, 0-6 pores) added to every training set.
    """

    photometric: float = Field(1.0, ge=0, le=2)
    geometric: float = Field(1.0, ge=0, le=2)
    scale_range: tuple[float, float] = (0.8, 1.25)
    rotate_deg: float = Field(6.0, ge=0, le=45)
    transplant_prob: float = Field(0.5, ge=0, le=1)
    transplant_max: int = Field(4, ge=0)
    synth_bank: int = Field(0, ge=0)
    synth_size: int = Field(400, ge=64)


class SpatterSection(_Section):
    """Synthetic spatter composited onto real tiles (balanced random grade per sample)."""

    enabled: bool = True
    prob_by_grade: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)
    mm_per_px: float = Field(0.1, gt=0)


class LossSection(_Section):
    """Loss weights: CORAL heads, CenterNet focal heatmap loss and size regression.

    ``balance_porosity``: draw training photos class-balanced on the porosity grade;
    ``balance_groups``: also give every weld group the same total weight (see
    :meth:`inspection.data.torch_dataset.TileDataset.sample_weights`).
    """

    porosity_ordinal: float = Field(1.0, ge=0)
    spatter_ordinal: float = Field(1.0, ge=0)
    heatmap: float = Field(1.0, ge=0)
    size: float = Field(0.1, ge=0)
    focal_alpha: float = Field(2.0, ge=0)
    focal_beta: float = Field(4.0, ge=0)
    balance_porosity: bool = True
    balance_groups: bool = False


class CalibrationSection(_Section):
    """Abstain rule selection: at most ``max_severe_missed`` of true grade >= 2 output as 0.

    ``max_pore_free_flagged``: when set, the porosity peak threshold is raised (never lowered) until
    at most this share of the out-of-fold photos labelled pore-free have a porosity peak at or above
    it, i.e. would get a finding and grade >= 1 (:func:`inspection.train.calibrate.select_pore_free_floor`);
    unset (the default), the threshold is the presence-F1 one alone.
    """

    max_severe_missed: float = Field(0.02, ge=0, lt=1)
    min_confidence: float = Field(0.4, ge=0, le=1)
    ood_percentile: float = Field(99.0, gt=50, le=100)
    peak_threshold: float = Field(0.3, gt=0, lt=1)
    max_pore_free_flagged: float | None = Field(None, gt=0, lt=1)


class PretrainSection(_Section):
    """Self-supervised (SimCLR / NT-Xent) pretraining of the backbone on unlabelled photos
    (``mode: pretrain``, see :mod:`inspection.train.pretrain`).

    ``root``: folder with ``images_dir`` (any labels next to it are never read). ``max_images``:
    cap on the photos used (0 = all; an evenly spaced subset of the sorted file names).
    ``min_seam_score``: photos whose seam localisation scores below this (or finds nothing) are
    skipped and counted (0.15 is the quality gate's ``seam_min_score``). ``cache_scale``: the cached
    strips' height relative to the model strip. Each step draws ``batch_size`` photos of distinct
    source welds (the part of the file name before ``.rf.``), one random seam window each, and two
    independently augmented tiles of it (``photometric``/``geometric``/``scale_range``/
    ``rotate_deg`` as in the ``augment`` section, usually stronger). ``window``: the window length
    in tiles the two views are cropped from (1 = same crop, larger = less overlap).
    ``time_budget_min``: stop after this many minutes of training (0 = no limit).
    """

    root: Path = Path("../shared/data/weld-photos-unlabelled")
    images_dir: str = "images"
    max_images: int = Field(0, ge=0)
    min_seam_score: float = Field(0.15, ge=0, le=1)
    cache_scale: float = Field(1.5, ge=1.0, le=4.0)
    epochs: int = Field(8, ge=1)
    steps_per_epoch: int = Field(25, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(10, ge=0)
    temperature: float = Field(0.2, gt=0, le=10)
    projection_dim: int = Field(64, ge=4)
    hidden_dim: int = Field(256, ge=8)
    window: float = Field(1.5, ge=1.0, le=4.0)
    photometric: float = Field(1.5, ge=0, le=2)
    geometric: float = Field(1.0, ge=0, le=2)
    scale_range: tuple[float, float] = (0.7, 1.4)
    rotate_deg: float = Field(10.0, ge=0, le=45)
    time_budget_min: float = Field(0.0, ge=0)


class TrainConfig(_Section):
    """Everything one training run needs. ``mode``: ``lowo`` (rotate held-out welds), ``final``
    (all data; calibration from a LOWO run's out-of-fold predictions in ``calibration_from``),
    ``smoke`` (a few steps), or ``pretrain`` (self-supervised backbone pretraining on unlabelled
    photos, section ``pretrain``; writes ``runs/<name>/backbone.safetensors``).

    ``init_from``: a pretrain run directory (holding ``backbone.safetensors``) or a safetensors
    file whose ``backbone.*`` tensors initialise the network before training (None = random).
    ``pretrained``: start the backbone from the shipped ImageNet weights (only archs in
    :data:`PRETRAINED_NORMALISATION`, width_mult 1.0, with that arch's ``mean``/``std``; not together
    with ``init_from``). ``backbone_lr_mult``: the backbone's learning rate is ``lr`` times this
    (below 1 to fine-tune pretrained features gently; 1 = one learning rate for all parameters).
    """

    name: str = "weld-grader"
    version: str = "2026.11.0"
    mode: Literal["lowo", "final", "smoke", "pretrain"] = "lowo"
    folds_to_run: tuple[str, ...] = ()
    arch: str = "mobilenet_v3_large"
    width_mult: float = Field(1.0, gt=0)
    pretrained: bool = False
    backbone_lr_mult: float = Field(1.0, gt=0, le=1)
    embed_dim: int = Field(128, ge=8)
    epochs: int = Field(10, ge=1)
    steps_per_epoch: int = Field(0, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(20, ge=0)
    patience: int = Field(4, ge=1)
    seed: int = 1234
    threads: int = Field(2, ge=1)
    eval_tiles_per_image: int = Field(4, ge=1)
    time_budget_min: float = Field(0.0, ge=0)
    output_dir: Path = Path("runs")
    artifact_root: Path = Path("models/weld-grader")
    calibration_from: Path | None = None
    init_from: Path | None = None
    comparison_runs: tuple[str, ...] = ()
    ablation_runs: tuple[str, ...] = ()
    notes: str = ""
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    data: DataSection = Field(default_factory=DataSection)
    preprocess: PreprocessConfig = Field(
        default_factory=lambda: PreprocessConfig(strip_height=128, tile_length=256)
    )
    grading: GradingConfig = Field(default_factory=GradingConfig)
    augment: AugmentSection = Field(default_factory=AugmentSection)
    spatter: SpatterSection = Field(default_factory=SpatterSection)
    loss: LossSection = Field(default_factory=LossSection)
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    pretrain: PretrainSection = Field(default_factory=PretrainSection)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHS:
            msg = f"unknown arch {v!r}; valid: {', '.join(ARCHS)}"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _pretrained_fits(self) -> TrainConfig:
        if not self.pretrained:
            return self
        norm = PRETRAINED_NORMALISATION.get(self.arch)
        if norm is None:
            msg = (
                f"pretrained: no ImageNet weights are shipped for arch {self.arch!r}; "
                f"archs with pretrained weights: {', '.join(PRETRAINED_NORMALISATION)}"
            )
            raise ValueError(msg)
        if self.width_mult != 1.0:
            msg = f"pretrained {self.arch} weights need width_mult 1.0, got {self.width_mult}"
            raise ValueError(msg)
        if self.init_from is not None:
            msg = "pretrained and init_from both initialise the backbone: set only one of them"
            raise ValueError(msg)
        mean, std = norm
        close = all(abs(a - b) <= 1e-3 for a, b in zip((*self.mean, *self.std), (*mean, *std), strict=True))
        if not close:
            want = f"mean [{', '.join(f'{v:.4f}' for v in mean)}], std [{', '.join(f'{v:.4f}' for v in std)}]"
            msg = (
                f"pretrained {self.arch} weights were trained on inputs normalised with {want} "
                f"(within 1e-3); the config has mean {list(self.mean)}, std {list(self.std)}"
            )
            raise ValueError(msg)
        return self

    def resolve(self, path: Path) -> Path:
        """``path`` made absolute against the repository root."""
        return path if path.is_absolute() else (REPO_ROOT / path)

    @property
    def run_dir(self) -> Path:
        return self.resolve(self.output_dir) / self.name

    def to_yaml_dict(self) -> dict[str, Any]:
        """A JSON/YAML-ready dict of the resolved config (paths as strings)."""
        return self.model_dump(mode="json")


def load_train_config(path: Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Parse a YAML training config; ``overrides`` (top-level keys) win over the file.

    Raises :class:`inspection.config.ConfigError` naming the file and the invalid fields.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"training config {path} does not exist"
        raise ConfigError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"training config {path} is not valid YAML: {exc}"
        raise ConfigError(msg) from exc
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        msg = f"training config {path} must hold a mapping, got {type(loaded).__name__}"
        raise ConfigError(msg)
    data = {**loaded, **(overrides or {})}
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        keys = ", ".join(TrainConfig.model_fields)
        msg = f"invalid training config {path}: {problems} (top-level keys: {keys})"
        raise ConfigError(msg) from exc


def write_resolved_config(cfg: TrainConfig, run_dir: Path) -> None:
    """Save the resolved config next to the outputs it produced (``config.resolved.yaml``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(cfg.to_yaml_dict(), sort_keys=False))
