"""Running the ``weldinspect`` command as a real process, as a station or cron would."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def weldinspect_argv() -> list[str]:
    """The installed console script next to this interpreter (else the same entry point via -c)."""
    script = shutil.which("weldinspect", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-c", "from inspection.cli import main; main()"]
