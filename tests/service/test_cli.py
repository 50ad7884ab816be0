"""`weldinspect keys add|revoke`, `serve --write-openapi` and `watch --once` end to end."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inspection.cli import app
from inspection.service.auth import authenticate
from inspection.service.openapi import openapi_document
from inspection.store import Store
from tests.helpers.cli import interrupt_when, weldinspect_argv
from tests.service.helpers import STATION_META, seam_jpeg

runner = CliRunner()


def _store(home: Path) -> Store:
    return Store.open(f"sqlite:///{home / 'weldinspect.db'}", home / "images")


def test_keys_add_prints_the_key_once_and_revoke_disables_it(tmp_path: Path) -> None:
    added = runner.invoke(app, ["keys", "add", "--role", "station", "--name", "S1", "--home", str(tmp_path)])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[-1]
    with _store(tmp_path) as store:
        principal = authenticate(store, key)
        assert (principal.name, principal.role, principal.station_id) == ("S1", "station", "S1")
        assert all(k.key_hash != key for k in store.list_api_keys())  # only the hash is stored
    again = runner.invoke(app, ["keys", "add", "--role", "auditor", "--name", "S1", "--home", str(tmp_path)])
    assert again.exit_code == 2 and "exists" in again.output
    revoked = runner.invoke(app, ["keys", "revoke", "S1", "--home", str(tmp_path)])
    assert revoked.exit_code == 0, revoked.output
    with _store(tmp_path) as store:
        assert store.find_api_key(store.list_api_keys()[0].key_hash) is None
    missing = runner.invoke(app, ["keys", "revoke", "S1", "--home", str(tmp_path)])
    assert missing.exit_code == 2 and "no active API key" in missing.output


def test_keys_add_refuses_bad_role(tmp_path: Path) -> None:
    r = runner.invoke(app, ["keys", "add", "--role", "root", "--name", "x", "--home", str(tmp_path)])
    assert r.exit_code == 2 and "station, auditor, admin" in r.output


def test_serve_write_openapi(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    r = runner.invoke(app, ["serve", "--write-openapi", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text()) == openapi_document()


def test_serve_without_signing_key_is_usage_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["serve", "--home", str(tmp_path), "--port", "1"])
    assert r.exit_code == 2 and "keys init" in r.output


def test_watch_once_records_and_moves(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert runner.invoke(app, ["keys", "init", "--station", "HF", "--home", str(tmp_path)]).exit_code == 0
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.json").write_text(json.dumps(STATION_META))
    (inbox / "a.jpg").write_bytes(seam_jpeg(1))
    args = ["watch", str(inbox), "--done", str(tmp_path / "done"), "--failed", str(tmp_path / "failed")]
    args += [
        "--home",
        str(tmp_path),
        "--model",
        str(tiny_model_dir),
        "--station",
        "HF",
        "--poll",
        "0.05",
        "--once",
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "a.jpg: done" in r.output
    assert (tmp_path / "done" / "a.jpg").is_file()
    with _store(tmp_path) as store:
        (item,) = store.list_inspections().items
        assert item.station_id == "HF"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_stops_cleanly_on_sigterm_and_ctrl_c(
    tmp_path: Path, tiny_model_dir: Path, sig: signal.Signals
) -> None:
    """A supervisor's SIGTERM (and Ctrl-C) ends ``watch`` with exit 0 after the file in hand, with its
    record kept; SIGINT is reset to the default first, as an interactive shell would have it."""
    assert runner.invoke(app, ["keys", "init", "--station", "HF", "--home", str(tmp_path)]).exit_code == 0
    inbox, done = tmp_path / "in", tmp_path / "done"
    inbox.mkdir()
    (inbox / "a.json").write_text(json.dumps(STATION_META))
    (inbox / "a.jpg").write_bytes(seam_jpeg(1))
    argv = weldinspect_argv()
    argv += [
        "watch",
        str(inbox),
        "--done",
        str(done),
        "--failed",
        str(tmp_path / "failed"),
        "--home",
        str(tmp_path),
    ]
    argv += ["--model", str(tiny_model_dir), "--station", "HF", "--poll", "0.05"]
    status, out, err = interrupt_when(argv, (done / "a.jpg").is_file, sig)
    assert status == 0, out + err
    assert "stopped" in out
    with _store(tmp_path) as store:
        assert len(store.list_inspections().items) == 1
