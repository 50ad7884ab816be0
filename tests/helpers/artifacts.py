"""A tiny, randomly initialised model artifact for pipeline and batch tests (seconds to build)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from inspection.model.artifact import ModelConfig, save_artifact
from inspection.model.net import build_model


def make_tiny_artifact(
    directory: Path, *, seed: int = 0, version: str = "0.0.1", thresholds: dict[str, Any] | None = None
) -> Path:
    """Write a ``tiny``-architecture artifact into ``directory`` and return it.

    ``thresholds`` overrides the config's decision thresholds (see ``ModelConfig.thresholds``).
    """
    torch.manual_seed(seed)
    model = build_model("tiny", embed_dim=16).eval()
    data: dict[str, Any] = {"name": "weld-grader-test", "version": version, "arch": "tiny", "embed_dim": 16}
    if thresholds is not None:
        data["thresholds"] = thresholds
    config = ModelConfig.model_validate(data)
    save_artifact(
        directory, model, config, "# test model\nRandom weights, for tests only.\n", {"note": "untrained"}
    )
    return directory
