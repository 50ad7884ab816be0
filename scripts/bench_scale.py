#!/usr/bin/env python
"""Cost curve of batch scoring: images/s and peak memory of the local and the Ray engine.

    .venv/bin/python scripts/bench_scale.py [--sizes 100 1000 10000] [--engines local ray]
        [--cpus N] [--batch-size 32] [--model DIR] [--workdir DIR] [--json results.json]

Synthetic 800 x 800 seam JPEGs are generated once into WORKDIR (reused by later runs). The model is
the shipped one when present, else a random resnet18 of the same architecture. For each size and
engine the whole batch is scored into a fresh results file while the memory of this process and all
its descendants (worker processes, the Ray head and its workers) is sampled from /proc. Then the cost
per image of each stage alone (decode, prepare, model, driver merge, journal, ledger) is measured on
the first --stage-images images. Prints markdown tables (see docs/scaling.md) and writes --json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="worker processes / Ray CPUs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None, help="artifact folder (default: see above)")
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "weldinspect-bench-scale"
    )
    parser.add_argument(
        "--stage-images", type=int, default=96, help="images for the per-stage costs (0: skip)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    from inspection.batch.scale.bench import bench_model_dir, make_images, run_point, stage_costs

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir, model_desc = (args.model, str(args.model)) if args.model else bench_model_dir(args.workdir)
    files = make_images(args.workdir / "images", max(args.sizes))
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"model: {model_desc}\nmachine: {os.cpu_count()} CPUs; before: {load}\n")
    print("| engine | images | seconds | images/s | Ray start s | peak RSS MiB | peak PSS MiB | processes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    points = []
    for n in args.sizes:
        for engine in args.engines:
            p = run_point(
                engine, files[:n], model_dir, args.workdir, batch_size=args.batch_size, cpus=args.cpus
            )
            points.append(p.to_dict())
            print(f"| {p.engine} | {p.n} | {p.seconds} | {p.images_per_s} | {p.startup_s} | {p.peak_rss_mib} "
                  f"| {p.peak_pss_mib} | {p.peak_processes} |", flush=True)  # fmt: skip
    stages = {}
    if args.stage_images > 0:
        stages = stage_costs(files[: args.stage_images], model_dir, args.workdir, batch_size=args.batch_size)
        print("\n| stage (one core) | ms / image |\n|---|---:|")
        for name, ms in stages.items():
            print(f"| {name} | {ms} |")
    after = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"\nafter: {after}")
    if args.json:
        doc = {"model": model_desc, "cpus": os.cpu_count(), "load_before": load, "load_after": after,
               "points": points, "stage_ms_per_image": stages}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
