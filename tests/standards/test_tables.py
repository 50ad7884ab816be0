"""Limit tables: the packaged file validates; broken files give errors naming file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from inspection.standards import LEVELS, TablesError, load_tables
from inspection.standards.tables import DEFAULT_TABLES_PATH


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_TABLES_PATH.read_text(encoding="utf-8"))


def test_packaged_tables_cover_each_process_family() -> None:
    tables = load_tables()
    families = {p for s in tables.standards for p in s.processes}
    assert families == {"laser", "electron_beam", "arc"}
    for std in tables.standards:
        pores = std.imperfection("2017")
        assert pores is not None and pores.kind == "max_diameter"
        for rng in pores.ranges:
            assert set(rng.levels) == set(LEVELS)
            # stricter levels never allow bigger pores
            limits = [rng.levels[lv].limit_mm(5.0) for lv in LEVELS]
            assert limits == sorted(limits)
        assert std.imperfection("602") is not None


def test_every_unconfirmed_entry_gives_a_reason() -> None:
    for std in load_tables().standards:
        for imp in std.imperfections:
            assert imp.source.standard in std.standard
            if imp.unconfirmed:
                assert imp.unconfirmed_reason


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda d: d["standards"][0]["imperfections"][0]["ranges"][0]["levels"]["B"].update(factor=-1),
            "factor",
        ),
        (lambda d: d["standards"][0]["imperfections"][0]["ranges"][0]["levels"].pop("C"), "levels"),
        (lambda d: d["standards"][0]["imperfections"][0].pop("source"), "source"),
        (lambda d: d["standards"][0].update(material_group="glass"), "material_group"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (
            lambda d: d["standards"][2]["imperfections"][0].update(unconfirmed=True, unconfirmed_reason=""),
            "unconfirmed",
        ),
    ],
)
def test_broken_tables_name_file_and_field(tmp_path: Path, mutate: Any, field: str) -> None:
    data = _raw()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(TablesError) as err:
        load_tables(path)
    assert str(path) in str(err.value)
    assert field in str(err.value)


def test_missing_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(TablesError, match="does not exist"):
        load_tables(tmp_path / "nope.yaml")
    with pytest.raises(TablesError, match="must hold a mapping"):
        load_tables(_write(tmp_path, [1, 2]))


def test_docs_name_the_table_version_and_each_standard(repo_root: Path) -> None:
    doc = (repo_root / "docs" / "standards.md").read_text(encoding="utf-8")
    tables = load_tables()
    assert tables.table_version in doc
    for std in tables.standards:
        assert std.standard in doc
        for imp in std.imperfections:
            if imp.unconfirmed:
                assert f"| {std.standard} | {imp.ref}" in doc or f"| {std.standard} | (whole" in doc, imp.ref
