"""Running the ``weldinspect`` command as a real process, as a station or cron would."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def weldinspect_argv() -> list[str]:
    """The installed console script next to this interpreter (else the same entry point via -c)."""
    script = shutil.which("weldinspect", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from inspection.cli import main; main()"]


def interrupt_when(
    argv: list[str], ready: Callable[[], bool], sig: signal.Signals, *, cwd: Path | None = None
) -> tuple[int, str, str]:
    """Run ``argv`` as a user's terminal would (SIGINT at its default: a background job, as CI runs
    the suite, inherits it ignored), send ``sig`` once ``ready()`` is true, and return the exit
    status, stdout and stderr. Fails the test if the process exits first or is not ready in 300 s
    (model load on a busy machine; not a speed assertion)."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 300
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"exited ({proc.returncode}) before it was ready: {argv}\n{out}{err}")
            if time.monotonic() > deadline:
                pytest.fail(f"not ready after 300 s: {argv}")
            time.sleep(0.002)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err
