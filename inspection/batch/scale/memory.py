"""Peak memory of a process tree, sampled from ``/proc`` (Linux) by a separate sampler process.

The tree is this process and all its descendants: the local engine's worker processes, and the Ray
head's GCS, raylet, workers and actors (a local ``ray.init`` starts them as children of the driver).
Two sums are kept: RSS (counts a shared page once per process that maps it, so it over-states) and
PSS (each shared page split between its users; the sum is the memory the tree really holds).

The sampler is a *spawned* process, so nothing runs in the measured process besides the work (a
thread there while the local engine forks its workers could leave a lock held in them).
This module imports nothing heavy, so the spawned sampler starts in a fraction of a second.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path
from typing import Any


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_pids(root: int, exclude: int | None = None) -> list[int]:
    """``root`` and all its live descendants (without ``exclude`` and its descendants)."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid == exclude:
            continue
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def _kib(path: str, field_name: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_memory_mib(root: int, exclude: int | None = None) -> tuple[float, float, int]:
    """(sum of RSS, sum of PSS, number of processes) of ``root``\'s process tree, in MiB."""
    pids = tree_pids(root, exclude)
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return rss / 1024.0, pss / 1024.0, len(pids)


def _sample_loop(root: int, interval: float, stop: Any, results: Any) -> None:
    me = os.getpid()
    peak = [0.0, 0.0, 0]
    while True:
        rss, pss, n = tree_memory_mib(root, exclude=me)
        peak = [max(peak[0], rss), max(peak[1], pss), max(int(peak[2]), n)]
        if stop.wait(interval):
            break
    rss, pss, n = tree_memory_mib(root, exclude=me)
    results.put((max(peak[0], rss), max(peak[1], pss), max(int(peak[2]), n)))


class PeakMemory:
    """Context manager: peaks of :func:`tree_memory_mib` of this process while the block runs."""

    def __init__(self, interval: float = 1.0) -> None:
        if interval <= 0:
            msg = f"sampling interval must be > 0 seconds, got {interval}"
            raise ValueError(msg)
        self.interval = interval
        self.peak_rss_mib = 0.0
        self.peak_pss_mib = 0.0
        self.peak_processes = 0
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._results: Any = ctx.Queue()
        self._proc = ctx.Process(
            target=_sample_loop, args=(os.getpid(), interval, self._stop, self._results), daemon=True
        )

    def __enter__(self) -> PeakMemory:
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        rss, pss, n = self._results.get(timeout=60)
        self._proc.join(timeout=10)
        self.peak_rss_mib, self.peak_pss_mib, self.peak_processes = float(rss), float(pss), int(n)
