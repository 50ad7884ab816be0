"""Group-aware splits keep groups whole; leave-one-group-out covers every large group once."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from inspection.data.manifest import ManifestObject, ManifestRecord
from inspection.data.splits import group_split, leave_one_group_out


def _records(sizes: dict[str, int], seed: int = 0) -> list[ManifestRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for name, n in sizes.items():
        for i in range(n):
            pores = int(rng.integers(0, 6))
            objs = tuple(ManifestObject("porosity", (1, 1, 2, 2)) for _ in range(pores))
            out.append(ManifestRecord(f"{name}_{i}.jpg", 8, 8, group=name, objects=objs))
    return out


SIZES = {"weld00": 30, "weld01": 25, "weld04": 20, "weld05": 2, "weld06": 1, "weld07": 1}


def test_leave_one_group_out_covers_each_large_group_once() -> None:
    recs = _records(SIZES)
    folds = leave_one_group_out(recs, min_group_size=10)
    assert [f.held_out for f in folds] == ["weld00", "weld01", "weld04"]
    held = Counter(i for f in folds for i in f.val)
    for i, rec in enumerate(recs):
        small = rec.group in {"weld05", "weld06", "weld07"}
        assert held[i] == (0 if small else 1), rec.group
    for f in folds:
        assert set(f.train) | set(f.val) == set(range(len(recs)))
        assert {recs[i].group for i in f.val} == {f.held_out}
        assert f.held_out not in {recs[i].group for i in f.train}
        # small one-off groups are always in training
        assert {"weld05", "weld06", "weld07"} <= {recs[i].group for i in f.train}


def test_leave_one_group_out_needs_two_groups() -> None:
    with pytest.raises(ValueError, match="group sizes"):
        leave_one_group_out(_records({"a": 20, "b": 3}), min_group_size=10)


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("fraction", [0.2, 0.35])
def test_group_split_keeps_groups_whole(seed: int, fraction: float) -> None:
    sizes = {f"g{i:02d}": int(n) for i, n in enumerate(np.random.default_rng(seed).integers(1, 15, 20))}
    recs = _records(sizes, seed)
    train, val = group_split(recs, val_fraction=fraction, seed=seed)
    assert train and val
    assert sorted(train + val) == list(range(len(recs)))
    train_groups = {recs[i].group for i in train}
    val_groups = {recs[i].group for i in val}
    assert not train_groups & val_groups
    assert abs(len(val) / len(recs) - fraction) < 0.15
    assert group_split(recs, val_fraction=fraction, seed=seed) == (train, val)


def test_group_split_stratifies_by_grade() -> None:
    # groups of pure grades: a good split puts some of each grade into validation
    recs = []
    for g, pores in enumerate([0, 1, 2, 5]):
        for k in range(4):
            for i in range(5):
                objs = tuple(ManifestObject("porosity", (1, 1, 2, 2)) for _ in range(pores))
                recs.append(ManifestRecord(f"{g}_{k}_{i}.jpg", 8, 8, group=f"grade{g}_weld{k}", objects=objs))
    _, val = group_split(recs, val_fraction=0.25, seed=3)
    grades_in_val = Counter(recs[i].group.split("_")[0] for i in val)  # type: ignore[union-attr]
    assert set(grades_in_val) == {"grade0", "grade1", "grade2", "grade3"}


def test_group_split_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match="val_fraction"):
        group_split(_records({"a": 2}), val_fraction=1.5)
