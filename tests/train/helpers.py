"""Small synthetic StripSamples for the training tests (built through the real preprocess path)."""

from __future__ import annotations

import numpy as np

from inspection.config import PreprocessConfig
from inspection.data.synth import generate_weld
from inspection.data.torch_dataset import StripSample
from inspection.train.cache import strip_sample

SMALL_PRE = PreprocessConfig(strip_height=32, tile_length=64, work_size=128)


def synth_samples(n: int, seed: int = 0, groups: tuple[str, ...] = ("weldA", "weldB")) -> list[StripSample]:
    """``n`` tiny synthetic photos (160 x 160) preprocessed to 32 x 64 tiles, grades from pore counts."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        n_pores = int(rng.integers(0, 5))
        weld = generate_weld(rng, width=160, height=160, n_pores=n_pores, n_spatter=0, jpeg_quality=0)
        pores = [b for b in weld.boxes if b.label == "porosity"]
        grade = sum(1 for t in (1, 2, 4) if len(pores) >= t)
        s, _ = strip_sample(
            weld.image,
            pores,
            key=f"synth-{i}",
            group=groups[i % len(groups)],
            grade=grade,
            cfg=SMALL_PRE,
            cache_scale=2.0,
        )
        out.append(s)
    return out
