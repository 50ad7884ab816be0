"""Static int8 quantization of ``model.onnx`` (the ``onnx-int8`` backend of the Grader).

``model.int8.onnx`` is ``model.onnx`` with every convolution and matrix product quantized to
int8 (QDQ format: per-channel int8 weights, uint8 activations whose ranges were calibrated on
real seam tiles), which onnxruntime runs with the CPU's integer dot-product instructions
(AVX-512 VNNI / AMX on the development machine): about 3x faster per tile than float32.

The file's metadata records the weights SHA-256 it was quantized from (the runtime refuses a
stale file, like ``model.onnx``), the SHA-256 of the calibration tiles and where they came from.
How close int8 is to float32 is measured, not assumed:
:func:`inspection.model.agreement.agreement` reports grade agreement and probability differences
on real photos (see the model card and
``docs/performance.md``).

Pure except for the files it is asked to read and write; the calibration tiles come from the
caller (the CLI preprocesses the images with the artifact's own preprocessing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inspection.model.artifact import ArtifactError, read_artifact_meta
from inspection.model.files import CALIBRATION_KEY, INT8_FILE, ONNX_FILE, SHA_KEY, onnx_export_status
from inspection.model.net import normalize_tiles

log = logging.getLogger(__name__)

MIN_CALIBRATION_TILES = 16
"""Fewer tiles than this cannot calibrate activation ranges meaningfully."""
CALIBRATION_CHUNK = 8


def quantize_artifact(
    artifact_dir: Path,
    tiles: npt.NDArray[np.uint8],
    *,
    sources: Sequence[str] = (),
    out_path: Path | None = None,
) -> Path:
    """Write ``<artifact_dir>/model.int8.onnx`` (or ``out_path``) from the artifact's ``model.onnx``.

    ``tiles``: uint8 ``(N, strip_height, tile_length, 3)`` RGB calibration tiles, N >=
    :data:`MIN_CALIBRATION_TILES`, made by the artifact's preprocessing from representative photos;
    ``sources`` names where they came from (stored in the file's metadata).
    Raises :class:`ArtifactError` when ``model.onnx`` is missing or stale, ValueError for bad tiles.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    artifact_dir = Path(artifact_dir)
    config, info, _ = read_artifact_meta(artifact_dir)
    src = artifact_dir / ONNX_FILE
    status = onnx_export_status(artifact_dir, info.sha256)
    if status != "up to date":
        msg = f"{src} is {status}; run `weldinspect model export-onnx {artifact_dir}` first"
        raise ArtifactError(msg)
    shape = (config.input.strip_height, config.input.tile_length, 3)
    if not isinstance(tiles, np.ndarray) or tiles.dtype != np.uint8 or tiles.shape[1:] != shape:
        got = f"{tiles.dtype} {tiles.shape}" if isinstance(tiles, np.ndarray) else type(tiles).__name__
        msg = f"calibration tiles must be uint8 of shape (N, {', '.join(map(str, shape))}), got {got}"
        raise ValueError(msg)
    if len(tiles) < MIN_CALIBRATION_TILES:
        msg = f"need at least {MIN_CALIBRATION_TILES} calibration tiles, got {len(tiles)}"
        raise ValueError(msg)
    x = normalize_tiles(tiles, config.mean, config.std)

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, npt.NDArray[np.float32]]] = iter(
                {"input": x[i : i + CALIBRATION_CHUNK]} for i in range(0, len(x), CALIBRATION_CHUNK)
            )

        def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
            return next(self._it, None)

    out = Path(out_path) if out_path is not None else artifact_dir / INT8_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    calibration = {
        "tiles": len(tiles),
        "tiles_sha256": hashlib.sha256(np.ascontiguousarray(tiles).tobytes()).hexdigest(),
        "sources": list(sources),
        "method": "onnxruntime quantize_static, QDQ, per-channel int8 weights, uint8 activations, MinMax",
    }
    with tempfile.TemporaryDirectory(prefix="weldinspect-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant = Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre))
        quantize_static(
            str(pre),
            str(quant),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
        proto = onnx.load(str(quant))
        del proto.metadata_props[:]
        for key, value in (
            (SHA_KEY, info.sha256),
            ("weldinspect.name", info.name),
            ("weldinspect.version", info.version),
            ("weldinspect.arch", config.arch),
            (CALIBRATION_KEY, json.dumps(calibration, sort_keys=True)),
        ):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        tmp_out = out.with_name(out.name + ".tmp")
        onnx.save(proto, str(tmp_out))
        os.replace(tmp_out, out)
    log.info("quantized %s %s to %s from %d calibration tiles", info.name, info.version, out, len(tiles))
    return out
