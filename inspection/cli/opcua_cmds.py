"""CLI commands ``weldinspect opcua`` (serve), ``opcua certs`` and ``opcua passwd`` (see ``docs/opcua.md``).

Exit codes: 0 stopped by SIGTERM / Ctrl-C (or done), 1 the endpoint could not be opened, 2 bad usage.
A model or store that fails to load does not stop the server: it reports state Error with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from inspection.cli.service_cmds import _BACKEND, _CONFIG, _DB, _MODEL, _app_config, _fail, _settings

opcua_app = typer.Typer(
    help="OPC UA server (Machine Vision-style VisionSystem) and its certificates and users.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(opcua_app, name="opcua")


def _users(user_file: Path | None, username: str | None, password_env: str | None) -> dict[str, str]:
    from inspection.service.opcua.security import (
        UserFileError,
        check_user_name,
        hash_password,
        read_user_file,
    )

    if (username is None) != (password_env is None):
        raise _fail("--username and --password-env go together (the password is read from that variable)")
    users: dict[str, str] = {}
    try:
        if user_file is not None:
            users.update(read_user_file(user_file))
        if username is not None and password_env is not None:
            password = os.environ.get(password_env)
            if password is None:
                raise _fail(f"--password-env {password_env}: that environment variable is not set")
            if username in users:
                raise _fail(f"user {username!r} is in --user-file {user_file} and given by --username")
            users[check_user_name(username)] = hash_password(password)
    except UserFileError as exc:
        raise _fail(str(exc)) from exc
    return users


@opcua_app.callback()
def opcua_cmd(
    ctx: typer.Context,
    endpoint: str = typer.Option(
        "opc.tcp://127.0.0.1:4840", "--endpoint", help="Where to listen: opc.tcp://host:port."
    ),
    db: str | None = _DB,
    model: Path | None = _MODEL,
    backend: str = _BACKEND,
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        "--home",
        help="Data directory: store, images, keys, and opcua/pki (default: $WELDINSPECT_HOME or "
        "~/.local/share/weldinspect).",
    ),
    config: Path | None = _CONFIG,
    key_id: str | None = typer.Option(
        None, "--key-id", help="Evidence signing key id (when the keys directory holds several)."
    ),
    allowed_dir: list[Path] = typer.Option(
        [], "--allowed-dir", help="A folder InspectFile may read images from (repeatable; none: refused)."
    ),
    models_dir: Path | None = typer.Option(
        None, "--models-dir", help="Recipes: model artifacts as <name>/<version> (default: <repo>/models)."
    ),
    user_file: Path | None = typer.Option(
        None, "--user-file", help="Users with salted scrypt hashes ('weldinspect opcua passwd' writes it)."
    ),
    username: str | None = typer.Option(None, "--username", help="One more user (with --password-env)."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Name of the environment variable holding --username's password."
    ),
    allow_anonymous: bool = typer.Option(
        False, "--allow-anonymous", help="Accept anonymous sessions (off by default)."
    ),
    security: str = typer.Option(
        "sign-encrypt",
        "--security",
        help="sign-encrypt (Basic256Sha256 Sign&Encrypt) or none (clear text; loopback tests only).",
    ),
    cert_dir: Path | None = typer.Option(
        None,
        "--cert-dir",
        help="Folder with server_cert.der + server_key.pem (default: <data-dir>/opcua/pki; made "
        "self-signed when missing).",
    ),
    station: str | None = typer.Option(
        None, "--station", help="Station id: binds metadata station_id and scopes idempotency keys."
    ),
    threads: int = typer.Option(1, "--threads", help="Torch / onnxruntime threads per inspection."),
) -> None:
    """Serve an OPC UA VisionSystem: inspections by method call, results as variables and events.

    Every inspection is recorded through the same inspection path and ledger transaction as the
    HTTP service. SIGTERM / Ctrl-C stop cleanly after a running inspection.
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import signal

    from inspection.model.artifact import models_root
    from inspection.service.opcua.server import OpcuaConfig, VisionServer
    from inspection.service.validation import text_problem

    if station is not None and (not station or len(station) > 128 or text_problem(station)):
        raise _fail(f"--station {station!r} must be 1-128 characters of text")
    users = _users(user_file, username, password_env)
    cfg = _app_config(config, data_dir, db)
    settings = _settings(cfg, model, signing_key_id=key_id, backend=backend, threads=threads)
    try:
        opc = OpcuaConfig(
            cert_dir=cert_dir or cfg.store.home / "opcua" / "pki",
            endpoint=endpoint,
            security=security,  # type: ignore[arg-type]
            users=users,
            allow_anonymous=allow_anonymous,
            allowed_dirs=tuple(allowed_dir),
            models_dir=models_dir or models_root(),
            station=station,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = VisionServer(settings, opc)
        try:
            await server.start()
        except (OSError, FileNotFoundError) as exc:
            typer.echo(f"error: cannot serve {endpoint}: {exc}", err=True)
            await server.stop()
            return 1
        try:
            if server.certificate_created and server.certificate is not None:
                from inspection.service.opcua.security import fingerprint

                typer.echo(
                    f"made a self-signed server certificate {server.certificate} "
                    f"(SHA-256 {fingerprint(server.certificate)}); clients must trust it",
                    err=True,
                )
            typer.echo(
                f"serving OPC UA VisionSystem on {endpoint} (security {security}; Ctrl-C to stop)", err=True
            )
            loaded = asyncio.ensure_future(server.wait_loaded())
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait({loaded, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if loaded.done():
                typer.echo(f"state {server.state}{': ' + server.error if server.error else ''}", err=True)
            await waiter
        finally:
            await server.stop()
        typer.echo("stopped", err=True)
        return 0

    code = asyncio.run(run())
    if code:
        raise typer.Exit(code)


@opcua_app.command("certs")
def certs_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Folder for server_cert.der/.pem key and client_cert.der/.pem key."
    ),
    host: list[str] = typer.Option(
        [],
        "--host",
        help="Host name or IP the server certificate covers (repeatable; default: this host, "
        "localhost, 127.0.0.1, ::1).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace certificates already in --out."),
) -> None:
    """Make a self-signed server certificate + key and a client certificate + key (Basic256Sha256)."""
    from inspection.service.opcua.security import fingerprint, make_certificates

    try:
        server, client = make_certificates(out, hosts=tuple(host) or None, force=force)
    except FileExistsError as exc:
        raise _fail(str(exc)) from exc
    for label, pair in (("server", server), ("client", client)):
        typer.echo(f"{label}: {pair.cert} (SHA-256 {fingerprint(pair.cert)}), key {pair.key} (mode 0600)")
    typer.echo(f"start the server with --cert-dir {out}; give clients {client.cert} and {client.key}")


@opcua_app.command("passwd")
def passwd_cmd(
    user_file: Path = typer.Option(
        ..., "--user-file", help="The user file to add the user to (created 0600)."
    ),
    username: str = typer.Option(..., "--username", help="User name."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Read the password from this environment variable (else prompt)."
    ),
) -> None:
    """Add or replace a user (salted scrypt hash) in an OPC UA user file."""
    from inspection.service.opcua.security import UserFileError, set_user

    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise _fail(f"--password-env {password_env}: that environment variable is not set")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        new = set_user(user_file, username, password)
    except UserFileError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"{'added' if new else 'replaced'} user {username!r} in {user_file}")
