"""The Ray engine on a small local Ray instance (2 CPUs, started once for this module): same records as
the local engine, a killed model actor retried without lost or duplicated records, resume from shards."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.batch.runner import (
    expand_inputs,
    init_worker,
    ledger_hook,
    read_journal,
    score,
    work,
)
from inspection.batch.scale.ray_engine import (
    KillOnce,
    RayConfig,
    connect,
    grade_lines,
    score_ray,
    shard_dir,
    write_shard,
)
from inspection.cli import app
from inspection.pipeline import Inspector
from tests.batch.scale.conftest import BAD_FILES

pytestmark = pytest.mark.slow
runner = CliRunner()
N_IMAGES = 10  # 8 seams + 2 bad files


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One loopback Ray instance with 2 CPUs for the whole module (score_ray reuses it)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    owned = connect(RayConfig(num_cpus=2))
    yield
    if owned:
        ray.shutdown()


def _by_image(out: Path) -> dict[str, dict]:
    recs = read_journal(out)
    counts = Counter(r["image"] for r in recs)
    assert max(counts.values()) == 1, f"duplicated records: {[k for k, v in counts.items() if v > 1]}"
    return {r["image"]: r for r in recs}


def test_ray_engine_cli_gives_the_local_engine_records(
    inspector: Inspector, tiny_model_dir: Path, seam_folder: Path, tmp_path: Path
) -> None:
    local_out, ray_out = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    local = score(expand_inputs([seam_folder]), local_out, inspector, batch_size=3)
    argv = ["score", str(seam_folder), "--out", str(ray_out), "--model", str(tiny_model_dir), "--quiet",
            "--engine", "ray", "--batch-size", "3"]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == local.exit_code == 3, res.output
    a, b = _by_image(local_out), _by_image(ray_out)
    assert a.keys() == b.keys() and len(a) == N_IMAGES
    assert not shard_dir(ray_out).exists()  # every shard merged and removed
    n_graded = 0
    for image, ra in a.items():
        rb = b[image]
        assert list(rb) == list(ra)  # same schema, same key order
        assert (rb["status"], rb["sha256"], rb["error"]) == (ra["status"], ra["sha256"], ra["error"])
        for head in ("porosity", "spatter"):
            if ra[head] is None:
                assert rb[head] is None
                continue
            n_graded += 1
            assert rb[head]["grade"] == ra[head]["grade"]
            np.testing.assert_allclose(rb[head]["probs"], ra[head]["probs"], atol=1e-5)
        assert rb["review_reasons"] == ra["review_reasons"]
        assert len(rb["findings"]) == len(ra["findings"])
        assert rb["standards"] == ra["standards"]
        assert rb["recommendation"] == ra["recommendation"]
    assert n_graded == 2 * (N_IMAGES - len(BAD_FILES))
    codes = {Path(k).name: r["error"]["code"] for k, r in b.items() if r["error"]}
    assert codes == BAD_FILES


def test_killed_model_actor_is_retried_without_lost_or_duplicated_records(
    inspector: Inspector,
    tiny_model_dir: Path,
    seam_folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inspection.evidence.verify import verify_store
    from inspection.store import Store

    home = tmp_path / "home"
    monkeypatch.setenv("WELDINSPECT_HOME", str(home))
    assert runner.invoke(app, ["keys", "init", "--station", "S1"]).exit_code == 0
    hook = ledger_hook("default", inspector, station="S1")
    marker = tmp_path / "killed.pid"
    items = expand_inputs([seam_folder])
    out = tmp_path / "r.jsonl"
    summary = score_ray(items, out, inspector, tiny_model_dir, config=RayConfig(batch_size=3), hook=hook,
                        fault=KillOnce(marker))  # fmt: skip
    killed = int(marker.read_text())  # the fault fired: one actor process SIGKILLed itself
    assert killed != os.getpid()
    assert not Path(f"/proc/{killed}/cmdline").exists() or not Path(f"/proc/{killed}/cmdline").read_bytes()
    recs = _by_image(out)
    assert sorted(recs) == sorted(it.image for it in items)
    assert summary.scored == N_IMAGES and summary.skipped == 0
    graded = [r for r in recs.values() if r["status"] != "error"]
    assert len(graded) == N_IMAGES - len(BAD_FILES)
    assert sorted(r["evidence"]["seq"] for r in graded) == list(range(1, len(graded) + 1))
    store = Store.open(f"sqlite:///{home / 'weldinspect.db'}", home / "images")
    report = verify_store(store)
    assert report.ok, report
    assert report.records == len(graded)


def test_resume_merges_leftover_shards_and_skips_what_is_scored(
    inspector: Inspector, tiny_model_dir: Path, seam_folder: Path, tmp_path: Path
) -> None:
    items = expand_inputs([seam_folder])
    out = tmp_path / "r.csv"
    # a crashed run left one finished shard (3 images) that never reached the output
    init_worker(inspector.prepare_config, frozenset(), False)
    write_shard(shard_dir(out), grade_lines(inspector, [work(it) for it in items[:3]]))
    first = score_ray(items[:6], out, inspector, tiny_model_dir, config=RayConfig(batch_size=2))
    assert (first.scored, first.skipped) == (6, 0)  # 3 from the shard + 3 graded on Ray
    second = score_ray(items, out, inspector, tiny_model_dir, config=RayConfig(batch_size=2))
    assert (second.scored, second.skipped) == (N_IMAGES - 6, 6)
    third = score_ray(items, out, inspector, tiny_model_dir, config=RayConfig(batch_size=2))
    assert (third.scored, third.skipped) == (0, N_IMAGES)
    recs = _by_image(out.with_name(out.name + ".journal.jsonl"))
    assert sorted(recs) == sorted(it.image for it in items)
    import csv

    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["image"] for r in rows) == sorted(recs)
    assert not shard_dir(out).exists()
