"""ONNX export of an artifact and the onnxruntime backend of :class:`~inspection.model.runtime.Grader`.

``model.onnx`` has one input ``input`` ``(batch, 3, H, W)`` float32 (normalised like the torch
model) and the outputs ``porosity_logits``, ``spatter_logits``, ``heatmap_logits``, ``size`` and
``embedding`` with a dynamic batch axis. Its metadata records the SHA-256 of the
``model.safetensors`` it was exported from; the runtime refuses a stale export.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from inspection.model.artifact import ArtifactError, ModelConfig, load_artifact, read_artifact_meta
from inspection.model.files import INT8_FILE, ONNX_FILE, SHA_KEY
from inspection.model.net import GraderNet
from inspection.model.postprocess import OodStats
from inspection.types import ModelInfo

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAMES = ("porosity_logits", "spatter_logits", "heatmap_logits", "size", "embedding")


class _TupleOutputs(nn.Module):
    """Wraps :class:`GraderNet` so the exporter sees a plain tuple of five tensors."""

    def __init__(self, model: GraderNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(x))


def export_onnx(artifact_dir: Path, out_path: Path | None = None) -> Path:
    """Export the artifact's network to ONNX (opset 17, dynamic batch); returns the written path.

    Writes ``<artifact_dir>/model.onnx`` unless ``out_path`` is given. The file's metadata holds
    the artifact's name, version and weights SHA-256.
    """
    import onnx

    artifact_dir = Path(artifact_dir)
    model, config, info = load_artifact(artifact_dir)
    out = Path(out_path) if out_path is not None else artifact_dir / ONNX_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.zeros(2, 3, config.input.strip_height, config.input.tile_length)
    axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the TorchScript-based exporter is deprecated but needs no onnxscript
        torch.onnx.export(
            _TupleOutputs(model).eval(),
            (dummy,),
            str(tmp),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    for key, value in (
        (SHA_KEY, info.sha256),
        ("weldinspect.name", info.name),
        ("weldinspect.version", info.version),
        ("weldinspect.arch", config.arch),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    log.info("exported %s %s to %s", info.name, info.version, out)
    return out


class OnnxRunner:
    """onnxruntime session: ``(N, 3, H, W)`` float32 -> the five raw outputs as numpy."""

    def __init__(self, onnx_path: Path, expected_sha256: str, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types
            msg = f"{onnx_path} is not a loadable ONNX model: {exc}"
            raise ArtifactError(msg) from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get(SHA_KEY) != expected_sha256:
            msg = (
                f"{onnx_path} was exported from other weights (sha256 {meta.get(SHA_KEY)!r}, artifact has "
                f"{expected_sha256!r}); re-run `weldinspect model export-onnx {onnx_path.parent}`"
            )
            raise ArtifactError(msg)
        names = tuple(o.name for o in self.session.get_outputs())
        if names != OUTPUT_NAMES:
            msg = f"{onnx_path} has outputs {names}, expected {OUTPUT_NAMES}"
            raise ArtifactError(msg)

    def __call__(self, x: npt.NDArray[np.float32]) -> Any:
        outputs = self.session.run(
            list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)}
        )
        return tuple(np.asarray(o, dtype=np.float32) for o in outputs)


def load_onnx_runner(
    artifact_dir: Path, threads: int | None = None, *, int8: bool = False
) -> tuple[ModelConfig, ModelInfo, OodStats, OnnxRunner]:
    """Config, identity, OOD statistics and an :class:`OnnxRunner` for an artifact.

    Uses ``<artifact_dir>/model.onnx``; when it is missing, exports to a temporary file (logged;
    run ``weldinspect model export-onnx`` to ship the file and skip this). With ``int8``, uses
    ``model.int8.onnx`` and raises :class:`ArtifactError` when it is missing (quantizing needs
    calibration photos: ``weldinspect model quantize``).
    """
    artifact_dir = Path(artifact_dir)
    config, info, ood = read_artifact_meta(artifact_dir)
    if int8:
        path = artifact_dir / INT8_FILE
        if not path.is_file():
            msg = (
                f"{artifact_dir} has no {INT8_FILE} (backend onnx-int8); create it with "
                f"`weldinspect model quantize {artifact_dir} --calibration PHOTOS...` or use backend onnx"
            )
            raise ArtifactError(msg)
        return config, info, ood, OnnxRunner(path, info.sha256, threads)
    path = artifact_dir / ONNX_FILE
    if path.is_file():
        return config, info, ood, OnnxRunner(path, info.sha256, threads)
    log.warning("%s has no %s; exporting a temporary copy", artifact_dir, ONNX_FILE)
    with tempfile.TemporaryDirectory(prefix="weldinspect-onnx-") as tmp:
        exported = export_onnx(artifact_dir, Path(tmp) / ONNX_FILE)
        return config, info, ood, OnnxRunner(exported, info.sha256, threads)
