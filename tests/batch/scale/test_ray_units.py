"""Ray engine parts that need no Ray instance: config validation, shards, merging, CLI usage errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inspection.batch.runner import (
    Journal,
    ScoreSummary,
    UsageError,
    expand_inputs,
    init_worker,
    read_journal,
    work,
)
from inspection.batch.scale.ray_engine import (
    RayConfig,
    _Merger,
    grade_lines,
    score_ray,
    shard_dir,
    shard_name,
    write_shard,
)
from inspection.cli import app
from inspection.pipeline import Inspector
from tests.batch.scale.conftest import BAD_FILES

runner = CliRunner()


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("num_cpus", 0, "num_cpus must be >= 1"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("actors", 0, "actors must be >= 1 or None"),
        ("prepare_cpus", float("nan"), "positive number of CPUs"),
        ("actor_cpus", -1.0, "positive number of CPUs"),
        ("max_restarts", -2, "-1 = unlimited"),
        ("object_store_mb", 50, "object_store_mb must be >= 100"),
    ],
)
def test_ray_config_rejects_bad_values(field: str, value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RayConfig(**{field: value})  # type: ignore[arg-type]


def test_shard_name_ignores_order_and_depends_on_images() -> None:
    assert shard_name(["b.jpg", "a.jpg"]) == shard_name(["a.jpg", "b.jpg"])
    assert shard_name(["a.jpg"]) != shard_name(["a.jpg", "b.jpg"])


def _lines(inspector: Inspector, folder: Path) -> list[dict]:
    items = expand_inputs([folder])
    init_worker(inspector.prepare_config, frozenset(), False)
    return grade_lines(inspector, [work(it) for it in items])


def test_write_shard_is_atomic_and_rewrites_the_same_file(
    inspector: Inspector, seam_folder: Path, tmp_path: Path
) -> None:
    lines = _lines(inspector, seam_folder)
    first = write_shard(tmp_path, lines)
    again = write_shard(tmp_path, list(reversed(lines)))  # a retried batch: same images, same file
    assert first == again
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp file left behind
    assert len(read_journal(first)) == len(lines) == 10


def test_merging_a_shard_twice_writes_each_image_once(
    inspector: Inspector, seam_folder: Path, tmp_path: Path
) -> None:
    items = expand_inputs([seam_folder])
    lines = _lines(inspector, seam_folder)
    out = tmp_path / "r.jsonl"
    shards = shard_dir(out)
    path = write_shard(shards, lines)
    copy = shards / "copy.jsonl"
    shutil.copy(path, copy)  # the same batch written again by a retried actor under another name
    summary = ScoreSummary(total=len(items))
    with Journal(out) as journal:
        merger = _Merger(journal, items, set(), None, {"name": "m", "version": "0", "sha256": ""}, summary)
        assert len(merger.merge(path)) == 10
        assert merger.merge(copy) == []
        assert merger.merge(path) == []  # already deleted: nothing happens
    recs = read_journal(out)
    assert sorted(r["image"] for r in recs) == sorted(it.image for it in items)
    assert not path.exists() and not copy.exists()
    codes = {Path(r["image"]).name: r["error"]["code"] for r in recs if r["status"] == "error"}
    assert codes == BAD_FILES
    assert summary.scored == 10


def test_score_ray_rejects_bad_output_and_model_before_starting_ray(
    inspector: Inspector, tiny_model_dir: Path, seam_folder: Path, tmp_path: Path
) -> None:
    items = expand_inputs([seam_folder])
    with pytest.raises(UsageError, match="unsupported extension"):
        score_ray(items, tmp_path / "r.txt", inspector, tiny_model_dir)
    with pytest.raises(UsageError, match=r"no config\.json"):
        score_ray(items, tmp_path / "r.jsonl", inspector, tmp_path)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--engine", "spark"], "unknown engine 'spark'; valid: local, ray"),
        (["--address", "127.0.0.1:6379"], "--address needs --engine ray"),
        (["--engine", "ray", "--actors", "-1"], "--actors must be >= 0"),
    ],
)
def test_cli_engine_usage_errors_exit_2(
    tiny_model_dir: Path, seam_folder: Path, tmp_path: Path, extra: list[str], fragment: str
) -> None:
    argv = ["score", str(seam_folder), "--out", str(tmp_path / "r.jsonl"), "--model", str(tiny_model_dir),
            "--quiet", *extra]  # fmt: skip
    res = runner.invoke(app, argv)
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert not (tmp_path / "r.jsonl").exists()
