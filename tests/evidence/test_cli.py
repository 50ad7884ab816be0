"""`weldinspect keys ...` and `weldinspect evidence ...` end to end (SQLite, tiny images)."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inspection.cli import app
from inspection.evidence.keys import load_signer
from inspection.evidence.ledger import Ledger, record_inspection
from inspection.store import Store
from tests.evidence.factories import CONFIG_SHA, make_result, png_bytes

runner = CliRunner()
EXPORT = ["evidence", "export", "--serial", "M-1", "--out"]


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data directory with a station key and 5 recorded inspections of machine M-1."""
    code, out = _run("keys", "init", "--station", "st-1", "--home", str(tmp_path))
    assert code == 0, out
    store = Store.open(f"sqlite:///{tmp_path / 'weldinspect.db'}", tmp_path / "images")
    ledger = Ledger(store, load_signer(tmp_path / "keys"))
    for i in range(5):
        img = png_bytes(i)
        record_inspection(
            store, ledger, make_result(img, serial="M-1", porosity=i % 4), img, config_sha256=CONFIG_SHA
        )
    store.close()
    return tmp_path


def test_keys_init_and_list(tmp_path: Path) -> None:
    code, out = _run("keys", "init", "--station", "st-9", "--home", str(tmp_path))
    assert code == 0 and "created key" in out
    key_id = out.split("created key ")[1].split()[0]
    code, out = _run("keys", "list", "--home", str(tmp_path))
    assert code == 0 and key_id in out and "st-9" in out
    code, out = _run("keys", "init", "--station", "bad id", "--home", str(tmp_path))
    assert code == 2 and "station id 'bad id' is invalid" in out


def test_verify_ok_then_tampered(home: Path) -> None:
    code, out = _run("evidence", "verify", "--home", str(home))
    assert code == 0 and "OK" in out and "5 record(s)" in out
    code, out = _run("evidence", "verify", "--home", str(home), "--keys", str(home / "keys"))
    assert code == 0 and "trusted public key" in out
    con = sqlite3.connect(home / "weldinspect.db")
    record_id = con.execute("SELECT record_id FROM evidence_records WHERE seq=3").fetchone()[0]
    con.execute("UPDATE evidence_records SET payload = replace(payload, '\"op-7\"', '\"op-8\"') WHERE seq=3")
    con.commit()
    con.close()
    code, out = _run("evidence", "verify", "--home", str(home))
    assert code == 1
    assert f"first: record seq 3 ({record_id}): hash_mismatch" in out


def test_head(home: Path) -> None:
    code, out = _run("evidence", "head", "--home", str(home))
    assert code == 0 and out.startswith("seq 5 ")


def test_export_and_verify_bundle(home: Path) -> None:
    bundle = home / "claim.zip"
    code, out = _run(
        "evidence", "export", "--serial", "M-1", "--out", str(bundle), "--home", str(home), "--no-overlays"
    )
    assert code == 0, out
    assert "5 inspection(s)" in out and "manifest signed" in out
    code, out = _run("evidence", "verify-bundle", str(bundle), "--keys", str(home / "keys"))
    assert code == 0 and "OK" in out, out
    # swap one image inside the zip
    tampered = home / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        first_image = sorted(n for n in src.namelist() if n.startswith("images/"))[0]
        for name in src.namelist():
            dst.writestr(name, png_bytes(999) if name == first_image else src.read(name))
    code, out = _run("evidence", "verify-bundle", str(tampered))
    assert code == 1 and "INVALID" in out and "image_mismatch" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evidence", "verify", "--db", "sqlite:////nonexistent/dir/x.db"], "does not exist"),
        (["evidence", "verify-bundle", "/nonexistent/claim.zip"], "does not exist"),
        ([*EXPORT, "x.zip", "--since", "yesterday"], "is not an ISO date"),
        ([*EXPORT, "x.tar"], "must end in .zip"),
        ([*EXPORT, "x.zip", "--since", "2025-02-01", "--until", "2025-01-01"], "must be after"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    code, out = _run(*args)
    assert code == 2 and message in out


def test_export_unknown_serial_exits_1(home: Path) -> None:
    out_zip = home / "none.zip"
    code, out = _run("evidence", "export", "--serial", "NOPE", "--out", str(out_zip), "--home", str(home))
    assert code == 1 and "no evidence records for machine 'NOPE'" in out
    assert not out_zip.exists()


def test_verify_bundle_requires_a_signature_with_keys(home: Path) -> None:
    bundle = home / "claim.zip"
    code, out = _run(*EXPORT, str(bundle), "--home", str(home), "--no-overlays")
    assert code == 0, out
    stripped = home / "stripped.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(stripped, "w") as dst:
        for name in src.namelist():
            if name != "manifest.sig":
                dst.writestr(name, src.read(name))
    code, out = _run("evidence", "verify-bundle", str(stripped))
    assert code == 0 and "manifest unsigned" in out
    for extra in (["--keys", str(home / "keys")], ["--require-signature"]):
        code, out = _run("evidence", "verify-bundle", str(stripped), *extra)
        assert code == 1 and "manifest_unsigned" in out, out


def test_verify_expect_head(home: Path) -> None:
    code, out = _run("evidence", "head", "--home", str(home))
    head = out.split()[2]
    assert code == 0 and f"--expect-head 5:{head}" in out
    code, out = _run("evidence", "verify", "--home", str(home), "--expect-head", f"5:{head}")
    assert code == 0 and "OK" in out, out
    con = sqlite3.connect(home / "weldinspect.db")  # truncate the tail: last record and its row
    con.execute("DELETE FROM inspections WHERE evidence_seq=5")
    con.execute("DELETE FROM evidence_records WHERE seq=5")
    con.commit()
    con.close()
    code, out = _run("evidence", "verify", "--home", str(home))
    assert code == 0, out
    code, out = _run("evidence", "verify", "--home", str(home), "--expect-head", f"5:{head}")
    assert code == 1 and "head_missing" in out, out
    code, out = _run("evidence", "verify", "--home", str(home), "--expect-head", "5:nothex")
    assert code == 2 and "is not SEQ:HASH" in out
