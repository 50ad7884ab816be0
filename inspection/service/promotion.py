"""Which model the service and the hot folder run, and switching to a promoted one without downtime.

The store's current model is its latest ``model.promotion`` / ``model.rollback`` record
(:mod:`inspection.evidence.promotion`). At start (:func:`load_inspector`) a process with
``follow_promotions`` loads that model from ``models_root / record.model.path``; without such a
record it loads the configured model (``--model``, ``$WELDINSPECT_MODEL``, else the newest shipped
version), as before promotion records existed. With ``follow_promotions=False`` it always runs the
configured model (pinned).

:class:`ModelFollower` polls the ledger every ``promotion_poll_s`` seconds (and on
:meth:`ModelFollower.check`, e.g. from the admin endpoint). For a new record it checks the record's
hash and signature (against the store's key registry), hashes the artifact's ``model.safetensors``
and ``config.json`` against the record, loads a **new** :class:`Inspector` in its own thread, checks
the loaded weights' sha256 again and only then swaps the recorder's reference
(:meth:`Recorder.swap_inspector`). Requests already running keep the inspector they started with,
so they finish -- and are recorded -- on the old model; new requests get the new one. A refused
swap is logged (error) and reported by ``/readyz`` (``model.promotion``); the old model keeps running.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from inspection.evidence.ledger import EvidenceRecord
from inspection.evidence.promotion import (
    ModelDecision,
    ModelIdentity,
    check_model_path,
    current_model,
    latest_model_record,
    parse_decision,
)
from inspection.evidence.verify import check_record, registry_keys
from inspection.model.artifact import CONFIG_FILE, WEIGHTS_FILE, ArtifactError, models_root, read_config
from inspection.model.files import sha256_file
from inspection.pipeline import Inspector
from inspection.service.settings import ServiceSettings, service_app_config
from inspection.store import Store

logger = logging.getLogger(__name__)


class PromotionLoadError(RuntimeError):
    """A promoted model cannot be run here; the message names the record, the file and the reason."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def settings_models_root(settings: ServiceSettings) -> Path:
    """The folder promotion records' model paths are relative to (default: the shipped models)."""
    return settings.models_root if settings.models_root is not None else models_root()


def identify_artifact(directory: Path, root: Path) -> ModelIdentity:
    """The identity a promotion records for the artifact in ``directory`` (below ``root``).

    Raises :class:`ArtifactError` (bad artifact) or ValueError (``directory`` not below ``root``).
    """
    directory, root = Path(directory).resolve(), Path(root).resolve()
    try:
        rel = directory.relative_to(root)
    except ValueError as exc:
        msg = (
            f"model {directory} is not below the models root {root}: copy it to "
            f"{root}/<name>/<version>/ first (or pass --models-root), so that every station can find it"
        )
        raise ValueError(msg) from exc
    config = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        msg = f"{weights} is missing"
        raise ArtifactError(msg)
    return ModelIdentity(
        name=config.name,
        version=config.version,
        sha256=sha256_file(weights),
        config_sha256=sha256_file(directory / CONFIG_FILE),
        path=check_model_path(rel.as_posix()),
    )


def check_files(decision: ModelDecision, root: Path) -> Path:
    """The artifact folder of ``decision`` after checking its weights and config hash to the record's."""
    m = decision.model
    directory = Path(root) / m.path
    where = f"record seq {decision.seq} ({decision.action} {m.label})"
    if not directory.is_dir():
        msg = f"{where}: model folder {directory} does not exist on this machine"
        raise PromotionLoadError(msg, retry=True)
    for name, expected in ((WEIGHTS_FILE, m.sha256), (CONFIG_FILE, m.config_sha256)):
        path = directory / name
        actual = sha256_file(path) if path.is_file() else "missing"
        if actual != expected:
            msg = f"{where}: {path} hashes to {actual}, the signed record says {expected}; not loaded"
            raise PromotionLoadError(msg, retry=True)
    return directory


def load_decided(decision: ModelDecision, settings: ServiceSettings) -> Inspector:
    """A new :class:`Inspector` for the model of ``decision``, checked against the record.

    Raises :class:`PromotionLoadError` naming the record and the reason.
    """
    directory = check_files(decision, settings_models_root(settings))
    where = f"record seq {decision.seq} ({decision.action} {decision.model.label})"
    try:
        inspector = Inspector.from_artifact(
            directory, backend=settings.backend, config=service_app_config(settings), threads=settings.threads
        )
    except Exception as exc:  # ArtifactError, a broken ONNX file, ...: the old model stays
        msg = f"{where}: {directory} could not be loaded: {exc}"
        raise PromotionLoadError(msg, retry=False) from exc
    loaded = (inspector.grader.info.sha256, inspector.config_sha256)
    if loaded != (decision.model.sha256, decision.model.config_sha256):
        msg = f"{where}: the loaded files hash to {loaded}, not to the record's (changed while loading?)"
        raise PromotionLoadError(msg, retry=True)
    return inspector


