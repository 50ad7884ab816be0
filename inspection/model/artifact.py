"""Model artifacts: ``models/<name>/<version>/`` holding

* ``model.safetensors``: the network state dict, including the OOD statistics buffers
  ``ood_mean`` ``(D,)``, ``ood_precision`` ``(D, D)`` and ``ood_count`` ``()``;
* ``config.json``: :class:`ModelConfig` (architecture, input, normalisation, preprocessing,
  temperatures, thresholds, provenance, metrics summary);
* ``MODEL_CARD.md`` and ``metrics.json``.

Weights are read with safetensors only (no pickle). :class:`~inspection.types.ModelInfo` carries
the SHA-256 of the ``model.safetensors`` bytes, which identifies the model in every result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
import safetensors
import safetensors.numpy
import safetensors.torch
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import inspection
from inspection.config import PreprocessConfig
from inspection.model.files import sha256_file
from inspection.model.net import (
    ARCHITECTURES,
    HEATMAP_STRIDE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    GraderNet,
    PretrainedWeights,
    build_model,
)
from inspection.model.postprocess import AbstainRule, OodStats
from inspection.types import GRADE_LEVELS, ModelInfo

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "MODEL_CARD.md"
METRICS_FILE = "metrics.json"
ARTIFACT_FILES = (WEIGHTS_FILE, CONFIG_FILE, CARD_FILE, METRICS_FILE)
MODEL_ENV = "WELDINSPECT_MODEL"
DEFAULT_MODEL_NAME = "weld-grader"
HEADS: tuple[str, str] = ("porosity", "spatter")

T = TypeVar("T")
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]


class ArtifactError(ValueError):
    """A model artifact is missing, incomplete or corrupt; the message names the file and reason."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PerHead(_Frozen, Generic[T]):
    """One value per graded head; index with the head name (``cfg.temperatures["porosity"]``)."""

    porosity: T
    spatter: T

    def __getitem__(self, head: str) -> T:
        if head not in HEADS:
            msg = f"unknown head {head!r}; heads: {', '.join(HEADS)}"
            raise KeyError(msg)
        value: T = getattr(self, str(head))
        return value


ProbabilityPerHead = PerHead[Probability]
TemperaturePerHead = PerHead[PositiveFloat]
AbstainPerHead = PerHead[AbstainRule]


class InputSpec(_Frozen):
    """The tile the network sees: ``strip_height`` x ``tile_length`` pixels, RGB."""

    strip_height: int = Field(128, ge=16)
    tile_length: int = Field(512, ge=16)
    channels: Literal["RGB"] = "RGB"


class Thresholds(_Frozen):
    """Decision thresholds.

    * ``abstain``: per-head :class:`AbstainRule` (when a grade goes to review);
    * ``peak``: per-class heatmap peak threshold (sigmoid value) for findings;
    * ``min_peak_distance``: NMS radius in heatmap cells; ``max_peaks`` per tile and class;
    * ``ood``: OOD score above which an image is flagged ``out_of_distribution``.
    """

    abstain: AbstainPerHead = Field(
        default_factory=lambda: AbstainPerHead(porosity=AbstainRule(), spatter=AbstainRule())
    )
    peak: ProbabilityPerHead = Field(default_factory=lambda: ProbabilityPerHead(porosity=0.3, spatter=0.3))
    min_peak_distance: int = Field(1, ge=1)
    max_peaks: int = Field(100, ge=1)
    ood: PositiveFloat = 3.0


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


