"""CLI commands: ``weldinspect score`` (batch scoring)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from inspection.batch.runner import RecordHook, ScoreItem, ScoreSummary
    from inspection.pipeline import Inspector


def register(app: typer.Typer) -> None:
    """Add ``score`` to ``app``."""
    app.command("score")(score_cmd)


def score_cmd(
    paths: list[Path] = typer.Argument(..., help="Images, folders or annotations.jsonl manifests."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="results.jsonl, .csv or .parquet (resumed if it exists)."
    ),
    model: Path | None = typer.Option(
        None, "--model", help="Model artifact folder (default: the shipped model)."
    ),
    context: Path | None = typer.Option(
        None,
        "--context",
        help="CSV or JSON joining welding parameters, serial, material, thickness, mm/px by image.",
    ),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    glob: str | None = typer.Option(None, "--glob", help="File name pattern for folders, e.g. '*.jpg'."),
    workers: int = typer.Option(
        0,
        "--workers",
        help="Decode/preprocess processes (0: prefetch threads in this process, fastest on small machines; "
        "-1: one per CPU core).",
    ),
    threads: int = typer.Option(
        0,
        "--threads",
        help="Model threads (0: the cores left over by the preparation: one for the prefetch threads, "
        "N for N workers).",
    ),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per model batch and per fsync."),
    ledger: str | None = typer.Option(
        None,
        "--ledger",
        help="Write signed evidence records to this database URL ('default' = the local store).",
    ),
    station: str | None = typer.Option(
        None, "--station", help="Station id for evidence records and the signing key."
    ),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="torch, onnx, onnx-int8, or auto (the fastest the model ships: int8, onnx, torch).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this machine's processes) or ray (Ray Data, see docs/scaling.md)."
    ),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster address (ray://host:10001 or host:6379); default: local Ray."
    ),
    ray_cpus: int = typer.Option(
        0, "--ray-cpus", help="CPUs of the local Ray instance started without --address (0: all cores)."
    ),
    actors: int = typer.Option(
        0, "--actors", help="Ray model actors, each loading the model once (0: half the cluster's CPUs)."
    ),
    prepare_tasks: int = typer.Option(
        0, "--prepare-tasks", help="Concurrent Ray decode/preprocess tasks (0: half the cluster's CPUs)."
    ),
) -> None:
    """Score images into a results file.

    Exit code 0: all scored; 3: some records are errors (bad files, missing paths, symlink loops,
    FIFOs ...: each has an error record); 2: bad usage; 1: the results could not be written (disk
    full); 130 / 143: interrupted by Ctrl-C / SIGTERM (records written so far are kept, a rerun
    with the same --out resumes)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from inspection.batch.runner import (
        OutputError,
        UsageError,
        attach_contexts,
        expand_inputs,
        load_context_table,
        model_threads,
        score,
    )
    from inspection.pipeline import Inspector

    err = Console(stderr=True)
    if engine not in ("local", "ray"):
        err.print(f"[red]error:[/red] unknown engine {engine!r}; valid: local, ray")
        raise typer.Exit(2)
    if engine == "local" and address is not None:
        err.print("[red]error:[/red] --address needs --engine ray")
        raise typer.Exit(2)
    for name, value in (("--ray-cpus", ray_cpus), ("--actors", actors), ("--prepare-tasks", prepare_tasks)):
        if value < 0:
            err.print(f"[red]error:[/red] {name} must be >= 0 (0: automatic), got {value}")
            raise typer.Exit(2)
    try:
        items = expand_inputs(paths, recursive=recursive, glob=glob)
        if context is not None:
            items = attach_contexts(items, load_context_table(context))
    except UsageError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    if not items:
        err.print("[red]error:[/red] no images found in the given paths")
        raise typer.Exit(2)
    n_workers = (os.cpu_count() or 1) if workers < 0 else workers
    if threads < 0:
        err.print(f"[red]error:[/red] --threads must be >= 0 (0: automatic), got {threads}")
        raise typer.Exit(2)
    inspector = Inspector.from_artifact(
        model, backend=backend, threads=threads or (model_threads(n_workers) if engine == "local" else None)
    )
    hook = None
    if ledger is not None:
        from inspection.batch.runner import ledger_hook

        try:
            hook = ledger_hook(ledger, inspector, station=station)
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    else:
        from inspection.batch.runner import recommendation_hook

        hook = recommendation_hook
    engine_errors: tuple[type[Exception], ...] = ()
    if engine == "ray":
        from inspection.batch.scale.ray_engine import RayEngineError

        engine_errors = (RayEngineError,)
    show = not quiet and sys.stderr.isatty()
    progress = Progress(
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.1f} img/s"),
        TimeRemainingColumn(),
        console=err,
        disable=not show,
    )
    with progress, _terminate_as_interrupt():
        task = progress.add_task("score", total=len(items), rate=0.0)

        def on_progress(done: int, total: int) -> None:
            elapsed = progress.tasks[0].elapsed or 0.0
            progress.update(task, completed=done, rate=done / elapsed if elapsed else 0.0)

        try:
            if engine == "ray":
                summary = _score_ray(
                    items, out, inspector, model, backend, hook, on_progress,
                    address=address, num_cpus=ray_cpus, actors=actors, prepare_tasks=prepare_tasks,
                    batch_size=batch_size,
                )  # fmt: skip
            else:
                summary = score(
                    items,
                    out,
                    inspector,
                    workers=n_workers,
                    batch_size=batch_size,
                    hook=hook,
                    keep_bytes=ledger is not None,
                    progress=on_progress,
                )
        except UsageError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        except OutputError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
        except engine_errors as exc:  # Ray could not start / be reached, or its stage failed
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from exc
    if not quiet:
        from inspection.cli.render import summary_table

        Console().print(summary_table(summary, out))
    raise typer.Exit(summary.exit_code)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While scoring, SIGTERM ends the run like Ctrl-C (records kept, tables rendered, exit 143)
    instead of killing it between two writes. Only the main thread can install handlers; elsewhere
    nothing changes. The previous handler is restored afterwards."""
    import signal
    import threading

    from inspection.batch.runner import Terminated

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _score_ray(
    items: Sequence[ScoreItem],
    out: Path,
    inspector: Inspector,
    model: Path | None,
    backend: str,
    hook: RecordHook | None,
    progress: Callable[[int, int], None],
    *,
    address: str | None,
    num_cpus: int,
    actors: int,
    prepare_tasks: int,
    batch_size: int,
) -> ScoreSummary:
    """``score --engine ray``: the same records through
    :func:`inspection.batch.scale.ray_engine.score_ray`."""
    from inspection.batch.runner import UsageError
    from inspection.batch.scale.ray_engine import RayConfig, score_ray
    from inspection.model.artifact import default_model_dir

    try:
        config = RayConfig(
            address=address,
            num_cpus=num_cpus or (os.cpu_count() or 1),
            actors=actors or None,
            prepare_tasks=prepare_tasks or None,
            batch_size=batch_size,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    model_dir = default_model_dir() if model is None else model
    return score_ray(items, out, inspector, model_dir, backend=backend, config=config, hook=hook,
                     progress=progress)  # fmt: skip
