"""Faults during batch scoring: SIGTERM part-way, and a results file that cannot be written.

* SIGTERM (what `systemctl stop`, `docker stop` and `timeout` send): before, the default action
  killed the process wherever it was (a torn line, no CSV rendered). Now it ends the run like Ctrl-C:
  after the current write, exit 143, every record written is intact, and a rerun with the same
  --out resumes with no duplicates.
* A full disk: a real write failure is made with RLIMIT_FSIZE in a subprocess (EFBIG, no root and no
  mount needed; SIGXFSZ ignored so the write fails instead of killing it); ENOSPC itself is
  simulated by patching the journal's writer. Both end with exit code 1 and one message naming the
  results file and the reason; what was written is kept and a rerun completes it.
(kill -9 of the service during uploads: test_kill.py.)"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.batch import runner as batch_runner
from inspection.cli import app
from inspection.data.synth import generate_weld
from tests.helpers.cli import weldinspect_argv

cli = CliRunner()
N = 40


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fault-seams")
    rng = np.random.default_rng(5)
    for i in range(N):
        weld = generate_weld(rng, width=400, height=300, n_pores=i % 3, n_spatter=i % 4)
        cv2.imwrite(str(folder / f"seam_{i:02d}.jpg"), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    return folder


def _args(photos: Path, out: Path, model: Path) -> list[str]:
    return ["score", str(photos), "--out", str(out), "--model", str(model), "--batch-size", "2",
            "--workers", "0", "--quiet"]  # fmt: skip


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _assert_complete_without_duplicates(journal: Path) -> None:
    recs = _lines(journal)
    names = [Path(str(r["image"])).name for r in recs]
    assert sorted(names) == [f"seam_{i:02d}.jpg" for i in range(N)]  # each photo exactly once
    assert all(r["status"] in ("ok", "review") for r in recs)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_sigterm_keeps_records_and_a_rerun_resumes(
    tiny_model_dir: Path, photos: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"results{suffix}"
    journal = batch_runner.journal_path(out)
    argv = _args(photos, out, tiny_model_dir)
    proc = subprocess.Popen([*weldinspect_argv(), *argv], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # model load on a busy machine; not a speed assertion
        while not (journal.exists() and journal.read_bytes().count(b"\n") >= 2):
            if proc.poll() is not None:
                pytest.fail(f"score exited ({proc.returncode}) before writing:\n{proc.communicate()[1]}")
            if time.monotonic() > deadline:
                pytest.fail("no record after 300 s")
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode == 0:
        pytest.fail(f"score finished all {N} photos before SIGTERM arrived:\n{err}")
    assert proc.returncode == 143, err  # before: -15 (killed by the default action)
    assert "Traceback" not in err
    data = journal.read_bytes()
    assert data.endswith(b"\n")  # ended between writes: no torn line
    before = _lines(journal)
    assert 2 <= len(before) < N and len({r["sha256"] for r in before}) == len(before)
    if suffix == ".csv":  # the table was rendered from what was written
        assert out.read_text().count("\n") == len(before) + 1

    res = cli.invoke(app, argv)
    assert res.exit_code == 0, res.output
    assert journal.read_bytes().startswith(data)  # the earlier records kept byte for byte
    _assert_complete_without_duplicates(journal)


def _limit_file_size(limit: int) -> None:  # runs in the child before exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_real_write_failure_is_reported_and_a_rerun_completes(
    tiny_model_dir: Path, photos: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    argv = _args(photos, out, tiny_model_dir)
    limit = 16 * 1024  # a few batches of records fit, then every write fails as on a full disk
    done = subprocess.run([*weldinspect_argv(), *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, preexec_fn=lambda: _limit_file_size(limit))  # fmt: skip
    assert done.returncode == 1, done.stderr  # before: a traceback (OSError out of Journal.write)
    assert "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())  # rich wraps long lines
    assert f"error: cannot write results to {out}: File too large" in message
    assert "run again with the same --out to resume" in message
    assert 0 < out.stat().st_size <= limit
    res = cli.invoke(app, argv)  # room again: the torn tail is cut off, the rest is scored
    assert res.exit_code == 0, res.output
    _assert_complete_without_duplicates(out)


def test_disk_full_is_reported_and_what_was_written_is_kept(
    tiny_model_dir: Path, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "results.jsonl"
    argv = _args(photos, out, tiny_model_dir)
    real_write = batch_runner.Journal.write
    calls = {"n": 0}

    def write_then_fill_up(self: batch_runner.Journal, records: object) -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(self, records)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_runner.Journal, "write", write_then_fill_up)
    res = cli.invoke(app, argv)
    assert res.exit_code == 1, res.output
    message = " ".join(res.output.split())  # rich wraps long lines
    assert f"error: cannot write results to {out}: No space left on device" in message
    assert "the 6 record(s) written in this run before it are kept" in message
    assert len(_lines(out)) == 6  # three batches of two
    monkeypatch.setattr(batch_runner.Journal, "write", real_write)
    res = cli.invoke(app, argv)
    assert res.exit_code == 0, res.output
    _assert_complete_without_duplicates(out)
