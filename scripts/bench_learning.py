#!/usr/bin/env python
"""Does the review loop learn? A simulated station (issue 18, item 5).

For each held-out weld W (rotated over ``--welds``):

1. **Start** from a model trained without W: the fold model of a leave-one-weld-out run
   (``--run``; ``scripts/eval_pores.py --run RUN`` writes ``fold-<W>/artifact/``), or ``--champion
   W=DIR``. Its figures on W are round 0.
2. **Station**: that model inspects every photo of W as a station does
   (:class:`inspection.pipeline.Inspector`), each inspection stored and signed in a fresh SQLite
   store (``<out>/<W>/station/``), machine ``SIM-<W>``, part ``W``.
3. **Review order**: the product's review queue (:mod:`inspection.service.web.queue`: flagged
   inspections by review value); when it runs dry, the unflagged photos in a seeded random order
   (what audit samples are). ``--order random`` shuffles all photos instead. The first
   ``max(--rounds)`` photos of that order are the ones the rounds review; **every figure is measured
   on W's other photos** (the same set in every round, never reviewed).
4. **Rounds** (``--rounds 10,20,50``: reviewed photos so far): the reviewer stand-in reviews the next
   photos of the order with W's labels (each labelled pore box becomes a box mark, the porosity grade
   is the binned count; ``record_review``, signed); then ``train --from-store``'s own pieces build
   the data set from the store (every reviewed photo trains:
   :func:`inspection.train.review_data.write_dataset` with ``hold_out=False``) and fine-tune a
   challenger from the current model (:func:`inspection.train.challenger.train_challenger`) on the
   reviewed photos plus the photos of the two other welds (``--data``'s weld-porosity); the
   challenger keeps the current model's calibration, as ``train --from-store`` does. The challenger
   is taken as promoted: the next round starts from it.
5. **Figures** after each round, on W's unreviewed photos and on the good-weld crops
   (``data/manifests/good_weld_crops.jsonl`` of ``weld-photos-unlabelled``; the rules of
   :mod:`inspection.train.pore_eval`): pore recall at the model's own threshold, recall at <= 1
   porosity finding per good photo (FROC), findings per good photo, false accepts, share graded
   >= 1 (the pore-free weld00's target), review share. Wall and CPU seconds of each round's
   training and evaluation.

Writes ``<out>/learning.json`` and a learning-curve PNG (``--plot``, default
``docs/learning_curve.png``), and prints a Markdown table for ``docs/learning.md``::

    .venv/bin/python scripts/train.py --config scripts/configs/lowo_lite0.yaml
    .venv/bin/python scripts/eval_pores.py --run runs/lowo-efficientnet-lite0
    .venv/bin/python scripts/bench_learning.py --run runs/lowo-efficientnet-lite0

Skips (exit 0, message on stderr) when the data under ``--data`` is absent. Exit 2 with one
``error:`` line for bad usage (a missing fold artifact or config, unknown weld, bad rounds).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import random
import resource
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from eval_pores import (  # noqa: E402  (after the sys.path lines, like the other scripts)
    FOLD_ARTIFACT,
    GOOD_GROUP,
    GOOD_MANIFEST,
    SCORE_FLOOR,
    inspect_crops,
    inspect_labelled,
    labelled_records,
    pores_of,
    read_good_manifest,
    threshold_grid,
    with_score_floor,
)

log = logging.getLogger("bench_learning")

DEFAULT_CONFIG = REPO / "scripts" / "configs" / "learning_lite0.yaml"
DEFAULT_PLOT = REPO / "docs" / "learning_curve.png"
STATION_ID = "SIM"
REVIEWER = "bench-learning (labels)"
TARGETS = {
    "recall_at_1_fp": 0.80,
    "false_accept": 0.02,
    "pore_free_graded_ge1": 0.10,
    "good_graded_ge2_without_review": 0.05,
}
"""The grader issue's targets (issue 17), checked after the last round."""


class BenchError(ValueError):
    """Bad usage: the message names what is missing or wrong."""


@dataclass(frozen=True)
class Options:
    data_root: Path  # weld-porosity
    unlabelled: Path | None  # weld-photos-unlabelled (None: no good crops)
    welds: tuple[str, ...]
    rounds: tuple[int, ...]
    champions: Mapping[str, Path]
    config: Path
    out_dir: Path
    order: str = "queue"
    seed: int = 1234
    threads: int = 2
    floor: float = SCORE_FLOOR
    corrections: tuple[Path, ...] = ()
    good_manifest: Path = GOOD_MANIFEST
    good_limit: int = 0


