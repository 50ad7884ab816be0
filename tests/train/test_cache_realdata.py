"""The strip cache on real photos: boxes land inside the strip and the tiles (skips without data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspection.config import PreprocessConfig
from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
from inspection.image.ingest import read_image
from inspection.image.preprocess import preprocess
from inspection.train.cache import strip_sample
from inspection.types import Box

pytestmark = pytest.mark.realdata

CFG = PreprocessConfig(strip_height=96, tile_length=192)


def test_cached_strip_matches_the_serving_preprocess(porosity_data: Path) -> None:
    records, _ = read_manifest(porosity_data, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    with_pores = [r for r in records if r.count("porosity") >= 2][:4]
    assert with_pores, "the development split has photos with pores"
    for rec in with_pores:
        image = read_image(rec.path())
        pores = [Box(*o.box) for o in rec.objects if o.label == "porosity"]
        sample, _ = strip_sample(image, pores, key=rec.image, group="g", grade=2, cfg=CFG, cache_scale=2.0)
        served = preprocess(image, CFG)
        # the eval tiles are exactly what inference sees
        assert sample.tiles.shape[0] == len(served.tiles)
        np.testing.assert_array_equal(sample.tiles[0], served.tiles[0].image)
        # cached strip at 2x: twice the height, boxes inside it
        assert sample.strip.shape[0] == 2 * CFG.strip_height
        assert len(sample.boxes) <= len(pores)
        if len(sample.boxes):
            assert sample.boxes[:, [0, 2]].mean() <= sample.strip.shape[1]
            assert sample.boxes[:, [1, 3]].mean() <= sample.strip.shape[0]
        for tile_boxes in sample.tile_boxes:
            cx = (tile_boxes[:, 0] + tile_boxes[:, 2]) / 2
            assert np.all((cx >= 0) & (cx < CFG.tile_length))
