"""CLI commands: ``weldinspect model promote|rollback|history`` (signed model decisions in the ledger).

Registered on the ``model`` group that :mod:`inspection.cli.model_cmds` owns. Exit codes: 0 done,
1 the ledger refused (already current, files changed since approval), 2 bad usage (missing model,
report or key, model outside the models root).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from inspection.cli.evidence_cmds import _fail, _open_existing, _store_config

if TYPE_CHECKING:
    from inspection.evidence.keys import Signer
    from inspection.evidence.promotion import ModelDecision, ModelIdentity

_CONFIG = typer.Option(None, "--config", help="YAML config file (store section: home, url).")
_HOME = typer.Option(
    None, "--home", help="Data directory (default: $WELDINSPECT_HOME or ~/.local/share/weldinspect)."
)
_DB = typer.Option(None, "--db", help="Database URL of the store (default: SQLite in the data directory).")
_KEY = typer.Option(
    None, "--key-id", "--key", help="Evidence key that signs the record (default: the only key)."
)
_STATION = typer.Option(None, "--station", help="Station whose evidence key signs (when several exist).")
_ROOT = typer.Option(
    None, "--models-root", help="Folder model paths are recorded relative to (default: the shipped models/)."
)
_APPROVED_BY = typer.Option(None, "--approved-by", help="Who approved (default: the logged-in user name).")


def register(app: typer.Typer) -> None:
    """Add ``promote``, ``rollback`` and ``history`` to the existing ``model`` group."""
    group = next((g.typer_instance for g in app.registered_groups if g.name == "model"), None)
    if group is None:  # model_cmds not registered (should not happen): own the group
        group = typer.Typer(help="Model artifacts and promotions.", no_args_is_help=True)
        app.add_typer(group, name="model")
    group.command("promote")(promote_cmd)
    group.command("rollback")(rollback_cmd)
    group.command("history")(history_cmd)


def _root(models_root: Path | None) -> Path:
    from inspection.model.artifact import models_root as shipped_root

    root = models_root if models_root is not None else shipped_root()
    if not root.is_dir():
        raise _fail(f"--models-root {root} is not a directory")
    return root


def _approver(approved_by: str | None) -> str:
    import getpass

    name = approved_by if approved_by is not None else getpass.getuser()
    if not name.strip():
        raise _fail("--approved-by must name who approved")
    return name.strip()


def _signer(keys_dir: Path, key_id: str | None, station: str | None) -> Signer:
    from inspection.evidence.keys import KeyFileError, load_signer

    try:
        return load_signer(keys_dir, key_id=key_id, station_id=station)
    except KeyFileError as exc:
        raise _fail(str(exc)) from exc


def _identify(directory: Path, root: Path) -> ModelIdentity:
    from inspection.model.artifact import ArtifactError
    from inspection.service.promotion import identify_artifact

    try:
        return identify_artifact(directory, root)
    except (ArtifactError, ValueError) as exc:
        raise _fail(str(exc)) from exc


def _report_metrics(report: Path, model: ModelIdentity) -> tuple[Any, dict[str, Any] | None]:
    """(ReportRef of the file, the metrics it holds or None). A JSON report naming another model's
    sha256 (``challenger.sha256`` or ``model.sha256``) is refused."""
    from inspection.evidence.canonical import sha256_hex
    from inspection.evidence.promotion import ReportRef

    if not report.is_file():
        raise _fail(f"--report {report} does not exist")
    data = report.read_bytes()
    ref = ReportRef(file=report.name, sha256=sha256_hex(data), bytes=len(data))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ref, None  # an HTML/PDF report: hashed, no metrics read
    if not isinstance(doc, dict):
        return ref, None
    for key in ("challenger", "model"):
        named = doc.get(key)
        sha = named.get("sha256") if isinstance(named, dict) else None
        if isinstance(sha, str) and sha != model.sha256:
            raise _fail(f"--report {report} is about model {sha[:12]} ({key}.sha256), not {model.label}")
    metrics = doc.get("metrics")
    if not isinstance(metrics, dict):
        challenger = doc.get("challenger")
        metrics = challenger.get("metrics") if isinstance(challenger, dict) else None
    return ref, metrics if isinstance(metrics, dict) else None


def promote_cmd(
    directory: Path = typer.Argument(..., help="Model artifact folder below the models root."),
    report: Path | None = typer.Option(
        None, "--report", help="The comparison report (JSON, or HTML) the decision was made on."
    ),
    no_report: str | None = typer.Option(
        None, "--no-report", help="Promote without a report; the reason is recorded (REASON)."
    ),
    approved_by: str | None = _APPROVED_BY,
    models_root: Path | None = _ROOT,
    key_id: str | None = _KEY,
    station: str | None = _STATION,
    db: str | None = _DB,
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """Make DIR the store's current model: a signed promotion record with the model's sha256, the
    report's sha256, its metrics and who approved. Services following the store switch to it."""
    from inspection.evidence.canonical import sha256_hex
    from inspection.evidence.ledger import Ledger
    from inspection.evidence.promotion import PromotionError, record_promotion
    from inspection.model.artifact import METRICS_FILE, read_config

    if report is None and not (no_report and no_report.strip()):
        raise _fail(
            "a promotion needs the comparison report it was decided on (--report R.json), or "
            "--no-report REASON saying why there is none"
        )
    if report is not None and no_report is not None:
        raise _fail("give --report or --no-report REASON, not both")
    root = _root(models_root)
    model = _identify(directory, root)
    approver = _approver(approved_by)
    ref, metrics = (None, None) if report is None else _report_metrics(report, model)
    source = f"report {report.name}" if report is not None and metrics is not None else ""
    metrics_file = directory / METRICS_FILE
    metrics_sha = sha256_hex(metrics_file.read_bytes()) if metrics_file.is_file() else None
    if metrics is None:
        metrics = dict(read_config(directory).metrics)
        source = f"config.json metrics of {model.path} (summary of {METRICS_FILE})"
    cfg = _store_config(config, home, db)
    signer = _signer(cfg.keys_dir, key_id, station)
    with _open_existing(cfg) as store:
        try:
            decision = record_promotion(
                store,
                Ledger(store, signer),
                model,
                approved_by=approver,
                report=ref,
                no_report_reason=no_report,
                metrics=metrics,
                metrics_source=source,
                metrics_json_sha256=metrics_sha,
            )
        except PromotionError as exc:
            raise _fail(str(exc), 1) from exc
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(
        f"promoted {model.label} ({model.path}) as evidence seq {decision.seq} {decision.record_hash}, "
        f"approved by {approver}, signed by key {decision.key_id}"
    )
    typer.echo("services and hot folders following this store switch to it at their next poll")


