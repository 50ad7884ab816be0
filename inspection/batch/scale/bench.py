"""Cost curve of batch scoring (``scripts/bench_scale.py``): images/s and peak memory of the local and
the Ray engine for growing numbers of synthetic images, plus the per-image cost of each stage (decode,
preprocess, model, driver merge, journal write, evidence ledger) that the scaling arithmetic needs.

Memory: :class:`inspection.batch.scale.memory.PeakMemory` over this process and all its descendants.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inspection.batch.runner import (
    Journal,
    ScoreItem,
    ScoreSummary,
    init_worker,
    ledger_hook,
    result_record,
    score,
    work,
)
from inspection.batch.scale.memory import PeakMemory
from inspection.config import StoreConfig
from inspection.pipeline import Inspector

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def make_images(folder: Path, n: int, *, size: int = 800, unique: int = 32, seed: int = 0) -> list[Path]:
    """``n`` synthetic ``size`` x ``size`` seam JPEGs in ``folder`` (existing ones are reused).

    ``unique`` distinct welds are drawn with :mod:`inspection.data.synth` (about 0.4 s each at 800 px);
    image ``i`` is weld ``i % unique`` with its index written into a 4 x 4 pixel corner patch, so every
    file has its own bytes and sha256 (the engines skip repeated sha256s) at a fraction of the cost.
    The work runs in *spawned* processes: OpenCV's thread pool used in this process before the local
    engine forks its workers would leave those workers hanging (see docs/scaling.md).
    """
    if n < 1 or unique < 1:
        msg = f"need n >= 1 and unique >= 1 images, got n={n}, unique={unique}"
        raise ValueError(msg)
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"seam_{i:05d}.jpg" for i in range(n)]
    missing = [i for i, f in enumerate(files) if not f.is_file()]
    if missing:
        workers = min(os.cpu_count() or 1, 8)
        chunks = [missing[k::workers] for k in range(workers)]
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            list(pool.map(_write_images, [folder] * workers, chunks, [size] * workers,
                          [min(unique, n)] * workers, [seed] * workers))  # fmt: skip
    return files


def _write_images(folder: Path, indices: Sequence[int], size: int, unique: int, seed: int) -> int:
    import cv2

    from inspection.data.synth import generate_weld

    pool: dict[int, np.ndarray] = {}
    for i in indices:
        k = i % unique
        if k not in pool:
            rng = np.random.default_rng([seed, k])
            weld = generate_weld(rng, width=size, height=size, n_pores=int(rng.integers(0, 5)),
                                 n_spatter=int(rng.integers(0, 25)))  # fmt: skip
            pool[k] = cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR)
        img = pool[k].copy()
        img[:4, :4] = np.array([(i >> (8 * c)) & 255 for c in range(3)], dtype=np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR array
            msg = f"could not encode synthetic image {i}"
            raise RuntimeError(msg)
        (folder / f"seam_{i:05d}.jpg").write_bytes(buf.tobytes())
    return len(indices)


def bench_model_dir(workdir: Path) -> tuple[Path, str]:
    """The shipped model if there is one, else a random ``resnet18`` artifact (strip 96 x tile 192)
    written into ``workdir``; returns (folder, one-line description for the report)."""
    from inspection.model.artifact import ArtifactError, ModelConfig, default_model_dir, save_artifact

    try:
        shipped = default_model_dir()
        return shipped, f"shipped model {shipped}"
    except ArtifactError as exc:
        log.info("no shipped model (%s); using a randomly initialised resnet18", exc)
    import torch

    from inspection.model.net import build_model

    torch.manual_seed(0)
    model = build_model("resnet18").eval()
    shape = {"strip_height": 96, "tile_length": 192}
    config = ModelConfig.model_validate({"name": "weld-grader-bench", "version": "0.0.0", "arch": "resnet18",
                                         "input": shape, "preprocess": shape})  # fmt: skip
    path = workdir / "model-resnet18-random"
    if not (path / "config.json").is_file():
        save_artifact(path, model, config, "# Benchmark model\n\nRandom weights.\n", {"note": "untrained"})
    return path, "randomly initialised resnet18 (strip 96 x tile 192), same architecture as the shipped one"


# ----------------------------------------------------------------------------------------------
# One point of the curve
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One engine on ``n`` images: ``seconds`` is the scoring call (for Ray: after ``startup_s`` to
    start the local Ray instance; model loading in the actors is inside ``seconds``)."""

    engine: str
    n: int
    seconds: float
    startup_s: float
    images_per_s: float
    peak_rss_mib: float
    peak_pss_mib: float
    peak_processes: int
    errors: int
    stage_ms_per_image: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_point(
    engine: str,
    files: Sequence[Path],
    model_dir: Path,
    workdir: Path,
    *,
    batch_size: int = 32,
    cpus: int | None = None,
) -> Point:
    """Score ``files`` with ``engine`` (``local``: one worker process per CPU; ``ray``: a fresh local Ray
    instance with ``cpus`` CPUs, shut down afterwards) into a new results file under ``workdir``."""
    if engine not in ENGINES:
        msg = f"unknown engine {engine!r}; valid: {', '.join(ENGINES)}"
        raise ValueError(msg)
    cpus = cpus or (os.cpu_count() or 1)
    items = [ScoreItem(str(f), f) for f in files]
    out = workdir / f"{engine}-{len(files)}.jsonl"
    out.unlink(missing_ok=True)
    shutil.rmtree(out.with_name(out.name + ".shards"), ignore_errors=True)
    inspector = Inspector.from_artifact(model_dir, backend="torch")
    startup = 0.0
    with PeakMemory() as mem:
        if engine == "local":
            t0 = time.perf_counter()
            summary = score(items, out, inspector, workers=cpus, batch_size=batch_size)
            seconds = time.perf_counter() - t0
        else:
            import ray

            from inspection.batch.scale.ray_engine import RayConfig, connect, score_ray

            cfg = RayConfig(num_cpus=cpus, batch_size=batch_size)
            t0 = time.perf_counter()
            connect(cfg)
            startup = time.perf_counter() - t0
            try:
                t1 = time.perf_counter()
                summary = score_ray(items, out, inspector, model_dir, backend="torch", config=cfg)
                seconds = time.perf_counter() - t1
            finally:
                ray.shutdown()
    return Point(
        engine=engine,
        n=len(files),
        seconds=round(seconds, 2),
        startup_s=round(startup, 2),
        images_per_s=round(summary.scored / seconds, 2) if seconds > 0 else 0.0,
        peak_rss_mib=round(mem.peak_rss_mib, 1),
        peak_pss_mib=round(mem.peak_pss_mib, 1),
        peak_processes=mem.peak_processes,
        errors=int(summary.status.get("error", 0)),
        stage_ms_per_image=_per_image(summary),
    )


