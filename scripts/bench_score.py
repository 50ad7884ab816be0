#!/usr/bin/env python
"""End-to-end batch scoring throughput versus a decode-only floor, in one run.

    .venv/bin/python scripts/bench_score.py [DIR] [--n 200] [--workers N] [--batch-size 32] [--rounds 5]

DIR holds the images (800 x 800 JPEGs); without DIR, N synthetic 800 x 800 seam photos are
generated into a temporary folder first. The decode-only floor reads and decodes the same files
at full resolution (``inspection.image.ingest.read_image``) with the same number of processes (at least
one) and nothing else; the ratio end-to-end / floor is the figure of issue 6. The pipeline itself
decodes JPEGs at a reduced scale where nothing it uses is lost (``IngestConfig.reduced_decode``),
so a second floor, read + decode at the pipeline's scale, is printed too: the ratio to that one
is the share of the time the pipeline spends on decoding it cannot avoid. With ``--workers 0`` the
end-to-end run uses every core (prefetch threads next to the model) while the floor above uses
one process; the third floor decodes full size with one thread per core: the like-for-like floor for
a run on every core.

``--model A --model B`` measures several artifacts in the same rounds (floors, A, B, floors, A, B,
...) and prints the per-round ratio of each to the last one given.

A shared 2-core machine drifts by 10-30 % within a minute, so the floor and the end-to-end run
are measured in turn ``--rounds`` times (floor, end-to-end, floor, end-to-end, ...): each round's
ratio compares two measurements taken seconds apart, and the figure reported is the median of
the rounds' ratios (every round is printed too).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _decode(path: Path) -> int:
    from inspection.image.ingest import read_image

    return int(read_image(path).shape[0])


def _decode_reduced(path: Path, min_short: int, min_long: int) -> int:
    from inspection.image.ingest import decode_reduced, read_image_bytes

    data = read_image_bytes(path)
    return int(decode_reduced(data, str(path), min_short=min_short, min_long=min_long).image.shape[0])


def decode_floor(files: list[Path], workers: int, fn=_decode) -> float:  # type: ignore[no-untyped-def]
    """Images/s for read + decode only."""
    t0 = time.perf_counter()
    if workers <= 0:
        for f in files:
            fn(f)
    else:
        with cf.ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(fn, files, chunksize=8))
    return len(files) / (time.perf_counter() - t0)


def make_images(out: Path, n: int) -> list[Path]:
    import cv2
    import numpy as np

    from inspection.data.synth import generate_weld

    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        weld = generate_weld(
            rng, width=800, height=800, n_pores=int(rng.integers(0, 5)), n_spatter=int(rng.integers(0, 25))
        )
        path = out / f"seam_{i:05d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        files.append(path)
    return files


def floor_all_cores(files: list[Path], cores: int) -> float:
    """Images/s for read + full-resolution decode with one thread per core (decoding releases the
    GIL): the floor to compare a run that uses every core with."""
    with cf.ThreadPoolExecutor(cores) as pool:
        t0 = time.perf_counter()
        list(pool.map(_decode, files))
        return len(files) / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", type=Path)
    parser.add_argument("--n", type=int, default=200, help="synthetic images when no DIR is given")
    parser.add_argument("--workers", type=int, default=0, help="as weldinspect score (0: prefetch thread)")
    parser.add_argument("--threads", type=int, default=0, help="model threads (0: as weldinspect score)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--model", type=Path, action="append", default=None,
        help="model artifact; repeat to measure several in the same rounds (default: the shipped one)",
    )  # fmt: skip
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--prefetch", type=int, default=None, help="prefetch threads (workers 0)")
    parser.add_argument("--rounds", type=int, default=5, help="floor / end-to-end pairs measured in turn")
    parser.add_argument("--json-out", type=Path, default=None, help="write every round's figures here")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")

    from inspection.batch.runner import expand_inputs, model_threads, prefetch_threads, score
    from inspection.image.prepare import analysis_min_size
    from inspection.pipeline import Inspector

    models = args.model or [None]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp) / "images"
        files = sorted(folder.glob("*.jpg")) if args.dir else make_images(folder, args.n)
        if not files:
            print(f"no *.jpg files in {folder}", file=sys.stderr)
            return 2
        threads = args.threads or model_threads(args.workers)
        inspectors = [Inspector.from_artifact(m, backend=args.backend, threads=threads) for m in models]
        names = [f"{i.grader.info.name} {i.grader.info.version} ({i.grader.backend})" for i in inspectors]
        decode_floor(files[: min(16, len(files))], args.workers)  # warm the page cache
        short, long = analysis_min_size(inspectors[0].prepare_config)
        reduced = functools.partial(_decode_reduced, min_short=short, min_long=long)  # picklable
        floor_reduced = decode_floor(files, args.workers, reduced)
        items = expand_inputs([folder])
        # every round: both floors, then each model, seconds apart (the machine drifts)
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            row = {"floor": decode_floor(files, args.workers), "floor_all": floor_all_cores(files, cores)}
            for k, inspector in enumerate(inspectors):
                t0 = time.perf_counter()
                summary = score(items, Path(tmp) / f"results-{r}-{k}.jsonl", inspector, workers=args.workers,
                                batch_size=args.batch_size, prefetch=args.prefetch)  # fmt: skip
                row[names[k]] = summary.scored / (time.perf_counter() - t0)
            rounds.append(row)
    prefetch = args.prefetch or prefetch_threads()
    print(
        f"images: {len(files)}  workers: {args.workers}"
        + (f"  prefetch threads: {prefetch}" if args.workers <= 0 else "")
        + f"  model threads: {threads}  batch: {args.batch_size}  cores: {cores}"
    )
    print("round  floor (1 process)  floor (" + f"{cores} threads)  " + "  ".join(names))
    for r, row in enumerate(rounds, 1):
        print(f"{r:5d}  {row['floor']:17.1f}  {row['floor_all']:17.1f}  "
              + "  ".join(f"{row[n]:{len(n)}.1f}" for n in names))  # fmt: skip
    med = {k: statistics.median(row[k] for row in rounds) for k in rounds[0]}
    print(f"decode-only floor, full resolution, 1 process:      {med['floor']:.1f} images/s (median)")
    print(f"decode-only floor, full resolution, {cores} threads: {med['floor_all']:.1f} images/s (median)")
    print(f"decode-only floor, pipeline scale, 1 process:       {floor_reduced:.1f} images/s")
    per_model: dict[str, dict[str, float]] = {}
    report: dict[str, object] = {
        "images": len(files), "workers": args.workers, "model_threads": threads,
        "batch_size": args.batch_size, "cores": cores, "rounds": rounds,
        "floor_reduced": floor_reduced, "models": per_model,
    }  # fmt: skip
    for n in names:
        r1 = statistics.median(row[n] / row["floor"] for row in rounds)
        rall = statistics.median(row[n] / row["floor_all"] for row in rounds)
        print(f"{n}: {med[n]:.1f} images/s; ratio to the 1-process floor {r1:.2f}, "
              f"to the {cores}-thread floor {rall:.2f} (medians of per-round ratios)")  # fmt: skip
        per_model[n] = {"images_per_s": med[n], "ratio_floor": r1, "ratio_floor_all_cores": rall}
    if len(names) > 1:
        base = names[-1]
        for n in names[:-1]:
            rel = statistics.median(row[n] / row[base] for row in rounds)
            print(f"{n} / {base}: {rel:.2f} (median of per-round ratios)")
    if args.json_out:
        import json

        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
