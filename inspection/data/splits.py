"""Group-aware splits: photos of the same physical weld never straddle train and validation.

The weld-porosity data holds ~600 photos of only three welds (plus one-off photos), so any split
by file leaks the weld's identity into validation. Two tools:

* :func:`group_split`: one train/val split keeping every group whole, choosing which groups go to
  validation so that the validation grade histogram is as close as the groups allow to
  ``val_fraction`` of the overall histogram (stratified by grade).
* :func:`leave_one_group_out`: one :class:`Fold` per group with at least ``min_group_size``
  records; each such group is held out exactly once. **Small groups (e.g. the nine one-off
  photos ``weld05``..``weld13``) and records without a group are always in training**: a
  one-photo validation set says nothing, and the photos still add variety to training.

Both return record *indices* (into the list given) so callers can index records or datasets.
:func:`stable_group_split` splits group *names* by a per-group hash, so that a group keeps its
side as new groups arrive (the review-data split of ``weldinspect train --from-store``).
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from inspection.config import GradingConfig
from inspection.data.grades import reference_grades
from inspection.data.manifest import ManifestRecord
from inspection.types import GRADE_LEVELS, Defect


@dataclass(frozen=True)
class Fold:
    """One leave-one-group-out fold: ``held_out`` group, sorted ``train`` and ``val`` indices."""

    held_out: str
    train: tuple[int, ...]
    val: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.val:
            msg = f"Fold {self.held_out!r} has an empty validation set"
            raise ValueError(msg)
        if set(self.train) & set(self.val):
            msg = f"Fold {self.held_out!r}: train and val indices overlap"
            raise ValueError(msg)


def group_key(record: ManifestRecord, index: int) -> str:
    """The record's group, or a unique key of its own when it has none."""
    return record.group if record.group is not None else f"__ungrouped__/{index}:{record.image}"


