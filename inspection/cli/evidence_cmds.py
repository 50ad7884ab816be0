"""CLI commands: ``weldinspect keys ...`` (station signing keys) and ``weldinspect evidence ...``.

Exit codes: 0 valid / done, 1 verification found a problem (the first bad record is named),
2 bad usage (missing database, bad date, bad key file).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from inspection.config import StoreConfig
    from inspection.evidence.bundle import OverlayFn
    from inspection.evidence.verify import VerifyReport
    from inspection.store import Store

keys_app = typer.Typer(help="Ed25519 station keys that sign evidence records.", no_args_is_help=True)
evidence_app = typer.Typer(
    help="The signed evidence ledger: verify it, export claim bundles.", no_args_is_help=True
)

_CONFIG = typer.Option(None, "--config", help="YAML config file (store section: home, url).")
_HOME = typer.Option(
    None, "--home", help="Data directory (default: $WELDINSPECT_HOME or ~/.local/share/weldinspect)."
)
_DB = typer.Option(None, "--db", help="Database URL (default: SQLite in the data directory).")
_KEYS = typer.Option(
    None, "--keys", help="Directory of trusted public keys (*.pub) to verify signatures with."
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _store_config(config: Path | None, home: Path | None, db: str | None) -> StoreConfig:
    from inspection.config import ConfigError, load_config

    try:
        cfg = load_config(config).store
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    update: dict[str, Any] = {}
    if home is not None:
        update["home"] = home
    if db is not None:
        update["url"] = db
    return cfg.model_copy(update=update) if update else cfg


def _open_existing(cfg: StoreConfig) -> Store:
    from sqlalchemy.engine import make_url

    from inspection.store import Store, StoreError

    url = make_url(cfg.db_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_file():
        raise _fail(f"database {url.database} does not exist (pass --db URL or --home DIR)")
    try:  # read-only commands: never migrate someone's database as a side effect
        return Store.open(cfg.db_url, cfg.images_dir, migrate_db=False)
    except StoreError as exc:
        raise _fail(str(exc)) from exc


def _trusted(keys_dir: Path | None) -> dict[str, Any] | None:
    from inspection.evidence.keys import KeyFileError, load_public_keys

    if keys_dir is None:
        return None
    if not keys_dir.is_dir():
        raise _fail(f"--keys {keys_dir} is not a directory")
    try:
        keys = load_public_keys(keys_dir)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    if not keys:
        raise _fail(f"--keys {keys_dir} holds no *.pub public keys")
    return dict(keys)


def _parse_when(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _fail(
            f"{name} {value!r} is not an ISO date or date-time (e.g. 2025-03-01 or 2025-03-01T08:00Z)"
        ) from exc
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _print_report(report: VerifyReport, what: str) -> None:
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        f"{what}: {report.records} record(s), {report.images} image(s); "
        f"head seq {report.head_seq} {report.head_hash}"
    )
    if report.ok:
        typer.echo("OK: every hash, link, signature and image verified")
        return
    first = report.first_problem
    typer.echo(f"INVALID: {len(report.problems)} problem(s); first: {first}", err=True)
    for problem in report.problems[:20]:
        typer.echo(f"  - {problem}", err=True)
    if len(report.problems) > 20:
        typer.echo(f"  ... and {len(report.problems) - 20} more", err=True)


# ---- keys -----------------------------------------------------------------------------------------


@keys_app.command("init")
def keys_init(
    station: str | None = typer.Option(None, "--station", help="Station id the key belongs to."),
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """Create an Ed25519 key pair in the keys directory (private key mode 0600)."""
    from inspection.evidence.keys import init_key

    cfg = _store_config(config, home, None)
    try:
        info = init_key(cfg.keys_dir, station)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"created key {info.key_id} for station {info.station_id or '-'} in {cfg.keys_dir}")
    typer.echo(f"public key (give this to the warranty fund): {cfg.keys_dir / (info.key_id + '.pub')}")


@keys_app.command("list")
def keys_list(config: Path | None = _CONFIG, home: Path | None = _HOME) -> None:
    """Show key ids, stations and creation dates."""
    from rich.console import Console
    from rich.table import Table

    from inspection.evidence.keys import KeyFileError, list_keys

    cfg = _store_config(config, home, None)
    try:
        infos = list_keys(cfg.keys_dir)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc
    if not infos:
        typer.echo(f"no keys in {cfg.keys_dir}; create one with `weldinspect keys init --station ID`")
        return
    table = Table(title=f"Evidence keys in {cfg.keys_dir}")
    for col in ("key id", "station", "created (UTC)", "private key"):
        table.add_column(col)
    for i in infos:
        has_private = "yes" if (cfg.keys_dir / f"{i.key_id}.key").is_file() else "no"
        table.add_row(i.key_id, i.station_id or "-", i.created_at, has_private)
    Console().print(table)


# ---- evidence -------------------------------------------------------------------------------------


@evidence_app.command("verify")
def evidence_verify(
    db: str | None = _DB,
    keys: Path | None = _KEYS,
    expect_head: list[str] | None = typer.Option(
        None,
        "--expect-head",
        help="SEQ:HASH of a head reported earlier (weldinspect evidence head); the chain must still "
        "hold that record with that hash. Repeatable.",
    ),
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """Recompute every hash, chain link and signature and re-hash every stored image.

    With --expect-head, a chain truncated below an earlier head or rewritten up to it fails."""
    from inspection.evidence.verify import parse_head, verify_store

    try:
        heads = [parse_head(h) for h in expect_head or ()]
    except ValueError as exc:
        raise _fail(f"--expect-head: {exc}") from exc
    cfg = _store_config(config, home, db)
    with _open_existing(cfg) as store:
        report = verify_store(store, _trusted(keys), expected_heads=heads)
    _print_report(report, f"ledger {store.url}")
    if not report.ok:
        raise typer.Exit(1)


@evidence_app.command("head")
def evidence_head(db: str | None = _DB, config: Path | None = _CONFIG, home: Path | None = _HOME) -> None:
    """Print the chain head (seq, hash, time): report it to the fund to anchor the history."""
    from inspection.evidence.ledger import head_record

    cfg = _store_config(config, home, db)
    with _open_existing(cfg) as store:
        head = head_record(store)
    if head is None:
        typer.echo("the evidence chain is empty")
        return
    typer.echo(f"seq {head.seq} {head.record_hash} {head.created_at} key {head.key_id}")
    typer.echo(f"pin it: weldinspect evidence verify --expect-head {head.seq}:{head.record_hash}")


def _overlay_fn() -> OverlayFn | None:
    """decode + :func:`inspection.image.overlay.draw_overlay` + PNG, or None when those modules are
    missing."""
    try:
        from inspection.image.ingest import decode_image
        from inspection.image.overlay import draw_overlay
    except ImportError:
        return None
    import io

    from PIL import Image as PILImage

    def fn(data: bytes, result: Any) -> bytes:
        drawn = draw_overlay(decode_image(data), result)
        buf = io.BytesIO()
        PILImage.fromarray(drawn).save(buf, format="PNG", optimize=True)
        return buf.getvalue()

    return fn


@evidence_app.command("export")
def evidence_export(
    serial: str = typer.Option(..., "--serial", help="Machine serial number."),
    out: Path = typer.Option(..., "--out", help="Bundle to write, e.g. claim.zip."),
    since: str | None = typer.Option(None, "--since", help="Only records at or after this UTC date/time."),
    until: str | None = typer.Option(None, "--until", help="Only records before this UTC date/time."),
    full_chain: bool = typer.Option(
        False, "--full-chain", help="Include every record (proves completeness)."
    ),
    sign: bool = typer.Option(
        True, "--sign/--no-sign", help="Sign the manifest with a key from the keys dir."
    ),
    key_id: str | None = typer.Option(
        None, "--key-id", help="Key to sign the manifest with (default: the only key)."
    ),
    overlays: bool = typer.Option(
        True, "--overlays/--no-overlays", help="Draw findings onto copies of the images."
    ),
    db: str | None = _DB,
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """Export one machine's evidence as a claim bundle (records, images, keys, manifest, HTML/PDF report)."""
    from inspection.evidence.bundle import BundleError, export_bundle
    from inspection.evidence.keys import KeyFileError, load_signer
    from inspection.evidence.report import expert_db_compliance

    start, end = _parse_when(since, "--since"), _parse_when(until, "--until")
    if start is not None and end is not None and end <= start:
        raise _fail(f"--until {until} must be after --since {since}")
    if out.suffix.lower() != ".zip":
        raise _fail(f"--out {out} must end in .zip")
    cfg = _store_config(config, home, db)
    signer = None
    if sign:
        try:
            signer = load_signer(cfg.keys_dir, key_id=key_id)
        except KeyFileError as exc:
            raise _fail(f"{exc} (or pass --no-sign)") from exc
    compliance, source = expert_db_compliance()
    with _open_existing(cfg) as store:
        try:
            summary = export_bundle(
                store,
                out,
                serial=serial,
                since=start,
                until=end,
                overlay=_overlay_fn() if overlays else None,
                signer=signer,
                compliance=compliance,
                compliance_source=source,
                full_chain=full_chain,
            )
        except BundleError as exc:
            raise _fail(str(exc), 1) from exc
    typer.echo(
        f"wrote {summary.path}: {summary.inspections} inspection(s), {summary.reviews} review(s), "
        f"{summary.images} image(s), {summary.overlays} overlay(s); "
        f"manifest {'signed' if summary.signed else 'unsigned'}"
    )
    typer.echo(f"bundle sha256 {summary.sha256}; chain head seq {summary.head_seq} {summary.head_hash}")
    typer.echo(f"compliance: {source}")


@evidence_app.command("verify-bundle")
def evidence_verify_bundle(
    bundle: Path = typer.Argument(..., help="Claim bundle (.zip) to verify offline."),
    keys: Path | None = _KEYS,
    require_signature: bool = typer.Option(
        False,
        "--require-signature",
        help="Fail when manifest.sig is missing (implied by --keys): an unsigned manifest cannot show "
        "that no record was removed.",
    ),
) -> None:
    """Verify a claim bundle without the database: manifest, hashes, signatures, links, images.

    With --keys (or --require-signature) a bundle without manifest.sig fails (manifest_unsigned)."""
    from inspection.evidence.bundle import verify_bundle

    if not bundle.is_file():
        raise _fail(f"bundle {bundle} does not exist")
    trusted = _trusted(keys)
    report = verify_bundle(bundle, trusted, require_signature=require_signature or trusted is not None)
    _print_report(report, f"bundle {bundle}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``keys`` and ``evidence`` sub-commands to ``app``."""
    app.add_typer(keys_app, name="keys")
    app.add_typer(evidence_app, name="evidence")
