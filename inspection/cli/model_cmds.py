"""CLI commands: model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# --- `weldinspect model ...` (model-package engineer) -------------------------------------------

model_app = typer.Typer(help="Inspect and export model artifacts.", no_args_is_help=True)


def _model_dir_or_exit(directory: Path | None, command: str) -> Path:
    from inspection.model.artifact import ArtifactError, default_model_dir

    try:
        return directory if directory is not None else default_model_dir()
    except ArtifactError as exc:
        typer.echo(f"weldinspect model {command}: {exc}", err=True)
        raise typer.Exit(code=2) from exc


@model_app.command("info")
def model_info(
    directory: Path | None = typer.Argument(None, help="Artifact folder (default: the shipped model)."),
    as_json: bool = typer.Option(False, "--json", help="Print the config and identity as JSON."),
) -> None:
    """Show a model artifact's identity, architecture, calibration, thresholds and provenance."""
    import json

    from inspection.model.artifact import ArtifactError, read_artifact_meta
    from inspection.model.files import INT8_FILE, ONNX_FILE, onnx_export_status

    directory = _model_dir_or_exit(directory, "info")
    try:
        config, info, ood = read_artifact_meta(directory)
    except ArtifactError as exc:
        typer.echo(f"weldinspect model info: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    onnx_status = onnx_export_status(directory, info.sha256)
    int8_status = onnx_export_status(directory, info.sha256, INT8_FILE)
    if as_json:
        doc = {
            "path": str(directory),
            "sha256": info.sha256,
            "onnx": onnx_status,
            "onnx_int8": int8_status,
            "ood_count": ood.count,
            "config": config.model_dump(mode="json"),
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    t = config.thresholds
    lines = [
        f"model      {info.name} {info.version}",
        f"path       {directory}",
        f"sha256     {info.sha256}",
        f"network    {config.arch} (width_mult {config.width_mult:g}, embed_dim {config.embed_dim}), "
        f"input {config.input.strip_height}x{config.input.tile_length} {config.input.channels}, "
        f"heatmap stride {config.heatmap_stride}",
        f"temps      porosity {config.temperatures['porosity']:.3f}, "
        f"spatter {config.temperatures['spatter']:.3f}",
        f"abstain    porosity {t.abstain['porosity'].model_dump()}, "
        f"spatter {t.abstain['spatter'].model_dump()}",
        f"peaks      porosity >= {t.peak['porosity']}, spatter >= {t.peak['spatter']}, "
        f"min distance {t.min_peak_distance} cells, max {t.max_peaks}",
        f"ood        threshold {t.ood}, statistics from {ood.count} embeddings"
        + (" (NOT FITTED)" if ood.count == 0 else ""),
        f"onnx       {ONNX_FILE}: {onnx_status}",
        f"int8       {INT8_FILE}: {int8_status}",
        f"created    {config.provenance.created}  commit {config.provenance.git_commit or '-'}",
        f"manifest   {config.provenance.training_manifest_sha256 or '-'}",
        f"data       {config.provenance.data or '-'}",
        f"command    {config.provenance.command or '-'}",
    ]
    lines += [f"metric     {k} = {v:.4g}" for k, v in sorted(config.metrics.items())]
    typer.echo("\n".join(lines))


@model_app.command("export-onnx")
def model_export_onnx(
    directory: Path | None = typer.Argument(None, help="Artifact folder (default: the shipped model)."),
    out: Path | None = typer.Option(None, "--out", help="Output file (default: <DIR>/model.onnx)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare onnxruntime with torch afterwards."),
) -> None:
    """Export an artifact's network to ONNX (opset 17, dynamic batch) for the onnxruntime backend."""
    from inspection.model.agreement import check_onnx_agreement
    from inspection.model.artifact import ArtifactError
    from inspection.model.onnx import export_onnx

    directory = _model_dir_or_exit(directory, "export-onnx")
    try:
        path = export_onnx(directory, out)
    except ArtifactError as exc:
        typer.echo(f"weldinspect model export-onnx: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"wrote {path}")
    if check:
        diff = check_onnx_agreement(directory, path)
        typer.echo(f"onnxruntime vs torch on random tiles: max |probability difference| = {diff:.2e}")
        if diff > 1e-4:
            typer.echo("weldinspect model export-onnx: backends disagree by more than 1e-4", err=True)
            raise typer.Exit(code=1)


def _calibration_tiles(
    directory: Path, paths: list[Path], limit: int
) -> tuple[npt.NDArray[np.uint8], list[str], list[Path]]:
    """Tiles (uint8, N x H x W x 3) of up to ``limit`` photos found under ``paths``, preprocessed
    exactly as the pipeline does, plus the folder names and the photos used (every k-th file)."""
    import numpy as np

    from inspection.batch.runner import UsageError, expand_inputs
    from inspection.image.ingest import IngestError
    from inspection.pipeline import Inspector, prepare

    try:
        items = expand_inputs(paths, recursive=True, glob="*.jpg")
        items += expand_inputs(paths, recursive=True, glob="*.png")
    except UsageError as exc:
        typer.echo(f"weldinspect model quantize: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    items = sorted(items, key=lambda it: it.image)
    step = max(1, len(items) // max(limit, 1))
    chosen = items[::step][:limit]
    cfg = Inspector.from_artifact(directory, backend="onnx").prepare_config
    tiles: list[npt.NDArray[np.uint8]] = []
    used: list[Path] = []
    for it in chosen:
        try:
            prepared = prepare(it.path, cfg)
        except IngestError as exc:
            typer.echo(f"skipping {exc}", err=True)
            continue
        if prepared.pre is not None:
            tiles.extend(t.image for t in prepared.pre.tiles)
            used.append(it.path)
    if not tiles:
        typer.echo("weldinspect model quantize: no gradable photos found for calibration", err=True)
        raise typer.Exit(code=2)
    return np.stack(tiles), [str(p) for p in paths], used


@model_app.command("quantize")
def model_quantize(
    directory: Path | None = typer.Argument(None, help="Artifact folder (default: the shipped model)."),
    calibration: list[Path] = typer.Option(
        ..., "--calibration", help="Photos or folders (searched recursively) to calibrate on."
    ),
    limit: int = typer.Option(256, "--limit", help="Photos used for calibration (spread over the files)."),
    check: list[Path] = typer.Option(
        [], "--check", help="Photos or folders to compare int8 with float32 on (default: none)."
    ),
) -> None:
    """Quantize model.onnx to int8 (model.int8.onnx, backend onnx-int8), calibrated on real photos."""
    import json

    from inspection.model.artifact import ArtifactError
    from inspection.model.quantize import quantize_artifact

    directory = _model_dir_or_exit(directory, "quantize")
    tiles, sources, used = _calibration_tiles(directory, calibration, limit)
    try:
        path = quantize_artifact(directory, tiles, sources=sources)
    except (ArtifactError, ValueError) as exc:
        typer.echo(f"weldinspect model quantize: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"wrote {path} ({len(tiles)} calibration tiles from {len(used)} photos)")
    if check:
        from inspection.batch.runner import expand_inputs
        from inspection.pipeline import Inspector, compare_inspectors

        items = expand_inputs(check, recursive=True, glob="*.jpg")
        result = compare_inspectors(
            Inspector.from_artifact(directory, backend="onnx"),
            Inspector.from_artifact(directory, backend="onnx-int8"),
            [it.path for it in items],
        )
        typer.echo(json.dumps(result.to_dict(), indent=2))


# --- `weldinspect train` (training engineer) ------------------------------------------------------


def train(
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Training config YAML (see scripts/configs/). With --from-store: default the shipped "
        "model's recipe, scripts/configs/final_lite0.yaml.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run's last checkpoints."),
    from_store: str | None = typer.Option(
        None,
        "--from-store",
        metavar="DB_URL",
        help="Learn from the reviews in this store (database URL, or a SQLite file): build a data set "
        "from the reviewed inspections, train a challenger, compare it with the champion on held-out "
        "parts and write report.json / report.html (docs/learning.md).",
    ),
    base: Path | None = typer.Option(
        None,
        "--base",
        help="--from-store: a data set whose photos join the training side (e.g. "
        "../shared/data/weld-porosity); never evaluated on.",
    ),
    champion: Path | None = typer.Option(
        None,
        "--champion",
        help="--from-store: the model to beat (default: the store's promoted model, "
        "else the shipped default).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="--from-store: output folder (default runs/from-store-<time>)."
    ),
    home: Path | None = typer.Option(
        None,
        "--home",
        help="--from-store: the store's data directory (images in DIR/images; default: "
        "the folder of a SQLite file, else $WELDINSPECT_HOME).",
    ),
    models_root: Path | None = typer.Option(
        None, "--models-root", help="--from-store: the folder promoted model paths are relative to."
    ),
    eval_share: float = typer.Option(0.3, "--eval-share", help="--from-store: share of the groups held out."),
    seed: int | None = typer.Option(None, "--seed", help="--from-store: split seed (default: the config's)."),
    min_groups: int = typer.Option(2, "--min-groups", help="--from-store: fewest groups to go on with."),
    from_scratch: bool = typer.Option(
        False,
        "--from-scratch",
        help="--from-store: train the config's network instead of fine-tuning the champion.",
    ),
    point_box: float = typer.Option(
        0.06, "--point-box", help="--from-store: a point mark's box side, share of the image's long side."
    ),
    version: str | None = typer.Option(
        None, "--version", help="--from-store: the challenger's version (default <champion>+review.<time>)."
    ),
) -> None:
    """Train the grader: leave-one-weld-out validation (mode lowo) or the shipped model (mode final);
    with --from-store, a challenger from the store's reviews and its comparison report."""
    import json
    import shlex

    from inspection.config import ConfigError
    from inspection.train.cache import DataMissingError
    from inspection.train.config import load_train_config
    from inspection.train.final import CalibrationMissingError
    from inspection.train.pretrain import InitFromError
    from inspection.train.run import run_training

    if from_store is not None:
        from inspection.cli.learn_cmds import train_from_store

        if resume:
            typer.echo("weldinspect train: --resume does not apply to --from-store", err=True)
            raise typer.Exit(code=2)
        train_from_store(
            from_store,
            config=config,
            base=base,
            champion=champion,
            out=out,
            home=home,
            models_root=models_root,
            eval_share=eval_share,
            seed=seed,
            min_groups=min_groups,
            from_scratch=from_scratch,
            point_box=point_box,
            version=version,
        )
        return
    if config is None:
        typer.echo(
            "weldinspect train: give --config CFG.yaml (train on a data set) or --from-store DB_URL "
            "(learn from the reviews in a store)",
            err=True,
        )
        raise typer.Exit(code=2)
    try:
        cfg = load_train_config(config)
    except ConfigError as exc:
        typer.echo(f"weldinspect train: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    command = shlex.join(["weldinspect", "train", "--config", str(config), *(["--resume"] if resume else [])])
    try:
        summary = run_training(cfg, resume=resume, command=command)
    except (DataMissingError, CalibrationMissingError, InitFromError) as exc:
        typer.echo(f"weldinspect train: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(json.dumps({k: summary[k] for k in ("average", "artifact") if k in summary}, indent=2))


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    app.add_typer(model_app, name="model")
    app.command("train")(train)
