"""Prometheus metrics through ``prometheus_client``, in one registry per app (text format 0.0.4).

Exposed at ``GET /metrics``:

* ``weldinspect_http_requests_total{method,route,status}``: counter of answered requests, ``route``
  being the route template (``/v1/inspections/{inspection_id}``), never the raw path;
* ``weldinspect_inference_seconds``: histogram of model inference time per image (decode to result,
  excluding the database write), in seconds;
* ``weldinspect_inspections_total{status}``: counter of submissions by outcome: ``created``,
  ``replayed`` (idempotent retry), ``rejected`` (4xx: limits, bad metadata, unreadable image),
  ``failed`` (5xx).

Each :class:`Metrics` owns a :class:`prometheus_client.CollectorRegistry`, not the library's global
default registry: several apps in one process (tests, an embedded service) count separately and
never clash over a metric name. The ``*_created`` timestamp series that ``prometheus_client`` adds
to counters and histograms are left out of the exposition, so it holds exactly the three families
above.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S: tuple[float, ...] = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INSPECTION_STATUSES = ("created", "replayed", "rejected", "failed")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""``text/plain; version=0.0.4; charset=utf-8``: the format :func:`generate_latest` writes."""


class _WithoutCreated(Collector):
    """The families of ``registry`` without their ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            kept = Metric(family.name, family.documentation, family.type, family.unit)
            kept.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield kept


class Metrics:
    """The service's counters and histogram (one instance, and one registry, per app)."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        if not buckets or list(buckets) != sorted(set(buckets)):
            msg = f"histogram buckets must be strictly increasing and non-empty, got {list(buckets)}"
            raise ValueError(msg)
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "weldinspect_http_requests",
            "HTTP requests answered, by method, route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self._inference = Histogram(
            "weldinspect_inference_seconds",
            "Model inference time per image (decode to result).",
            buckets=tuple(float(b) for b in buckets),
            registry=self.registry,
        )
        self._inspections = Counter(
            "weldinspect_inspections",
            "Inspection submissions by outcome.",
            ("status",),
            registry=self.registry,
        )
        for status in INSPECTION_STATUSES:  # every outcome is exposed, 0 until it happens
            self._inspections.labels(status)
        self._exposed = _WithoutCreated(self.registry)

    def request(self, method: str, route: str, status: int) -> None:
        """Count one answered request."""
        self._requests.labels(method, route, str(status)).inc()

    def inspection(self, status: str) -> None:
        """Count one submission outcome (one of :data:`INSPECTION_STATUSES`)."""
        if status not in INSPECTION_STATUSES:
            msg = f"unknown inspection status {status!r}; valid: {', '.join(INSPECTION_STATUSES)}"
            raise ValueError(msg)
        self._inspections.labels(status).inc()

    def inference(self, seconds: float) -> None:
        """Observe one image's inference time in seconds."""
        self._inference.observe(seconds)

    def render(self) -> str:
        """The exposition text (text format 0.0.4, ends with a newline)."""
        return generate_latest(self._exposed).decode("utf-8")
