"""The ``weldinspect`` entry point: ``--help`` lists every command; user errors are one line, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from inspection.cli import USAGE_EXIT_CODE, app, usage_error_kind
from tests.helpers.cli import weldinspect_argv

runner = CliRunner()

# The commands the docs promise. The test also derives the list from the app, so a new command
# is checked without editing this, and a command dropped by mistake fails here.
DOCUMENTED_COMMANDS = {
    "synth", "data", "train", "model", "inspect", "score", "recommend", "keys", "evidence", "serve", "watch",
}  # fmt: skip


def _root_group() -> TyperGroup:
    command = typer.main.get_command(app)
    assert isinstance(command, TyperGroup)
    return command


def _registered() -> dict[str, typer.core.TyperCommand | TyperGroup]:
    return dict(_root_group().commands)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*weldinspect_argv(), *args],
        env={**os.environ, "COLUMNS": "200", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_app_registers_the_documented_commands() -> None:
    assert set(_registered()) >= DOCUMENTED_COMMANDS


def test_help_lists_every_registered_command(tmp_path: Path) -> None:
    res = _run(["--help"], {}, tmp_path)
    assert res.returncode == 0, res.stderr
    listed = {line.strip("│ ").split(" ")[0] for line in res.stdout.splitlines() if line.strip("│ ")}
    missing = set(_registered()) - listed
    assert not missing, f"--help does not list {sorted(missing)}:\n{res.stdout}"
    for name, command in _registered().items():
        if not command.hidden and command.help:
            first_words = " ".join(command.help.split()[:3])
            assert first_words in " ".join(res.stdout.split()), f"help text of {name!r} missing"


@pytest.mark.parametrize("group", sorted(n for n, c in _registered().items() if isinstance(c, TyperGroup)))
def test_group_help_lists_its_subcommands(group: str) -> None:
    command = _registered()[group]
    assert isinstance(command, TyperGroup)
    assert command.commands, f"group {group!r} has no sub-commands"
    res = runner.invoke(app, [group, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for sub in command.commands:
        assert sub in res.output, f"`weldinspect {group} --help` does not list {sub!r}"


def test_usage_error_kind_matches_typed_errors_and_subclasses() -> None:
    from inspection.batch.runner import UsageError
    from inspection.model.artifact import ArtifactError

    class NarrowArtifactError(ArtifactError):
        pass

    cases: list[tuple[BaseException, str | None]] = [
        (ArtifactError("x/config.json is missing"), "ArtifactError"),
        (NarrowArtifactError("x"), "ArtifactError"),
        (UsageError("bad"), "UsageError"),
        (ValueError("a plain bug"), None),
        (RuntimeError("another bug"), None),
    ]
    for exc, kind in cases:
        assert usage_error_kind(exc) == kind, exc


@pytest.fixture(scope="module")
def seam_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inspection.data.synth import generate_weld

    weld = generate_weld(np.random.default_rng(5), width=240, height=160, n_pores=1, n_spatter=1)
    path = tmp_path_factory.mktemp("cli") / "seam.png"
    cv2.imwrite(str(path), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    return path


@pytest.mark.parametrize(
    ("command", "model_env", "fragment"),
    [
        ("inspect", "empty", "config.json is missing"),
        ("score", "empty", "config.json is missing"),
        ("inspect", "not-a-dir", "is not a directory"),
    ],
)
def test_missing_or_bad_model_is_one_error_line_and_exit_2(
    seam_png: Path, tmp_path: Path, command: str, model_env: str, fragment: str
) -> None:
    model_dir = tmp_path / "models-here"
    if model_env == "empty":
        model_dir.mkdir()
    args = [command, str(seam_png)]
    if command == "score":
        args += ["--out", str(tmp_path / "r.jsonl"), "--workers", "0", "--quiet"]
    res = _run(args, {"WELDINSPECT_MODEL": str(model_dir)}, tmp_path)
    assert res.returncode == USAGE_EXIT_CODE, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert str(model_dir) in errors[0] and fragment in errors[0]
    assert "WELDINSPECT_MODEL" in errors[0]  # says how to fix it
    assert res.stdout.strip() == ""  # nothing that looks like a result
    assert not (tmp_path / "r.jsonl").exists()
