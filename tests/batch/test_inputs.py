"""Every input of `weldinspect score` is accounted for: a record (good or error) or a logged skip with a
reason. One bad path never stops the batch. `--context` takes the one-object form `inspect` takes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from inspection.batch.runner import (
    DEFAULT_CONTEXT_KEY,
    UsageError,
    attach_contexts,
    expand_inputs,
    load_context_table,
)
from inspection.cli import app
from inspection.data.synth import generate_weld

runner = CliRunner()


def _seam(path: Path, seed: int) -> None:
    weld = generate_weld(np.random.default_rng(seed), width=320, height=240, n_pores=1, n_spatter=2)
    cv2.imwrite(str(path), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))


BROKEN = {  # folder entry -> (error code, words its message must hold)
    "loop.jpg": ("unreadable", "symlink loop"),
    "dangling.jpg": ("not_found", "dangling symlink"),
    "pipe.jpg": ("unreadable", "FIFO"),
    "folder.jpg": ("unreadable", "a folder, not an image file"),
}


def _make_broken(folder: Path) -> None:
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "dangling.jpg").symlink_to(folder / "gone.jpg")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "folder.jpg").mkdir()


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Two good seams, the broken entries of :data:`BROKEN`, a text file, a sub-folder with a seam."""
    folder = tmp_path / "in"
    folder.mkdir()
    _seam(folder / "good_a.jpg", 1)
    _seam(folder / "good_b.jpg", 2)
    _make_broken(folder)
    (folder / "notes.txt").write_text("not an image name")
    (folder / "sub").mkdir()
    _seam(folder / "sub" / "deep.jpg", 3)
    return folder


def test_folder_entries_become_items_or_logged_skips(mixed: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="inspection.batch.runner"):
        items = expand_inputs([mixed])
    names = [it.path.name for it in items]
    # before: the broken entries were dropped silently by is_file()
    assert names == sorted(["good_a.jpg", "good_b.jpg", *BROKEN])
    assert all(it.error is None for it in items)  # the worker reads them and names the reason
    skipped = caplog.text
    assert f"skipped {mixed / 'notes.txt'}: name does not match" in skipped
    assert f"skipped {mixed / 'sub'}: a sub-folder (pass --recursive" in skipped


def test_recursive_walk_survives_a_folder_symlink_loop(mixed: Path, caplog: pytest.LogCaptureFixture) -> None:
    (mixed / "sub" / "back").symlink_to(mixed)  # sub/back -> the folder itself
    with caplog.at_level(logging.WARNING, logger="inspection.batch.runner"):
        items = expand_inputs([mixed], recursive=True)
    names = sorted(it.path.name for it in items)
    # with --recursive, folder.jpg is a folder to walk (it is empty), not an entry to score
    assert names == sorted(["good_a.jpg", "good_b.jpg", "deep.jpg", *(set(BROKEN) - {"folder.jpg"})])
    assert "folder already visited (a symlink loop" in caplog.text


