"""Batch scoring end to end (tiny random model): bad files, resume, torn lines, formats, exit codes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from inspection.batch.runner import expand_inputs, read_journal, score
from inspection.cli import app
from inspection.config import IngestConfig
from inspection.data.synth import generate_weld
from inspection.pipeline import Inspector
from tests.helpers.cli import interrupt_when, weldinspect_argv
from tests.helpers.images import png_declaring

runner = CliRunner()

N_GOOD = 6
BAD_FILES = {  # name -> the error code its record must carry
    "truncated.jpg": "truncated",
    "empty.png": "empty",
    "notes.jpg": "not_an_image",
    "huge.png": "too_many_pixels",  # header 100000 x 100000: caught by Pillow's bomb guard
    "large.png": "too_many_pixels",  # header 10000 x 6000: under Pillow's guard, over max_pixels
}
N_ALL = N_GOOD + len(BAD_FILES)


@pytest.fixture(scope="module")
def inspector(tiny_model_dir: Path) -> Inspector:
    return Inspector.from_artifact(tiny_model_dir)


@pytest.fixture(scope="module")
def seam_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six small synthetic seam photos plus the bad files of :data:`BAD_FILES`."""
    folder = tmp_path_factory.mktemp("seams")
    rng = np.random.default_rng(11)
    for i in range(N_GOOD):
        weld = generate_weld(rng, width=320, height=240, n_pores=i % 3, n_spatter=i)
        cv2.imwrite(str(folder / f"seam_{i}.jpg"), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    good = (folder / "seam_0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is a text file with an image extension\n")
    (folder / "huge.png").write_bytes(png_declaring(100_000, 100_000))
    (folder / "large.png").write_bytes(png_declaring(10_000, 6_000))
    return folder


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_bad_files_become_error_records_and_the_batch_goes_on(
    inspector: Inspector, seam_folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    summary = score(expand_inputs([seam_folder]), out, inspector, batch_size=4)
    recs = {Path(r["image"]).name: r for r in _records(out)}
    assert len(recs) == N_ALL
    errors = {name: r["error"]["code"] for name, r in recs.items() if r["status"] == "error"}
    assert errors == BAD_FILES
    assert "too many pixels" in recs["huge.png"]["error"]["message"]
    limit = IngestConfig.model_validate({}).max_pixels
    assert limit < 10_000 * 6_000
    assert (
        f"10000 x 6000 = 60000000 pixels; the limit is max_pixels={limit}"
        in recs["large.png"]["error"]["message"]
    )
    for name, r in recs.items():
        if name in errors:
            assert name in r["error"]["message"]
            continue
        assert r["status"] in ("ok", "review")
        assert len(r["sha256"]) == 64
        assert len(r["porosity"]["probs"]) == 4 and 0 <= r["porosity"]["grade"] <= 3
        assert r["model"]["name"] == "weld-grader-test"
        assert r["schema_version"] == "1.0"
    assert summary.exit_code == 3
    assert summary.status["error"] == len(BAD_FILES)
    assert summary.errors["too_many_pixels"] == 2


def test_workers_give_the_same_records(inspector: Inspector, seam_folder: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    score(expand_inputs([seam_folder]), a, inspector, workers=0, batch_size=3)
    score(expand_inputs([seam_folder]), b, inspector, workers=2, batch_size=3)
    ra = {r["image"]: r for r in _records(a)}
    rb = {r["image"]: r for r in _records(b)}
    assert ra.keys() == rb.keys()
    for key, rec in ra.items():
        assert rec["status"] == rb[key]["status"]
        if rec["porosity"] is not None:
            np.testing.assert_allclose(rec["porosity"]["probs"], rb[key]["porosity"]["probs"], atol=1e-5)


def test_prefetch_threads_keep_input_order_and_records(
    inspector: Inspector, seam_folder: Path, tmp_path: Path
) -> None:
    items = expand_inputs([seam_folder])
    one, three = tmp_path / "one.jsonl", tmp_path / "three.jsonl"
    score(items, one, inspector, batch_size=2, prefetch=1)
    score(items, three, inspector, batch_size=2, prefetch=3)
    r1, r3 = _records(one), _records(three)
    assert [r["image"] for r in r3] == [it.image for it in items]  # input order, whatever finished first
    for a, b in zip(r1, r3, strict=True):
        a.pop("elapsed_ms"), b.pop("elapsed_ms"), a.pop("timings_ms"), b.pop("timings_ms")
        assert a == b


def test_resume_after_crash_with_torn_line(inspector: Inspector, seam_folder: Path, tmp_path: Path) -> None:
    items = expand_inputs([seam_folder])
    out = tmp_path / "r.jsonl"
    score(items, out, inspector, batch_size=2)
    lines = out.read_bytes().splitlines(keepends=True)
    # simulate kill -9: only the first four records made it, and half of the fifth
    out.write_bytes(b"".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    summary = score(items, out, inspector, batch_size=2)
    recs = read_journal(out)
    assert len(recs) == N_ALL
    assert len({r["image"] for r in recs}) == N_ALL
    assert summary.skipped == 4 and summary.scored == N_ALL - 4
    again = score(items, out, inspector, batch_size=2)
    assert again.scored == 0 and again.skipped == N_ALL
    assert len(read_journal(out)) == N_ALL


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_cli_output_formats_and_exit_code_3(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"results{suffix}"
    res = runner.invoke(app, ["score", str(seam_folder), "--out", str(out), "--model", str(tiny_model_dir),
                              "--workers", "0", "--quiet"])  # fmt: skip
    assert res.exit_code == 3, res.output
    if suffix == ".jsonl":
        rows = _records(out)
        statuses = [r["status"] for r in rows]
    elif suffix == ".csv":
        import csv

        with out.open() as fh:
            rows = list(csv.DictReader(fh))
        statuses = [r["status"] for r in rows]
    else:
        rows = pq.read_table(out).to_pylist()
        statuses = [r["status"] for r in rows]
    assert len(rows) == N_ALL
    assert statuses.count("error") == len(BAD_FILES)


def test_cli_exit_code_0_when_all_scored(tiny_model_dir: Path, seam_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ok.jsonl"
    res = runner.invoke(app, ["score", str(seam_folder), "--glob", "seam_*.jpg", "--out", str(out),
                              "--model", str(tiny_model_dir), "--workers", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Scoring summary" in res.output
    assert len(_records(out)) == N_GOOD


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["score", "{folder}", "--out", "r.txt"], "unsupported extension"),
        (["score", "{folder}", "--out", "r.jsonl", "--context", "/nope.csv"], "does not exist"),
        (["score", "{folder}"], "Missing option"),
    ],
)
def test_cli_bad_usage_exit_code_2(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    argv = [a.replace("{folder}", str(seam_folder)) for a in args]
    argv = [str(tmp_path / a) if a.startswith("r.") else a for a in argv]
    res = runner.invoke(app, [*argv, "--model", str(tiny_model_dir)])
    assert res.exit_code == 2, res.output
    assert fragment in res.output


def test_context_file_adds_mm_and_recommendation(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx.csv"
    ctx.write_text(
        "image,process,material,thickness_mm,mm_per_px,machine_serial,laser_power_w,speed_mm_s\n"
        "seam_1.jpg,laser,stainless,2,0.05,SN-1,1500,60\n"
    )
    out = tmp_path / "r.jsonl"
    argv = ["score", str(seam_folder / "seam_1.jpg"), "--out", str(out), "--context", str(ctx),
            "--model", str(tiny_model_dir), "--workers", "0", "--quiet"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    rec = _records(out)[0]
    assert rec["standards"]["assessable"] is True
    assert rec["recommendation"] is not None
    assert "status" in rec["recommendation"]


def test_ledger_writes_verifiable_evidence(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspection.evidence.verify import verify_store
    from inspection.store import Store

    monkeypatch.setenv("WELDINSPECT_HOME", str(tmp_path / "home"))
    assert runner.invoke(app, ["keys", "init", "--station", "S1"]).exit_code == 0
    out = tmp_path / "r.jsonl"
    argv = ["score", str(seam_folder), "--glob", "seam_*.jpg", "--out", str(out),
            "--model", str(tiny_model_dir), "--workers", "0", "--quiet", "--ledger", "default",
            "--station", "S1", "--batch-size", "4"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 0, res.output
    recs = _records(out)
    assert len(recs) == N_GOOD
    seqs = sorted(r["evidence"]["seq"] for r in recs)
    assert seqs == [1, 2, 3, 4, 5, 6]
    home = tmp_path / "home"
    store = Store.open(f"sqlite:///{home / 'weldinspect.db'}", home / "images")
    report = verify_store(store)
    assert report.ok, report
    first = recs[0]
    stored = store.get_inspection(first["evidence"]["inspection_id"])
    assert stored is not None and stored.image_sha256 == first["sha256"]


def test_ledger_without_key_is_usage_error(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WELDINSPECT_HOME", str(tmp_path / "empty-home"))
    argv = ["score", str(seam_folder), "--out", str(tmp_path / "r.jsonl"), "--model", str(tiny_model_dir),
            "--ledger", "default"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 2
    assert "keys init" in res.output


def test_failing_hook_turns_the_batch_into_error_records(
    inspector: Inspector, seam_folder: Path, tmp_path: Path
) -> None:
    def broken(batch: object) -> list[dict]:
        raise RuntimeError("database is gone")

    out = tmp_path / "r.jsonl"
    summary = score(expand_inputs([seam_folder]), out, inspector, batch_size=20, hook=broken)
    recs = _records(out)
    codes = {r["error"]["code"] for r in recs if r["error"]}
    assert "hook_failed" in codes
    assert all(r["status"] == "error" for r in recs)
    assert any("database is gone" in r["error"]["message"] for r in recs)
    assert summary.exit_code == 3


# Real interruptions: a `weldinspect score` process killed part-way, then resumed
# ----------------------------------------------------------------------------------------------

N_CRASH = 40


@pytest.fixture(scope="module")
def crash_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Forty small synthetic seam photos (ten batches of four)."""
    folder = tmp_path_factory.mktemp("crash-seams")
    rng = np.random.default_rng(77)
    for i in range(N_CRASH):
        weld = generate_weld(rng, width=400, height=300, n_pores=i % 3, n_spatter=i % 4)
        cv2.imwrite(str(folder / f"seam_{i:02d}.jpg"), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    return folder


def _complete_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _start_and_interrupt(argv: list[str], out: Path, sig: signal.Signals, cwd: Path) -> tuple[int, str]:
    """Start ``argv``; once ``out`` holds a complete record, send ``sig``; exit status and stdout."""
    status, stdout, err = interrupt_when(argv, lambda: _complete_lines(out) > 0, sig, cwd=cwd)
    if status == 0:
        pytest.fail(f"score finished all {N_CRASH} images before the {sig.name} arrived:\n{err}")
    return status, stdout


def _summary_count(output: str, row: str) -> int:
    found = re.search(re.escape(row) + r"\D*(\d+)", output)
    assert found is not None, f"no {row!r} row in the summary:\n{output}"
    return int(found.group(1))


@pytest.mark.parametrize(
    ("sig", "expected_status"),
    [
        (signal.SIGKILL, -signal.SIGKILL),  # killed outright: no handler runs
        (signal.SIGINT, 130),  # Ctrl-C: the batch stops after the current write, exit code 130
    ],
    ids=["SIGKILL", "SIGINT"],
)
def test_interrupted_score_process_resumes_without_duplicates_or_rescoring(
    tiny_model_dir: Path, crash_folder: Path, tmp_path: Path, sig: signal.Signals, expected_status: int
) -> None:
    out = tmp_path / "results.jsonl"
    args = ["score", str(crash_folder), "--out", str(out), "--model", str(tiny_model_dir),
            "--batch-size", "4", "--workers", "0"]  # fmt: skip
    status, stdout = _start_and_interrupt([*weldinspect_argv(), *args], out, sig, tmp_path)
    assert status == expected_status
    if sig == signal.SIGINT:  # the summary still prints and says how to go on
        assert "run again to resume" in stdout, stdout

    data = out.read_bytes()
    complete, torn = data[: data.rfind(b"\n") + 1], data[data.rfind(b"\n") + 1 :]
    before = [json.loads(line) for line in complete.splitlines()]  # every complete line is JSON
    assert 1 <= len(before) < N_CRASH
    assert len({r["sha256"] for r in before}) == len(before)
    if sig == signal.SIGINT:
        assert torn == b""  # the interrupt is handled between writes
    # (after SIGKILL a torn last line is allowed: the next run must cut it off)

    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert _summary_count(res.output, "skipped (already in results)") == len(before)
    assert _summary_count(res.output, "scored this run") == N_CRASH - len(before)
    after = out.read_bytes()
    assert after.startswith(complete)  # the earlier records are kept byte for byte, not rescored
    recs = [json.loads(line) for line in after.splitlines()]
    names = [Path(r["image"]).name for r in recs]
    assert len(names) == N_CRASH and set(names) == {f"seam_{i:02d}.jpg" for i in range(N_CRASH)}
    assert all(r["status"] in ("ok", "review") for r in recs)


_AFTER_OPENCV_THREADS = """
import sys
from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    cv2.setNumThreads(2)  # the caller has used OpenCV's thread pool before scoring (a fork would hang)
    for _ in range(10):
        cv2.GaussianBlur(np.random.rand(1500, 1500).astype(np.float32), (31, 31), 0)
    from inspection.batch.runner import expand_inputs, score
    from inspection.pipeline import Inspector

    inspector = Inspector.from_artifact(Path(sys.argv[1]))
    summary = score(expand_inputs([Path(sys.argv[2])], glob="seam_*.jpg"), Path(sys.argv[3]), inspector,
                    workers=2, batch_size=2)
    print("scored", summary.scored)


if __name__ == "__main__":
    main()
"""


def test_workers_start_cleanly_after_the_caller_used_opencv_threads(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path
) -> None:
    """Worker processes come from a fork server, not a fork of the caller (which deadlocks)."""

    script = tmp_path / "caller.py"
    script.write_text(_AFTER_OPENCV_THREADS)
    out = tmp_path / "r.jsonl"
    try:
        done = subprocess.run(
            [sys.executable, str(script), str(tiny_model_dir), str(seam_folder), str(out)],
            capture_output=True, text=True, timeout=240, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"score with workers hung after the caller used OpenCV threads: {exc}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"scored {N_GOOD}" in done.stdout
    assert len(_records(out)) == N_GOOD


@pytest.mark.parametrize(
    ("workers", "cpus", "threads"),
    [(0, 2, 1), (0, 8, 7), (1, 2, 1), (2, 2, 1), (3, 8, 5), (0, 1, 1), (16, 4, 1)],
)
def test_model_threads_leave_the_preparation_its_cores(workers: int, cpus: int, threads: int) -> None:
    from inspection.batch.runner import model_threads

    assert model_threads(workers, cpus) == threads


@pytest.mark.parametrize(("cpus", "threads"), [(1, 1), (2, 2), (8, 2), (64, 2)])
def test_prefetch_threads_one_per_core_capped(cpus: int, threads: int) -> None:
    from inspection.batch.runner import MAX_PREFETCH_THREADS, prefetch_threads

    assert prefetch_threads(cpus) == threads <= MAX_PREFETCH_THREADS
