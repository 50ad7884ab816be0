"""CLI commands: ``weldinspect serve``, ``weldinspect watch`` and ``weldinspect keys add|revoke``.

``keys add`` / ``keys revoke`` manage HTTP API keys; they are registered on the ``keys`` sub-command
that :mod:`inspection.cli.evidence_cmds` owns (signing keys: ``keys init|list``).
Exit codes: 0 done, 1 the service/watcher failed at run time, 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from inspection.config import AppConfig
    from inspection.service.settings import ServiceSettings
    from inspection.store import Store

_CONFIG = typer.Option(None, "--config", help="YAML config file (store and service sections).")
_HOME = typer.Option(
    None, "--home", help="Data directory (default: $WELDINSPECT_HOME or ~/.local/share/weldinspect)."
)
_DB = typer.Option(None, "--db", help="Database URL, e.g. postgresql+psycopg://user@host:5432/db.")
_MODEL = typer.Option(None, "--model", help="Model artifact folder (default: the shipped model).")
_BACKEND = typer.Option(
    "auto", "--backend", help="auto (the fastest the model ships), torch, onnx or onnx-int8."
)
_FOLLOW = typer.Option(
    True,
    "--follow-promotions/--no-follow-promotions",
    help="Run the store's current (promoted) model and switch to newly promoted ones without downtime; "
    "--no-follow-promotions pins --model.",
)
_POLL_PROMOTIONS = typer.Option(
    10.0, "--promotion-poll", help="Seconds between looks for a new promotion record (0: only at start)."
)
_MODELS_ROOT = typer.Option(
    None, "--models-root", help="Folder promoted model paths are relative to (default: the shipped models/)."
)


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``watch``; add ``add``/``revoke`` to the existing ``keys`` group."""
    app.command("serve")(serve_cmd)
    app.command("watch")(watch_cmd)
    keys = next((g.typer_instance for g in app.registered_groups if g.name == "keys"), None)
    if keys is None:  # evidence_cmds not registered (should not happen): own the group
        keys = typer.Typer(help="API keys and signing keys.", no_args_is_help=True)
        app.add_typer(keys, name="keys")
    keys.command("add")(keys_add_cmd)
    keys.command("revoke")(keys_revoke_cmd)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _app_config(config: Path | None, home: Path | None, db: str | None) -> AppConfig:
    from inspection.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    update: dict[str, Any] = {}
    if home is not None:
        update["home"] = home
    if db is not None:
        update["url"] = db
    return cfg.model_copy(update={"store": cfg.store.model_copy(update=update)}) if update else cfg


def _settings(cfg: AppConfig, model: Path | None, **kw: Any) -> ServiceSettings:
    from inspection.service.settings import ServiceSettings

    if model is not None and not model.is_dir():
        raise _fail(f"--model {model} is not a directory (expected a model artifact folder)")
    root = kw.get("models_root")
    if root is not None and not Path(root).is_dir():
        raise _fail(f"--models-root {root} is not a directory")
    try:
        return ServiceSettings.from_config(cfg, model_dir=model, **kw)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


def _open_store(cfg: AppConfig) -> Store:
    from inspection.store import Store, StoreError

    try:
        return Store.open(cfg.store.db_url, cfg.store.images_dir)
    except StoreError as exc:
        raise _fail(str(exc)) from exc


# ---- serve ----------------------------------------------------------------------------------------


