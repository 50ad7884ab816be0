#!/usr/bin/env python
"""Predicted pore diameters against the labelled pore boxes.

    .venv/bin/python scripts/measure_pore_sizes.py [--data ../shared/data/weld-porosity] [--limit 250]

For every porosity finding whose centre falls inside a labelled ``Surface_pores`` box of the same
photo, the ratio of the finding's ``diameter_px`` to the box's ``sqrt(width * height)`` (the size
the model was trained to predict). Prints the count, median and quartiles, for the reference
runtime (torch, full decode) and the default one. The shipped model was trained on these photos:
this checks the size calibration and the unit conversions, not generalisation. Exits 2 without data.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def size_ratios(inspector: object, root: Path, records: list[dict[str, object]]) -> np.ndarray:
    ratios = []
    for rec in records:
        boxes = [o["box"] for o in rec["objects"] if o["label"] == "Surface_pores"]  # type: ignore[index, union-attr, attr-defined]
        if not boxes:
            continue
        result = inspector.inspect(root / str(rec["image"]))  # type: ignore[attr-defined]
        for f in result.findings:
            if f.kind.value != "porosity":
                continue
            for x0, y0, x1, y1 in boxes:
                if x0 <= f.x <= x1 and y0 <= f.y <= y1:
                    ratios.append(f.diameter_px / np.sqrt(max((x1 - x0) * (y1 - y0), 1e-9)))
                    break
    return np.asarray(ratios)


def main() -> int:
    from inspection.config import AppConfig
    from inspection.pipeline import Inspector

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "weld-porosity")
    ap.add_argument("--limit", type=int, default=250, help="photos with boxes read (in manifest order)")
    args = ap.parse_args()
    manifest = args.data / "annotations.jsonl"
    if not manifest.is_file():
        print(f"{manifest} not found", file=sys.stderr)
        return 2
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()][: args.limit]
    full = AppConfig.model_validate({"ingest": {"reduced_decode": False}})
    for name, inspector in (
        ("torch, full decode", Inspector.from_artifact(None, backend="torch", config=full)),
        ("default runtime", Inspector.from_artifact(None)),
    ):
        r = size_ratios(inspector, args.data, records)
        q1, med, q3 = np.percentile(r, [25, 50, 75]) if len(r) else (float("nan"),) * 3
        print(f"{name}: {len(r)} findings on labelled pores, predicted / box diameter median {med:.2f} "
              f"(quartiles {q1:.2f} - {q3:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