def test_explicit_bad_paths_become_error_items(
    mixed: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    given = [mixed / "good_a.jpg", tmp_path / "missing.jpg", *(mixed / n for n in BROKEN)]
    with caplog.at_level(logging.WARNING, logger="inspection.batch.runner"):
        items = expand_inputs(given)  # before: UsageError on the first bad one ("does not exist")
    # a folder given explicitly is walked; this one is empty, which is logged
    assert [it.image for it in items] == [str(p) for p in given if p.name != "folder.jpg"]
    assert f"input {mixed / 'folder.jpg'}: a folder with no entry matching" in caplog.text
    errors = {Path(it.image).name: it.error for it in items if it.error is not None}
    assert errors["missing.jpg"] is not None and errors["missing.jpg"][0] == "not_found"
    for name, (code, words) in BROKEN.items():
        if name == "folder.jpg":
            continue
        assert errors[name][0] == code and words in errors[name][1], errors[name]
    assert "does not exist" not in errors["loop.jpg"][1]


def test_unlistable_folder_is_an_error_item(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()

    def denied(path: object) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "scandir", denied)  # root lists any folder, so simulate the refusal
    (item,) = expand_inputs([folder])
    assert item.error == ("unreadable", f"{folder}: cannot list folder: Permission denied")


def test_cli_scores_good_files_and_records_every_bad_one(
    tiny_model_dir: Path, mixed: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.jsonl"
    given = [mixed, mixed / "sub" / "deep.jpg", tmp_path / "missing.jpg", mixed / "loop.jpg"]
    res = runner.invoke(app, ["score", *map(str, given), "--out", str(out), "--model", str(tiny_model_dir),
                              "--workers", "0", "--quiet"])  # fmt: skip
    assert res.exit_code == 3, res.output  # before: exit 2 and no records at all
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    by_image = {r["image"]: r for r in recs}
    good = [str(mixed / "good_a.jpg"), str(mixed / "good_b.jpg"), str(mixed / "sub" / "deep.jpg")]
    assert all(by_image[g]["status"] in ("ok", "review") for g in good)
    for name, (code, words) in BROKEN.items():
        rec = by_image[str(mixed / name)]
        assert rec["status"] == "error" and rec["error"]["code"] == code and words in rec["error"]["message"]
    assert by_image[str(tmp_path / "missing.jpg")]["error"]["code"] == "not_found"
    # the loop given explicitly and found in the folder: the same path, one record each
    assert [r["image"] for r in recs].count(str(mixed / "loop.jpg")) == 2
    assert len(recs) == len(good) + len(BROKEN) + 2


# --context ---------------------------------------------------------------------------------------

ONE_OBJECT = {"process": "laser", "material": "stainless", "thickness_mm": 2, "mm_per_px": 0.05,
              "machine_serial": "SN-1", "params": {"laser_power_w": 1500, "speed_mm_s": 60}}  # fmt: skip


def test_one_object_context_applies_to_every_image(mixed: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(ONE_OBJECT))
    table = load_context_table(ctx)  # before: TypeError ('str' object is not a mapping)
    assert set(table) == {DEFAULT_CONTEXT_KEY}
    items = attach_contexts(expand_inputs([mixed / "good_a.jpg", mixed / "good_b.jpg"]), table)
    assert all(it.context is not None and it.context.mm_per_px == 0.05 for it in items)
    assert all(it.context is not None and it.context.params["laser_power_w"] == 1500 for it in items)


def test_per_image_entries_win_over_the_one_object(tmp_path: Path) -> None:
    from inspection.batch.worker import ScoreItem
    from inspection.types import InspectionContext

    table = {DEFAULT_CONTEXT_KEY: InspectionContext(material="a"), "x.jpg": InspectionContext(material="b")}
    items = [ScoreItem("x.jpg", Path("x.jpg")), ScoreItem("y.jpg", Path("y.jpg"))]
    assert [it.context.material for it in attach_contexts(items, table) if it.context] == ["b", "a"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("[1, 2]", "row 1 has no 'image' field; expected one context object"),
        ('"laser"', "got a JSON str; expected one context object"),
        ('{"a.jpg": 3}', "the value of 'a.jpg' is a int"),
        ('{"process": "laser", "colour": "red"}', "unknown context field(s) ['colour']"),
        (
            '{"process": "laser", "thickness_mm": "thick"}',
            "thickness_mm must be a positive number, got 'thick'",
        ),
        ('{"a.jpg": {"mm_per_px": -1}}', "mm_per_px must be a positive number, got -1"),
        ('{"a.jpg": {"params": [1]}}', "params must be an object"),
        ("{not json", "could not be read"),
    ],
)
def test_wrong_context_shapes_name_the_file_and_the_shapes(
    tmp_path: Path, content: str, fragment: str
) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(content)
    with pytest.raises(UsageError) as info:
        load_context_table(ctx)
    assert str(ctx) in str(info.value) and fragment in str(info.value)


def test_cli_one_object_context(tiny_model_dir: Path, mixed: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx.json"
    ctx.write_text(json.dumps(ONE_OBJECT))
    out = tmp_path / "r.jsonl"
    images = [str(mixed / "good_a.jpg"), str(mixed / "good_b.jpg")]
    res = runner.invoke(app, ["score", *images, "--out", str(out), "--context", str(ctx),
                              "--model", str(tiny_model_dir), "--workers", "0", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 2 and all(r["standards"]["assessable"] for r in recs)
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    res = runner.invoke(app, ["score", str(mixed / "good_a.jpg"), "--out", str(tmp_path / "s.jsonl"),
                              "--context", str(bad), "--model", str(tiny_model_dir)])  # fmt: skip
    assert res.exit_code == 2 and str(bad) in res.output and "Traceback" not in res.output