def groups_of(records: Sequence[ManifestRecord]) -> dict[str, list[int]]:
    """Group name -> record indices (records without a group each form their own group)."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        out[group_key(rec, i)].append(i)
    return dict(out)


def leave_one_group_out(records: Sequence[ManifestRecord], *, min_group_size: int = 10) -> list[Fold]:
    """One fold per group of at least ``min_group_size`` records, sorted by group name.

    Groups smaller than ``min_group_size`` and ungrouped records are in every fold's training
    set. Raises ``ValueError`` when fewer than two groups are large enough (no fold would have
    anything to train on from another weld).
    """
    if min_group_size < 1:
        msg = f"min_group_size must be >= 1, got {min_group_size}"
        raise ValueError(msg)
    groups = groups_of(records)
    big = sorted(
        name
        for name, idx in groups.items()
        if len(idx) >= min_group_size and not name.startswith("__ungrouped__/")
    )
    if len(big) < 2:
        sizes = {k: len(v) for k, v in groups.items() if not k.startswith("__ungrouped__/")}
        msg = f"leave-one-group-out needs >= 2 groups with >= {min_group_size} records; group sizes: {sizes}"
        raise ValueError(msg)
    folds = []
    for name in big:
        val = tuple(sorted(groups[name]))
        held = set(val)
        train = tuple(i for i in range(len(records)) if i not in held)
        folds.append(Fold(held_out=name, train=train, val=val))
    return folds


def _grade_of(record: ManifestRecord, stratify_by: str | None, cfg: GradingConfig) -> int:
    if stratify_by is None:
        return 0
    return reference_grades(record, cfg, defects=(Defect(stratify_by),))[stratify_by]


def group_split(
    records: Sequence[ManifestRecord],
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    stratify_by: str | None = "porosity",
    cfg: GradingConfig | None = None,
    n_trials: int = 64,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split record indices into ``(train, val)`` keeping groups whole.

    Target: a validation grade histogram (grades by ``stratify_by``: ``porosity``, ``spatter``,
    or None for plain size balancing) equal to ``val_fraction`` times the overall one. Each of
    ``n_trials`` seeded random group orders (the first one largest-first) is walked greedily,
    putting a group into validation when that brings the histogram closer to the target; the
    closest result wins. Deterministic for a given ``seed``. Both sides are non-empty when there
    are at least two groups.
    """
    if not 0.0 < val_fraction < 1.0:
        msg = f"val_fraction must be in (0, 1), got {val_fraction}"
        raise ValueError(msg)
    if stratify_by is not None and stratify_by not in {d.value for d in Defect}:
        msg = f"stratify_by must be one of {[d.value for d in Defect]} or None, got {stratify_by!r}"
        raise ValueError(msg)
    if not records:
        return (), ()
    cfg = cfg or GradingConfig()
    groups = groups_of(records)
    names = list(groups)
    hist = {
        name: np.bincount(
            [_grade_of(records[i], stratify_by, cfg) for i in idx], minlength=GRADE_LEVELS
        ).astype(float)
        for name, idx in groups.items()
    }
    target = np.sum(list(hist.values()), axis=0) * val_fraction

    def cost(h: np.ndarray) -> float:
        # squared deviation per grade plus the total-size deviation
        return float(np.sum((h - target) ** 2) + (h.sum() - target.sum()) ** 2)

    rng = np.random.default_rng(seed)
    best: tuple[float, list[str]] | None = None
    for trial in range(n_trials):
        order = [names[i] for i in rng.permutation(len(names))]
        if trial == 0:
            order.sort(key=lambda n: -len(groups[n]))  # largest first (stable within the shuffle)
        chosen: list[str] = []
        val_hist = np.zeros(GRADE_LEVELS)
        for name in order:
            cand = val_hist + hist[name]
            if cost(cand) < cost(val_hist):
                val_hist = cand
                chosen.append(name)
        if len(names) >= 2 and not chosen:
            chosen = [min(names, key=lambda n: cost(hist[n]))]
        if len(names) >= 2 and len(chosen) == len(names):
            chosen.remove(max(chosen, key=lambda n: len(groups[n])))
        c = cost(sum((hist[n] for n in chosen), np.zeros(GRADE_LEVELS)))
        if best is None or c < best[0]:
            best = (c, chosen)
    val_names = best[1] if best is not None else []
    val = tuple(sorted(i for n in val_names for i in groups[n]))
    val_set = set(val)
    train = tuple(i for i in range(len(records)) if i not in val_set)
    return train, val


def group_fraction(group: str, seed: int) -> float:
    """``sha256("<seed>:<group>")`` read as a fraction in [0, 1): a group's draw in
    :func:`stable_group_split`."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()
    return int(digest[:13], 16) / float(16**13)


def stable_group_split(groups: Iterable[str], *, eval_share: float, seed: int) -> tuple[list[str], list[str]]:
    """``(training groups, held-out groups)``, each sorted: a group is held out when
    :func:`group_fraction` is below ``eval_share``.

    The decision depends on the group's name and the seed alone, so a group keeps its side when
    more groups arrive (the retraining loop of ``weldinspect train --from-store``: a held-out part
    never becomes training data of a later round). With few groups the shares are uneven; at least
    one group is held out (the lowest draw) and at least one trains (the highest). Needs at least
    two groups; ValueError otherwise or for ``eval_share`` outside (0, 1).
    """
    if not (math.isfinite(eval_share) and 0 < eval_share < 1):
        msg = f"eval_share must be in (0, 1), got {eval_share!r}"
        raise ValueError(msg)
    names = sorted(set(groups))
    if len(names) < 2:
        msg = f"a split needs at least 2 groups, got {len(names)}: {names}"
        raise ValueError(msg)
    score = {g: group_fraction(g, seed) for g in names}
    held = {g for g in names if score[g] < eval_share}
    if not held:
        held = {min(names, key=lambda g: (score[g], g))}
    if len(held) == len(names):
        held.discard(max(names, key=lambda g: (score[g], g)))
    return [g for g in names if g not in held], sorted(held)