def parse_rounds(text: str) -> tuple[int, ...]:
    """``"10,20,50"`` -> ``(10, 20, 50)``: positive and strictly increasing (reviewed photos so far)."""
    try:
        rounds = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        msg = f"--rounds must be comma-separated whole numbers such as 10,20,50, got {text!r}"
        raise BenchError(msg) from exc
    if not rounds or rounds[0] < 1 or any(b <= a for a, b in itertools.pairwise(rounds)):
        msg = f"--rounds must be positive and strictly increasing (reviewed photos so far), got {text!r}"
        raise BenchError(msg)
    return rounds


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (all threads)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def recall_at_findings(points: Sequence[Mapping[str, Any]], max_findings: float = 1.0) -> float | None:
    """Best pore recall among FROC points with at most ``max_findings`` findings per good photo."""
    ok = [
        p["recall"]
        for p in points
        if p["recall"] is not None
        and p["findings_per_good_photo"] is not None
        and p["findings_per_good_photo"] <= max_findings
    ]
    return max(ok) if ok else None


def review_order(queue_ids: Sequence[str], all_ids: Sequence[str], *, order: str, seed: int) -> list[str]:
    """The order in which the reviewer stand-in works: the review queue, then the rest shuffled
    (``order="queue"``), or everything shuffled (``"random"``). Every id exactly once."""
    rng = random.Random(seed)
    if order == "random":
        out = list(all_ids)
        rng.shuffle(out)
        return out
    if order != "queue":
        msg = f"order must be 'queue' or 'random', got {order!r}"
        raise BenchError(msg)
    queued = [i for i in dict.fromkeys(queue_ids) if i in set(all_ids)]
    rest = [i for i in all_ids if i not in set(queued)]
    rng.shuffle(rest)
    return queued + rest


def review_marks(record: Any) -> tuple[list[dict[str, Any]], int]:
    """The reviewer stand-in's marks (one box mark per labelled pore) and porosity grade."""
    from inspection.types import grade_from_count

    boxes = pores_of(record)
    marks = [{"label": "porosity", "box": [round(v, 1) for v in (b.x0, b.y0, b.x1, b.y1)]} for b in boxes]
    return marks, grade_from_count(len(boxes), (1, 2, 4))


# ----------------------------------------------------------------------------------------------
# Figures


def evaluate(
    model_dir: Path,
    records: Sequence[Any],
    crops: Sequence[Any],
    unlabelled: Path | None,
    *,
    weld: str,
    floor: float,
    threads: int,
) -> dict[str, Any]:
    """The round's figures of the model in ``model_dir`` on ``records`` (never reviewed) and the crops."""
    from inspection.pipeline import Inspector
    from inspection.train.pore_eval import froc, summarise

    inspector = Inspector.from_artifact(model_dir, backend="torch", threads=threads)
    op, used = with_score_floor(inspector, floor)
    held = inspect_labelled(inspector, records)
    good = inspect_crops(inspector, crops, unlabelled) if crops and unlabelled is not None else []
    s = summarise(weld, held, op, held_out=True).to_dict()
    g = summarise(GOOD_GROUP, good, op, held_out=True).to_dict() if good else None
    points = [p.to_dict() for p in froc(held, good, threshold_grid(used, [op]))] if good else []
    return {
        "operating_threshold": op,
        "photos": s["photos"],
        "photos_with_pores": s["photos_with_pores"],
        "pore_boxes": s["recall"]["total"],
        "recall": s["recall"]["value"],
        "recall_at_1_fp": recall_at_findings(points) if s["recall"]["total"] else None,
        "findings_per_good_photo": None if g is None else g["findings_per_photo"]["value"],
        "good_photos": 0 if g is None else g["photos"],
        "good_graded_ge2_without_review": None if g is None else g["graded_ge2_without_review"]["value"],
        "false_accept": s["false_accept"]["value"],
        "graded_ge1": s["graded_ge1"]["value"],
        "findings_per_photo": s["findings_per_photo"]["value"],
        "review_share": s["review"]["value"],
        "summary": s,
        "good_summary": g,
        "froc": points,
    }


