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
one process; the third floor decodes full size with one thread per core, for comparison.

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dir", nargs="?", type=Path)
    parser.add_argument("--n", type=int, default=200, help="synthetic images when no DIR is given")
    parser.add_argument("--workers", type=int, default=0, help="as weldinspect score (0: prefetch thread)")
    parser.add_argument("--threads", type=int, default=0, help="model threads (0: as weldinspect score)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    parser.add_argument("--prefetch", type=int, default=None, help="prefetch threads (workers 0)")
    parser.add_argument("--rounds", type=int, default=5, help="floor / end-to-end pairs measured in turn")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")

    from inspection.batch.runner import expand_inputs, model_threads, prefetch_threads, score
    from inspection.image.prepare import analysis_min_size
    from inspection.pipeline import Inspector

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp) / "images"
        files = sorted(folder.glob("*.jpg")) if args.dir else make_images(folder, args.n)
        if not files:
            print(f"no *.jpg files in {folder}", file=sys.stderr)
            return 2
        threads = args.threads or model_threads(args.workers)
        inspector = Inspector.from_artifact(args.model, backend=args.backend, threads=threads)
        decode_floor(files[: min(16, len(files))], args.workers)  # warm the page cache
        short, long = analysis_min_size(inspector.prepare_config)
        reduced = functools.partial(_decode_reduced, min_short=short, min_long=long)  # picklable
        floor_reduced = decode_floor(files, args.workers, reduced)
        cores = os.cpu_count() or 1
        with cf.ThreadPoolExecutor(cores) as pool:  # decoding releases the GIL: threads use every core
            t_all = time.perf_counter()
            list(pool.map(_decode, files))
            floor_all = len(files) / (time.perf_counter() - t_all)
        items = expand_inputs([folder])
        rounds: list[tuple[float, float]] = []
        for r in range(args.rounds):
            floor = decode_floor(files, args.workers)
            t0 = time.perf_counter()
            summary = score(items, Path(tmp) / f"results-{r}.jsonl", inspector, workers=args.workers,
                            batch_size=args.batch_size, prefetch=args.prefetch)  # fmt: skip
            rounds.append((floor, summary.scored / (time.perf_counter() - t0)))
    backend = inspector.grader.backend
    prefetch = args.prefetch or prefetch_threads()
    print(
        f"images: {len(files)}  workers: {args.workers}"
        + (f"  prefetch threads: {prefetch}" if args.workers <= 0 else "")
        + f"  model threads: {threads}  batch: {args.batch_size}  backend: {backend}"
    )
    print("round  floor (full resolution)  end-to-end  ratio")
    for r, (fl, e2e) in enumerate(rounds, 1):
        print(f"{r:5d}  {fl:23.1f}  {e2e:10.1f}  {e2e / fl:5.2f}")
    floor = statistics.median(fl for fl, _ in rounds)
    e2e = statistics.median(e for _, e in rounds)
    ratio = statistics.median(e / fl for fl, e in rounds)
    print(f"decode-only floor (full resolution): {floor:.1f} images/s (median of {len(rounds)})")
    print(f"decode-only floor (pipeline scale):  {floor_reduced:.1f} images/s")
    print(f"decode-only floor (full, {cores} threads): {floor_all:.1f} images/s")
    print(f"end-to-end:                          {e2e:.1f} images/s (median of {len(rounds)})")
    print(f"ratio end-to-end / floor: {ratio:.2f} (median of the rounds)  (to the pipeline-scale floor: "
          f"{e2e / floor_reduced:.2f}, to the {cores}-thread floor: {e2e / floor_all:.2f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