def _per_image(summary: ScoreSummary) -> dict[str, float]:
    n = max(1, summary.scored)
    return {k: round(v / n, 3) for k, v in sorted(summary.stage_ms.items())}


# ----------------------------------------------------------------------------------------------
# Per-image cost of each stage, one core, no overlap
# ----------------------------------------------------------------------------------------------


def stage_costs(
    files: Sequence[Path], model_dir: Path, workdir: Path, *, batch_size: int = 32
) -> dict[str, float]:
    """Milliseconds per image of each stage run alone in this process on ``files``.

    ``decode``: read + JPEG decode; ``prepare``: the whole per-image worker step (read, sha256,
    decode, quality gate, seam preprocessing); ``model``: :meth:`Inspector.finish` in batches;
    ``merge``: the Ray driver's work per image without a ledger (read a shard, rebuild the result,
    build the record, append to the journal); ``journal``: the journal write alone (fsync per batch);
    ``ledger``: the evidence hook (SQLite store + signing, one transaction per batch), which both
    engines run in one process.
    """
    from inspection.batch.scale.ray_engine import _Merger, grade_lines, write_shard
    from inspection.evidence.keys import init_key
    from inspection.image.ingest import read_image

    inspector = Inspector.from_artifact(model_dir, backend="torch")
    items = [ScoreItem(str(f), f) for f in files]
    n = len(items)
    costs: dict[str, float] = {}

    t0 = time.perf_counter()
    for f in files:
        read_image(f)
    costs["decode"] = (time.perf_counter() - t0) * 1000.0 / n

    init_worker(inspector.prepare_config, frozenset(), False)
    t0 = time.perf_counter()
    jobs = [work(it) for it in items]
    costs["prepare"] = (time.perf_counter() - t0) * 1000.0 / n

    batches = [jobs[i : i + batch_size] for i in range(0, n, batch_size)]
    inspector.finish([j.prepared for j in jobs if j.prepared is not None][:batch_size])  # warm-up excluded
    t0 = time.perf_counter()
    shard_lines = [grade_lines(inspector, b) for b in batches]
    costs["model"] = (time.perf_counter() - t0) * 1000.0 / n

    shards = workdir / "stage-costs.shards"
    paths = [write_shard(shards, lines) for lines in shard_lines]
    summary = ScoreSummary(total=n)
    out = workdir / "stage-costs-merge.jsonl"
    out.unlink(missing_ok=True)
    with Journal(out) as journal:
        merger = _Merger(journal, items, set(), None, {"name": "", "version": "", "sha256": ""}, summary)
        t0 = time.perf_counter()
        for path in paths:
            merger.merge(path)
        costs["merge"] = (time.perf_counter() - t0) * 1000.0 / n

    from inspection.types import InspectionResult

    records = [
        [
            result_record(ln["image"], InspectionResult.from_dict(ln["result"]), 0.0)
            for ln in lines
            if ln["result"]
        ]
        for lines in shard_lines
    ]
    out = workdir / "stage-costs-journal.jsonl"
    out.unlink(missing_ok=True)
    with Journal(out) as journal:
        t0 = time.perf_counter()
        for recs in records:
            journal.write(recs)
        costs["journal"] = (time.perf_counter() - t0) * 1000.0 / n

    store_cfg = StoreConfig(home=workdir / "ledger-home")
    init_key(store_cfg.keys_dir, station_id="BENCH")
    hook = ledger_hook("default", inspector, station="BENCH", store_config=store_cfg)
    from inspection.batch.runner import Graded

    by_image = {it.image: it for it in items}
    graded = [
        [
            Graded(by_image[ln["image"]], InspectionResult.from_dict(ln["result"]), None)
            for ln in lines
            if ln["result"]
        ]
        for lines in shard_lines
    ]
    t0 = time.perf_counter()
    for g in graded:
        hook(g)
    costs["ledger"] = (time.perf_counter() - t0) * 1000.0 / n
    return {k: round(v, 3) for k, v in costs.items()}
