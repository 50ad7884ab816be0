"""``weldinspect train --from-store``: learn from the reviews, and say whether that helped.

One run, into one output folder (``runs/from-store-<UTC time>/`` by default):

1. **Data** (:mod:`inspection.train.review_data`): the store's reviewed inspections become a data set
   in the weld-porosity schema (``annotations.jsonl`` + ``images/``, its sha256), grouped by machine
   and part; whole groups are held out (``train.jsonl`` / ``eval.jsonl``, ``split.json``).
2. **Challenger** (:mod:`inspection.train.challenger`): trained on the training groups' reviewed
   photos plus, with ``base``, every photo of a base data set (e.g. ``../shared/data/weld-porosity``;
   training only, never evaluated on), by default fine-tuned from the champion's weights; written
   as an artifact to ``challenger/``.
3. **Comparison** (:mod:`inspection.train.compare`): champion and challenger grade the held-out
   photos; pore-level figures, confusion matrices, FROC, and the verdict under the fixed rule.
4. **Report**: ``report.json`` (machine-readable; ``challenger.sha256`` and ``metrics`` are what
   ``weldinspect model promote --report`` reads) and ``report.html`` (self-contained).

Usage problems (no inspections, no reviews, too few groups, a missing base data set or champion)
raise :class:`FromStoreError` with a message naming what is missing (the CLI exits 2).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspection.store.db import Store
from inspection.train.compare import (
    REPORT_SCHEMA,
    SCORE_FLOOR,
    HeldOutPhoto,
    decide,
    headline,
    model_figures,
    run_model,
)
from inspection.train.config import TrainConfig, write_resolved_config
from inspection.train.review_data import (
    POINT_BOX_FRACTION,
    ReviewDataError,
    ReviewDataset,
    write_dataset,
)
from inspection.types import Box

log = logging.getLogger(__name__)

DEFAULT_RECIPE = Path("scripts/configs/final_lite0.yaml")
"""The training config used when none is given: the shipped default model's recipe (relative to
the repository root)."""
CHALLENGER_DIR = "challenger"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


class FromStoreError(ValueError):
    """A from-store run cannot start; the message names what is missing and what is needed."""


@dataclass(frozen=True)
class FromStoreOptions:
    """What one run needs besides the store.

    ``eval_share``: share of the groups held out (by the hash rule of ``review_data``); ``seed``:
    the split's seed (default: the config's); ``fine_tune``: start from the champion's weights;
    ``point_fraction``: a point mark's box side as a share of the image's long side; ``version``:
    the challenger's (default ``<champion X.Y.Z>+review.<UTC time>``); ``db_hint``: the store URL
    as the next command should name it (passwords hidden); ``home``: ``--home`` for that command.
    """

    out_dir: Path
    config: TrainConfig
    champion_dir: Path
    config_source: str = "default"
    base_root: Path | None = None
    eval_share: float = 0.3
    seed: int | None = None
    min_groups: int = 2
    fine_tune: bool = True
    point_fraction: float = POINT_BOX_FRACTION
    version: str | None = None
    score_floor: float = SCORE_FLOOR
    command: str = ""
    db_hint: str = ""
    home: Path | None = None
    models_root: Path | None = None


@dataclass(frozen=True)
class FromStoreResult:
    """Where the run wrote its outputs, and the report document."""

    out_dir: Path
    report_json: Path
    report_html: Path
    challenger_dir: Path
    report: dict[str, Any]

    @property
    def better(self) -> bool:
        return bool(self.report["verdict"]["challenger_better"])


def default_out_dir(runs: Path, now: datetime | None = None) -> Path:
    """``<runs>/from-store-<YYYYMMDDTHHMMSSZ>``."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return runs / f"from-store-{stamp}"


def held_out_photos(dataset: ReviewDataset) -> list[HeldOutPhoto]:
    """The held-out photos with their marked pores and the reviewer's final grades."""
    out = []
    for item in dataset.held_out:
        rec = item.record
        pores = tuple(Box(*o.box, "porosity") for o in rec.objects if o.label == "porosity")
        out.append(
            HeldOutPhoto(
                name=rec.image,
                group=rec.group or "",
                path=dataset.root / rec.image,
                pores=pores,
                porosity_grade=item.photo.porosity_grade,
                spatter_grade=item.photo.spatter_grade,
            )
        )
    return out