def rollback_cmd(
    to: str = typer.Option(..., "--to", help="Version to go back to (e.g. 2026.12.2)."),
    reason: str = typer.Option(..., "--reason", help="Why (recorded in the signed record)."),
    name: str | None = typer.Option(
        None, "--name", help="Model name (default: the current model's, else weld-grader)."
    ),
    approved_by: str | None = _APPROVED_BY,
    models_root: Path | None = _ROOT,
    key_id: str | None = _KEY,
    station: str | None = _STATION,
    db: str | None = _DB,
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """Go back to an earlier model version: a signed rollback record naming it (and the earlier
    record that approved it, if any). Services following the store switch to it."""
    from inspection.evidence.ledger import Ledger
    from inspection.evidence.promotion import PromotionError, current_model, find_version, record_rollback
    from inspection.model.artifact import DEFAULT_MODEL_NAME

    if not reason.strip():
        raise _fail("--reason must say why the model is rolled back")
    root = _root(models_root)
    approver = _approver(approved_by)
    cfg = _store_config(config, home, db)
    signer = _signer(cfg.keys_dir, key_id, station)
    with _open_existing(cfg) as store:
        current = current_model(store)
        model_name = name or (current.model.name if current is not None else DEFAULT_MODEL_NAME)
        earlier = find_version(store, model_name, to)
        directory = root / (earlier.model.path if earlier is not None else f"{model_name}/{to}")
        if not directory.is_dir():
            raise _fail(f"model {model_name} {to}: folder {directory} does not exist")
        model = _identify(directory, root)
        if (model.name, model.version) != (model_name, to):
            raise _fail(f"{directory} holds {model.name} {model.version}, not {model_name} {to}")
        try:
            decision = record_rollback(
                store, Ledger(store, signer), model, approved_by=approver, reason=reason
            )
        except PromotionError as exc:
            raise _fail(str(exc), 1) from exc
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    approved = decision.data.get("approved_record")
    via = f"approved earlier by record seq {approved['seq']}" if approved else "never promoted before"
    typer.echo(
        f"rolled back to {model.label} ({via}) as evidence seq {decision.seq} {decision.record_hash}, "
        f"approved by {approver}"
    )


def _line(d: ModelDecision, current: bool) -> str:
    if d.action == "promote":
        rep = d.report
        why = f"report {rep.get('file')} {str(rep.get('sha256'))[:12]}" if rep else f"no report: {d.reason}"
    else:
        why = f"reason: {d.reason}"
    mark = "  <- current" if current else ""
    return (
        f"seq {d.seq:<6} {d.created_at}  {d.action:<8} {d.model.label}  by {d.approved_by}  "
        f"key {d.key_id}  {why}{mark}"
    )


def history_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print the records' data as JSON."),
    db: str | None = _DB,
    config: Path | None = _CONFIG,
    home: Path | None = _HOME,
) -> None:
    """List the store's promotion and rollback records, oldest first; the last one is current."""
    from inspection.evidence.promotion import model_history

    cfg = _store_config(config, home, db)
    with _open_existing(cfg) as store:
        history = model_history(store)
    if as_json:
        typer.echo(json.dumps([d.to_json() for d in history], indent=2))
        return
    if not history:
        typer.echo(
            "no promotion records: each process runs its configured model "
            "(--model, $WELDINSPECT_MODEL, else the newest shipped version)"
        )
        return
    for i, d in enumerate(history):
        typer.echo(_line(d, i == len(history) - 1))