def targets_met(fig: Mapping[str, Any], *, pore_free: bool) -> dict[str, bool | None]:
    """Which of the grader issue's targets the figures meet (None: not measurable here)."""

    def at_most(v: Any, limit: float) -> bool | None:
        return None if v is None else bool(v <= limit)

    return {
        "recall_at_1_fp": None
        if pore_free or fig["recall_at_1_fp"] is None
        else bool(fig["recall_at_1_fp"] >= TARGETS["recall_at_1_fp"]),
        "false_accept": None if pore_free else at_most(fig["false_accept"], TARGETS["false_accept"]),
        "pore_free_graded_ge1": at_most(fig["graded_ge1"], TARGETS["pore_free_graded_ge1"])
        if pore_free
        else None,
        "good_graded_ge2_without_review": at_most(
            fig["good_graded_ge2_without_review"], TARGETS["good_graded_ge2_without_review"]
        ),
    }


# ----------------------------------------------------------------------------------------------
# One weld


def _station(home: Path) -> tuple[Any, Any]:
    from inspection.evidence.keys import init_key, load_signer
    from inspection.evidence.ledger import Ledger
    from inspection.store import Store

    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    init_key(home / "keys", station_id=STATION_ID)
    store = Store.open(f"sqlite:///{home / 'weldinspect.db'}", home / "images")
    return store, Ledger(store, load_signer(home / "keys"))


def inspect_at_station(
    store: Any, ledger: Any, champion: Path, records: Sequence[Any], weld: str, threads: int
) -> list[str]:
    """Every photo of the weld inspected and recorded (signed) as a station does; their ids."""
    from inspection.evidence.ledger import record_inspection
    from inspection.pipeline import Inspector
    from inspection.types import InspectionContext

    inspector = Inspector.from_artifact(champion, backend="torch", threads=threads)
    ctx = InspectionContext(machine_serial=f"SIM-{weld}", part_id=weld, station_id=STATION_ID)
    ids = []
    for r in records:
        data = r.path().read_bytes()
        result = inspector.inspect(data, ctx)
        iid, _ = record_inspection(store, ledger, result, data, config_sha256=inspector.config_sha256)
        ids.append(iid)
    return ids


def queued_ids(store: Any) -> list[str]:
    """The review queue's order (flagged inspections by value; no audit draw)."""
    from inspection.service.web.queue import refresh_candidates, review_queue

    refresh_candidates(store, key=None, audit_rate=0.0)
    _, total = review_queue(store, limit=1)
    items, _ = review_queue(store, limit=max(1, total))
    return [q.record.id for q in items]


def _base_samples(cfg: Any, data_root: Path, corrections: Sequence[Any]) -> list[Any]:
    from inspection.train.cache import load_or_build_cache

    samples, _, _ = load_or_build_cache(
        data_root,
        "annotations.jsonl",
        cfg.preprocess,
        cache_dir=cfg.resolve(cfg.data.cache_dir),
        cache_scale=cfg.data.cache_scale,
        porosity_thresholds=cfg.grading.porosity_thresholds,
        corrections=corrections,
    )
    return samples


