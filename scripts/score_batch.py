#!/usr/bin/env python
"""Thin wrapper for cron jobs and stations: exactly ``weldinspect score ARGS...``.

Example (nightly, from cron)::

    .venv/bin/python scripts/score_batch.py /data/seams/2026-11-25 --recursive \
        --context /data/seams/context.csv --out /data/results/2026-11-25.jsonl --quiet

Exit codes: 0 all scored, 3 some images could not be scored (see their error records), 2 bad usage.
"""

from __future__ import annotations

import sys

from inspection.cli import app

if __name__ == "__main__":
    app(args=["score", *sys.argv[1:]], prog_name="score_batch.py")
