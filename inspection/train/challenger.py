"""Train a challenger model next to a champion artifact (``weldinspect train --from-store``).

**Incremental fine-tuning** (the default): the challenger starts from *all* of the champion's
weights (backbone and heads, :func:`inspection.train.fit.train_model` with ``initial_state``) and
takes the champion's network and input contract (arch, width_mult, embed_dim, mean/std, the
preprocess section), whatever the training config says about them; the config gives the rest
(epochs, learning rate, augmentation, loss, seed, threads, time budget). ``from_scratch``
trains the config's own network from its own initialisation (``pretrained`` / ``init_from``).

**Calibration**: there is no leave-one-weld-out run behind a challenger, and the held-out reviewed
photos must stay unseen, so the challenger keeps the champion's calibration (temperatures, abstain
rules, peak thresholds, peak spacing) unchanged; only the OOD statistics and threshold are fitted
again, on the challenger's own training photos (:func:`inspection.train.final.fit_ood`). A
fine-tuned network stays close to the champion, so its calibration carries over approximately;
the comparison report measures the result at exactly these thresholds.

The artifact is written with :func:`inspection.model.artifact.save_artifact` (loadable by
:class:`inspection.pipeline.Inspector`), named like the champion with version
``<champion's X.Y.Z>+review.<UTC time>`` unless one is given.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from inspection.data.torch_dataset import StripSample
from inspection.train.config import TrainConfig

log = logging.getLogger(__name__)

TRAIN_DIR = "challenger-train"
"""Checkpoints of the challenger's training, inside the output folder."""


@dataclass(frozen=True)
class ChallengerResult:
    """The written challenger: artifact folder, weights sha256, version and training figures."""

    directory: Path
    sha256: str
    name: str
    version: str
    epochs_run: int
    train_minutes: float
    train_photos: int
    ood_threshold: float
    fine_tuned_from: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.directory),
            "sha256": self.sha256,
            "name": self.name,
            "version": self.version,
            "epochs_run": self.epochs_run,
            "train_minutes": round(self.train_minutes, 3),
            "train_photos": self.train_photos,
            "ood_threshold": self.ood_threshold,
            "fine_tuned_from": self.fine_tuned_from,
        }


