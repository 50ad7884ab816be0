"""``weldinspect data stats|groups|spatter-sheet`` on tiny synthetic data sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from typer.testing import CliRunner

from inspection.cli import app
from inspection.data.manifest import ManifestObject, ManifestRecord, read_manifest, write_manifest
from tests.data.test_groups import _photo, _weld_texture


def _dataset(root: Path, n_welds: int = 2, shots: int = 3) -> list[ManifestRecord]:
    rng = np.random.default_rng(3)
    records = []
    for weld in range(n_welds):
        tex = _weld_texture(200 + weld)
        for k in range(shots):
            name = f"images/w{weld}_{k}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(_photo(tex, rng)).save(root / name)
            pores = tuple(
                ManifestObject("porosity", (10.0 * i, 10, 10.0 * i + 8, 18)) for i in range(weld + k)
            )
            records.append(ManifestRecord(name, 300, 300, group=f"weld{weld:02d}", objects=pores))
    write_manifest(root, records)
    return records


def test_stats_prints_tables_and_writes_chart(tmp_path: Path) -> None:
    _dataset(tmp_path)
    md = tmp_path / "stats.md"
    result = CliRunner().invoke(app, ["data", "stats", str(tmp_path), "--markdown", str(md)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "stats.png").stat().st_size > 1000
    assert "porosity" in result.output and "weld01" in result.output
    text = md.read_text()
    # pores per image: weld00 -> 0, 1, 2; weld01 -> 1, 2, 3 => grades 0:1, 1:2, 2:3, 3:0
    assert "| 0 | 1 |" in text and "| 1 | 2 |" in text and "| 2 | 3 |" in text and "| 3 | 0 |" in text


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data", "stats", "{missing}"], "does not exist"),
        (["data", "stats", "{dir}", "--preset", "x"], "preset"),
    ],
)
def test_stats_bad_usage(tmp_path: Path, args: list[str], needle: str) -> None:
    _dataset(tmp_path, 1, 1)
    argv = [a.format(missing=tmp_path / "nope", dir=tmp_path) for a in args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and needle in result.output


def test_groups_recovers_welds_and_writes_outputs(tmp_path: Path) -> None:
    data = tmp_path / "ds"
    _dataset(data)
    out, sheets, new = tmp_path / "g.json", tmp_path / "sheets", tmp_path / "regrouped" / "annotations.jsonl"
    result = CliRunner().invoke(
        app,
        ["data", "groups", str(data), "--out", str(out), "--sheets", str(sheets), "--manifest-out", str(new)],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["n_groups"] == 2 and doc["ari_vs_manifest_groups"] == 1.0
    assert sorted(g["size"] for g in doc["groups"]) == [3, 3]
    assert len(list(sheets.glob("group*.jpg"))) == 2
    records, report = read_manifest(new)
    assert report.ok, report.summary()
    by_weld: dict[str, set[str | None]] = {}
    for r in records:
        by_weld.setdefault(Path(r.image).name[:2], set()).add(r.group)
    assert all(len(v) == 1 for v in by_weld.values()) and len({g for v in by_weld.values() for g in v}) == 2


def test_spatter_sheet(tmp_path: Path) -> None:
    _dataset(tmp_path, 1, 2)
    out = tmp_path / "sheet.jpg"
    result = CliRunner().invoke(
        app, ["data", "spatter-sheet", str(tmp_path), "--out", str(out), "--n", "2", "--crop", "100"]
    )
    assert result.exit_code == 0, result.output
    with PILImage.open(out) as im:
        assert im.size[0] > 200 and im.size[1] > 200
