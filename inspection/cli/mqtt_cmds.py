"""CLI command ``weldinspect mqtt``: serve one station's MQTT topics (protocol: ``docs/mqtt.md``).

Exit codes: 0 stopped by SIGTERM / Ctrl-C, 1 the broker could not be reached or refused us, 2 bad usage.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from inspection.cli.service_cmds import _BACKEND, _CONFIG, _DB, _HOME, _MODEL, _app_config, _fail, _settings


def register(app: typer.Typer) -> None:
    app.command("mqtt")(mqtt_cmd)


def mqtt_cmd(
    broker: str = typer.Option(
        "mqtt://127.0.0.1:1883", "--broker", help="Broker URL: mqtt://host[:1883] or mqtts://host[:8883]."
    ),
    station: str = typer.Option(
        ..., "--station", help="Station id: serves weldinspect/v1/<station>/image (letters, digits, . _ -)."
    ),
    db: str | None = _DB,
    model: Path | None = _MODEL,
    backend: str = _BACKEND,
    home: Path | None = _HOME,
    config: Path | None = _CONFIG,
    key_id: str | None = typer.Option(
        None, "--key-id", help="Evidence signing key id (when the keys directory holds several)."
    ),
    tls_ca: Path | None = typer.Option(None, "--tls-ca", help="CA bundle of the broker's certificate (TLS)."),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", help="Client certificate (TLS, with --tls-key)."
    ),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Client certificate's private key."),
    username: str | None = typer.Option(None, "--username", help="Broker user name."),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Name of the environment variable holding the broker password."
    ),
    client_id: str | None = typer.Option(
        None, "--client-id", help="Fixed MQTT client id (default: weldinspect-<station>); keeps the session."
    ),
    session_expiry: int = typer.Option(
        7 * 24 * 3600, "--session-expiry", help="Seconds the broker keeps the session while we are away."
    ),
    max_bytes: int | None = typer.Option(
        None, "--max-bytes", help="Largest image payload in bytes (default: the service's max_upload_bytes)."
    ),
    threads: int = typer.Option(1, "--threads", help="Torch / onnxruntime threads per inspection."),
) -> None:
    """Inspect images published on weldinspect/v1/<station>/image; publish results, errors and status.

    Every message is recorded through the same inspection path and ledger transaction as the HTTP
    service, and acknowledged only after its record is committed. SIGTERM / Ctrl-C stop cleanly
    (retained status 'offline'); a crash leaves the last will 'offline' and the broker redelivers.
    """
    import dataclasses
    import signal
    import threading

    from inspection.evidence.keys import KeyFileError
    from inspection.service.mqtt.adapter import MqttAdapter, MqttConnectError
    from inspection.service.mqtt.broker import BrokerConfig, parse_broker_url
    from inspection.service.mqtt.topics import check_station
    from inspection.service.recorder import open_recorder
    from inspection.service.state import ServiceState

    try:
        check_station(station)
        host, port, tls = parse_broker_url(broker)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    password = None
    if password_env is not None:
        password = os.environ.get(password_env)
        if password is None:
            raise _fail(f"--password-env {password_env}: that environment variable is not set")
    try:
        broker_cfg = BrokerConfig(
            host=host,
            port=port,
            tls=tls,
            client_id=client_id or f"weldinspect-{station}",
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            username=username,
            password=password,
            session_expiry_s=session_expiry,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if max_bytes is not None and max_bytes < 1:
        raise _fail(f"--max-bytes must be a positive number of bytes, got {max_bytes}")
    cfg = _app_config(config, home, db)
    settings = _settings(cfg, model, signing_key_id=key_id, backend=backend, threads=threads)
    if max_bytes is not None:  # the HTTP service's upload limit, for this adapter only
        settings = dataclasses.replace(settings, max_upload_bytes=max_bytes)
    try:
        recorder = open_recorder(settings)
    except (KeyFileError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    adapter = MqttAdapter(ServiceState(settings, recorder.store, recorder), broker_cfg, station)
    try:
        adapter.start()
    except MqttConnectError as exc:
        recorder.store.close()
        raise _fail(str(exc), code=1) from exc
    if recorder.follower is not None:
        recorder.follower.start()  # switch to newly promoted models without downtime
    typer.echo(f"serving {adapter.topics.image} on {broker_cfg.url} (Ctrl-C to stop)", err=True)
    try:
        stop.wait()
    finally:
        adapter.stop()
        if recorder.follower is not None:
            recorder.follower.stop()
        recorder.store.close()
    typer.echo("stopped", err=True)
