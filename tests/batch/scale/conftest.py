"""Fixtures for the scale-out tests: small synthetic seam photos plus bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.data.synth import generate_weld
from inspection.pipeline import Inspector

BAD_FILES = {"truncated.jpg": "truncated", "empty.png": "empty"}


@pytest.fixture(scope="module")
def inspector(tiny_model_dir: Path) -> Inspector:
    return Inspector.from_artifact(tiny_model_dir)


@pytest.fixture(scope="module")
def seam_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic seam photos plus two bad files (``BAD_FILES``)."""
    folder = tmp_path_factory.mktemp("seams")
    rng = np.random.default_rng(21)
    for i in range(8):
        weld = generate_weld(rng, width=320, height=240, n_pores=i % 4, n_spatter=2 * i)
        cv2.imwrite(str(folder / f"seam_{i}.jpg"), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
    good = (folder / "seam_0.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "empty.png").write_bytes(b"")
    return folder
