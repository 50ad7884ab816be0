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
        mqtt_cmds,
        opcua_cmds,
        promotion_cmds,
        recommend_cmds,
        score_cmds,
        service_cmds,
        synth_cmds,
    )

    for module in (
        synth_cmds,
        data_cmds,
        model_cmds,
        promotion_cmds,
        inspect_cmds,
        score_cmds,
        recommend_cmds,
        evidence_cmds,
        service_cmds,
        mqtt_cmds,
        opcua_cmds,
    ):
        module.register(app)


_register_all()


# Typed errors that mean "the user gave something wrong" (a missing model, a bad config, key or
# results file): one ``error:`` line and exit code 2 instead of a traceback. Named by module and
# class so ``main`` imports nothing heavy: an error can only be raised once its module is loaded.
USAGE_ERRORS: frozenset[tuple[str, str]] = frozenset(
    {
        ("inspection.model.artifact", "ArtifactError"),
        ("inspection.config", "ConfigError"),
        ("inspection.batch.runner", "UsageError"),
        ("inspection.evidence.keys", "KeyFileError"),
        ("inspection.train.cache", "DataMissingError"),
        ("inspection.train.final", "CalibrationMissingError"),
        ("inspection.train.pretrain", "InitFromError"),
    }
)
USAGE_EXIT_CODE = 2
_HINTS = {
    "ArtifactError": "pass --model DIR or set $WELDINSPECT_MODEL to a model artifact folder",
}


def usage_error_kind(exc: BaseException) -> str | None:
    """The class name of the :data:`USAGE_ERRORS` entry ``exc`` is an instance of, else None."""
    for cls in type(exc).__mro__:
        if (cls.__module__, cls.__qualname__) in USAGE_ERRORS:
            return cls.__qualname__
    return None


def main() -> None:
    """Console-script entry point. Typed user errors become one ``error:`` line and exit code 2."""
    try:
        app()
    except Exception as exc:
        kind = usage_error_kind(exc)
        if kind is None:
            raise
        logging.getLogger(__name__).debug("usage error", exc_info=True)
        hint = _HINTS.get(kind)
        typer.echo(f"error: {exc}" + (f" ({hint})" if hint else ""), err=True)
        raise SystemExit(USAGE_EXIT_CODE) from None