@dataclass(frozen=True)
class StartModel:
    """The model a process starts with: its inspector, the record it came from (None = configured),
    and the ``/readyz`` text that says so."""

    inspector: Inspector
    decision: ModelDecision | None
    status: str


def load_inspector(settings: ServiceSettings, store: Store) -> StartModel:
    """The store's current model (when ``settings.follow_promotions``), else the configured one.

    A current model that cannot be loaded (missing, altered, broken) is logged as an error and the
    configured model is loaded instead; the status says so.
    """
    status = "pinned: follow_promotions is off" if not settings.follow_promotions else ""
    if settings.follow_promotions:
        decision = current_model(store)
        if decision is None:
            status = "no promotion record: configured model"
        else:
            try:
                inspector = load_decided(decision, settings)
            except PromotionLoadError as exc:
                logger.error("current model not loaded, running the configured model instead: %s", exc)
                status = f"refused: {exc}"
            else:
                if settings.model_dir is not None:
                    logger.warning(
                        "--model %s is not used: the store's current model is %s (record seq %d); "
                        "pass --no-follow-promotions to pin a model",
                        settings.model_dir,
                        decision.model.label,
                        decision.seq,
                    )
                return StartModel(inspector, decision, _applied(decision))
    inspector = Inspector.from_artifact(
        settings.model_dir,
        backend=settings.backend,
        config=service_app_config(settings),
        threads=settings.threads,
    )
    return StartModel(inspector, None, status)


def _applied(decision: ModelDecision) -> str:
    return f"current: {decision.action} record seq {decision.seq} by {decision.approved_by}"


class Swappable(Protocol):
    """What the follower swaps: :class:`inspection.service.recorder.Recorder`."""

    @property
    def inspector(self) -> Inspector: ...

    def swap_inspector(self, new: Inspector) -> Inspector: ...


class ModelFollower:
    """Follows the store's promotion/rollback records and swaps the recorder's inspector.

    :meth:`check` does one look (blocking while a new model loads; requests keep running);
    :meth:`start` runs it every ``settings.promotion_poll_s`` seconds in a daemon thread.
    """

    def __init__(
        self, recorder: Swappable, store: Store, settings: ServiceSettings, start: StartModel
    ) -> None:
        self.recorder = recorder
        self.store = store
        self.settings = settings
        self.status = start.status
        self._applied_seq = 0 if start.decision is None else start.decision.seq
        self._given_up: set[int] = set()
        self._logged: set[tuple[int, str]] = set()
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Swap to the store's current model if it changed; True when a swap happened."""
        if not self.settings.follow_promotions:
            return False
        with self._check_lock:
            with self.store.session() as s:
                rec = latest_model_record(s)
            if rec is None or rec.seq == self._applied_seq or rec.seq in self._given_up:
                return False
            try:
                decision = self._verified(rec)
                current = self.recorder.inspector
                if (current.grader.info.sha256, current.config_sha256) == (
                    decision.model.sha256,
                    decision.model.config_sha256,
                ):
                    self._applied_seq, self.status = rec.seq, _applied(decision)
                    return False
                inspector = load_decided(decision, self.settings)
            except PromotionLoadError as exc:
                self._refuse(rec.seq, exc)
                return False
            old = self.recorder.swap_inspector(inspector)
            self._applied_seq, self.status = rec.seq, _applied(decision)
            info = old.grader.info
            logger.info(
                "model swapped: %s %s (%s) -> %s (%s record seq %d); requests in flight finish on the old",
                info.name,
                info.version,
                info.sha256[:12],
                decision.model.label,
                decision.action,
                rec.seq,
            )
            return True

    def _verified(self, rec: EvidenceRecord) -> ModelDecision:
        problems = check_record(rec, registry_keys(self.store))
        if problems:
            msg = f"record seq {rec.seq} does not verify: {problems[0]}"
            raise PromotionLoadError(msg, retry=False)
        try:
            return parse_decision(rec)
        except ValueError as exc:
            raise PromotionLoadError(str(exc), retry=False) from exc

    def _refuse(self, seq: int, exc: PromotionLoadError) -> None:
        self.status = f"refused: {exc}"
        if not exc.retry:
            self._given_up.add(seq)
        if (seq, str(exc)) not in self._logged:
            self._logged.add((seq, str(exc)))
            logger.error("model not swapped, the running model stays: %s", exc)

    # -- polling thread ---------------------------------------------------------------------------
    def start(self) -> None:
        """Poll every ``promotion_poll_s`` seconds in a daemon thread (not when 0 or not following)."""
        poll = self.settings.promotion_poll_s
        if poll <= 0 or not self.settings.follow_promotions or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, args=(poll,), name="model-follower", daemon=True)
        self._thread.start()

    def _run(self, poll: float) -> None:
        while not self._stop.wait(poll):
            try:
                self.check()
            except Exception:  # a database outage: try again at the next poll
                logger.exception("checking for a promoted model failed; retrying in %.0f s", poll)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
