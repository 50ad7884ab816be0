"""Batch scoring I/O that needs no model: inputs, contexts, the crash-safe journal, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from inspection.batch.runner import (
    Journal,
    UsageError,
    attach_contexts,
    error_record,
    expand_inputs,
    flat_row,
    journal_path,
    load_context_table,
    read_journal,
    render_table,
)

MODEL = {"name": "m", "version": "1", "sha256": "0" * 64}


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_expand_folder_filters_images_and_recurses(tmp_path: Path) -> None:
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "B.PNG")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "sub" / "c.tif")
    flat = expand_inputs([tmp_path])
    assert [Path(i.image).name for i in flat] == ["B.PNG", "a.jpg"]
    deep = expand_inputs([tmp_path], recursive=True)
    assert sorted(Path(i.image).name for i in deep) == ["B.PNG", "a.jpg", "c.tif"]
    only_jpg = expand_inputs([tmp_path], recursive=True, glob="*.jpg")
    assert [Path(i.image).name for i in only_jpg] == ["a.jpg"]


def test_expand_explicit_file_keeps_the_path_as_given(tmp_path: Path) -> None:
    f = _touch(tmp_path / "odd.dat")
    items = expand_inputs([str(f)])
    assert items[0].image == str(f)


def test_expand_manifest_resolves_images_and_context(tmp_path: Path) -> None:
    _touch(tmp_path / "images" / "x.jpg")
    rows = [
        {"image": "images/x.jpg", "width": 4, "height": 4, "objects": [], "mm_per_px": 0.05,
         "thickness_mm": 2.0, "material": "stainless", "params": {"power_w": 1500}},
        "this line is not a record",
    ]  # fmt: skip
    (tmp_path / "annotations.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = expand_inputs([tmp_path / "annotations.jsonl"])
    assert len(items) == 1
    assert items[0].path == tmp_path / "images" / "x.jpg"
    ctx = items[0].context
    assert ctx is not None and ctx.mm_per_px == 0.05 and ctx.material == "stainless"
    assert ctx.params == {"power_w": 1500}


def test_missing_input_is_an_error_item_not_a_usage_error(tmp_path: Path) -> None:
    (item,) = expand_inputs([tmp_path / "nope.jpg"])  # one bad path never stops the batch
    assert item.error == ("not_found", f"{tmp_path / 'nope.jpg'}: file does not exist")


def test_context_csv_joins_by_name_and_collects_params(tmp_path: Path) -> None:
    _touch(tmp_path / "imgs" / "a.jpg")
    csv_path = tmp_path / "ctx.csv"
    csv_path.write_text(
        "image,material,thickness_mm,mm_per_px,machine_serial,power_w,gas\na.jpg,aluminium,3,0.04,SN1,2000,argon\n"
    )
    items = attach_contexts(expand_inputs([tmp_path / "imgs"]), load_context_table(csv_path))
    ctx = items[0].context
    assert ctx is not None
    assert (ctx.material, ctx.thickness_mm, ctx.mm_per_px, ctx.machine_serial) == (
        "aluminium",
        3.0,
        0.04,
        "SN1",
    )
    assert ctx.params == {"power_w": 2000.0, "gas": "argon"}


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("c.json", "[1, 2", "could not be read"),
        ("c.json", '[{"material": "x"}]', "no 'image' field"),
        ("c.txt", "image\n", "unsupported type"),
        ("c.json", '[{"image": "a.jpg", "thickness_mm": -2}]', "thickness_mm"),
    ],
)
def test_bad_context_file_is_usage_error(tmp_path: Path, name: str, text: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UsageError, match=fragment):
        load_context_table(path)


def test_journal_round_trip_and_torn_last_line_repair(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    recs = [error_record(f"img{i}.jpg", "corrupt", "bad", None, MODEL) for i in range(3)]
    with Journal(path) as j:
        j.write(recs[:2])
        j.write(recs[2:])
    with path.open("ab") as fh:  # a crash in the middle of a write
        fh.write(b'{"schema_version": "1.0", "image": "torn')
    assert [r["image"] for r in read_journal(path)] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert path.read_bytes().endswith(b"}\n")  # repaired on disk
    with Journal(path) as j:
        j.write([error_record("img3.jpg", "corrupt", "bad", None, MODEL)])
    assert len(read_journal(path)) == 4


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(UsageError, match="corrupt at line 2"):
        read_journal(path)


def test_journal_path_per_format(tmp_path: Path) -> None:
    assert journal_path(tmp_path / "r.jsonl") == tmp_path / "r.jsonl"
    assert journal_path(tmp_path / "r.csv") == tmp_path / "r.csv.journal.jsonl"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_render_table(tmp_path: Path, suffix: str) -> None:
    recs = [error_record("a.jpg", "truncated", "a.jpg: truncated", "f" * 64, MODEL)]
    out = tmp_path / f"r{suffix}"
    render_table(recs, out)
    if suffix == ".csv":
        lines = out.read_text().splitlines()
        assert lines[0].split(",")[:4] == ["schema_version", "image", "sha256", "status"]
        assert "truncated" in lines[1]
    else:
        table = pq.read_table(out).to_pylist()
        assert table[0]["error_code"] == "truncated" and table[0]["status"] == "error"
    assert set(flat_row(recs[0])) >= {"porosity_grade", "spatter_p3", "needs_review"}
