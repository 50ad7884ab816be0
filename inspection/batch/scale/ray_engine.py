"""Batch scoring on Ray Data: the inputs, records, output formats and resume rules of
:func:`inspection.batch.runner.score`, with the work spread over a Ray cluster (or a local Ray instance).

Data flow (one streaming Ray Data pipeline, so memory stays bounded for any number of images)::

    items (driver) -> [prepare: stateless tasks] -> [grade: model actor pool] -> shard files
                                                                              -> small rows -> driver merge

* **prepare** (Ray tasks, ``prepare_tasks`` at once): read bytes, sha256, skip images already in the
  output, decode + quality gate + preprocessing. It runs the local engine's worker function
  (``inspection.batch.worker.work``), so both engines prepare an image identically.
* **grade** (a callable class, one :class:`~inspection.pipeline.Inspector` per actor, ``actors`` at once):
  ``Inspector.finish`` on the batch, then ONE shard file per batch, ``<out>.shards/<key>.jsonl``,
  written atomically (temp file + fsync + rename). ``key`` is a hash of the batch's image names, so a
  batch that Ray retries after its actor died rewrites the same file instead of adding a second one.
* **merge** (the driver, the only writer of the output): reads each finished shard, drops images it has
  already written (a retried batch seen twice), runs the record hook (recommendations, signed evidence)
  once per shard, appends to the crash-safe journal (:class:`inspection.batch.runner.Journal`) and deletes
  the shard.

Crash safety and resume: the output is only ever appended by the driver through the journal, so a crash
leaves it valid. Shards left by a crashed run are merged first by the next run with the same ``out``;
then images already in the output are skipped (by sha256; failed images by path), as in the local
engine. On a multi-machine cluster the input images and the output folder must be on storage that every
node sees under the same path (the shard files are written by the actors, next to the output).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspection.batch.runner import (
    OUTPUT_FORMATS,
    Graded,
    Job,
    Journal,
    RecordHook,
    ScoreItem,
    ScoreSummary,
    UsageError,
    error_record,
    init_worker,
    journal_path,
    read_journal,
    render_table,
    result_record,
    work,
)
from inspection.pipeline import Inspector, PrepareConfig
from inspection.types import InspectionResult

log = logging.getLogger(__name__)

_PREPARE_STAGES = ("decode", "preprocess", "quality")
"""Stages already inside the prepare stage's own wall time (as in the local engine's ``elapsed_ms``)."""


class RayEngineError(RuntimeError):
    """Ray could not be started / reached, or the Ray stage failed after its retries."""


@dataclass(frozen=True)
class RayConfig:
    """How the Ray engine runs.

    * ``address``: an existing cluster (``ray://host:10001`` or ``host:6379``); None starts a local
      Ray instance on loopback with ``num_cpus`` CPUs and an ``object_store_mb`` MiB object store.
    * ``actors`` / ``prepare_tasks``: model actors and concurrent prepare tasks; None = half the
      cluster's CPUs each (at least 1).
    * ``actor_cpus`` / ``prepare_cpus``: CPUs reserved per actor / per prepare task;
      ``model_threads``: torch / onnxruntime threads in each actor.
    * ``batch_size``: images per model batch, per shard file and per journal fsync.
    * ``max_restarts`` / ``max_task_retries``: how often a dead actor is restarted and its batch
      retried (-1: forever; bounded by default so a poison image cannot loop forever).
    """

    address: str | None = None
    num_cpus: int = 2
    actors: int | None = None
    prepare_tasks: int | None = None
    actor_cpus: float = 1.0
    prepare_cpus: float = 1.0
    model_threads: int = 1
    batch_size: int = 32
    max_restarts: int = 3
    max_task_retries: int = 3
    object_store_mb: int = 512
    progress_bars: bool = False

    def __post_init__(self) -> None:
        for name in ("num_cpus", "model_threads", "batch_size"):
            if getattr(self, name) < 1:
                msg = f"RayConfig.{name} must be >= 1, got {getattr(self, name)}"
                raise ValueError(msg)
        for name in ("actors", "prepare_tasks"):
            value = getattr(self, name)
            if value is not None and value < 1:
                msg = f"RayConfig.{name} must be >= 1 or None (automatic), got {value}"
                raise ValueError(msg)
        for name in ("actor_cpus", "prepare_cpus"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                msg = f"RayConfig.{name} must be a positive number of CPUs, got {value}"
                raise ValueError(msg)
        for name in ("max_restarts", "max_task_retries"):
            if getattr(self, name) < -1:
                msg = f"RayConfig.{name} must be >= -1 (-1 = unlimited), got {getattr(self, name)}"
                raise ValueError(msg)
        if self.object_store_mb < 100:
            msg = f"RayConfig.object_store_mb must be >= 100 (MiB), got {self.object_store_mb}"
            raise ValueError(msg)


@dataclass(frozen=True)
class KillOnce:
    """Fault injection for tests: the first graded batch of the run creates ``marker`` and then
    SIGKILLs its own actor process (after writing its shard), once per marker file."""

    marker: Path


def shard_dir(out: Path) -> Path:
    """Where the actors write the shard files of ``out``: ``<out>.shards/`` next to it."""
    return out.with_name(out.name + ".shards")


# ----------------------------------------------------------------------------------------------
# Ray stages (run in Ray worker processes)
# ----------------------------------------------------------------------------------------------


def prepare_batch(
    batch: Mapping[str, np.ndarray], cfg: PrepareConfig, done: frozenset[str]
) -> dict[str, np.ndarray]:
    """Ray Data stage 1: ``{"item": pickled ScoreItem}`` rows -> ``{"image", "kind", "job"}`` rows,
    where ``kind`` is ``prepared`` / ``skip`` / ``error`` and ``job`` the pickled worker result."""
    init_worker(cfg, done, False)
    images, kinds, jobs = [], [], []
    for blob in batch["item"]:
        item: ScoreItem = pickle.loads(blob)
        job = work(item)
        images.append(item.image)
        kinds.append(job.kind)
        jobs.append(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
    return {"image": _objects(images), "kind": _objects(kinds), "job": _objects(jobs)}


def _objects(values: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def grade_lines(inspector: Inspector, jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Shard lines for the non-skipped ``jobs``, in order: the model runs once on the whole batch.

    A line is ``{"image", "kind": "result"|"error", "sha256", "elapsed_ms", "result", "code",
    "message"}`` with ``result`` the full :meth:`InspectionResult.to_dict` (None for errors);
    ``elapsed_ms`` is computed as in the local engine (prepare wall time + model stages).
    """
    graded = [j for j in jobs if j.kind == "prepared" and j.prepared is not None]
    inspections = inspector.finish([j.prepared for j in graded if j.prepared is not None])
    by_id = {id(j): ins for j, ins in zip(graded, inspections, strict=True)}
    lines: list[dict[str, Any]] = []
    for job in jobs:
        if job.kind == "skip":
            continue
        line: dict[str, Any] = {"image": job.item.image, "sha256": job.sha256, "elapsed_ms": 0.0,
                                "result": None, "code": job.code, "message": job.message}  # fmt: skip
        ins = by_id.get(id(job))
        if ins is None:
            line["kind"] = "error"
        else:
            line["kind"] = "result"
            line["result"] = ins.result.to_dict()
            line["elapsed_ms"] = job.elapsed_ms + sum(
                v for k, v in ins.result.timings_ms.items() if k not in _PREPARE_STAGES
            )
        lines.append(line)
    return lines


def shard_name(images: Iterable[str]) -> str:
    """Deterministic shard file name for a batch of images (order-independent)."""
    digest = hashlib.sha256("\n".join(sorted(images)).encode("utf-8")).hexdigest()
    return f"{digest[:32]}.jsonl"


def write_shard(directory: Path, lines: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``lines`` as ``directory/<shard_name>`` atomically (temp + fsync + rename); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / shard_name(str(line["image"]) for line in lines)
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    blob = b"".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
        for line in lines
    )
    with tmp.open("wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


class GradeActor:
    """Ray Data stage 2 (a callable class: one actor per instance, the model loaded once)."""

    def __init__(
        self, model_dir: str, backend: str, threads: int, shards: str, kill_marker: str | None = None
    ) -> None:
        self.inspector = Inspector.from_artifact(model_dir, backend=backend, threads=threads)
        self.shards = Path(shards)
        self.kill_marker = None if kill_marker is None else Path(kill_marker)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"image", "kind", "job"}`` rows -> ``{"image", "kind", "shard"}`` (shard: file name or "")."""
        jobs: list[Job] = [pickle.loads(b) for b in batch["job"]]
        lines = grade_lines(self.inspector, jobs)
        name = write_shard(self.shards, lines).name if lines else ""
        if self.kill_marker is not None and not self.kill_marker.exists():
            self.kill_marker.write_text(f"{os.getpid()}\n")
            log.warning("fault injection: killing grade actor pid %d after writing %s", os.getpid(), name)
            os.kill(os.getpid(), signal.SIGKILL)
        return {"image": _objects([j.item.image for j in jobs]), "kind": _objects([j.kind for j in jobs]),
                "shard": _objects([name] * len(jobs))}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Driver: merge shards into the output (the only writer)
# ----------------------------------------------------------------------------------------------


class _Merger:
    """Appends shard files to the journal, once per image, through the record hook."""

    def __init__(
        self,
        journal: Journal,
        items: Sequence[ScoreItem],
        written: set[tuple[str, str]],
        hook: RecordHook | None,
        model_info: Mapping[str, Any],
        summary: ScoreSummary,
    ) -> None:
        self.journal = journal
        self.items = {it.image: it for it in items}
        self.written = written
        self.hook = hook
        self.model_info = dict(model_info)
        self.summary = summary

    def merge(self, path: Path) -> list[dict[str, Any]]:
        """Merge one shard (if still there) and delete it; returns the records written."""
        if not path.is_file():
            return []
        fresh = [ln for ln in read_journal(path, repair=False) if _key(ln) not in self.written]
        records = self._records(fresh)
        self.journal.write(records)
        for rec in records:
            self.summary.add(rec)
            self.written.add(_key(rec))
        path.unlink(missing_ok=True)
        return records

    def _records(self, lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        graded = [
            (ln, InspectionResult.from_dict(ln["result"])) for ln in lines if ln.get("kind") == "result"
        ]
        extras: list[dict[str, Any]] = [{} for _ in graded]
        hook_error: str | None = None
        if self.hook is not None and graded:
            try:
                extras = self.hook([Graded(self._item(str(ln["image"])), res, None) for ln, res in graded])
            except Exception as exc:  # as the local engine: the records say what failed
                log.exception("post-processing hook failed on a batch of %d images", len(graded))
                hook_error = f"{type(exc).__name__}: {exc}"
        by_image = {str(ln["image"]): (res, extra) for (ln, res), extra in zip(graded, extras, strict=True)}
        records = []
        for ln in lines:
            image, sha = str(ln["image"]), ln.get("sha256")
            if ln.get("kind") != "result":
                records.append(error_record(image, str(ln["code"]), str(ln["message"]), sha, self.model_info))
            elif hook_error is not None:
                message = f"{image}: recording failed: {hook_error}"
                records.append(error_record(image, "hook_failed", message, sha, self.model_info))
            else:
                res, extra = by_image[image]
                records.append(result_record(image, res, float(ln["elapsed_ms"]), **extra))
        return records

    def _item(self, image: str) -> ScoreItem:
        return self.items.get(image) or ScoreItem(image=image, path=Path(image))


def _key(rec: Mapping[str, Any]) -> tuple[str, str]:
    """Identity of a record for de-duplication: (image as given, sha256 or "")."""
    return str(rec.get("image")), str(rec.get("sha256") or "")


def _merge_all(merger: _Merger, shards: Path, origin: str) -> list[dict[str, Any]]:
    """Merge every complete shard file in ``shards`` (in name order); returns the records written."""
    written: list[dict[str, Any]] = []
    for path in sorted(shards.glob("*.jsonl")) if shards.is_dir() else []:
        log.info("merging shard %s left by %s", path, origin)
        written.extend(merger.merge(path))
    return written


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


def connect(cfg: RayConfig) -> bool:
    """Connect to ``cfg.address`` or start a local loopback Ray instance, unless Ray is already
    initialised in this process. Returns True when this call initialised Ray (the caller shuts it
    down). Raises :class:`RayEngineError` naming the address when that fails."""
    import ray

    if ray.is_initialized():
        if cfg.address:
            log.warning("Ray is already initialised in this process; --address %s is not used", cfg.address)
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls from this machine
    try:
        if cfg.address:
            ray.init(address=cfg.address, log_to_driver=True)
        else:
            ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     object_store_memory=cfg.object_store_mb * 1024 * 1024)  # fmt: skip
    except Exception as exc:
        where = f"the Ray cluster at {cfg.address!r}" if cfg.address else "a local Ray instance"
        msg = f"could not start/connect to {where}: {type(exc).__name__}: {exc}"
        raise RayEngineError(msg) from exc
    return True


def _pool_sizes(cfg: RayConfig) -> tuple[int, int]:
    """(actors, prepare tasks): as configured, else half the cluster's CPUs each (at least 1)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    auto = max(1, cpus // 2)
    return cfg.actors or auto, cfg.prepare_tasks or auto


def score_ray(
    items: Sequence[ScoreItem],
    out: Path,
    inspector: Inspector,
    model_dir: Path,
    *,
    backend: str = "auto",
    config: RayConfig | None = None,
    hook: RecordHook | None = None,
    progress: Callable[[int, int], None] | None = None,
    fault: KillOnce | None = None,
) -> ScoreSummary:
    """Score ``items`` into ``out`` (``.jsonl``, ``.csv`` or ``.parquet``) on Ray, resuming if it exists.

    ``inspector`` is the driver's copy of the model loaded from ``model_dir`` (its prepare config and
    model info are used here; every actor loads ``model_dir`` itself with ``backend``). ``hook`` runs
    on the driver once per shard (batch), as in :func:`inspection.batch.runner.score`. Raises
    :class:`UsageError` for a bad output path and :class:`RayEngineError` when Ray fails.
    """
    cfg = config or RayConfig()
    if out.suffix.lower() not in OUTPUT_FORMATS:
        msg = f"output {out} has unsupported extension {out.suffix!r}; valid: {', '.join(OUTPUT_FORMATS)}"
        raise UsageError(msg)
    if not (model_dir / "config.json").is_file():
        msg = f"model folder {model_dir} has no config.json (expected a model artifact folder)"
        raise UsageError(msg)
    jpath, shards = journal_path(out), shard_dir(out)
    info = inspector.grader.info
    model_info = {"name": info.name, "version": info.version, "sha256": info.sha256}
    if info.runtime:
        model_info["runtime"] = info.runtime
    summary = ScoreSummary(total=len(items))
    t_start = time.perf_counter()
    owned = False
    try:
        previous = read_journal(jpath)  # repairs a torn last line before we append
        with Journal(jpath) as journal:
            merger = _Merger(journal, items, {_key(r) for r in previous}, hook, model_info, summary)
            merged_before = {str(r["image"]) for r in _merge_all(merger, shards, "an earlier run")}
            previous = read_journal(jpath)
            ok = [r for r in previous if r.get("status") != "error" and r.get("sha256")]
            done_sha = frozenset(str(r["sha256"]) for r in ok)
            done_err = {r["image"] for r in previous if r.get("status") == "error"}
            todo = [it for it in items if it.image not in done_err and it.image not in merged_before]
            summary.skipped = len(items) - len(todo) - len({it.image for it in items} & merged_before)
            if todo:
                owned = connect(cfg)
                for batch in _run_pipeline(todo, inspector.prepare_config, done_sha, model_dir, backend,
                                           cfg, shards, fault):  # fmt: skip
                    for name in {str(s) for s in batch["shard"] if s}:
                        merger.merge(shards / name)
                    summary.skipped += int(np.count_nonzero(batch["kind"] == "skip"))
                    if progress is not None:
                        progress(summary.scored + summary.skipped, summary.total)
                _merge_all(merger, shards, "this run")  # only if a batch's row never reached the driver
        _remove_empty(shards)
    except KeyboardInterrupt:
        summary.interrupted = True
        log.warning("interrupted: records written so far are kept; run again to resume")
    finally:
        summary.seconds = time.perf_counter() - t_start
        if owned:
            import ray

            ray.shutdown()
        if out.suffix.lower() != ".jsonl":
            render_table(read_journal(jpath, repair=False), out)
    return summary


def _run_pipeline(
    todo: Sequence[ScoreItem],
    prepare_config: PrepareConfig,
    done_sha: frozenset[str],
    model_dir: Path,
    backend: str,
    cfg: RayConfig,
    shards: Path,
    fault: KillOnce | None,
) -> Iterable[Mapping[str, np.ndarray]]:
    """Build and stream the Ray Data pipeline; yields the grade stage's small output batches."""
    import ray
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = cfg.progress_bars
    actors, prepare_tasks = _pool_sizes(cfg)
    rows = [{"item": pickle.dumps(_absolute(it), protocol=pickle.HIGHEST_PROTOCOL)} for it in todo]
    ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, math.ceil(len(rows) / cfg.batch_size)))
    ds = ds.map_batches(prepare_batch, fn_kwargs={"cfg": prepare_config, "done": done_sha},
                        batch_size=cfg.batch_size, batch_format="numpy",
                        compute=ray.data.TaskPoolStrategy(size=prepare_tasks),
                        num_cpus=cfg.prepare_cpus)  # fmt: skip
    with warnings.catch_warnings():
        # Ray 2.60 deprecates passing actor options as **ray_remote_args (removal planned for 2.64) but
        # has no named parameter for max_restarts / max_task_retries yet; ray[data] is pinned to 2.60.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            GradeActor,
            fn_constructor_kwargs={"model_dir": str(model_dir.absolute()), "backend": backend,
                                   "threads": cfg.model_threads, "shards": str(shards.absolute()),
                                   "kill_marker": None if fault is None else str(fault.marker.absolute())},
            batch_size=cfg.batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cfg.actor_cpus, max_restarts=cfg.max_restarts, max_task_retries=cfg.max_task_retries,
        )  # fmt: skip
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except (ray.exceptions.RayError, ray.exceptions.RaySystemError) as exc:
        msg = (f"the Ray stage failed ({type(exc).__name__}: {exc}); records merged so far are kept "
               f"and the next run with the same --out resumes")  # fmt: skip
        raise RayEngineError(msg) from exc


def _absolute(item: ScoreItem) -> ScoreItem:
    """The item with an absolute path (Ray workers may run in another working directory)."""
    return ScoreItem(item.image, item.path.absolute(), item.context, item.error)


def _remove_empty(directory: Path) -> None:
    """Remove the shard folder once everything is merged (stale temp files of killed actors too)."""
    if not directory.is_dir() or any(directory.glob("*.jsonl")):
        return
    for tmp in directory.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:  # something unexpected is in there: leave it for a person to look at
        log.warning("shard folder %s is not empty; left in place", directory)