class InitSource(_Frozen):
    """What the backbone was initialised from before training (``provenance.init``): a
    human-readable ``source`` (package, version, data set, licence), the weights ``file`` name and
    the SHA-256 of its bytes. Absent (None) for networks trained from random initialisation."""

    source: str = Field(min_length=1)
    file: str = Field(pattern=r"^[^/\\]+$")
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _hex64(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", v):
            msg = f"init sha256 must be 64 lowercase hex digits, got {v!r}"
            raise ValueError(msg)
        return v

    @classmethod
    def from_pretrained(cls, weights: PretrainedWeights) -> InitSource:
        """The record for shipped pretrained weights (:func:`inspection.model.net.pretrained_weights`)."""
        return cls(source=weights.source, file=weights.file, sha256=weights.sha256)


class Provenance(_Frozen):
    """Where the weights came from: training manifest hash, code commit, time, command, data, and
    the backbone initialisation (``init``, None = random)."""

    training_manifest_sha256: str | None = None
    git_commit: str | None = None
    created: str = Field(default_factory=_utc_now)
    command: str = ""
    data: str = ""
    init: InitSource | None = None

    @field_validator("training_manifest_sha256")
    @classmethod
    def _hex64(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            msg = f"training_manifest_sha256 must be 64 lowercase hex digits, got {v!r}"
            raise ValueError(msg)
        return v


def _default_preprocess() -> dict[str, Any]:
    return PreprocessConfig().model_dump(mode="json")


class ModelConfig(_Frozen):
    """Everything needed to run an artifact's network and interpret its outputs (``config.json``)."""

    format_version: Literal[1] = 1
    name: str = Field(DEFAULT_MODEL_NAME, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+([.+-][0-9A-Za-z.+-]+)?$")
    arch: str
    width_mult: float = Field(1.0, gt=0)
    embed_dim: int = Field(128, ge=8)
    labels: tuple[str, ...] = HEADS
    grade_names: tuple[str, ...] = ("none", "slight", "moderate", "severe")
    input: InputSpec = Field(default_factory=InputSpec)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] = IMAGENET_STD
    preprocess: dict[str, Any] = Field(default_factory=_default_preprocess)
    temperatures: TemperaturePerHead = Field(
        default_factory=lambda: TemperaturePerHead(porosity=1.0, spatter=1.0)
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    heatmap_stride: int = HEATMAP_STRIDE
    provenance: Provenance = Field(default_factory=Provenance)
    metrics: dict[str, float] = Field(default_factory=dict)

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            msg = f"unknown arch {v!r}; available: {', '.join(ARCHITECTURES)}"
            raise ValueError(msg)
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if tuple(v) != HEADS:
            msg = f"labels must be {list(HEADS)} (the network's head order), got {list(v)}"
            raise ValueError(msg)
        return v

    @field_validator("grade_names")
    @classmethod
    def _grade_names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) != GRADE_LEVELS:
            msg = f"grade_names needs {GRADE_LEVELS} names (grades 0..{GRADE_LEVELS - 1}), got {list(v)}"
            raise ValueError(msg)
        return v

    @field_validator("preprocess")
    @classmethod
    def _preprocess_parses(cls, v: dict[str, Any]) -> dict[str, Any]:
        return PreprocessConfig.model_validate(v).model_dump(mode="json")

    @field_validator("heatmap_stride")
    @classmethod
    def _stride(cls, v: int) -> int:
        if v != HEATMAP_STRIDE:
            msg = f"heatmap_stride must be {HEATMAP_STRIDE} for the registered networks, got {v}"
            raise ValueError(msg)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        pre = self.preprocess_config()
        if (pre.strip_height, pre.tile_length) != (self.input.strip_height, self.input.tile_length):
            msg = (
                f"preprocess strip_height/tile_length {pre.strip_height}x{pre.tile_length} must equal "
                f"input {self.input.strip_height}x{self.input.tile_length}"
            )
            raise ValueError(msg)
        for name, value in (("strip_height", pre.strip_height), ("tile_length", pre.tile_length)):
            if value % (2 * HEATMAP_STRIDE):
                msg = f"input {name} must be a multiple of {2 * HEATMAP_STRIDE}, got {value}"
                raise ValueError(msg)
        return self

    def preprocess_config(self) -> PreprocessConfig:
        """The :class:`~inspection.config.PreprocessConfig` the model was trained with."""
        return PreprocessConfig.model_validate(self.preprocess)

    def heatmap_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the heatmaps for one input tile."""
        return self.input.strip_height // self.heatmap_stride, self.input.tile_length // self.heatmap_stride


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | torch.Tensor):
        return value.tolist()
    if isinstance(value, Path | dt.datetime | dt.date):
        return str(value)
    msg = f"metrics value of type {type(value).__name__} is not JSON serialisable"
    raise TypeError(msg)


def save_artifact(
    directory: Path,
    model: GraderNet,
    config: ModelConfig,
    card_markdown: str,
    metrics: dict[str, Any],
    *,
    overwrite: bool = False,
) -> ModelInfo:
    """Write the four artifact files (weights, config, card, metrics) into ``directory``.

    The network must match ``config`` (arch, width_mult, embed_dim). Fit and store the OOD
    statistics first (``model.set_ood_stats(OodStats.fit(train_embeddings))``); unfitted
    statistics are saved with a warning. Refuses to replace an existing artifact unless
    ``overwrite``. Returns the :class:`ModelInfo` (SHA-256 of the written weights).
    """
    directory = Path(directory)
    mine = (model.arch, float(model.width_mult), model.embed_dim)
    theirs = (config.arch, float(config.width_mult), config.embed_dim)
    if mine != theirs:
        msg = f"network (arch, width_mult, embed_dim) = {mine} does not match config {theirs}"
        raise ValueError(msg)
    if (directory / WEIGHTS_FILE).exists() and not overwrite:
        msg = f"{directory / WEIGHTS_FILE} already exists; artifacts are immutable (pass overwrite=True)"
        raise FileExistsError(msg)
    if int(model.ood_count) == 0:
        log.warning("saving %s without fitted OOD statistics: OOD scores will be uncalibrated", directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # one metadata key only: safetensors writes its metadata map in hash order, so several keys would
    # make the bytes (and the sha256 identity) differ between runs for the same weights
    _write_atomic(directory / WEIGHTS_FILE, safetensors.torch.save(state, metadata={"format": "pt"}))
    _write_atomic(directory / CONFIG_FILE, (config.model_dump_json(indent=2) + "\n").encode())
    _write_atomic(directory / CARD_FILE, card_markdown.encode())
    text = json.dumps(metrics, indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    _write_atomic(directory / METRICS_FILE, (text + "\n").encode())
    info = ModelInfo(config.name, config.version, sha256_file(directory / WEIGHTS_FILE))
    log.info("saved model %s %s (%s) to %s", info.name, info.version, info.sha256[:12], directory)
    return info


def _require(directory: Path, name: str) -> Path:
    if not directory.is_dir():
        msg = f"model directory {directory} does not exist or is not a directory"
        raise ArtifactError(msg)
    path = directory / name
    if not path.is_file():
        msg = f"{path} is missing (an artifact holds {', '.join(ARTIFACT_FILES)})"
        raise ArtifactError(msg)
    return path


def read_config(directory: Path) -> ModelConfig:
    """Parse ``config.json`` of an artifact, raising :class:`ArtifactError` naming the problem."""
    path = _require(Path(directory), CONFIG_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path} is not valid JSON: {exc}"
        raise ArtifactError(msg) from exc
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        msg = f"{path} is not a valid model config: {problems}"
        raise ArtifactError(msg) from exc


def _read_weights(directory: Path) -> tuple[bytes, str]:
    path = _require(directory, WEIGHTS_FILE)
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def _corrupt(path: Path, exc: Exception) -> ArtifactError:
    return ArtifactError(f"{path} is corrupt or not a safetensors file: {exc}")


def _ood_from_arrays(arrays: dict[str, np.ndarray], path: Path, embed_dim: int) -> OodStats:
    try:
        return OodStats(
            np.asarray(arrays["ood_mean"], dtype=np.float64),
            np.asarray(arrays["ood_precision"], dtype=np.float64),
            int(np.asarray(arrays["ood_count"]).reshape(())),
        )
    except KeyError as exc:
        msg = f"{path} has no OOD statistics tensor {exc.args[0]!r}"
        raise ArtifactError(msg) from exc
    except ValueError as exc:
        msg = f"{path} has invalid OOD statistics for embed_dim {embed_dim}: {exc}"
        raise ArtifactError(msg) from exc


def read_artifact_meta(directory: Path) -> tuple[ModelConfig, ModelInfo, OodStats]:
    """Config, identity and OOD statistics of an artifact without building the network (numpy only)."""
    directory = Path(directory)
    config = read_config(directory)
    data, sha = _read_weights(directory)
    path = directory / WEIGHTS_FILE
    try:
        arrays = safetensors.numpy.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise _corrupt(path, exc) from exc
    return (
        config,
        ModelInfo(config.name, config.version, sha),
        _ood_from_arrays(arrays, path, config.embed_dim),
    )


def load_artifact(directory: Path) -> tuple[GraderNet, ModelConfig, ModelInfo]:
    """Load an artifact: the network (eval mode, CPU, OOD buffers filled), its config and identity.

    Raises :class:`ArtifactError` when a file is missing, the config is invalid, the weights are
    not a readable safetensors file or do not fit the configured network.
    """
    directory = Path(directory)
    config = read_config(directory)
    data, sha = _read_weights(directory)
    path = directory / WEIGHTS_FILE
    try:
        state = safetensors.torch.load(data)
    except Exception as exc:  # safetensors raises its own SafetensorError and others
        raise _corrupt(path, exc) from exc
    # pretrained=False: the stored tensors replace every weight, so the shipped ImageNet file is not needed
    model = build_model(
        config.arch, width_mult=config.width_mult, embed_dim=config.embed_dim, pretrained=False
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        net = f"{config.arch} (width_mult {config.width_mult}, embed_dim {config.embed_dim})"
        msg = f"{path} does not fit a {net}: {exc}"
        raise ArtifactError(msg) from exc
    for name in (CARD_FILE, METRICS_FILE):
        if not (directory / name).is_file():
            log.warning("artifact %s has no %s", directory, name)
    model.eval()
    return model, config, ModelInfo(config.name, config.version, sha)


def _version_key(name: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"[.+-]", name))


def models_root() -> Path:
    """``<repo>/models`` (the package is installed editable from the repository)."""
    return Path(inspection.__file__).resolve().parents[1] / "models"


def default_model_dir(name: str = DEFAULT_MODEL_NAME) -> Path:
    """``$WELDINSPECT_MODEL`` if set, else the newest version under ``<repo>/models/<name>/``.

    "Newest" compares versions numerically part by part (``2026.11.0 < 2026.12.0``). Raises
    :class:`ArtifactError` when the variable points nowhere or no version is shipped.
    """
    env = os.environ.get(MODEL_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            msg = f"${MODEL_ENV} = {env!r} is not a directory"
            raise ArtifactError(msg)
        return path
    root = models_root() / name
    versions = sorted(
        (p for p in root.iterdir() if p.is_dir() and (p / CONFIG_FILE).is_file()) if root.is_dir() else [],
        key=lambda p: _version_key(p.name),
    )
    if not versions:
        msg = (
            f"no model is shipped under {root} (expected {root}/<version>/{WEIGHTS_FILE}); "
            f"set ${MODEL_ENV} to an artifact directory or train one with `weldinspect train`"
        )
        raise ArtifactError(msg)
    return versions[-1]
