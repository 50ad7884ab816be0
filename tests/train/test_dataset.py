"""The torch Dataset yields the documented tensors and targets; augment presets keep boxes consistent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inspection.data.torch_dataset import (
    DatasetOptions,
    PorePatch,
    StripSample,
    TileDataset,
    collate,
    count_in_tile,
    cut_pore_patches,
    render_targets,
    transplant_pores,
)
from inspection.train.augment import eval_preset, train_geometric, train_photometric, train_preset
from inspection.train.config import AugmentSection
from tests.train.helpers import SMALL_PRE, synth_samples

H, W = SMALL_PRE.strip_height, SMALL_PRE.tile_length


class _FakeSpatter:
    """Stand-in for the data package's compositing: draws n white 3x3 squares, returns their boxes."""

    def composite(self, image, rng, n_droplets, seam):  # type: ignore[no-untyped-def]
        out = image.copy()
        boxes = []
        for _ in range(n_droplets):
            x, y = int(rng.integers(0, image.shape[1] - 3)), int(rng.integers(0, image.shape[0] - 3))
            out[y : y + 3, x : x + 3] = 255
            boxes.append((x, y, x + 3, y + 3))
        return out, boxes

    def sample_count(self, grade, rng):  # type: ignore[no-untyped-def]
        return {0: 0, 1: 2, 2: 8, 3: 25}[grade]


@pytest.fixture(scope="module")
def samples() -> list[StripSample]:
    return synth_samples(6)


def _options(**kw: object) -> DatasetOptions:
    base = {"strip_height": H, "tile_length": W, "cache_scale": 2.0, "seed": 3}
    base.update(kw)
    return DatasetOptions(**base)  # type: ignore[arg-type]


def _train_ds(samples: list[StripSample], **kw: object) -> TileDataset:
    aug = AugmentSection()
    return TileDataset(
        samples,
        _options(**kw),
        train=True,
        geometric=train_geometric(aug, strip_height=H, tile_length=W, cache_scale=2.0),
        photometric=train_photometric(aug),
        spatter=_FakeSpatter(),
        pore_bank=cut_pore_patches(samples),
    )