def serve_cmd(
    host: str | None = typer.Option(None, "--host", help="Interface to bind (default: config, 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="TCP port (default: config, 8080)."),
    db: str | None = _DB,
    model: Path | None = _MODEL,
    backend: str = _BACKEND,
    home: Path | None = _HOME,
    config: Path | None = _CONFIG,
    station: str | None = typer.Option(
        None, "--station", help="Station whose evidence key signs records (when several exist)."
    ),
    key_id: str | None = typer.Option(
        None, "--key-id", help="Evidence signing key id (overrides --station)."
    ),
    slots: int = typer.Option(2, "--slots", help="Images inspected at once (others queue); ~1 per core."),
    threads: int = typer.Option(1, "--threads", help="Torch / onnxruntime threads per inspection."),
    graceful_s: int = typer.Option(30, "--graceful-timeout", help="Seconds to finish requests on SIGTERM."),
    write_openapi: Path | None = typer.Option(
        None, "--write-openapi", help="Write the OpenAPI document to this path and exit."
    ),
    api_docs: bool = typer.Option(
        False, "--api-docs", help="Serve /docs, /redoc and /openapi.json without a key (default: off / key)."
    ),
    follow_promotions: bool = _FOLLOW,
    promotion_poll: float = _POLL_PROMOTIONS,
    models_root: Path | None = _MODELS_ROOT,
) -> None:
    """Run the HTTP service (FastAPI + uvicorn). SIGTERM/Ctrl-C drain requests in flight, then stop."""
    if write_openapi is not None:
        from inspection.service.openapi import write_openapi as write

        typer.echo(f"wrote {write(write_openapi)}")
        return
    import uvicorn

    from inspection.evidence.keys import KeyFileError
    from inspection.service.app import create_app

    cfg = _app_config(config, home, db)
    settings = _settings(
        cfg,
        model,
        signing_station=station,
        signing_key_id=key_id,
        inference_slots=slots,
        threads=threads,
        backend=backend,
        api_docs=api_docs,
        follow_promotions=follow_promotions,
        promotion_poll_s=promotion_poll,
        models_root=models_root,
    )
    try:  # fail fast on a missing signing key, before binding the port
        from inspection.evidence.keys import load_signer

        load_signer(settings.keys_dir, key_id=key_id, station_id=station)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    uvicorn.run(
        create_app(settings),
        host=host or cfg.service.host,
        port=port or cfg.service.port,
        timeout_graceful_shutdown=graceful_s,
        log_level="info",
    )


# ---- watch ----------------------------------------------------------------------------------------


def watch_cmd(
    inbox: Path = typer.Argument(..., help="Hot folder the station drops images (+ <stem>.json) into."),
    done: Path = typer.Option(..., "--done", help="Folder for recorded images (and their result JSON)."),
    failed: Path = typer.Option(..., "--failed", help="Folder for rejected images (+ <name>.error.json)."),
    db: str | None = _DB,
    model: Path | None = _MODEL,
    backend: str = _BACKEND,
    home: Path | None = _HOME,
    config: Path | None = _CONFIG,
    poll: float = typer.Option(1.0, "--poll", help="Seconds between polls."),
    station: str | None = typer.Option(
        None, "--station", help="Default station id for files without one; also picks the signing key."
    ),
    sidecar_wait: float = typer.Option(
        5.0, "--sidecar-wait", help="Seconds a stable image waits for its <stem>.json before going without."
    ),
    once: bool = typer.Option(False, "--once", help="Poll twice (stability check), process, exit."),
    follow_promotions: bool = _FOLLOW,
    promotion_poll: float = _POLL_PROMOTIONS,
    models_root: Path | None = _MODELS_ROOT,
) -> None:
    """Watch a hot folder: inspect each stable image, commit its record, then move it to DONE/FAILED.
    SIGTERM / Ctrl-C stop after the file in hand (exit 0)."""
    import signal
    import threading
    import time

    from inspection.evidence.keys import KeyFileError
    from inspection.service.recorder import open_recorder
    from inspection.service.watcher import HotFolder

    if not inbox.is_dir():
        raise _fail(f"hot folder {inbox} is not a directory")
    if poll <= 0:
        raise _fail(f"--poll must be > 0 seconds, got {poll}")
    cfg = _app_config(config, home, db)
    settings = _settings(
        cfg,
        model,
        signing_station=station,
        backend=backend,
        follow_promotions=follow_promotions,
        promotion_poll_s=promotion_poll,
        models_root=models_root,
    )
    try:
        recorder = open_recorder(settings)
    except (KeyFileError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    defaults = {"station_id": station} if station else {}
    try:
        folder = HotFolder(inbox, done, failed, recorder, defaults=defaults, sidecar_wait_s=sidecar_wait)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if recorder.follower is not None and not once:
        recorder.follower.start()  # loads a promoted model in its own thread: the folder keeps moving
    # SIGTERM (systemd, docker stop, a station's supervisor) and Ctrl-C stop after the file in hand:
    # its record is committed and the file moved, nothing is half done. A signal that was ignored
    # when we started (nohup, a background job's SIGINT) stays ignored.
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, lambda *_: stopping.set())
    try:
        if once:
            folder.run_once()
            time.sleep(poll)
            for o in folder.run_once():
                typer.echo(f"{o.file}: {o.status} {o.inspection_id or o.reason or ''}".rstrip())
        else:
            folder.run(poll, stop=stopping.is_set, wait=stopping.wait)
            typer.echo("stopped")
    except KeyboardInterrupt:
        typer.echo("stopped")
    finally:
        if recorder.follower is not None:
            recorder.follower.stop()
        recorder.store.close()


# ---- API keys -------------------------------------------------------------------------------------


def keys_add_cmd(
    name: str = typer.Option(..., "--name", help="Unique name of the key, e.g. the station or person."),
    role: str = typer.Option(..., "--role", help="station, auditor or admin."),
    station_id: str | None = typer.Option(
        None, "--station-id", help="Station id (station keys; default: the name)."
    ),
    db: str | None = _DB,
    home: Path | None = _HOME,
    config: Path | None = _CONFIG,
) -> None:
    """Create an HTTP API key and print it ONCE (only its SHA-256 is stored)."""
    from inspection.service.auth import add_key

    if role == "station" and station_id is None:
        station_id = name
    with _open_store(_app_config(config, home, db)) as store:
        try:
            key, info = add_key(store, name, role, station_id)
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    who = f" for station {info.station_id}" if info.station_id else ""
    typer.echo(f"created {info.role} key {info.name!r}{who}; store it now, it is not shown again:", err=True)
    typer.echo(key)


def keys_revoke_cmd(
    name: str = typer.Argument(..., help="Name of the API key to revoke."),
    db: str | None = _DB,
    home: Path | None = _HOME,
    config: Path | None = _CONFIG,
) -> None:
    """Revoke an HTTP API key by name (requests with it get 401 from now on)."""
    from inspection.service.auth import revoke_key

    with _open_store(_app_config(config, home, db)) as store:
        try:
            info = revoke_key(store, name)
        except LookupError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"revoked {info.role} key {info.name!r}")