def run_weld(
    weld: str,
    opts: Options,
    cfg: Any,
    records: Sequence[Any],
    corrections: Sequence[Any],
    crops: Sequence[Any],
) -> dict[str, Any]:
    """Round 0 and every round of ``opts.rounds`` for one held-out weld."""
    from inspection.evidence.ledger import record_review
    from inspection.model.artifact import read_config
    from inspection.train.cache import load_or_build_cache
    from inspection.train.challenger import challenger_version, fine_tune_config, train_challenger
    from inspection.train.review_data import write_dataset

    wdir = opts.out_dir / weld
    champion = opts.champions[weld]
    t0, c0 = time.perf_counter(), cpu_seconds()
    store, ledger = _station(wdir / "station")
    try:
        ids = inspect_at_station(store, ledger, champion, records, weld, opts.threads)
        by_id = dict(zip(ids, records, strict=True))
        queued = queued_ids(store)
        order = review_order(queued, ids, order=opts.order, seed=opts.seed)
        to_review = order[: opts.rounds[-1]]
        held = [by_id[i] for i in order[opts.rounds[-1] :]]
        station = {
            "photos": len(ids),
            "flagged": len(queued),
            "order": opts.order,
            "reviewed_at_most": len(to_review),
            "evaluated": len(held),
            "wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(cpu_seconds() - c0, 1),
        }
        if not held:
            msg = f"{weld}: {len(ids)} photos leave none to evaluate after {opts.rounds[-1]} reviews"
            raise BenchError(msg)
        log.info("%s: %d photos inspected, %d flagged, %d evaluated", weld, len(ids), len(queued), len(held))
        rows = []
        t1, c1 = time.perf_counter(), cpu_seconds()
        fig = evaluate(
            champion, held, crops, opts.unlabelled, weld=weld, floor=opts.floor, threads=opts.threads
        )
        rows.append(_row(0, champion, fig, None, (time.perf_counter() - t1, cpu_seconds() - c1)))
        # the other welds' photos, once: every round fine-tunes with the start model's preprocessing
        # (fine_tune_config carries the champion's input contract from round to round)
        start = fine_tune_config(cfg, read_config(champion))
        base = [s for s in _base_samples(start, opts.data_root, corrections) if s.group != weld]
        done = 0
        for n in opts.rounds:
            rdir = wdir / f"round-{n:03d}"
            if rdir.exists():
                shutil.rmtree(rdir)
            for iid in to_review[done:n]:
                marks, grade = review_marks(by_id[iid])
                record_review(
                    store, ledger, inspection_id=iid, reviewer=REVIEWER, porosity_grade=grade,
                    spatter_grade=None, marks=marks,
                )  # fmt: skip
            done = n
            tt, ct = time.perf_counter(), cpu_seconds()
            current = read_config(champion)
            ft = fine_tune_config(cfg, current)
            dataset = write_dataset(
                store, rdir / "data", hold_out=False, porosity_thresholds=ft.grading.porosity_thresholds
            )
            reviewed, _, rinfo = load_or_build_cache(
                dataset.root, "train.jsonl", ft.preprocess, cache_dir=rdir / "cache",
                cache_scale=ft.data.cache_scale, porosity_thresholds=ft.grading.porosity_thresholds,
            )  # fmt: skip
            if ft.preprocess != start.preprocess:  # cannot happen while fine-tuning keeps the contract
                msg = f"{weld} round {n}: the model's preprocessing changed from the start model's"
                raise BenchError(msg)
            train = list(reviewed) + base
            result = train_challenger(
                ft,
                train,
                champion_dir=champion,
                out_dir=rdir / "model",
                version=challenger_version(current.version),
                fine_tune=True,
                manifest_sha256=rinfo.manifest_sha256,
                data_note=f"bench_learning {weld}: {len(reviewed)} reviewed photos + "
                f"{len(train) - len(reviewed)} photos of the other welds",
                command="scripts/bench_learning.py",
                card=f"# bench_learning {weld} round {n}\nSimulated-station challenger; not for shipping.\n",
            )
            train_s = (time.perf_counter() - tt, cpu_seconds() - ct)
            te, ce = time.perf_counter(), cpu_seconds()
            fig = evaluate(
                result.directory,
                held,
                crops,
                opts.unlabelled,
                weld=weld,
                floor=opts.floor,
                threads=opts.threads,
            )
            row = _row(n, result.directory, fig, train_s, (time.perf_counter() - te, cpu_seconds() - ce))
            row["reviewed_train_photos"] = len(reviewed)
            row["epochs_run"] = result.epochs_run
            rows.append(row)
            champion = result.directory  # promoted: the next round fine-tunes from it
            log.info(
                "%s round %d: recall %s, recall@<=1 FP %s, findings/good %s, FA %s, graded>=1 %s "
                "(train %.1f min)",
                weld, n, fig["recall"], fig["recall_at_1_fp"], fig["findings_per_good_photo"],
                fig["false_accept"], fig["graded_ge1"], train_s[0] / 60,
            )  # fmt: skip
        from inspection.evidence.verify import verify_store

        report = verify_store(store)
        verified = {"ok": report.ok, "records": report.records, "problems": len(report.problems)}
    finally:
        store.close()
    pore_free = not any(pores_of(r) for r in records)
    return {
        "weld": weld,
        "pore_free": pore_free,
        "start_model": str(opts.champions[weld]),
        "station": station,
        "ledger_verifies": verified,
        "rounds": rows,
        "targets_after_last_round": targets_met(rows[-1]["figures"], pore_free=pore_free),
    }


