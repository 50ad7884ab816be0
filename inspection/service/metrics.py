"""Prometheus metrics written by hand (text exposition format 0.0.4), thread-safe, no dependency.

Exposed at ``GET /metrics``:

* ``weldinspect_http_requests_total{method,route,status}``: counter of answered requests, ``route``
  being the route template (``/v1/inspections/{inspection_id}``), never the raw path;
* ``weldinspect_inference_seconds``: histogram of model inference time per image (decode to result,
  excluding the database write), in seconds;
* ``weldinspect_inspections_total{status}``: counter of submissions by outcome: ``created``,
  ``replayed`` (idempotent retry), ``rejected`` (4xx: limits, bad metadata, unreadable image),
  ``failed`` (5xx).
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import defaultdict
from collections.abc import Sequence

LATENCY_BUCKETS_S: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INSPECTION_STATUSES = ("created", "replayed", "rejected", "failed")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}" if inner else ""


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Histogram:
    """A cumulative histogram over fixed upper bounds (seconds)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            msg = f"histogram buckets must be strictly increasing and non-empty, got {list(buckets)}"
            raise ValueError(msg)
        self.bounds = tuple(float(b) for b in buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # last = above the largest bound (+Inf only)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out = []
        running = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{_fmt(bound)}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out.append(f"{name}_sum {_fmt(self.total)}")
        out.append(f"{name}_count {self.n}")
        return out


class Metrics:
    """The service's counters and histogram (one instance per app)."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self._lock = threading.Lock()
        self._requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._inspections: dict[str, int] = dict.fromkeys(INSPECTION_STATUSES, 0)
        self._inference = Histogram(buckets)

    def request(self, method: str, route: str, status: int) -> None:
        """Count one answered request."""
        with self._lock:
            self._requests[(method, route, str(status))] += 1

    def inspection(self, status: str) -> None:
        """Count one submission outcome (one of :data:`INSPECTION_STATUSES`)."""
        if status not in self._inspections:
            msg = f"unknown inspection status {status!r}; valid: {', '.join(INSPECTION_STATUSES)}"
            raise ValueError(msg)
        with self._lock:
            self._inspections[status] += 1

    def inference(self, seconds: float) -> None:
        """Observe one image's inference time in seconds."""
        with self._lock:
            self._inference.observe(seconds)

    def render(self) -> str:
        """The exposition text (ends with a newline)."""
        with self._lock:
            lines = [
                "# HELP weldinspect_http_requests_total HTTP requests answered, by method, route and status.",
                "# TYPE weldinspect_http_requests_total counter",
            ]
            for (method, route, status), n in sorted(self._requests.items()):
                labels = _labels(("method", "route", "status"), (method, route, status))
                lines.append(f"weldinspect_http_requests_total{labels} {n}")
            lines += [
                "# HELP weldinspect_inference_seconds Model inference time per image (decode to result).",
                "# TYPE weldinspect_inference_seconds histogram",
                *self._inference.lines("weldinspect_inference_seconds"),
                "# HELP weldinspect_inspections_total Inspection submissions by outcome.",
                "# TYPE weldinspect_inspections_total counter",
            ]
            for status, n in self._inspections.items():
                lines.append(f"weldinspect_inspections_total{_labels(('status',), (status,))} {n}")
        return "\n".join(lines) + "\n"