def challenger_version(champion_version: str, when: datetime | None = None) -> str:
    """``<X.Y.Z of the champion>+review.<YYYYMMDDTHHMMSS>`` (UTC), a valid artifact version."""
    match = re.match(r"^\d+\.\d+\.\d+", champion_version)
    base = match.group(0) if match else "0.0.0"
    stamp = (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    return f"{base}+review.{stamp}"


def fine_tune_config(cfg: TrainConfig, champion: Any) -> TrainConfig:
    """``cfg`` with the champion's network and input contract (see the module docstring).
    ``champion`` is the champion's :class:`~inspection.model.artifact.ModelConfig`."""
    from inspection.config import PreprocessConfig

    update = {
        "arch": champion.arch,
        "width_mult": float(champion.width_mult),
        "embed_dim": int(champion.embed_dim),
        "mean": tuple(champion.mean),
        "std": tuple(champion.std),
        "preprocess": PreprocessConfig.model_validate(champion.preprocess),
        "pretrained": False,  # the champion's weights replace any initialisation
        "init_from": None,
    }
    changed = sorted(
        k for k, v in update.items() if getattr(cfg, k) != v and k not in ("pretrained", "init_from")
    )
    if changed:
        log.info(
            "fine-tuning: network fields taken from the champion, not the config: %s", ", ".join(changed)
        )
    return TrainConfig.model_validate({**cfg.model_dump(), **update})


def champion_calibration(champion: Any) -> dict[str, Any]:
    """The champion's calibration in the form :func:`inspection.train.final.calibrated_config` reads."""
    t = champion.thresholds
    return {
        "temperatures": {
            "porosity": float(champion.temperatures.porosity),
            "spatter": float(champion.temperatures.spatter),
        },
        "peak_thresholds": {"porosity": float(t.peak.porosity), "spatter": float(t.peak.spatter)},
        "abstain": {
            head: {
                "min_confidence": float(getattr(t.abstain, head).min_confidence),
                "max_p_defect_for_zero": float(getattr(t.abstain, head).max_p_defect_for_zero),
            }
            for head in ("porosity", "spatter")
        },
    }


def train_challenger(
    cfg: TrainConfig,
    samples: Sequence[StripSample],
    *,
    champion_dir: Path,
    out_dir: Path,
    version: str,
    fine_tune: bool,
    manifest_sha256: str,
    data_note: str,
    command: str,
    card: str,
) -> ChallengerResult:
    """Train on ``samples`` (plus ``cfg.augment.synth_bank`` synthetic welds), fit OOD statistics
    and write the artifact to ``out_dir``. ``cfg`` must already be the fine-tuning config
    (:func:`fine_tune_config`) when ``fine_tune``."""
    from inspection.model.artifact import InitSource, Provenance, load_artifact, read_config, save_artifact
    from inspection.model.net import pretrained_weights
    from inspection.train.final import _json_safe, calibrated_config, fit_ood, git_commit
    from inspection.train.fit import synthetic_samples, train_model

    champion_model, champion, champion_info = load_artifact(champion_dir)
    initial = champion_model.state_dict() if fine_tune else None
    if fine_tune and (champion.arch, float(champion.width_mult), champion.embed_dim) != (
        cfg.arch,
        float(cfg.width_mult),
        cfg.embed_dim,
    ):
        msg = f"fine-tuning needs the champion's network ({champion.arch}); call fine_tune_config first"
        raise ValueError(msg)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    synth = synthetic_samples(cfg) if cfg.augment.synth_bank else []
    res = train_model(
        cfg, list(samples) + synth, [], out_dir.parent / TRAIN_DIR, epochs=cfg.epochs, initial_state=initial
    )
    minutes = (time.perf_counter() - t0) / 60.0
    model = res.model
    if model is None:
        msg = "challenger training returned no model"
        raise RuntimeError(msg)
    ood_threshold, ood_tiles = fit_ood(model, cfg, list(samples))
    init = None
    if fine_tune:
        init = InitSource(
            source=f"champion {champion_info.name} {champion_info.version} (fine-tuned, all weights)",
            file="model.safetensors",
            sha256=champion_info.sha256,
        )
    elif cfg.pretrained:
        init = InitSource.from_pretrained(pretrained_weights(cfg.arch))
    config = calibrated_config(
        cfg,
        champion_calibration(champion),
        ood_threshold,
        name=champion.name,
        version=version,
        provenance=Provenance(
            training_manifest_sha256=manifest_sha256,
            git_commit=git_commit(cfg.resolve(Path("."))),
            command=command,
            data=data_note,
            init=init,
        ),
    )
    thresholds = champion.thresholds.model_copy(update={"ood": config.thresholds.ood})
    config = config.model_copy(update={"thresholds": thresholds})
    metrics = _json_safe(
        {
            "mode": "from-store",
            "fine_tuned_from": champion_info.sha256 if fine_tune else None,
            "champion": {"name": champion_info.name, "version": champion_info.version},
            "epochs": res.epochs_run,
            "train_minutes": minutes,
            "train_photos": len(samples),
            "synthetic_photos": len(synth),
            "ood_threshold": ood_threshold,
            "ood_tiles": ood_tiles,
            "history": res.history,
        }
    )
    info = save_artifact(out_dir, model, config, card, metrics, overwrite=True)  # type: ignore[arg-type]
    read_config(out_dir)  # the written config parses (raises ArtifactError naming the field otherwise)
    (out_dir.parent / "challenger-training.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("challenger %s %s written to %s (sha256 %s)", champion.name, version, out_dir, info.sha256[:12])
    return ChallengerResult(
        directory=out_dir,
        sha256=info.sha256,
        name=champion.name,
        version=version,
        epochs_run=res.epochs_run,
        train_minutes=minutes,
        train_photos=len(samples),
        ood_threshold=ood_threshold,
        fine_tuned_from=champion_info.sha256 if fine_tune else None,
    )