def _row(
    reviewed: int,
    model: Path,
    fig: dict[str, Any],
    train: tuple[float, float] | None,
    ev: tuple[float, float],
) -> dict[str, Any]:
    return {
        "reviewed": reviewed,
        "model": str(model),
        "figures": fig,
        "train_wall_min": None if train is None else round(train[0] / 60, 2),
        "train_cpu_min": None if train is None else round(train[1] / 60, 2),
        "eval_wall_min": round(ev[0] / 60, 2),
        "eval_cpu_min": round(ev[1] / 60, 2),
    }


# ----------------------------------------------------------------------------------------------
# Output


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f} %" if pct else f"{v:.3f}"


def markdown_table(welds: Sequence[Mapping[str, Any]]) -> str:
    """One row per weld and round: the figures and the minutes each round took."""
    lines = [
        "| held-out weld | reviewed photos | recall (own threshold) | recall at <= 1 finding / good photo "
        "| findings / good photo | false accept | graded >= 1 | review share | train wall / CPU min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in welds:
        for r in w["rounds"]:
            f = r["figures"]
            train = (
                "-"
                if r["train_wall_min"] is None
                else f"{r['train_wall_min']:.1f} / {r['train_cpu_min']:.1f}"
            )
            lines.append(
                f"| {w['weld']} | {r['reviewed']} | {_fmt(f['recall'])} | {_fmt(f['recall_at_1_fp'])} "
                f"| {_fmt(f['findings_per_good_photo'])} | {_fmt(f['false_accept'], True)} "
                f"| {_fmt(f['graded_ge1'], True)} | {_fmt(f['review_share'], True)} | {train} |"
            )
    return "\n".join(lines)


def plot(welds: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Learning curves: recall, recall at <= 1 FP, findings per good photo, false accept / graded >= 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("recall", "pore recall (own threshold)", False, None),
        ("recall_at_1_fp", "recall at <= 1 finding / good photo", False, TARGETS["recall_at_1_fp"]),
        ("findings_per_good_photo", "porosity findings / good photo", False, 1.0),
        ("false_accept", "false accept (photos with pores)", True, TARGETS["false_accept"]),
    )
    colour = {w["weld"]: f"C{i}" for i, w in enumerate(welds)}  # one colour per weld in every panel
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(18, 3.6))
    for ax, (key, title, pct, target) in zip(axes, panels, strict=False):
        for w in welds:
            xs = [r["reviewed"] for r in w["rounds"] if r["figures"][key] is not None]
            ys = [
                r["figures"][key] * (100 if pct else 1) for r in w["rounds"] if r["figures"][key] is not None
            ]
            if xs:
                ax.plot(xs, ys, "o-", color=colour[w["weld"]], label=w["weld"])
        if target is not None:
            ax.axhline(target * (100 if pct else 1), color="grey", ls="--", lw=1, label="target")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("reviewed photos of the held-out weld")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    for w in welds:
        ys = [100 * r["figures"]["graded_ge1"] for r in w["rounds"] if r["figures"]["graded_ge1"] is not None]
        xs = [r["reviewed"] for r in w["rounds"] if r["figures"]["graded_ge1"] is not None]
        if xs:
            label = w["weld"] + (" (pore-free)" if w["pore_free"] else "")
            ax.plot(xs, ys, "o-", color=colour[w["weld"]], label=label)
    ax.axhline(100 * TARGETS["pore_free_graded_ge1"], color="grey", ls="--", lw=1, label="pore-free target")
    ax.set_title("photos graded >= 1 (%)", fontsize=9)
    ax.set_xlabel("reviewed photos of the held-out weld")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    log.info("learning curve written to %s", path)


# ----------------------------------------------------------------------------------------------
# CLI


