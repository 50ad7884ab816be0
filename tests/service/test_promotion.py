"""`weldinspect model promote|rollback|history`, and the service and hot folder switching to a promoted
model without downtime: a request in flight during the swap finishes and is recorded on the old model."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from inspection.cli import app as cli_app
from inspection.evidence.bundle import export_bundle, verify_bundle
from inspection.evidence.keys import load_public_keys, load_signer
from inspection.evidence.ledger import get_record
from inspection.evidence.promotion import current_model
from inspection.model.files import sha256_file
from inspection.pipeline import Inspector
from inspection.service.app import create_app
from inspection.service.recorder import open_recorder
from inspection.service.settings import ServiceSettings
from inspection.service.watcher import HotFolder
from inspection.store import Store
from inspection.store.models import EvidenceRecordRow
from tests.helpers.artifacts import make_tiny_artifact
from tests.service.helpers import Keys, auth, make_keys, make_settings, seam_jpeg, upload

NAME = "weld-grader-test"
WAIT_S = 60


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """<root>/weld-grader-test/0.0.1 (the tiny model), 0.0.2 and 0.0.3 (other weights)."""
    root = tmp_path_factory.mktemp("models")
    shutil.copytree(tiny_model_dir, root / NAME / "0.0.1")
    make_tiny_artifact(root / NAME / "0.0.2", seed=1, version="0.0.2")
    make_tiny_artifact(root / NAME / "0.0.3", seed=2, version="0.0.3")
    return root


@pytest.fixture
def settings(tmp_path: Path, models_root: Path) -> ServiceSettings:
    """A fresh store per test; the configured model is 0.0.1; no polling thread (tests call check)."""
    settings = make_settings(
        tmp_path, models_root / NAME / "0.0.1", models_root=models_root, promotion_poll_s=0, threads=1
    )
    Store.open(settings.db_url, settings.images_dir).close()  # the commands use an existing store
    return settings


def cli(settings: ServiceSettings, *args: str) -> tuple[int, str]:
    home = settings.keys_dir.parent  # make_settings puts keys/ and store.db in one folder
    result = CliRunner().invoke(
        cli_app,
        [*args, "--db", settings.db_url, "--home", str(home)],
    )
    return result.exit_code, result.output


def promote(settings: ServiceSettings, version: str, *extra: str) -> tuple[int, str]:
    directory = settings.models_root / NAME / version  # type: ignore[operator]
    args = ["model", "promote", str(directory), "--models-root", str(settings.models_root)]
    return cli(settings, *args, *(extra or ("--no-report", "test promotion", "--approved-by", "qa-lead")))


def readyz_model(client: TestClient) -> dict[str, Any]:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    model: dict[str, Any] = r.json()["model"]
    return model


class GatedInspector:
    """Wraps an inspector; ``finish`` waits at a gate (and says when it is waiting there)."""

    def __init__(self, inner: Inspector) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.gate.wait(WAIT_S)
        return self.inner.finish(*args, **kwargs)


def evidence_model(settings: ServiceSettings, seq: int) -> tuple[str, str]:
    """(model version, config_sha256) of evidence record ``seq``."""
    with Store.open(settings.db_url, settings.images_dir) as store, store.session() as s:
        rec = get_record(s, seq)
        assert rec is not None
        return rec.data["model"]["version"], rec.data["config_sha256"]


def test_in_flight_request_finishes_on_the_old_model_while_new_ones_get_the_promoted_one(
    settings: ServiceSettings, models_root: Path
) -> None:
    keys: Keys = make_keys(settings)
    old_config = sha256_file(models_root / NAME / "0.0.1" / "config.json")
    new_config = sha256_file(models_root / NAME / "0.0.2" / "config.json")
    with TestClient(create_app(settings)) as client:
        before = readyz_model(client)
        assert (before["version"], before["promotion"]) == ("0.0.1", "no promotion record: configured model")
        recorder = client.app.state.service.recorder  # type: ignore[attr-defined]
        gated = GatedInspector(recorder.inspector)
        recorder.swap_inspector(gated)
        answers: list[Any] = []
        flight = threading.Thread(target=lambda: answers.append(upload(client, keys.s1, seam_jpeg(1))))
        flight.start()
        try:
            assert gated.entered.wait(WAIT_S), "the upload never reached the model"
            code, out = promote(settings, "0.0.2")
            assert code == 0, out
            assert "promoted weld-grader-test 0.0.2" in out and "approved by qa-lead" in out
            checked = client.post("/v1/model/check", headers=auth(keys.admin))
            assert checked.status_code == 200, checked.text
            assert checked.json()["version"] == "0.0.2"
            during = readyz_model(client)
            new_sha = sha256_file(models_root / NAME / "0.0.2" / "model.safetensors")
            assert (during["version"], during["sha256"]) == ("0.0.2", new_sha)
            assert during["promotion"].startswith("current: promote record seq 1 by qa-lead")
            assert flight.is_alive()  # still waiting at the gate: the swap interrupted nothing
        finally:
            gated.gate.set()
            flight.join(WAIT_S)
        (in_flight,) = answers
        assert in_flight.status_code == 201, in_flight.text
        assert in_flight.json()["result"]["model"]["version"] == "0.0.1"
        assert evidence_model(settings, in_flight.json()["evidence"]["seq"]) == ("0.0.1", old_config)
        after = upload(client, keys.s1, seam_jpeg(2))
        assert after.status_code == 201, after.text
        assert after.json()["result"]["model"]["version"] == "0.0.2"
        assert evidence_model(settings, after.json()["evidence"]["seq"]) == ("0.0.2", new_config)
        assert client.post("/v1/model/check", headers=auth(keys.s1)).status_code == 403
    # the claim bundle of that machine carries 0.0.2's promotion record; 0.0.1 is "unpromoted"
    with Store.open(settings.db_url, settings.images_dir) as store:
        signer = load_signer(settings.keys_dir)
        out = export_bundle(store, settings.keys_dir.parent / "claim.zip", serial="M-1", signer=signer)
    assert out.promotions == 1
    report = verify_bundle(out.path, load_public_keys(settings.keys_dir))
    assert report.ok, [str(p) for p in report.problems]
    notes = " ".join(report.notes)
    assert "0.0.1" in notes and "unpromoted" in notes and "promotion record seq 1 checked" in notes


def test_rollback_history_and_the_model_a_new_process_starts_with(settings: ServiceSettings) -> None:
    code, out = cli(settings, "model", "history")
    assert code == 0 and "no promotion records" in out
    assert promote(settings, "0.0.2")[0] == 0
    code, out = cli(settings, "model", "rollback", "--to", "0.0.1", "--reason", "misses pores on weld 7",
                    "--models-root", str(settings.models_root), "--approved-by", "qa-lead")  # fmt: skip
    assert code == 0 and "rolled back to weld-grader-test 0.0.1" in out and "never promoted" in out, out
    code, out = cli(settings, "model", "history")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2, out
    assert "promote" in lines[0] and "0.0.2" in lines[0] and "no report: test promotion" in lines[0]
    assert "rollback" in lines[1] and "misses pores" in lines[1] and lines[1].endswith("<- current")
    assert promote(settings, "0.0.3")[0] == 0
    with TestClient(create_app(settings)) as client:  # starts on the store's current model, not --model
        assert readyz_model(client)["version"] == "0.0.3"
    pinned = dataclasses.replace(settings, follow_promotions=False)
    with TestClient(create_app(pinned)) as client:
        model = readyz_model(client)
        assert (model["version"], model["promotion"]) == ("0.0.1", "pinned: follow_promotions is off")


def test_a_model_whose_files_differ_from_the_record_is_refused(
    settings: ServiceSettings, models_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    shutil.copytree(models_root, root)
    settings = dataclasses.replace(settings, models_root=root)
    with TestClient(create_app(settings)) as client:
        follower = client.app.state.service.recorder.follower  # type: ignore[attr-defined]
        assert promote(settings, "0.0.2")[0] == 0
        config = root / NAME / "0.0.2" / "config.json"
        config.write_text(config.read_text() + "\n")  # changed after the approval
        assert follower.check() is False
        model = readyz_model(client)
        assert model["version"] == "0.0.1"
        assert (
            model["promotion"].startswith("refused: record seq 1")
            and "config.json hashes to" in model["promotion"]
        )
        assert promote(settings, "0.0.3")[0] == 0  # a record edited in the database: does not verify
        with Store.open(settings.db_url, settings.images_dir) as store, store.write() as s:
            row = s.get(EvidenceRecordRow, 2)
            assert row is not None
            row.payload = row.payload.replace('"qa-lead"', '"mallory"')
        assert follower.check() is False
        model = readyz_model(client)
        assert model["version"] == "0.0.1" and "does not verify: " in model["promotion"]
        assert "hash_mismatch" in model["promotion"]


def test_cli_promote_refuses_without_a_report_or_for_another_model(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    code, out = promote(settings, "0.0.2", "--approved-by", "qa-lead")
    assert code == 2 and "--no-report REASON" in out
    report = tmp_path / "compare.json"
    report.write_text('{"challenger": {"sha256": "' + "0" * 64 + '"}, "metrics": {"pore_recall": 0.8}}')
    code, out = promote(settings, "0.0.2", "--report", str(report))
    assert code == 2 and "is about model 000000000000" in out
    new_sha = sha256_file(settings.models_root / NAME / "0.0.2" / "model.safetensors")  # type: ignore[operator]
    report.write_text('{"challenger": {"sha256": "' + new_sha + '"}, "metrics": {"pore_recall": 0.8}}')
    code, out = promote(settings, "0.0.2", "--report", str(report), "--approved-by", "qa-lead")
    assert code == 0, out
    code, out = promote(settings, "0.0.2", "--report", str(report))
    assert code == 1 and "already current" in out
    with Store.open(settings.db_url, settings.images_dir) as store:
        decision = current_model(store)
    assert decision is not None
    assert (
        decision.data["metrics"] == {"pore_recall": 0.8}
        and decision.data["metrics_source"] == "report compare.json"
    )
    assert decision.report == {
        "file": "compare.json",
        "sha256": sha256_file(report),
        "bytes": report.stat().st_size,
    }
    code, out = cli(settings, "model", "promote", str(tmp_path), "--no-report", "x")
    assert code == 2 and "not below the models root" in out


def test_hot_folder_switches_model_between_files(settings: ServiceSettings, tmp_path: Path) -> None:
    recorder = open_recorder(settings)
    inbox = tmp_path / "in"
    inbox.mkdir()
    folder = HotFolder(inbox, tmp_path / "done", tmp_path / "failed", recorder, sidecar_wait_s=0)
    try:
        assert recorder.follower is not None
        (inbox / "a.jpg").write_bytes(seam_jpeg(3))
        folder.run_once()
        (first,) = folder.run_once()
        assert promote(settings, "0.0.2")[0] == 0
        assert recorder.follower.check() is True
        (inbox / "b.jpg").write_bytes(seam_jpeg(4))
        folder.run_once()
        (second,) = folder.run_once()
        versions = [recorder.store.get_inspection(o.inspection_id).result["model"]["version"]  # type: ignore[union-attr]
                    for o in (first, second)]  # fmt: skip
        assert versions == ["0.0.1", "0.0.2"]
    finally:
        recorder.store.close()


def test_the_polling_thread_picks_up_a_promotion(settings: ServiceSettings) -> None:
    import time

    settings = dataclasses.replace(settings, promotion_poll_s=0.05)
    with TestClient(create_app(settings)) as client:
        assert readyz_model(client)["version"] == "0.0.1"
        assert promote(settings, "0.0.2")[0] == 0
        deadline = time.monotonic() + WAIT_S
        while readyz_model(client)["version"] != "0.0.2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert readyz_model(client)["version"] == "0.0.2"
    assert client.app.state.service is None  # stopped with the app (the follower thread too)