def _check_inputs(opts: FromStoreOptions) -> None:
    from inspection.model.artifact import CONFIG_FILE, WEIGHTS_FILE

    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (opts.champion_dir / name).is_file():
            msg = f"champion {opts.champion_dir} is not a model artifact folder: {name} is missing"
            raise FromStoreError(msg)
    if opts.base_root is not None and not (opts.base_root / "annotations.jsonl").is_file():
        msg = f"--base {opts.base_root}: annotations.jsonl is missing (give a data set folder with images/)"
        raise FromStoreError(msg)
    if not 0 < opts.eval_share < 1:
        msg = f"--eval-share must be between 0 and 1 (exclusive), got {opts.eval_share}"
        raise FromStoreError(msg)
    if opts.min_groups < 2:
        msg = f"--min-groups must be at least 2 (one group to train on, one held out), got {opts.min_groups}"
        raise FromStoreError(msg)
    if not 0 < opts.point_fraction <= 1:
        msg = f"--point-box must be a share of the image's long side in (0, 1], got {opts.point_fraction}"
        raise FromStoreError(msg)


def _samples(
    cfg: TrainConfig,
    root: Path,
    manifest: str,
    cache_dir: Path,
    *,
    corrections: Sequence[Any] = (),
    max_images: int = 0,
) -> tuple[list[Any], Any]:
    """The cached strip samples of ``root/manifest`` at the config's preprocessing."""
    from inspection.train.cache import load_or_build_cache

    samples, _scores, info = load_or_build_cache(
        root,
        manifest,
        cfg.preprocess,
        cache_dir=cache_dir,
        cache_scale=cfg.data.cache_scale,
        porosity_thresholds=cfg.grading.porosity_thresholds,
        max_images=max_images,
        corrections=corrections,
    )
    return samples, info


def next_commands(
    opts: FromStoreOptions, challenger_dir: Path, name: str, version: str, report: Path
) -> list[str]:
    """The commands that put the challenger below the models root and promote it on this report."""
    from inspection.model.artifact import models_root

    root = opts.models_root or models_root()
    target = root / name / version
    promote = [
        "weldinspect",
        "model",
        "promote",
        str(target),
        "--db",
        opts.db_hint or "URL",
        "--report",
        str(report),
    ]
    if opts.home is not None:
        promote += ["--home", str(opts.home)]
    if opts.models_root is not None:
        promote += ["--models-root", str(opts.models_root)]
    return [shlex.join(["cp", "-r", str(challenger_dir), str(target)]), shlex.join(promote)]


def _card(
    champion: Any, version: str, dataset: ReviewDataset, init: str, report: dict[str, Any] | None
) -> str:
    lines = [
        f"# Model card: {champion.name} {version} (challenger, not shipped)",
        "",
        "Trained by `weldinspect train --from-store` on the store's reviewed inspections "
        f"({len(dataset.train)} photos of {len(dataset.train_groups)} groups) "
        f"{init}. Calibration (temperatures, abstain rules, peak thresholds) is the champion's "
        f"{champion.name} {champion.version}; OOD statistics are fitted on the training photos.",
        "",
        f"Data set manifest sha256 `{dataset.manifest_sha256}`; {len(dataset.held_out)} photos of "
        f"{len(dataset.eval_groups)} groups were held out and never trained on.",
    ]
    if report is not None:
        v = report["verdict"]
        m = report["metrics"]
        lines += [
            "",
            "## Held-out comparison (report.json next to this run)",
            "",
            f"Verdict: **{v['text']}**. Pore recall {m.get('champion_pore_recall')} (champion) -> "
            f"{m.get('held_out_pore_recall')} (challenger); findings per good photo "
            f"{m.get('champion_findings_per_good_photo')} -> {m.get('held_out_findings_per_good_photo')}; "
            f"false accept {m.get('champion_false_accept')} -> {m.get('held_out_false_accept')}.",
        ]
    return "\n".join(lines) + "\n"


def flat_metrics(champ: dict[str, Any], chall: dict[str, Any], better: bool) -> dict[str, Any]:
    """The figures a promotion record carries: the challenger's held-out figures, the champion's
    for comparison, and the verdict (plain numbers, None = not measurable)."""
    out: dict[str, Any] = {}
    for key in (
        "pore_recall",
        "findings_per_good_photo",
        "false_accept",
        "porosity_grade_agreement",
        "spatter_grade_agreement",
        "review_share",
        "story_agreement",
    ):
        out[f"held_out_{key}"] = chall[key]
        out[f"champion_{key}"] = champ[key]
    for key in ("held_out_photos", "held_out_pore_boxes", "held_out_good_photos"):
        out[key] = chall[key]
    out["operating_threshold"] = chall["operating_threshold"]
    out["challenger_better"] = better
    return out