def test_train_items_have_documented_shapes_and_types(samples: list[StripSample]) -> None:
    ds = _train_ds(samples)
    item = ds[0]
    assert item["image"].shape == (3, H, W) and item["image"].dtype == torch.float32
    assert item["heatmap"].shape == (2, H // 8, W // 8)
    assert item["size"].shape == item["size_mask"].shape == (2, H // 8, W // 8)
    assert item["porosity_grade"].dtype == torch.int64 and 0 <= int(item["porosity_grade"]) <= 3
    assert -1 <= int(item["spatter_grade"]) <= 3
    assert float(item["heatmap"].max()) <= 1.0
    batch = collate([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, H, W)


def test_grade_matches_heatmap_peaks(samples: list[StripSample]) -> None:
    ds = _train_ds(samples, spatter_grade_probs=None)
    for i in range(len(ds)):
        item = ds[i]
        n_centres = int(item["size_mask"][0].sum())
        expected = sum(1 for t in (1, 2, 4) if n_centres >= t)
        # two pores may share a heatmap cell, so the cell count can only undercount
        assert int(item["porosity_grade"]) >= expected - 1
        assert int(item["spatter_grade"]) == -1


def test_train_items_are_deterministic_per_seed_epoch_index(samples: list[StripSample]) -> None:
    a, b = _train_ds(samples), _train_ds(samples)
    assert torch.equal(a[2]["image"], b[2]["image"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["image"], b[2]["image"])


def test_spatter_grades_are_drawn_from_the_balanced_distribution(samples: list[StripSample]) -> None:
    ds = _train_ds(samples * 10)
    grades = [int(ds[i]["spatter_grade"]) for i in range(len(ds))]
    assert set(grades) == {0, 1, 2, 3}


def test_eval_items_are_the_inference_tiles(samples: list[StripSample]) -> None:
    ds = TileDataset(samples, _options(spatter_grade_probs=None), train=False)
    assert len(ds) == sum(s.tiles.shape[0] for s in samples)
    item = ds[0]
    expected = (samples[0].tiles[0].astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.485) / 0.229
    np.testing.assert_allclose(item["image"][0].numpy(), expected[0], atol=1e-5)
    assert int(item["porosity_grade"]) == sum(
        1 for t in (1, 2, 4) if count_in_tile(samples[0].tile_boxes[0], H, W) >= t
    )


def test_render_targets_peak_and_size() -> None:
    boxes = np.array([[16, 8, 32, 24], [100, 100, 110, 110]], np.float32)  # second centre outside
    heat, size, mask = render_targets(boxes, [0, 1], 32, 64, 8)
    assert heat.shape == (2, 4, 8)
    iy, ix = np.unravel_index(np.argmax(heat[0]), heat[0].shape)
    assert (iy, ix) == (2, 3) and heat[0, iy, ix] == 1.0
    assert size[0, iy, ix] == pytest.approx(16.0)
    assert mask.sum() == 1.0 and heat[1].max() == 0.0


def test_transplant_adds_boxes_and_changes_pixels_only_there(rng: np.random.Generator) -> None:
    strip = np.full((64, 256, 3), 120, np.uint8)
    patch = np.full((12, 12, 3), 120, np.uint8)
    patch[3:9, 3:9] = 20
    bank = [PorePatch(patch, (3.0, 3.0, 9.0, 9.0), "other")]
    out, boxes = transplant_pores(strip, np.zeros((0, 4), np.float32), bank, rng, 3)
    assert boxes.shape == (3, 4)
    assert out.min() < 120 and strip.min() == 120  # input untouched
    changed = np.argwhere((out != 120).any(axis=2))
    for y, x in changed:
        assert any(b[0] - 8 <= x <= b[2] + 8 and b[1] - 8 <= y <= b[3] + 8 for b in boxes)


def _box_image(box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    img = np.zeros((*shape, 3), np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 255
    return img


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_train_preset_keeps_boxes_on_their_pixels(seed: int) -> None:
    aug = AugmentSection(photometric=0.0, rotate_deg=0.0)
    t = train_preset(aug, strip_height=H, tile_length=W, cache_scale=2.0)
    t.set_random_seed(seed)
    box = (40, 20, 60, 40)
    out = t(image=_box_image(box, (64, 128)), bboxes=[box], labels=["porosity"])
    assert out["image"].shape == (H, W, 3)
    if not out["bboxes"]:
        return  # cropped away (allowed)
    x0, y0, x1, y1 = out["bboxes"][0]
    white = np.argwhere(out["image"][..., 0] > 128)
    assert white[:, 1].min() >= x0 - 1.5 and white[:, 1].max() <= x1 + 0.5
    assert white[:, 0].min() >= y0 - 1.5 and white[:, 0].max() <= y1 + 0.5


def test_eval_preset_scales_boxes_by_cache_scale() -> None:
    t = eval_preset(AugmentSection(), strip_height=H, tile_length=W, cache_scale=2.0)
    out = t(image=_box_image((10, 10, 30, 30), (64, 100)), bboxes=[(10, 10, 30, 30)], labels=["porosity"])
    assert out["image"].shape == (H, W, 3)
    np.testing.assert_allclose(out["bboxes"][0], (5, 5, 15, 15), atol=0.01)


def test_presets_reject_bad_geometry() -> None:
    with pytest.raises(ValueError, match="scale_range"):
        train_preset(AugmentSection(scale_range=(1.2, 0.8)), strip_height=H, tile_length=W, cache_scale=2.0)


def _weighted(samples: list[StripSample], spec: list[tuple[str, int]]) -> list[StripSample]:
    """Copies of ``samples[0]`` with the given (group, grade) pairs."""
    from dataclasses import replace

    return [replace(samples[0], key=f"s{i}", group=g, grade=k) for i, (g, k) in enumerate(spec)]


def test_sample_weights_balance_grades_and_optionally_groups(samples: list[StripSample]) -> None:
    # weld "big" has 6 photos (5 grade 0, 1 grade 2), weld "small" 2 photos (both grade 1)
    spec = [("big", 0)] * 5 + [("big", 2)] + [("small", 1)] * 2
    ds = _train_ds(_weighted(samples, spec))
    by_grade = ds.sample_weights()
    grades = np.array([k for _, k in spec])
    per_grade = [by_grade[grades == k].sum() for k in (0, 1, 2)]
    np.testing.assert_allclose(per_grade, [1 / 3] * 3)  # each grade present drawn equally
    assert by_grade.sum() == pytest.approx(1.0)

    by_group = ds.sample_weights(by_group=True)
    groups = np.array([g for g, _ in spec])
    assert by_group[groups == "big"].sum() == pytest.approx(0.5)
    assert by_group[groups == "small"].sum() == pytest.approx(0.5)  # 2 photos weigh as much as 6
    big = (groups == "big") & (grades == 0)
    assert by_group[big].sum() == pytest.approx(by_group[(groups == "big") & (grades == 2)].sum())
    assert not np.allclose(by_group, by_grade)
