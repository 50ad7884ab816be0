#!/usr/bin/env python
"""Pore-level evaluation (issue 17): labelled-pore recall, findings per good-weld photo, FROC,
false accepts, per weld.

    # a leave-one-weld-out run (scripts/train.py --config scripts/configs/lowo_*.yaml):
    .venv/bin/python scripts/eval_pores.py --run runs/lowo-resnet18-w05 --plot
    # a shipped artifact (trained on every dev weld: its dev-weld figures are NOT held out):
    .venv/bin/python scripts/eval_pores.py --artifact models/weld-grader/2026.12.1 --plot
    # (re)write the committed list of good-weld crops from ../shared/data/weld-photos-unlabelled:
    .venv/bin/python scripts/eval_pores.py --write-manifest

LOWO run: for every fold with ``fold-<weld>/best.pt`` the network is rebuilt from the run's
``config.resolved.yaml``, given the run's calibration (``calibration.json``: temperatures, abstain
rules, peak thresholds) and OOD statistics fitted on that fold's training photos exactly as
``inspection.train.final.run_final`` does for a shipped model, and written as an artifact to
``fold-<weld>/artifact/``; ``inspection.pipeline.Inspector`` then grades the fold's held-out
photos and the good-weld crops (no fold trained on those; the crop figures are the mean over
folds). The rules (grown boxes, threshold semantics, false accepts) are in
``inspection/train/pore_eval.py``. Findings are collected once with the porosity peak threshold
lowered to ``--score-floor`` and filtered by score for each FROC point; the headline figures are
at the artifact's own peak threshold, so they equal what the shipped path outputs.

Writes a JSON (``--out``; default ``<run>/pore_eval.json`` or
``runs/pore_eval/<name>-<version>.json``) and, with ``--plot``, a FROC plot PNG beside it. Skips
(exit 0, message on stderr) when the data under ``--data`` (default ``../shared/data``) is absent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspection.train.pore_eval import (  # noqa: E402  (after the sys.path line, like the other scripts)
    CROP_MARGIN,
    GROW_FRACTION,
    GoodCrop,
    PhotoOutcome,
    by_group,
    fit_zero_rule,
    froc,
    parse_yolo_labels,
    select_good_crops,
    summarise,
    with_zero_rule,
)
from inspection.types import Box  # noqa: E402

log = logging.getLogger("eval_pores")

GOOD_MANIFEST = REPO / "data" / "manifests" / "good_weld_crops.jsonl"
FOLD_ARTIFACT = "artifact"
PORE_FREE_WELD = "weld00"
SCORE_FLOOR = 0.05
GOOD_GROUP = "good_weld_crops"


class EvalError(RuntimeError):
    """The inputs cannot be evaluated (the message names the file and what was expected)."""


def shared_data_dir() -> Path:
    """``$WELDINSPECT_SHARED_DATA`` (as the tests use it) or ``<repo>/../shared/data``."""
    env = os.environ.get("WELDINSPECT_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def threshold_grid(floor: float, operating: Iterable[float]) -> list[float]:
    """FROC thresholds: ``floor`` to 0.95 in steps of 0.025 plus the operating threshold(s)."""
    grid = {round(float(t), 4) for t in np.arange(0.0, 0.9501, 0.025) if t >= floor - 1e-9}
    return sorted(grid | {floor} | {round(float(t), 6) for t in operating})


# ----------------------------------------------------------------------------------------------
# Good-weld crops


def build_good_crops(unlabelled: Path, *, margin: float = CROP_MARGIN, min_side: int = 32) -> list[GoodCrop]:
    """Select the good-weld crops from ``unlabelled/labels/*.txt`` (+ the image sizes)."""
    from PIL import Image as PILImage

    labels_dir, images_dir = unlabelled / "labels", unlabelled / "images"
    if not labels_dir.is_dir() or not images_dir.is_dir():
        msg = f"{unlabelled} must hold labels/ and images/ (see its DATA_CARD.md)"
        raise EvalError(msg)
    rows = []
    for label_file in sorted(labels_dir.glob("*.txt")):
        images = sorted(images_dir.glob(label_file.stem + ".*"))
        if not images:
            log.warning("no image for %s; skipped", label_file)
            continue
        with PILImage.open(images[0]) as im:
            width, height = im.size
        labels = parse_yolo_labels(label_file.read_text(), width, height, name=str(label_file))
        rows.append((images[0].name, width, height, labels))
    crops = select_good_crops(rows, margin=margin, min_side=min_side)
    n_groups = len({r[0].partition(".rf.")[0] for r in rows})
    log.info("good-weld crops: %d of %d source images (%d label files)", len(crops), n_groups, len(rows))
    return crops


def crop_records(crops: Sequence[GoodCrop], unlabelled: Path, margin: float) -> list[dict[str, Any]]:
    """Manifest rows (file name, source group, boxes, sha256 of the source file)."""
    from inspection.train.cache import file_sha256

    return [
        {
            "image": f"images/{c.image}",
            "group": c.group,
            "good_weld_box": list(c.box),
            "crop": list(c.crop),
            "margin": margin,
            "width": c.width,
            "height": c.height,
            "sha256": file_sha256(unlabelled / "images" / c.image),
        }
        for c in crops
    ]


def write_good_manifest(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    tmp.replace(path)
    log.info("wrote %d good-weld crops to %s", len(records), path)


def read_good_manifest(path: Path, unlabelled: Path, *, verify: bool = True) -> list[GoodCrop]:
    """The crops listed in ``path``; with ``verify`` each source file's sha256 must match."""
    from inspection.train.cache import file_sha256

    crops = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            crop = GoodCrop(
                image=Path(r["image"]).name,
                group=str(r["group"]),
                box=tuple(float(v) for v in r["good_weld_box"]),  # type: ignore[arg-type]
                crop=tuple(int(v) for v in r["crop"]),  # type: ignore[arg-type]
                width=int(r["width"]),
                height=int(r["height"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            msg = (
                f"{path} line {lineno}: not a good-weld crop record ({exc}); expected keys image, "
                "group, good_weld_box, crop, width, height, sha256"
            )
            raise EvalError(msg) from exc
        if verify:
            source = unlabelled / "images" / crop.image
            if not source.is_file():
                msg = f"{path} line {lineno}: {source} does not exist"
                raise EvalError(msg)
            if file_sha256(source) != r.get("sha256"):
                msg = (
                    f"{path} line {lineno}: {source} has changed (sha256 differs); "
                    "rebuild the list with --write-manifest"
                )
                raise EvalError(msg)
        crops.append(crop)
    return crops


def load_crop(unlabelled: Path, crop: GoodCrop) -> np.ndarray:
    from inspection.image.ingest import read_image

    image = read_image(unlabelled / "images" / crop.image)
    x0, y0, x1, y1 = crop.crop
    return np.ascontiguousarray(image[y0:y1, x0:x1])


# ----------------------------------------------------------------------------------------------
# Running an inspector


def with_score_floor(inspector: Any, floor: float) -> tuple[float, float]:
    """Have ``inspector`` report porosity findings down to ``floor`` (at most its own peak
    threshold) for the FROC sweep (:attr:`Inspector.finding_floor`: grades, review reasons and
    standards still count only the findings at the model's own threshold). Returns ``(the model's
    own threshold, the floor used)``."""
    operating = float(inspector.grader.config.thresholds.peak.porosity)
    if floor > operating:
        log.warning(
            "score floor %.3f is above the model's peak threshold %.3f: using the latter", floor, operating
        )
        floor = operating
    inspector.finding_floor = floor
    return operating, floor


def _corrections_summary(data_root: Path, corrections: Sequence[Any]) -> str | None:
    """What the corrections change in ``weld-porosity`` (labels added / removed, unmatched)."""
    if not corrections:
        return None
    from inspection.data.corrections import apply_corrections
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
    from inspection.model.files import sha256_file

    manifest = data_root / "weld-porosity" / "annotations.jsonl"
    if not manifest.is_file():
        return None
    records, _ = read_manifest(manifest, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    _, report = apply_corrections(records, corrections, lambda r: sha256_file(r.path()))
    return report.summary()


def labelled_records(
    root: Path, groups: Sequence[str] | None, limit: int, corrections: Sequence[Any] = ()
) -> list[Any]:
    """Manifest records of ``root`` (only ``groups`` when given), at most ``limit`` per group, with
    the label ``corrections`` (``data/label-corrections``) applied over them when given."""

    from inspection.data.corrections import apply_corrections
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
    from inspection.model.files import sha256_file

    records, _ = read_manifest(
        root / "annotations.jsonl", label_map=REAL_POROSITY_LABEL_MAP, check_images=False
    )
    if corrections:
        records, report = apply_corrections(records, corrections, lambda r: sha256_file(r.path()))
        log.info("label corrections: %s", report.summary())
    out: list[Any] = []
    seen: dict[str, int] = {}
    for r in records:
        g = r.group or "none"
        if groups is not None and g not in groups:
            continue
        if limit and seen.get(g, 0) >= limit:
            continue
        seen[g] = seen.get(g, 0) + 1
        out.append(r)
    return out


def pores_of(record: Any) -> tuple[Box, ...]:
    out = []
    for o in record.objects:
        if o.label == "porosity":
            x0, y0, x1, y1 = o.box
            out.append(Box(x0, y0, x1, y1, "porosity"))
    return tuple(out)


def scaled_box(box: Box, scale: float) -> Box:
    return Box(box.x0 * scale, box.y0 * scale, box.x1 * scale, box.y1 * scale, box.label)


def inspect_labelled(inspector: Any, records: Sequence[Any], scale: float = 1.0) -> list[PhotoOutcome]:
    """Held-out photos through the inspector; with ``scale`` != 1 each photo is first resized by
    ``scale`` (area interpolation down, cubic up) and its pore boxes with it: the magnification test."""
    from inspection.image.ingest import read_image

    out = []
    for r in records:
        pores = pores_of(r)
        if scale == 1.0:
            result = inspector.inspect(r.path())
        else:
            img = read_image(r.path())
            size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            result = inspector.inspect(np.ascontiguousarray(cv2.resize(img, size, interpolation=interp)))
            pores = tuple(scaled_box(b, scale) for b in pores)
        out.append(PhotoOutcome.from_result(r.image, r.group or "none", pores, result))
    return out


def inspect_crops(inspector: Any, crops: Sequence[GoodCrop], unlabelled: Path) -> list[PhotoOutcome]:
    out = []
    for c in crops:
        result = inspector.inspect(load_crop(unlabelled, c))
        out.append(PhotoOutcome.from_result(c.image, c.group, (), result))
    return out


def _froc_dict(
    labelled: Sequence[PhotoOutcome], good: Sequence[PhotoOutcome], ts: Sequence[float]
) -> list[dict[str, Any]]:
    return [p.to_dict() for p in froc(labelled, good, ts)]


def pore_free_figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "share_graded_ge1": summary["graded_ge1"]["value"],
        "share_graded_ge1_without_review": summary["graded_ge1_without_review"]["value"],
        "findings_per_photo": summary["findings_per_photo"]["value"],
        "photos": summary["photos"],
    }


# ----------------------------------------------------------------------------------------------
# LOWO run: one artifact per fold


def fold_artifact(
    run_dir: Path, cfg: Any, fold: str, calib: dict[str, Any], samples: Sequence[Any], manifest_sha: str
) -> Path:
    """Write ``run_dir/fold-<fold>/artifact/`` from the fold's ``best.pt``, the run's calibration
    and OOD statistics of the fold's training photos (as ``run_final`` makes a shipped artifact)."""
    import re

    import torch

    from inspection.model.artifact import Provenance, save_artifact
    from inspection.model.net import build_model
    from inspection.train.final import calibrated_config, fit_ood
    from inspection.train.fit import BEST

    ckpt = run_dir / f"fold-{fold}" / BEST
    model = build_model(cfg.arch, width_mult=cfg.width_mult, embed_dim=cfg.embed_dim, pretrained=False)
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state["model"], strict=True)
    except (KeyError, RuntimeError) as exc:
        net = f"{cfg.arch} (width_mult {cfg.width_mult}, embed_dim {cfg.embed_dim})"
        msg = f"{ckpt} does not fit the run's {net}: {exc}"
        raise EvalError(msg) from exc
    train = [s for s in samples if s.group != fold]
    if not train:
        msg = (
            f"fold {fold}: no training photos left in the data (groups: {sorted({s.group for s in samples})})"
        )
        raise EvalError(msg)
    ood_threshold, ood_tiles = fit_ood(model, cfg, train)
    slug = re.sub(r"[^a-z0-9._-]+", "-", f"{run_dir.name}-fold-{fold}".lower()).strip("-._") or "fold"
    config = calibrated_config(
        cfg,
        calib,
        ood_threshold,
        name=slug,
        version="0.0.0+" + (re.sub(r"[^0-9A-Za-z.]+", ".", fold).strip(".") or "fold"),
        provenance=Provenance(
            training_manifest_sha256=manifest_sha,
            command="scripts/eval_pores.py",
            data=f"LOWO run {run_dir.name}, fold {fold}: trained without {fold} (epoch {state.get('epoch')})",
        ),
    )
    out = run_dir / f"fold-{fold}" / FOLD_ARTIFACT
    card = f"# {slug}\nFold artifact of LOWO run {run_dir.name} for pore evaluation; not for shipping.\n"
    save_artifact(
        out, model, config, card, {"ood_threshold": ood_threshold, "ood_tiles": ood_tiles}, overwrite=True
    )
    return out


FINDINGS_FILE = "held_out_findings.jsonl"
"""Per held-out photo: fold, grade, review flag and every finding down to the score floor (the
input of ``weldinspect data audit``)."""


def write_findings(path: Path, per_fold: Sequence[tuple[str, Sequence[PhotoOutcome], Any]]) -> None:
    """One JSON line per held-out photo of every fold (see :data:`FINDINGS_FILE`)."""
    lines = []
    for fold, outcomes, _good in per_fold:
        for o in outcomes:
            findings = [
                {"kind": "porosity", "x": round(f.x, 2), "y": round(f.y, 2),
                 "diameter_px": round(f.diameter_px, 2), "score": round(f.score, 4)}
                for f in o.findings
            ]  # fmt: skip
            row = {"image": o.name, "group": o.group, "fold": fold, "grade": o.grade,
                   "needs_review": o.needs_review, "findings": findings}  # fmt: skip
            lines.append(json.dumps(row))
    path.write_text("".join(line + "\n" for line in lines))
    log.info("wrote %s (%d photos)", path, len(lines))


def evaluate_run(
    run_dir: Path,
    *,
    crops: Sequence[GoodCrop],
    unlabelled: Path | None,
    labelled_root: Path | None = None,
    floor: float = SCORE_FLOOR,
    limit: int = 0,
    threads: int | None = None,
    corrections: Sequence[Any] = (),
    scales: Sequence[float] = (),
    scale_limit: int = 40,
) -> dict[str, Any]:
    """Every figure of a LOWO run: per held-out weld, the good crops (per fold and mean), FROC."""
    import yaml

    from inspection.pipeline import Inspector
    from inspection.train.config import TrainConfig
    from inspection.train.run import load_samples

    cfg_path, calib_path = run_dir / "config.resolved.yaml", run_dir / "calibration.json"
    for p in (cfg_path, calib_path):
        if not p.is_file():
            msg = (
                f"{p} does not exist: --run needs a finished LOWO run directory "
                "(config.resolved.yaml, calibration.json, fold-<weld>/best.pt)"
            )
            raise EvalError(msg)
    cfg = TrainConfig.model_validate(yaml.safe_load(cfg_path.read_text()))
    if labelled_root is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"root": labelled_root})})
    calib = json.loads(calib_path.read_text())
    folds = [f for f in (cfg.folds_to_run or cfg.data.folds) if (run_dir / f"fold-{f}" / "best.pt").is_file()]
    for f in sorted(set(cfg.folds_to_run or cfg.data.folds) - set(folds)):
        log.warning("%s has no fold-%s/best.pt: fold %s skipped", run_dir, f, f)
    if not folds:
        msg = (
            f"{run_dir} holds no fold-<weld>/best.pt for the folds {list(cfg.folds_to_run or cfg.data.folds)}"
        )
        raise EvalError(msg)
    t0 = time.perf_counter()
    samples, _, info = load_samples(cfg)
    records = labelled_records(cfg.resolve(cfg.data.root), folds, limit, corrections)
    held: list[PhotoOutcome] = []
    good_all: list[PhotoOutcome] = []
    fold_out: dict[str, Any] = {}
    operating: set[float] = set()
    floors: set[float] = set()
    per_fold_pairs = []
    for fold in folds:
        tf = time.perf_counter()
        art = fold_artifact(run_dir, cfg, fold, calib, samples, info.manifest_sha256)
        inspector = Inspector.from_artifact(art, backend="torch", threads=threads)
        op, used = with_score_floor(inspector, floor)
        operating.add(op)
        floors.add(used)
        outcomes = inspect_labelled(inspector, [r for r in records if r.group == fold])
        good = inspect_crops(inspector, crops, unlabelled) if crops and unlabelled is not None else []
        held += outcomes
        good_all += good
        per_fold_pairs.append((fold, outcomes, good))
        per_scale = {}
        for sc in scales:
            subset = [r for r in records if r.group == fold][:scale_limit]
            scaled = inspect_labelled(inspector, subset, sc)
            per_scale[str(sc)] = summarise(f"{fold} x{sc}", scaled, op, held_out=True).to_dict()
        fold_out[fold] = {
            "artifact": str(art),
            "operating_threshold": op,
            "held_out": summarise(fold, outcomes, op, held_out=True).to_dict(),
            "rescaled": per_scale,
            GOOD_GROUP: summarise(GOOD_GROUP, good, op, held_out=True).to_dict() if good else None,
            "seconds": round(time.perf_counter() - tf, 1),
        }
        log.info(
            "fold %s: %d held-out photos, %d crops in %.0f s",
            fold,
            len(outcomes),
            len(good),
            time.perf_counter() - tf,
        )
    write_findings(run_dir / FINDINGS_FILE, per_fold_pairs)
    op = max(operating)
    if len(operating) > 1:
        log.warning(
            "folds have different operating thresholds %s; pooled figures use %.3f", sorted(operating), op
        )
    ts = threshold_grid(max(floors), operating)
    for fold, outcomes, good in per_fold_pairs:
        fold_out[fold]["froc"] = _froc_dict(outcomes, good, ts)
    pooled_good = summarise(
        GOOD_GROUP,
        good_all,
        op,
        held_out=True,
        notes=("mean over folds: every fold model graded every crop",),
    ).to_dict()
    pore_free = fold_out.get(PORE_FREE_WELD, {}).get("held_out")
    zero_rule = zero_rule_figures(per_fold_pairs, op)
    return {
        "zero_rule": zero_rule,
        "kind": "lowo",
        "run": str(run_dir),
        "arch": cfg.arch,
        "width_mult": cfg.width_mult,
        "folds": folds,
        "operating_threshold": op,
        "per_fold": fold_out,
        "held_out_pooled": summarise("held_out_pooled", held, op, held_out=True).to_dict(),
        f"{GOOD_GROUP}_mean_over_folds": pooled_good if good_all else None,
        "pore_free_weld": {PORE_FREE_WELD: pore_free_figures(pore_free)} if pore_free else None,
        "froc_pooled": _froc_dict(held, good_all, ts),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def zero_rule_figures(
    per_fold: Sequence[tuple[str, Sequence[PhotoOutcome], Sequence[PhotoOutcome]]],
    threshold: float,
    max_false_accept: float = 0.02,
) -> dict[str, Any]:
    """The zero rule (``max_p_defect_for_zero``) fitted to the false-accept target on the grade a
    station gets, two ways:

    * ``pooled``: fitted on every held-out weld together (what a release ships; its figures on the
      same welds flatter it);
    * ``cross_fold``: per held-out weld, fitted on the *other* held-out welds only, then applied to
      this weld and to the good crops: the honest estimate of what the rule does on a new weld.
    """
    held_all = [o for _, outcomes, _ in per_fold for o in outcomes]
    pooled = fit_zero_rule(held_all, max_false_accept)
    out: dict[str, Any] = {"target_false_accept": max_false_accept, "pooled": pooled, "per_fold": {}}
    for fold, outcomes, good in per_fold:
        others = [o for f, oc, _ in per_fold if f != fold for o in oc]
        cross = fit_zero_rule(others, max_false_accept) if any(o.pores for o in others) else pooled
        row: dict[str, Any] = {"cross_fold_rule": cross}
        for name, rule in (("cross_fold", cross), ("pooled", pooled)):
            held = summarise(fold, with_zero_rule(outcomes, rule), threshold, held_out=True)
            crops = summarise(GOOD_GROUP, with_zero_rule(good, rule), threshold, held_out=True)
            row[name] = {"held_out": held.to_dict(), GOOD_GROUP: crops.to_dict() if good else None}
        out["per_fold"][fold] = row
    return out


# ----------------------------------------------------------------------------------------------
# Shipped artifact


def evaluate_artifact(
    directory: Path,
    *,
    crops: Sequence[GoodCrop],
    unlabelled: Path | None,
    labelled_root: Path | None,
    floor: float = SCORE_FLOOR,
    limit: int = 0,
    backend: str = "auto",
    threads: int | None = None,
    corrections: Sequence[Any] = (),
) -> dict[str, Any]:
    """The good crops and (when ``labelled_root``) the dev welds, marked NOT held out."""
    from inspection.pipeline import Inspector

    t0 = time.perf_counter()
    inspector = Inspector.from_artifact(directory, backend=backend, threads=threads)
    op, floor = with_score_floor(inspector, floor)
    good = inspect_crops(inspector, crops, unlabelled) if crops and unlabelled is not None else []
    t_good = time.perf_counter() - t0
    dev: list[PhotoOutcome] = []
    if labelled_root is not None:
        dev = inspect_labelled(inspector, labelled_records(labelled_root, None, limit, corrections))
    ts = threshold_grid(floor, [op])
    dev_groups = {
        g: summarise(g, items, op, held_out=False, notes=("trained on this weld: not held out",)).to_dict()
        for g, items in by_group(dev).items()
    }
    pore_free = dev_groups.get(PORE_FREE_WELD)
    info = inspector.grader.info
    return {
        "kind": "artifact",
        "artifact": str(directory),
        "model": {"name": info.name, "version": info.version, "sha256": info.sha256, "runtime": info.runtime},
        "operating_threshold": op,
        GOOD_GROUP: summarise(
            GOOD_GROUP,
            good,
            op,
            held_out=True,
            notes=("no weld-photos-unlabelled photo was used in training",),
        ).to_dict()
        if good
        else None,
        "dev_welds_not_held_out": dev_groups,
        "pore_free_weld": {PORE_FREE_WELD: {**pore_free_figures(pore_free), "held_out": False}}
        if pore_free
        else None,
        "froc_dev_welds_not_held_out": _froc_dict(dev, good, ts),
        "seconds_good_crops": round(t_good, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }


# ----------------------------------------------------------------------------------------------
# Plot


def plot_froc(curves: dict[str, tuple[list[dict[str, Any]], float]], path: Path, title: str) -> None:
    """Recall against findings per good photo, one line per curve, the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, (points, op) in curves.items():
        pts = [p for p in points if p["recall"] is not None and p["findings_per_good_photo"] is not None]
        if not pts:
            continue
        style = "--" if "not held out" in name else "-"
        (line,) = ax.plot(
            [p["findings_per_good_photo"] for p in pts], [p["recall"] for p in pts], style, label=name
        )
        at = min(pts, key=lambda p: abs(p["threshold"] - op))
        ax.plot([at["findings_per_good_photo"]], [at["recall"]], "o", color=line.get_color())
    ax.set_xlabel("porosity findings per good-weld photo")
    ax.set_ylabel("labelled-pore recall (box grown 25 %)")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    log.info("FROC plot written to %s", path)


# ----------------------------------------------------------------------------------------------
# CLI


def _good_crops(args: argparse.Namespace, unlabelled: Path) -> list[GoodCrop]:
    if not (unlabelled / "labels").is_dir():
        log.warning("%s is absent: good-weld crops skipped", unlabelled)
        return []
    if args.good_manifest.is_file():
        return read_good_manifest(args.good_manifest, unlabelled)
    log.warning(
        "%s does not exist: selecting the crops in memory (write it with --write-manifest)",
        args.good_manifest,
    )
    return build_good_crops(unlabelled, margin=args.margin)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", type=Path, help="a LOWO run directory runs/<name>/")
    what.add_argument("--artifact", type=Path, help="a model artifact directory models/<name>/<version>/")
    what.add_argument("--write-manifest", action="store_true", help="(re)write --good-manifest and stop")
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    ap.add_argument("--good-manifest", type=Path, default=GOOD_MANIFEST, help="good-weld crop list (jsonl)")
    ap.add_argument("--margin", type=float, default=CROP_MARGIN, help="crop margin around Good Weld boxes")
    ap.add_argument("--score-floor", type=float, default=SCORE_FLOOR, help="lowest FROC threshold")
    ap.add_argument(
        "--limit", type=int, default=0, help="at most this many labelled photos per weld (0 = all)"
    )
    ap.add_argument("--no-dev", action="store_true", help="--artifact: skip the (not held-out) dev welds")
    ap.add_argument("--backend", default="auto", help="--artifact: torch, onnx, onnx-int8 or auto")
    ap.add_argument("--threads", type=int, default=2, help="torch / onnxruntime threads")
    ap.add_argument("--out", type=Path, default=None, help="output JSON")
    ap.add_argument(
        "--scales",
        default="",
        help="--run: also score the first --scale-limit held-out photos per weld resized by these "
        "factors (e.g. 0.5,0.75,1,1.5,2; 1 = the same subset unscaled, for comparison)",
    )
    ap.add_argument("--scale-limit", type=int, default=40, help="photos per weld for --scales")
    ap.add_argument(
        "--corrections",
        type=Path,
        action="append",
        default=[],
        help="label corrections (.jsonl or folder, e.g. data/label-corrections) applied over the manifest",
    )
    ap.add_argument(
        "--plot", nargs="?", const=True, default=None, help="write a FROC plot (PNG; default beside --out)"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from inspection.train.cache import DataMissingError

    data = args.data or shared_data_dir()
    unlabelled = data / "weld-photos-unlabelled"
    labelled = data / "weld-porosity"
    t0 = time.perf_counter()
    try:
        if args.write_manifest:
            if not (unlabelled / "labels").is_dir():
                print(
                    f"skipped: {unlabelled} is absent (nothing to select good-weld crops from)",
                    file=sys.stderr,
                )
                return 0
            crops = build_good_crops(unlabelled, margin=args.margin)
            write_good_manifest(args.good_manifest, crop_records(crops, unlabelled, args.margin))
            return 0
        have_labelled = (labelled / "annotations.jsonl").is_file()
        if not have_labelled and not (unlabelled / "labels").is_dir():
            print(
                f"skipped: no evaluation data under {data} (weld-porosity/, weld-photos-unlabelled/)",
                file=sys.stderr,
            )
            return 0
        try:
            scales = [float(v) for v in args.scales.split(",") if v.strip()]
        except ValueError:
            print(f"error: --scales must be comma-separated numbers, got {args.scales!r}", file=sys.stderr)
            return 2
        if any(not 0.1 <= v <= 4.0 for v in scales):
            print(f"error: --scales factors must be in 0.1..4, got {scales}", file=sys.stderr)
            return 2
        crops = _good_crops(args, unlabelled)
        from inspection.data.corrections import CorrectionError, read_corrections

        try:
            corrections = read_corrections(args.corrections)
        except (FileNotFoundError, CorrectionError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.run is not None:
            try:  # the held-out photos are the run's own data.root unless --data is given
                result = evaluate_run(
                    args.run,
                    crops=crops,
                    unlabelled=unlabelled,
                    labelled_root=labelled if args.data else None,
                    floor=args.score_floor,
                    limit=args.limit,
                    threads=args.threads,
                    corrections=corrections,
                    scales=scales,
                    scale_limit=args.scale_limit,
                )
            except DataMissingError as exc:
                print(f"skipped: {exc}", file=sys.stderr)
                return 0
            out = args.out or args.run / "pore_eval.json"
            curves = {
                f"held-out {f}": (v["froc"], v["operating_threshold"]) for f, v in result["per_fold"].items()
            }
            curves["pooled (good crops: mean over folds)"] = (
                result["froc_pooled"],
                result["operating_threshold"],
            )
            title = f"LOWO {args.run.name}: held-out welds vs {len(crops)} good-weld crops"
        else:
            if not args.artifact.is_dir():
                print(f"error: artifact directory {args.artifact} does not exist", file=sys.stderr)
                return 2
            result = evaluate_artifact(
                args.artifact,
                crops=crops,
                unlabelled=unlabelled,
                labelled_root=None if args.no_dev or not have_labelled else labelled,
                floor=args.score_floor,
                limit=args.limit,
                backend=args.backend,
                threads=args.threads,
                corrections=corrections,
            )
            m = result["model"]
            out = args.out or REPO / "runs" / "pore_eval" / f"{m['name']}-{m['version']}.json"
            curves = {
                "dev welds (not held out)": (
                    result["froc_dev_welds_not_held_out"],
                    result["operating_threshold"],
                )
            }
            title = (
                f"{m['name']} {m['version']} ({m['runtime']}): dev welds NOT held out "
                f"vs {len(crops)} good crops"
            )
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result.update(
        {
            "schema": "pore-eval/1",
            "grow_fraction": GROW_FRACTION,
            "score_floor": args.score_floor,
            "label_corrections": {
                "sources": [str(c) for c in args.corrections],
                "corrections": len(corrections),
                "summary": _corrections_summary(data, corrections),
            },
            "good_crops": {"manifest": str(args.good_manifest), "n": len(crops), "margin": args.margin},
            "total_seconds": round(time.perf_counter() - t0, 1),
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    log.info("pore evaluation written to %s in %.1f s", out, result["total_seconds"])
    if args.plot is not None:
        plot = out.with_suffix(".froc.png") if args.plot is True else Path(args.plot)
        plot_froc(curves, plot, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
