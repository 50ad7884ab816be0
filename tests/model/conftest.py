"""A tiny randomly initialised artifact (32 x 64 tiles), built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from inspection.model.artifact import ModelConfig, save_artifact
from inspection.model.net import build_model
from inspection.model.postprocess import OodStats
from inspection.types import ModelInfo

TINY_H, TINY_W, TINY_EMBED = 32, 64, 16


@dataclass(frozen=True)
class TinyArtifact:
    path: Path
    config: ModelConfig
    info: ModelInfo


def tiny_config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {
        "name": "weld-grader-test",
        "version": "0.0.1",
        "arch": "tiny",
        "embed_dim": TINY_EMBED,
        "input": {"strip_height": TINY_H, "tile_length": TINY_W},
        "preprocess": {"strip_height": TINY_H, "tile_length": TINY_W},
        "temperatures": {"porosity": 1.5, "spatter": 0.8},
    }
    return ModelConfig.model_validate({**base, **overrides})


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> TinyArtifact:
    torch.manual_seed(0)
    model = build_model("tiny", embed_dim=TINY_EMBED)
    # a random net in train mode has degenerate BN statistics; run a few batches to make them non-trivial
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, TINY_H, TINY_W))
    model.eval()
    with torch.inference_mode():
        emb = model(torch.randn(32, 3, TINY_H, TINY_W)).embedding.numpy()
    model.set_ood_stats(OodStats.fit(emb))
    config = tiny_config()
    path = tmp_path_factory.mktemp("artifact") / "tiny"
    info = save_artifact(path, model, config, "# Tiny test model\n\nRandom weights.\n", {"val": {"mae": 0.5}})
    return TinyArtifact(path, config, info)


@pytest.fixture
def tiny_tiles() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, size=(3, TINY_H, TINY_W, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def make_tiny_config() -> object:
    """``make_tiny_config(**overrides) -> ModelConfig`` matching the tiny artifact."""
    return tiny_config
