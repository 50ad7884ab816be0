#!/usr/bin/env python
"""How the fast runtimes agree with the reference, on real photos.

    .venv/bin/python scripts/measure_runtimes.py [--model DIR] [--data DIR ...] [--write]

Grades every photo of each data folder (default: ``../shared/data/weld-porosity/images`` and
``../shared/data/weld-photos-unlabelled``) twice per comparison and reports grade, review and
probability agreement (``inspection.pipeline.compare_inspectors``):

* ``onnx-int8 vs onnx``: the quantized network alone (both decode at full resolution);
* ``reduced vs full decode``: the JPEG decode scale alone (both float32 onnx);
* ``default vs reference``: what ``--backend auto`` runs (int8, reduced decode) against torch
  float32 on full decodes, the setting the model card's metrics were measured in;
* ``re-encoded (q95) vs original``: the yardstick, the same float32 model on the photos and on
  JPEG quality-95 re-encodes of them.

With ``--write`` the results go to ``<model>/runtime_agreement.json`` and into the model card's
"Runtimes and decoding" section. Exits 2 when no data folder exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DATA = (
    REPO.parent / "shared" / "data" / "weld-porosity" / "images",
    REPO.parent / "shared" / "data" / "weld-photos-unlabelled",
)


def _reencoded(files: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(original, quality-95 re-encode) pairs; unreadable originals are left out."""
    import cv2
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i, f in enumerate(files):
        img = cv2.imdecode(np.frombuffer(f.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            continue
        p = out / f"{i:05d}.jpg"
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        pairs.append((f, p))
    return pairs


def main() -> int:
    import tempfile

    from inspection.config import AppConfig
    from inspection.model.artifact import default_model_dir
    from inspection.model.files import INT8_FILE, read_calibration
    from inspection.pipeline import Inspector, compare_inspectors, compare_pairs
    from inspection.train.card import RUNTIME_FILE, runtime_section, with_runtime_section

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--data", type=Path, nargs="*", default=list(DEFAULT_DATA))
    ap.add_argument("--write", action="store_true", help="write runtime_agreement.json and the card section")
    args = ap.parse_args()
    model = args.model or default_model_dir()
    folders = [d for d in args.data if d.is_dir()]
    if not folders:
        print(f"no data folder found among {[str(d) for d in args.data]}", file=sys.stderr)
        return 2
    full = AppConfig.model_validate({"ingest": {"reduced_decode": False}})
    ref_torch = Inspector.from_artifact(model, backend="torch", config=full)
    onnx_full = Inspector.from_artifact(model, backend="onnx", config=full)
    int8_full = Inspector.from_artifact(model, backend="onnx-int8", config=full)
    onnx_reduced = Inspector.from_artifact(model, backend="onnx")
    default = Inspector.from_artifact(model)
    comparisons = [
        ("onnx-int8 vs onnx (full decode)", onnx_full, int8_full),
        ("reduced vs full decode (onnx)", onnx_full, onnx_reduced),
        (f"default ({default.grader.backend}, reduced decode) vs torch full decode", ref_torch, default),
    ]
    doc: dict[str, object] = {
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "model": str(model),
        "calibration": read_calibration(model / INT8_FILE),
        "command": "python scripts/measure_runtimes.py --write",
        "comparisons": [],
    }
    results: list[dict[str, object]] = []
    for name, a, b in comparisons:
        entry: dict[str, object] = {"name": name, "datasets": {}}
        for folder in folders:
            t0 = time.perf_counter()
            files = sorted(folder.rglob("*.jpg"))
            agreement = compare_inspectors(a, b, files)
            entry["datasets"][folder.name] = agreement.to_dict()  # type: ignore[index]
            took = time.perf_counter() - t0
            print(f"{name} / {folder.name}: {json.dumps(agreement.to_dict())} ({took:.0f} s)")
        results.append(entry)
    entry = {"name": "re-encoded (q95) vs original (onnx, full decode)", "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for folder in folders:
            files = sorted(folder.rglob("*.jpg"))
            agreement = compare_pairs(onnx_full, _reencoded(files, Path(tmp) / folder.name))
            entry["datasets"][folder.name] = agreement.to_dict()  # type: ignore[index]
            print(f"{entry['name']} / {folder.name}: {json.dumps(agreement.to_dict())}")
    results.append(entry)
    doc["comparisons"] = results
    if args.write:
        (model / RUNTIME_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        card = model / "MODEL_CARD.md"
        card.write_text(with_runtime_section(card.read_text(), runtime_section(doc)))
        print(f"wrote {model / RUNTIME_FILE} and the runtime section of {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