def run_from_store(store: Store, opts: FromStoreOptions) -> FromStoreResult:
    """Run the whole loop (module docstring) and return where the report is."""
    from inspection.data.corrections import read_corrections
    from inspection.model.artifact import read_config
    from inspection.train.challenger import challenger_version, fine_tune_config, train_challenger
    from inspection.train.compare_html import render_html

    _check_inputs(opts)
    t0 = time.perf_counter()
    out = opts.out_dir
    champion = read_config(opts.champion_dir)
    cfg = opts.config
    seed = cfg.seed if opts.seed is None else opts.seed
    try:
        dataset = write_dataset(
            store,
            out,
            eval_share=opts.eval_share,
            seed=seed,
            min_groups=opts.min_groups,
            point_fraction=opts.point_fraction,
            porosity_thresholds=cfg.grading.porosity_thresholds,
        )
    except ReviewDataError as exc:
        raise FromStoreError(str(exc)) from exc
    if opts.fine_tune:
        cfg = fine_tune_config(cfg, champion)
    cfg = cfg.model_copy(update={"output_dir": out.parent.resolve(), "name": out.name})
    write_resolved_config(cfg, out)
    reviewed, rinfo = _samples(cfg, out, "train.jsonl", out / "cache")
    base: list[Any] = []
    base_sha = None
    corrections_sha = None
    if opts.base_root is not None:
        corrections = (
            read_corrections([cfg.resolve(p) for p in cfg.data.corrections]) if cfg.data.corrections else []
        )
        base, binfo = _samples(
            cfg,
            opts.base_root,
            "annotations.jsonl",
            cfg.resolve(cfg.data.cache_dir),
            corrections=corrections,
            max_images=cfg.data.max_images,
        )
        base_sha, corrections_sha = binfo.manifest_sha256, binfo.corrections_sha256
    version = opts.version or challenger_version(champion.version)
    init = (
        f"fine-tuned from the champion {champion.name} {champion.version} (all weights)"
        if opts.fine_tune
        else f"trained from {'ImageNet weights' if cfg.pretrained else 'random weights'} (not the champion's)"
    )
    data_note = (
        f"{len(reviewed)} reviewed photos ({len(dataset.train_groups)} groups) of the store (manifest above)"
        + (f"; plus {len(base)} photos of {opts.base_root} (manifest sha256 {base_sha})" if base else "")
        + f"; {init}"
    )
    challenger = train_challenger(
        cfg,
        reviewed + base,
        champion_dir=opts.champion_dir,
        out_dir=out / CHALLENGER_DIR,
        version=version,
        fine_tune=opts.fine_tune,
        manifest_sha256=rinfo.manifest_sha256,
        data_note=data_note,
        command=opts.command,
        card=_card(champion, version, dataset, init, None),
    )
    photos = held_out_photos(dataset)
    runs = {
        role: run_model(directory, photos, floor=opts.score_floor, threads=cfg.threads, role=role)
        for role, directory in (("champion", opts.champion_dir), ("challenger", challenger.directory))
    }
    figures = {role: model_figures(run, photos) for role, run in runs.items()}
    heads = {role: headline(f) for role, f in figures.items()}
    verdict = decide(heads["champion"], heads["challenger"])
    report_json = out / REPORT_JSON
    metrics = flat_metrics(heads["champion"], heads["challenger"], verdict.better)
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": opts.command,
        "store": {"url": opts.db_hint or store.url, "images_dir": str(store.images.root)},
        "manifest": {
            "path": "annotations.jsonl",
            "sha256": dataset.manifest_sha256,
            "train_sha256": rinfo.manifest_sha256,
            "records": len(dataset.photos),
        },
        "split": json.loads((out / "split.json").read_text()),
        "data": dataset.summary(),
        "training": {
            "config": opts.config_source,
            "init": init,
            "fine_tune": opts.fine_tune,
            "base": None if opts.base_root is None else str(opts.base_root),
            "base_photos": len(base),
            "base_manifest_sha256": base_sha,
            "base_corrections_sha256": corrections_sha,
            "reviewed_train_photos": len(reviewed),
            "calibration": f"the champion's ({champion.name} {champion.version}); OOD statistics refitted",
            "arch": cfg.arch,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
        },
        "rules": {
            "point_box_fraction": opts.point_fraction,
            "grow_fraction": 0.25,
            "backend": "torch",
            "score_floor": opts.score_floor,
        },
        "champion": {**figures["champion"], "headline": heads["champion"]},
        "challenger": {
            **figures["challenger"],
            "headline": heads["challenger"],
            "training": challenger.to_json(),
            "metrics": metrics,
        },
        "metrics": metrics,
        "verdict": verdict.to_dict(),
        "next": next_commands(opts, challenger.directory, challenger.name, challenger.version, report_json),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    _write(report_json, json.dumps(report, indent=2, allow_nan=False) + "\n")
    report_html = out / REPORT_HTML
    _write(report_html, render_html(report))
    card = _card(champion, version, dataset, init, report)
    _write(challenger.directory / "MODEL_CARD.md", card)
    log.info("report written to %s (%s)", report_json, verdict.text)
    return FromStoreResult(out, report_json, report_html, challenger.directory, report)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
