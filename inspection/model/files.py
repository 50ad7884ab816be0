"""The files of a model artifact beside its weights, and how to read their metadata.

``model.onnx`` (float32 export) and ``model.int8.onnx`` (static int8) each record the SHA-256 of the
``model.safetensors`` they were made from (:data:`SHA_KEY`); the int8 file also records its
calibration (:data:`CALIBRATION_KEY`). Export (:mod:`inspection.model.onnx`), quantization
(:mod:`inspection.model.quantize`) and the runtime all read these names from here, so none of them
imports another to learn a file name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
SHA_KEY = "weldinspect.weights_sha256"
CALIBRATION_KEY = "weldinspect.int8.calibration"


def onnx_export_status(artifact_dir: Path, weights_sha256: str, file: str = ONNX_FILE) -> str:
    """State of ``<dir>/model.onnx`` (or ``file``, e.g. ``model.int8.onnx``): ``missing``,
    ``up to date``, ``stale (...)`` or ``unreadable (...)``."""
    import onnx

    path = Path(artifact_dir) / file
    if not path.is_file():
        return "missing"
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf decode errors have no common public type
        return f"unreadable ({exc})"
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get(SHA_KEY) == weights_sha256:
        return "up to date"
    return f"stale (exported from weights {meta.get(SHA_KEY, '?')[:12]})"


def read_calibration(path: Path) -> dict[str, object]:
    """The calibration record stored in an int8 file's metadata ({} when absent or unreadable)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf decode errors have no common public type
        return {}
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        value = json.loads(meta.get(CALIBRATION_KEY, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