def run(opts: Options) -> dict[str, Any]:
    """Every weld of ``opts``; the document written to ``learning.json``."""
    from inspection.data.corrections import read_corrections
    from inspection.train.config import load_train_config

    cfg = load_train_config(opts.config)
    cfg = cfg.model_copy(update={"threads": opts.threads})
    corrections = read_corrections(list(opts.corrections)) if opts.corrections else []
    records = labelled_records(opts.data_root, list(opts.welds), 0, corrections)
    groups = {r.group for r in records}
    missing = [w for w in opts.welds if w not in groups]
    if missing:
        msg = f"--welds {', '.join(missing)}: no such group in {opts.data_root / 'annotations.jsonl'}"
        raise BenchError(msg)
    crops: list[Any] = []
    if opts.unlabelled is not None and (opts.unlabelled / "labels").is_dir() and opts.good_manifest.is_file():
        crops = read_good_manifest(opts.good_manifest, opts.unlabelled)
        if opts.good_limit:
            crops = crops[: opts.good_limit]
    else:
        log.warning("no good-weld crops (%s): findings per good photo are not measured", opts.unlabelled)
    t0, c0 = time.perf_counter(), cpu_seconds()
    welds = [
        run_weld(w, opts, cfg, [r for r in records if r.group == w], corrections, crops) for w in opts.welds
    ]
    return {
        "schema": "bench-learning/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv),
        "config": str(opts.config),
        "data": str(opts.data_root),
        "corrections": [str(p) for p in opts.corrections],
        "rounds": list(opts.rounds),
        "order": opts.order,
        "seed": opts.seed,
        "threads": opts.threads,
        "good_crops": len(crops),
        "targets": TARGETS,
        "welds": welds,
        "wall_min": round((time.perf_counter() - t0) / 60, 2),
        "cpu_min": round((cpu_seconds() - c0) / 60, 2),
    }


def _champions(args: argparse.Namespace, welds: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for item in args.champion:
        weld, sep, path = item.partition("=")
        if not sep or not weld or not path:
            msg = f"--champion takes WELD=DIR, got {item!r}"
            raise BenchError(msg)
        out[weld] = Path(path)
    for w in welds:
        if w in out:
            continue
        if args.run is None:
            msg = f"no start model for {w}: give --run RUN (a LOWO run) or --champion {w}=DIR"
            raise BenchError(msg)
        out[w] = args.run / f"fold-{w}" / FOLD_ARTIFACT
    for w, path in out.items():
        if w in welds and not (path / "config.json").is_file():
            msg = (
                f"{path} is not a model artifact (no config.json): run scripts/eval_pores.py --run "
                f"{args.run} first (it writes fold-<weld>/artifact/), or give --champion {w}=DIR"
            )
            raise BenchError(msg)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--run", type=Path, default=None, help="LOWO run with fold-<weld>/artifact/ (start models)"
    )
    ap.add_argument("--champion", action="append", default=[], help="WELD=DIR: start model of one weld")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder")
    ap.add_argument("--welds", default="weld00,weld01,weld04", help="held-out welds, in turn")
    ap.add_argument("--rounds", default="10,20,50", help="reviewed photos after each round")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="fine-tuning recipe (YAML)")
    ap.add_argument("--order", choices=("queue", "random"), default="queue", help="review order")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the random part of the order")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--corrections", type=Path, action="append", default=[], help="label corrections")
    ap.add_argument("--good-manifest", type=Path, default=GOOD_MANIFEST, help="good-weld crop list")
    ap.add_argument("--good-limit", type=int, default=0, help="at most this many good crops (0 = all)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-learning", help="output folder")
    ap.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help="learning-curve PNG")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_root = args.data / "weld-porosity"
    if not (data_root / "annotations.jsonl").is_file():
        print(
            f"skipped: {data_root} is absent (no labelled welds to simulate a station with)", file=sys.stderr
        )
        return 0
    try:
        welds = tuple(w.strip() for w in args.welds.split(",") if w.strip())
        if not welds:
            msg = "--welds names no weld"
            raise BenchError(msg)
        if not args.config.is_file():
            msg = f"--config {args.config} does not exist"
            raise BenchError(msg)
        opts = Options(
            data_root=data_root,
            unlabelled=args.data / "weld-photos-unlabelled",
            welds=welds,
            rounds=parse_rounds(args.rounds),
            champions=_champions(args, welds),
            config=args.config,
            out_dir=args.out,
            order=args.order,
            seed=args.seed,
            threads=args.threads,
            corrections=tuple(args.corrections),
            good_manifest=args.good_manifest,
            good_limit=args.good_limit,
        )
        doc = run(opts)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    plot(doc["welds"], args.plot)
    print(markdown_table(doc["welds"]))
    print(
        f"\n{doc['wall_min']:.1f} min wall, {doc['cpu_min']:.1f} CPU-min; "
        f"{args.out / 'learning.json'}, {args.plot}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
