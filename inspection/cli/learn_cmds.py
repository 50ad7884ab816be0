"""CLI: ``weldinspect train --from-store DB`` (the ``train`` command of :mod:`inspection.cli.model_cmds`
hands over here when ``--from-store`` is given).

Exit codes: 0 the report is written (whatever the verdict), 2 bad usage or nothing to learn from
(no inspections, no reviews, too few groups, a missing champion or base data set; one ``error:``
line naming what is missing), 1 training or evaluation failed.
"""

from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from inspection.cli.evidence_cmds import _fail

if TYPE_CHECKING:
    from inspection.store import Store

log = logging.getLogger(__name__)


def _store_url(db: str) -> str:
    """A database URL; a plain path (no ``://``) is a SQLite file."""
    if "://" in db:
        return db
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def _home(url: str, home: Path | None) -> Path:
    """The store's data directory (images in ``<home>/images``): ``--home``, else the folder of a
    SQLite database file, else the default data directory."""
    from sqlalchemy.engine import make_url

    from inspection.config import StoreConfig

    if home is not None:
        return home
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        return Path(parsed.database).resolve().parent
    return StoreConfig().home


def _open_store(url: str, home: Path) -> Store:
    from inspection.cli.evidence_cmds import _open_existing
    from inspection.config import StoreConfig

    return _open_existing(StoreConfig(home=home, url=url))


def _champion(store: Store, champion: Path | None, models_root: Path | None) -> tuple[Path, str]:
    """The champion's folder and why it is the champion: ``--champion``, else the store's current
    (promoted) model, else the shipped default."""
    from inspection.evidence.promotion import current_model
    from inspection.model.artifact import ArtifactError, default_model_dir
    from inspection.model.artifact import models_root as shipped_root
    from inspection.model.files import sha256_file

    if champion is not None:
        if not champion.is_dir():
            raise _fail(f"--champion {champion} is not a directory")
        return champion, "--champion"
    decision = current_model(store)
    if decision is not None:
        directory = (models_root or shipped_root()) / decision.model.path
        weights = directory / "model.safetensors"
        if not weights.is_file():
            raise _fail(
                f"the store's current model {decision.model.label} (promotion record seq {decision.seq}) "
                f"is not at {directory}; pass --champion DIR or --models-root DIR"
            )
        if sha256_file(weights) != decision.model.sha256:
            raise _fail(
                f"{weights} does not hash to the sha256 that record seq {decision.seq} approved "
                f"({decision.model.sha256[:12]}); restore the files or pass --champion DIR"
            )
        return directory, f"the store's current model (record seq {decision.seq})"
    try:
        return default_model_dir(), "the shipped default model"
    except ArtifactError as exc:
        raise _fail(str(exc)) from exc


def _command(db_hint: str, given: dict[str, Any]) -> str:
    args = ["weldinspect", "train", "--from-store", db_hint]
    for flag, value in given.items():
        if value is None or value is False:
            continue
        args += [flag] if value is True else [flag, str(value)]
    return shlex.join(args)


def train_from_store(
    db: str,
    *,
    config: Path | None,
    base: Path | None,
    champion: Path | None,
    out: Path | None,
    home: Path | None,
    models_root: Path | None,
    eval_share: float,
    seed: int | None,
    min_groups: int,
    from_scratch: bool,
    point_box: float,
    version: str | None,
) -> None:
    """Build the data set from the store's reviews, train a challenger, compare, write the report."""
    from sqlalchemy.exc import SQLAlchemyError

    from inspection.config import ConfigError
    from inspection.model.artifact import ArtifactError
    from inspection.train.cache import DataMissingError
    from inspection.train.config import REPO_ROOT, TrainConfig, load_train_config
    from inspection.train.from_store import (
        DEFAULT_RECIPE,
        REPORT_JSON,
        FromStoreError,
        FromStoreOptions,
        default_out_dir,
        run_from_store,
    )

    source = str(config) if config is not None else f"{DEFAULT_RECIPE} (the shipped model's recipe)"
    path = config if config is not None else REPO_ROOT / DEFAULT_RECIPE
    try:
        cfg: TrainConfig = load_train_config(path)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    url = _store_url(db)
    store_home = _home(url, home)
    out_dir = out if out is not None else default_out_dir(cfg.resolve(cfg.output_dir))
    if (out_dir / REPORT_JSON).exists():
        raise _fail(
            f"--out {out_dir} already holds a {REPORT_JSON}: choose a new folder (reports are evidence)"
        )
    store = _open_store(url, store_home)
    try:
        try:
            champion_dir, why = _champion(store, champion, models_root)
        except SQLAlchemyError as exc:
            raise _fail(f"{store.url} is not a weldinspect store ({type(exc).__name__}: {exc})") from exc
        db_hint = store.url
        opts = FromStoreOptions(
            out_dir=out_dir,
            config=cfg,
            config_source=source,
            champion_dir=champion_dir,
            base_root=base,
            eval_share=eval_share,
            seed=seed,
            min_groups=min_groups,
            fine_tune=not from_scratch,
            point_fraction=point_box,
            version=version,
            command=_command(
                db_hint,
                {
                    "--config": config,
                    "--base": base,
                    "--champion": champion,
                    "--out": out,
                    "--home": home,
                    "--models-root": models_root,
                    "--eval-share": eval_share,
                    "--seed": seed,
                    "--from-scratch": from_scratch,
                    "--version": version,
                },
            ),
            db_hint=db_hint,
            home=home if home is not None else store_home,
            models_root=models_root,
        )
        typer.echo(f"champion: {champion_dir} ({why}); training config: {source}")
        try:
            result = run_from_store(store, opts)
        except (FromStoreError, DataMissingError, ConfigError, ArtifactError) as exc:
            raise _fail(str(exc)) from exc
        except SQLAlchemyError as exc:
            raise _fail(f"{store.url} is not a weldinspect store ({type(exc).__name__}: {exc})") from exc
    finally:
        store.close()
    report = result.report
    v = report["verdict"]
    data = report["data"]
    typer.echo(
        f"data: {data['usable_photos']} usable reviewed photos ({data['excluded_total']} excluded), "
        f"{data['train']['groups']} training / {data['held_out']['groups']} held-out groups, "
        f"{report['training']['base_photos']} base photos; manifest sha256 {report['manifest']['sha256']}"
    )
    typer.echo(f"challenger: {result.challenger_dir} (sha256 {report['challenger']['sha256']})")
    typer.echo(f"verdict: {v['text']}")
    for reason in v["reasons"]:
        typer.echo(f"  {reason}")
    typer.echo(f"report: {result.report_json}")
    typer.echo(f"        {result.report_html}")
    typer.echo("next (if you approve the challenger):")
    for line in report["next"]:
        typer.echo(f"  {line}")
