"""Model speed on CPU (results go to docs/performance.md, section "Model speed").

Two modes:

* ``forward``: network forward time of randomly initialised networks, per architecture and width,
  at batch 1, 8 and 32 on ``(B, 3, 128, 512)`` input (no preprocessing, torch only)::

      .venv/bin/python scripts/bench_model.py forward --threads 2

* ``end-to-end`` (default): images/s for ``preprocess`` + ``Grader.predict`` on the shipped model
  (``default_model_dir()``) or ``--model DIR``, for the torch and onnxruntime backends, using the
  photos in ``data/samples/`` (synthetic ones are generated when that folder is empty)::

      .venv/bin/python scripts/bench_model.py end-to-end --threads 2

  ``--random-arch ARCH`` benchmarks a randomly initialised artifact of that architecture (written
  to a temporary folder) instead, for when no trained model is shipped yet.

Every cell is ``measured / estimate`` images per second: *measured* from the fastest wall-clock
time of ``--repeats`` runs (after one warm-up), *estimate* from the fastest process CPU time
divided by the thread count (what the run would take on otherwise idle cores; the development
machine is shared, so wall times there are pessimistic). Output is a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from inspection.model.net import build_model, fuse_for_inference

log = logging.getLogger("bench_model")

REPO = Path(__file__).resolve().parents[1]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Timing:
    """Fastest wall-clock and fastest process CPU time (all threads) of the timed runs, seconds."""

    wall: float
    cpu: float

    def cell(self, n: int, threads: int) -> str:
        """``"<n/wall> / <n/(cpu/threads)>"``: measured rate / rate if ``threads`` cores were free."""
        return f"{n / self.wall:.1f} / {n / max(self.cpu / threads, 1e-9):.1f}"


def _timed(fn: Callable[[], object], repeats: int) -> Timing:
    """Time ``fn`` ``repeats`` times after one warm-up. The machine is shared, so both minima are
    reported: the wall time (what was observed) and the CPU time, which is less affected by other
    processes and, divided by the thread count, estimates the wall time on otherwise idle cores."""
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(min(walls), min(cpus))


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"


def bench_forward(
    variants: Sequence[tuple[str, float]],
    batches: Sequence[int],
    repeats: int,
    height: int,
    width: int,
    channels_last: bool,
    fuse: bool,
) -> list[str]:
    """Markdown rows: arch | width | params | per batch size: images/s measured / idle-core estimate."""
    rows = []
    for arch, width_mult in variants:
        torch.manual_seed(0)
        model = build_model(arch, width_mult=width_mult).eval()
        if fuse:
            model = fuse_for_inference(model)  # as the torch runtime does
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)  # type: ignore[call-overload]
        n_params = sum(p.numel() for p in model.parameters())
        cells = []
        for b in batches:
            x = torch.randn(b, 3, height, width).contiguous(memory_format=fmt)

            def run(x: torch.Tensor = x, model: torch.nn.Module = model) -> object:
                with torch.inference_mode():
                    return model(x)

            timing = _timed(run, repeats)
            cells.append(timing.cell(b, torch.get_num_threads()))
            log.info("%s x%.2f batch %d: %s", arch, width_mult, b, timing)
        rows.append(f"| {arch} | {width_mult:g} | {n_params / 1e6:.2f} M | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def _load_sample_images(samples: Path, limit: int) -> tuple[list[npt.NDArray[np.uint8]], str]:
    """Up to ``limit`` decoded photos from ``samples`` (synthetic ones when there are none) and a note."""
    from inspection.image.ingest import read_image

    found = (
        sorted(p for p in samples.rglob("*") if p.suffix.lower() in IMAGE_EXTS) if samples.is_dir() else []
    )
    images = [read_image(p) for p in found[:limit]]
    if images:
        h, w = images[0].shape[:2]
        return images, f"{len(images)} photos from {samples} (first is {w}x{h})"
    from inspection.data.synth import generate_weld

    log.warning("no images in %s; generating %d synthetic 800x800 ones", samples, limit)
    rng = np.random.default_rng(0)
    welds = [
        generate_weld(rng, n_pores=int(rng.integers(0, 5)), n_spatter=int(rng.integers(0, 10)))
        for _ in range(limit)
    ]
    return [w.image for w in welds], f"{limit} synthetic 800x800 photos (inspection.data.synth)"


def bench_end_to_end(
    model_dir: Path,
    samples: Path,
    batches: Sequence[int],
    repeats: int,
    backends: Sequence[str],
    threads: int,
) -> list[str]:
    """Markdown rows of images/s per batch size: preprocessing alone, each backend's ``predict``
    alone (on the stacked tiles) and both together (the end-to-end figure)."""
    from inspection.config import PreprocessConfig
    from inspection.image.preprocess import preprocess
    from inspection.model.runtime import Grader

    images, note = _load_sample_images(samples, max(batches))
    print(f"<!-- images: {note} -->")
    graders = {b: Grader.load(model_dir, backend=b, threads=threads) for b in backends}  # type: ignore[arg-type]
    cfg: PreprocessConfig = next(iter(graders.values())).config.preprocess_config()

    def tiles_of(batch: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.uint8]:
        return np.stack([t.image for img in batch for t in preprocess(img, cfg).tiles])

    rows: dict[str, list[str]] = {"preprocess only": []}
    for backend in backends:
        rows[f"{backend} predict only"] = []
        rows[f"**{backend} end-to-end**"] = []
    for b in batches:
        batch = [images[i % len(images)] for i in range(b)]
        tiles = tiles_of(batch)
        # preprocessing is single-threaded numpy/OpenCV work: its CPU estimate uses 1 thread
        pre = _timed(lambda batch=batch: tiles_of(batch), repeats)  # type: ignore[misc]
        rows["preprocess only"].append(pre.cell(b, 1) + f" ({len(tiles)} tiles)")
        for backend, grader in graders.items():
            pred = _timed(lambda g=grader, t=tiles: g.predict(t), repeats)  # type: ignore[misc]
            rows[f"{backend} predict only"].append(pred.cell(b, threads))
            both = _timed(lambda g=grader, batch=batch: g.predict(tiles_of(batch)), repeats)  # type: ignore[misc]
            idle_estimate = b / (pre.cpu + pred.cpu / threads)  # preprocessing runs on one core
            rows[f"**{backend} end-to-end**"].append(f"**{b / both.wall:.1f} / {idle_estimate:.1f}**")
    lines = [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items()]
    for line in lines:
        print(line, flush=True)
    return lines


def _random_artifact(arch: str, width_mult: float, out: Path) -> Path:
    from inspection.model.artifact import ModelConfig, save_artifact

    torch.manual_seed(0)
    model = build_model(arch, width_mult=width_mult)
    config = ModelConfig(name="bench-random", version="0.0.0", arch=arch, width_mult=width_mult)
    save_artifact(out, model, config, "# Random benchmark model\n\nUntrained.\n", {})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", choices=("forward", "end-to-end"), default="end-to-end")
    parser.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads (default 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[
            "tiny:1.0",
            "mobilenet_v3_large:1.0",
            "mobilenet_v3_large:0.75",
            "mobilenet_v3_large:0.5",
            "efficientnet_b0:1.0",
            "resnet18:1.0",
        ],
        help="forward mode: ARCH:WIDTH_MULT entries",
    )
    parser.add_argument("--nchw", action="store_true", help="forward mode: plain NCHW, not channels_last")
    parser.add_argument("--no-fuse", action="store_true", help="forward mode: keep batch norm unfused")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--model", type=Path, default=None, help="artifact dir (default: the shipped model)")
    parser.add_argument("--random-arch", default=None, help="end-to-end on a random artifact of this arch")
    parser.add_argument("--random-width", type=float, default=1.0)
    parser.add_argument("--samples", type=Path, default=REPO / "data" / "samples")
    parser.add_argument(
        "--backends", nargs="+", default=["torch", "onnx"], choices=("torch", "onnx", "onnx-int8")
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    torch.set_num_threads(args.threads)
    print(f"<!-- {_machine()} -->")

    header_cells = " | ".join(f"batch {b}" for b in args.batches)
    sep = " | ".join("---" for _ in args.batches)
    if args.mode == "forward":
        variants = []
        for item in args.variants:
            arch, _, width = item.partition(":")
            variants.append((arch, float(width or 1.0)))
        print(f"| arch | width_mult | params | {header_cells} |")
        print(f"|---|---|---| {sep} |")
        bench_forward(
            variants, args.batches, args.repeats, args.height, args.width, not args.nchw, not args.no_fuse
        )
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        if args.random_arch:
            model_dir = _random_artifact(args.random_arch, args.random_width, Path(tmp) / "random")
            print(f"<!-- RANDOMLY INITIALISED {args.random_arch} x{args.random_width:g} artifact -->")
        else:
            from inspection.model.artifact import default_model_dir

            model_dir = args.model or default_model_dir()
            print(f"<!-- model: {model_dir} -->")
        print(f"| images/s | {header_cells} |")
        print(f"|---| {sep} |")
        bench_end_to_end(model_dir, args.samples, args.batches, args.repeats, args.backends, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
