"""What the running service holds between requests: settings, store and recorder (model + ledger).

Routes, the dashboard and the app factory all import :class:`ServiceState` from here; the app
(:mod:`inspection.service.app`) builds it in its lifespan handler and sits on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from inspection.service.metrics import Metrics
from inspection.service.recorder import Recorder, open_recorder
from inspection.service.settings import ServiceSettings
from inspection.store import Store


@dataclass
class ServiceState:
    """What the lifespan handler built: the store and the recorder (model + ledger)."""

    settings: ServiceSettings
    store: Store
    recorder: Recorder

    def close(self) -> None:
        if self.recorder.follower is not None:
            self.recorder.follower.stop()
        self.store.close()


def start_state(settings: ServiceSettings, metrics: Metrics) -> ServiceState:
    """Open the store, load the signing key and the model (blocking; seconds); start following
    promotions (:class:`inspection.service.promotion.ModelFollower`)."""
    recorder = open_recorder(settings, on_inference=metrics.inference)
    if recorder.follower is not None:
        recorder.follower.start()
    return ServiceState(settings, recorder.store, recorder)
