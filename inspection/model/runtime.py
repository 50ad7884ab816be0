"""Inference runtime: load an artifact once, turn uint8 tiles into calibrated numpy predictions.

Two interchangeable backends share all post-processing (normalisation, temperatures, sigmoid,
OOD scoring), so their probabilities agree to ~1e-5:

* ``"torch"``: the safetensors weights in a :class:`~inspection.model.net.GraderNet`;
* ``"onnx"``: ``model.onnx`` next to the artifact (see :mod:`inspection.model.onnx`) in
  onnxruntime;
* ``"onnx-int8"``: ``model.int8.onnx``, the same network statically quantized to int8 (see
  :mod:`inspection.model.quantize`): about 3x faster per tile on CPU; its agreement with float32
  is measured on real photos, not exact (see the model card).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch

from inspection.model.artifact import ModelConfig, default_model_dir, load_artifact
from inspection.model.net import GraderNet, fuse_for_inference, normalize_tiles
from inspection.model.ordinal import coral_probs
from inspection.model.postprocess import OodStats
from inspection.types import GRADE_LEVELS, ModelInfo

log = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RawPrediction:
    """Model outputs for N tiles (numpy), already calibrated and squashed.

    * ``porosity_probs``, ``spatter_probs``: ``(N, 4)`` grade probabilities (temperature-scaled);
    * ``heatmaps``: ``(N, 2, h, w)`` centre heatmaps in [0, 1] (channel 0 porosity, 1 spatter),
      one cell per ``heatmap_stride`` tile pixels;
    * ``sizes``: ``(N, 2, h, w)`` predicted object diameters in tile pixels;
    * ``ood_scores``: ``(N,)`` out-of-distribution scores (about 1 for training-like tiles,
      higher = more unusual).
    """

    porosity_probs: F64
    spatter_probs: F64
    heatmaps: F32
    sizes: F32
    ood_scores: F64

    def __post_init__(self) -> None:
        n = self.ood_scores.shape[0] if self.ood_scores.ndim == 1 else -1
        for name in ("porosity_probs", "spatter_probs"):
            if getattr(self, name).shape != (n, GRADE_LEVELS):
                shape = getattr(self, name).shape
                msg = f"RawPrediction.{name} must have shape ({n}, {GRADE_LEVELS}), got {shape}"
                raise ValueError(msg)
        if (
            self.heatmaps.ndim != 4
            or self.heatmaps.shape[:2] != (n, 2)
            or self.sizes.shape != self.heatmaps.shape
        ):
            msg = (
                f"RawPrediction.heatmaps and sizes must both have shape ({n}, 2, h, w), "
                f"got {self.heatmaps.shape} and {self.sizes.shape}"
            )
            raise ValueError(msg)

    def __len__(self) -> int:
        return int(self.ood_scores.shape[0])

    def probs(self, head: str) -> F64:
        """``(N, 4)`` probabilities of ``head`` (``"porosity"`` or ``"spatter"``)."""
        if head == "porosity":
            return self.porosity_probs
        if head == "spatter":
            return self.spatter_probs
        msg = f"unknown head {head!r}; heads: porosity, spatter"
        raise KeyError(msg)


PREDICT_CHUNK = 8
"""Tiles per network call in :meth:`Grader.predict` (larger inputs are split; results are equal)."""

RawOutputs = tuple[F32, F32, F32, F32, F32]
"""porosity_logits (N, 3), spatter_logits (N, 3), heatmap_logits (N, 2, h, w), size, embedding."""


class _Runner(Protocol):
    def __call__(self, x: F32) -> RawOutputs:
        """``(N, 3, H, W)`` normalised float32 -> the five raw network outputs as numpy."""
        ...


class _TorchRunner:
    def __init__(self, model: GraderNet) -> None:
        fused = fuse_for_inference(model)  # batch norm folded into the convolutions
        self.model = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    def __call__(self, x: F32) -> RawOutputs:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last))
        return tuple(t.float().contiguous().numpy() for t in out)  # type: ignore[return-value]


def _sigmoid(x: F32) -> F32:
    return np.exp(-np.logaddexp(np.float32(0.0), -x)).astype(np.float32)


class Grader:
    """A loaded model: ``Grader.load(dir).predict(tiles) -> RawPrediction``.

    Attributes: ``config`` (:class:`~inspection.model.artifact.ModelConfig`), ``info``
    (:class:`~inspection.types.ModelInfo`), ``backend`` and ``ood`` (the OOD statistics).
    """

    def __init__(
        self, config: ModelConfig, info: ModelInfo, ood: OodStats, runner: _Runner, backend: Backend
    ):
        self.config = config
        self.info = info
        self.ood = ood
        self.backend = backend
        self._run = runner
        self.chunk = PREDICT_CHUNK

    @classmethod
    def load(cls, path: Path | None = None, backend: Backend = "torch", threads: int | None = None) -> Grader:
        """Load the artifact at ``path`` (default :func:`default_model_dir`) for ``backend``.

        ``threads`` sets torch's intra-op threads (process-wide, once, here) or the onnxruntime
        session's; None keeps the library default. Raises ArtifactError for a bad artifact.
        """
        if backend not in BACKENDS:
            msg = f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}"
            raise ValueError(msg)
        if threads is not None and threads < 1:
            msg = f"threads must be >= 1 (or None for the default), got {threads}"
            raise ValueError(msg)
        directory = Path(path) if path is not None else default_model_dir()
        if backend in ("onnx", "onnx-int8"):
            from inspection.model.onnx import load_onnx_runner

            config, info, ood, runner = load_onnx_runner(
                directory, threads=threads, int8=backend == "onnx-int8"
            )
            grader = cls(config, info, ood, runner, backend)
        else:
            if threads is not None and torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            model, config, info = load_artifact(directory)
            grader = cls(config, info, model.ood_stats(), _TorchRunner(model), "torch")
        grader.info = dataclasses.replace(info, runtime=backend)
        log.info(
            "loaded model %s %s (%s) from %s, backend %s",
            info.name,
            info.version,
            info.sha256[:12],
            directory,
            backend,
        )
        return grader

    def _check_tiles(self, tiles: npt.NDArray[np.uint8]) -> None:
        h, w = self.config.input.strip_height, self.config.input.tile_length
        if not isinstance(tiles, np.ndarray) or tiles.dtype != np.uint8 or tiles.ndim != 4:
            got = f"{tiles.dtype} {tiles.shape}" if isinstance(tiles, np.ndarray) else type(tiles).__name__
            msg = f"tiles must be a uint8 array of shape (N, {h}, {w}, 3) RGB, got {got}"
            raise ValueError(msg)
        if tiles.shape[1:] != (h, w, 3):
            msg = f"tiles must have shape (N, {h}, {w}, 3) (this model's input), got {tiles.shape}"
            raise ValueError(msg)

    def predict(self, tiles: npt.NDArray[np.uint8]) -> RawPrediction:
        """Predict ``(N, strip_height, tile_length, 3)`` uint8 RGB tiles (in chunks of ``self.chunk``).

        Returns a :class:`RawPrediction`; N = 0 gives empty arrays of the right shapes.
        """
        self._check_tiles(tiles)
        cfg = self.config
        n = tiles.shape[0]
        if n == 0:
            h, w = cfg.heatmap_shape()
            empty_maps = np.zeros((0, 2, h, w), np.float32)
            return RawPrediction(
                np.zeros((0, GRADE_LEVELS)),
                np.zeros((0, GRADE_LEVELS)),
                empty_maps,
                empty_maps.copy(),
                np.zeros(0),
            )
        x = normalize_tiles(tiles, cfg.mean, cfg.std)
        # run in chunks: on a CPU, batches beyond ~8 tiles are slower per tile (activations fall out
        # of cache; see docs/performance.md), and the outputs do not depend on the batching
        parts = [self._run(x[i : i + self.chunk]) for i in range(0, n, self.chunk)]
        por, spa, hm, size, emb = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        return RawPrediction(
            porosity_probs=coral_probs(por, temperature=cfg.temperatures["porosity"]),
            spatter_probs=coral_probs(spa, temperature=cfg.temperatures["spatter"]),
            heatmaps=_sigmoid(hm),
            sizes=np.ascontiguousarray(size, dtype=np.float32),
            ood_scores=self.ood.score(emb),
        )
