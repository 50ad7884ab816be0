"""``weldinspect train``: clear errors and exit codes for bad configs and missing data."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from inspection.cli import app


def test_missing_config_is_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_missing_data_exits_nonzero_naming_the_path(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"name: t\nmode: lowo\narch: tiny\noutput_dir: {tmp_path / 'runs'}\n"
        f"data:\n  root: {tmp_path / 'absent'}\n"
    )
    result = CliRunner().invoke(app, ["train", "--config", str(cfg)])
    assert result.exit_code == 1
    assert "absent" in result.output and "annotations.jsonl" in result.output
