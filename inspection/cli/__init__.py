"""The ``weldinspect`` command line. Argument parsing lives in this package and nowhere else.

Each area registers its commands from its own module (``inspection/cli/<area>.py`` with a
``register(app)`` function); heavy imports happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import os

import typer

from inspection import __version__

app = typer.Typer(
    name="weldinspect",
    help="Weld-seam inspection: grade porosity and spatter, check standards, advise settings, keep evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"weldinspect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=int(os.environ.get("WELDINSPECT_LOG_LEVEL", level)),
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register_all() -> None:
    from inspection.cli import (
        data_cmds,
        evidence_cmds,
        inspect_cmds,
        model_cmds,
        recommend_cmds,
        score_cmds,
        service_cmds,
        synth_cmds,
    )

    for module in (
        synth_cmds,
        data_cmds,
        model_cmds,
        inspect_cmds,
        score_cmds,
        recommend_cmds,
        evidence_cmds,
        service_cmds,
    ):
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point."""
    app()
