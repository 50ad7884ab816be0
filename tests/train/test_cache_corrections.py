"""Label corrections applied when the training cache is built (``data.corrections``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.config import PreprocessConfig
from inspection.data.corrections import read_corrections
from inspection.data.synth import generate_weld
from inspection.train.cache import load_or_build_cache

PRE = PreprocessConfig(strip_height=48, tile_length=96)


def _dataset(root: Path) -> list[tuple[str, list[list[int]]]]:
    """Two synthetic photos with 2 and 1 pore boxes, labelled as in weld-porosity."""
    (root / "images").mkdir(parents=True)
    rows, out = [], []
    for i, n in enumerate((2, 1)):
        weld = generate_weld(np.random.default_rng(i), width=320, height=320, n_pores=n, n_spatter=0)
        name = f"images/p{i}.png"
        cv2.imwrite(str(root / name), cv2.cvtColor(weld.image, cv2.COLOR_RGB2BGR))
        boxes = [[round(b.x0), round(b.y0), round(b.x1), round(b.y1)] for b in weld.boxes]
        objects = [{"label": "Surface_pores", "box": b} for b in boxes]
        rows.append({"image": name, "width": 320, "height": 320, "group": f"weld{i}", "objects": objects})
        out.append((name, boxes))
    (root / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def _load(root: Path, cache: Path, corrections: list) -> tuple[dict[str, int], object]:
    samples, _, info = load_or_build_cache(
        root, "annotations.jsonl", PRE, cache_dir=cache, cache_scale=1.0, corrections=corrections
    )
    return {s.key: s.n_pores for s in samples}, info


def test_corrections_change_the_training_labels_and_the_cache_key(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (name0, boxes0), (name1, _) = _dataset(root)
    sha = {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in (name0, name1)}
    corr_file = tmp_path / "corr.jsonl"
    lines = [
        {"image_sha256": sha[name0], "action": "remove", "label": "porosity", "box": boxes0[0]},
        {"image_sha256": sha[name1], "action": "add", "label": "porosity", "box": [10, 10, 30, 30]},
        {"image_sha256": sha[name1], "action": "add", "label": "porosity", "box": [40, 40, 60, 60]},
    ]
    corr_file.write_text("".join(json.dumps({**c, "reason": "test", "who": "t"}) + "\n" for c in lines))
    corrections = read_corrections([corr_file])

    raw, raw_info = _load(root, tmp_path / "cache", [])
    fixed, fixed_info = _load(root, tmp_path / "cache", corrections)

    assert raw == {name0: 2, name1: 1}
    assert fixed == {name0: 1, name1: 3}
    assert raw_info.key != fixed_info.key  # type: ignore[attr-defined]
    assert raw_info.corrections_sha256 is None  # type: ignore[attr-defined]
    assert fixed_info.corrections_sha256 and "3 labels changed" in fixed_info.corrections_summary  # type: ignore[attr-defined]
    # a second load hits the corrected cache and gives the same labels
    again, again_info = _load(root, tmp_path / "cache", corrections)
    assert again == fixed and again_info.path == fixed_info.path  # type: ignore[attr-defined]


def test_training_config_reads_the_corrections_section(tmp_path: Path) -> None:
    from inspection.train.config import TrainConfig

    cfg = TrainConfig.model_validate({"name": "x", "data": {"corrections": ["data/label-corrections"]}})
    assert cfg.data.corrections == (Path("data/label-corrections"),)
    with pytest.raises(ValueError, match="corrections"):
        TrainConfig.model_validate({"name": "x", "data": {"corrections": 3}})
