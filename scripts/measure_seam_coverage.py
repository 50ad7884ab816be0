"""Measure how well the seam strip covers annotated pores on the real photos.

For every photo in ``weld-porosity`` the seam strip (``inspection.image.preprocess.preprocess``) is
computed and each ``Surface_pores`` box is tested: it counts as inside when at least
``--min-inside`` (default 0.9) of its area lies inside the cropped region (``Strip.region``, the
oriented band + margin, clamped to the image). A photo is covered when all its pore boxes are
inside. Reported per weld group and overall, with the mean strip area as a fraction of the image,
the share of unlabelled photos whose seam score reaches ``QualityConfig.seam_min_score``, and the
time per image for locate + extract + tiles. Optionally writes a contact sheet.

    .venv/bin/python scripts/measure_seam_coverage.py --sheet docs/seam_strips.jpg
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspection.config import PreprocessConfig, QualityConfig
from inspection.image.preprocess import Preprocessed, box_inside_fraction, preprocess
from inspection.types import Box, Image, SeamRegion

logger = logging.getLogger("measure_seam_coverage")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
PORE_LABEL = "Surface_pores"
WHOLE_IMAGE = 0.98  # strip area fraction from which a strip counts as "the whole image"


@dataclass(frozen=True)
class PhotoResult:
    name: str
    group: str
    n_pores: int
    strip_length: int
    n_tiles: int
    pore_sizes: tuple[float, ...]  # sqrt(w * h) of each pore box in strip pixels
    n_inside: int
    area_fraction: float
    score: float
    worst_inside: float


def read_rgb(path: Path) -> Image:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        msg = f"cannot decode image {path}"
        raise OSError(msg)
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _box(values: list[float]) -> Box:
    x0, y0, x1, y1 = (float(v) for v in values)
    return Box(x0, y0, x1, y1, "porosity")


def pore_boxes(row: dict[str, Any]) -> list[Box]:
    """The ``Surface_pores`` boxes of one annotation row."""
    return [_box(o["box"]) for o in row.get("objects", []) if o.get("label") == PORE_LABEL]


def load_annotations(root: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = [
        json.loads(line) for line in (root / "annotations.jsonl").read_text().splitlines() if line.strip()
    ]
    rows.sort(key=lambda r: str(r["image"]))
    if limit is not None and limit < len(rows):
        step = len(rows) / limit
        rows = [rows[int(i * step)] for i in range(limit)]
    return rows


def evaluate_photo(row: dict[str, Any], image: Image, pre: Preprocessed, min_inside: float) -> PhotoResult:
    boxes = pore_boxes(row)
    h, w = image.shape[:2]
    fracs = [box_inside_fraction(pre.strip.region, b, h, w) for b in boxes]
    region = pre.strip.region
    clipped = box_inside_fraction(region, Box(0, 0, w, h), h, w)
    return PhotoResult(
        name=str(row["image"]),
        group=str(row["group"]),
        n_pores=len(boxes),
        n_inside=sum(f >= min_inside for f in fracs),
        area_fraction=clipped,
        score=pre.seam_score,
        worst_inside=min(fracs, default=1.0),
        strip_length=pre.strip.length,
        n_tiles=len(pre.tiles),
        pore_sizes=tuple(math.sqrt(sb.width * sb.height) for sb in map(pre.strip.box_to_strip, boxes)),
    )


def summarise(results: list[PhotoResult]) -> list[tuple[str, int, int, float, float, float, float]]:
    """Rows (group, photos with pores, covered, coverage, mean area fraction, mean score,
    share of photos whose strip is (nearly) the whole image)."""
    groups: dict[str, list[PhotoResult]] = defaultdict(list)
    for r in results:
        groups[r.group if r.group in ("weld00", "weld01", "weld04") else "one-off"].append(r)
    groups["ALL"] = list(results)
    out = []
    for g in sorted(groups, key=lambda k: (k == "ALL", k)):
        rs = groups[g]
        with_pores = [r for r in rs if r.n_pores > 0]
        covered = sum(r.n_inside == r.n_pores for r in with_pores)
        cov = covered / len(with_pores) if with_pores else float("nan")
        out.append(
            (
                g,
                len(with_pores),
                covered,
                cov,
                statistics.fmean(r.area_fraction for r in rs),
                statistics.fmean(r.score for r in rs),
                statistics.fmean(r.area_fraction >= WHOLE_IMAGE for r in rs),
            )
        )
    return out


def draw_region(image: Image, pre: Preprocessed, boxes: list[Box]) -> Image:
    out = image.copy()
    for b in boxes:
        cv2.rectangle(out, (int(b.x0), int(b.y0)), (int(b.x1), int(b.y1)), (255, 0, 0), 3)
    if pre.region is not None:
        cv2.polylines(out, [pre.region.corners().astype(np.int32)], True, (255, 255, 0), 3)
    cv2.polylines(out, [pre.strip.region.corners().astype(np.int32)], True, (0, 255, 0), 4)
    return out


def contact_sheet(items: list[tuple[Image, Preprocessed, list[Box], str]], path: Path) -> None:
    """One row per photo: the photo (band cyan, crop green, pores red) and its strip beside it."""
    thumb = 200
    rows = []
    for image, pre, boxes, label in items:
        drawn = cv2.resize(draw_region(image, pre, boxes), (thumb, thumb), interpolation=cv2.INTER_AREA)
        cv2.putText(drawn, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
        strip = pre.strip.image.copy()
        for b in boxes:
            sb = pre.strip.box_to_strip(b)
            cv2.rectangle(strip, (int(sb.x0), int(sb.y0)), (int(sb.x1), int(sb.y1)), (255, 0, 0), 2)
        sh = min(thumb, pre.strip.height)
        sw = max(1, round(strip.shape[1] * sh / strip.shape[0]))
        strip = np.asarray(cv2.resize(strip, (sw, sh), interpolation=cv2.INTER_AREA), np.uint8)
        strip = strip[:, : 2 * thumb - 8]  # a strip longer than the panel is cut at its right end
        canvas = np.full((thumb, 3 * thumb, 3), 32, np.uint8)
        canvas[:, :thumb] = drawn
        top = (thumb - sh) // 2
        canvas[top : top + sh, thumb + 4 : thumb + 4 + strip.shape[1]] = strip
        rows.append(canvas)
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:]
    while len(right) < len(left):
        right.append(np.full_like(rows[0], 32))
    sheet = np.hstack([np.vstack(left), np.vstack(right)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


def central_band(height: int, width: int, angle: float, area_fraction: float) -> SeamRegion:
    """A fixed band through the image centre (0 = horizontal, -90 = vertical) of the given area."""
    if angle == 0.0:
        return SeamRegion((width / 2, height / 2), float(width), area_fraction * height, 0.0)
    return SeamRegion((width / 2, height / 2), float(height), area_fraction * width, -90.0)


def yolo_boxes(path: Path, height: int, width: int) -> list[Box]:
    """Boxes of a YOLO label file (class cx cy w h, normalised), clipped to the image."""
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        cx, cy, bw, bh = (float(v) for v in parts[1:5])
        x0, y0 = max(0.0, (cx - bw / 2) * width), max(0.0, (cy - bh / 2) * height)
        x1, y1 = min(float(width), (cx + bw / 2) * width), min(float(height), (cy + bh / 2) * height)
        if x1 > x0 and y1 > y0:
            out.append(Box(x0, y0, x1, y1, "weld"))
    return out


def report_unlabelled(root: Path, cfg: PreprocessConfig, limit: int | None, min_inside: float) -> None:
    """Seam-score pass rate, and how often the coarse weld boxes (any / the largest) lie in the strip,
    against a fixed central band of the same mean area."""
    qcfg = QualityConfig()
    files = sorted((root / "images").glob("*.jpg"))
    if limit is not None:
        files = files[:limit]
    scores, areas = [], []
    hits = {"strip": [0, 0], "central 0": [0, 0], "central -90": [0, 0]}  # [any box, largest box]
    n_boxed = 0
    for f in files:
        image = read_rgb(f)
        h, w = image.shape[:2]
        pre = preprocess(image, cfg)
        scores.append(pre.seam_score)
        area = box_inside_fraction(pre.strip.region, Box(0, 0, w, h), h, w)
        areas.append(area)
        label = root / "labels" / (f.stem + ".txt")
        boxes = yolo_boxes(label, h, w) if label.is_file() else []
        if not boxes:
            continue
        n_boxed += 1
        largest = max(range(len(boxes)), key=lambda i: boxes[i].width * boxes[i].height)
        for name, region in (
            ("strip", pre.strip.region),
            ("central 0", central_band(h, w, 0.0, area)),
            ("central -90", central_band(h, w, -90.0, area)),
        ):
            fr = [box_inside_fraction(region, b, h, w) for b in boxes]
            hits[name][0] += max(fr) >= min_inside
            hits[name][1] += fr[largest] >= min_inside
    ok = sum(s >= qcfg.seam_min_score for s in scores)
    print(
        f"unlabelled photos with seam_score >= {qcfg.seam_min_score}: {ok}/{len(scores)} "
        f"({ok / max(len(scores), 1):.1%}); median score {statistics.median(scores):.2f}; "
        f"mean strip area / image {statistics.fmean(areas):.2f}"
    )
    for name, (any_hit, big_hit) in hits.items():
        print(
            f"unlabelled weld boxes inside ({name}; same per-photo area), {n_boxed} photos with boxes: "
            f"any box {any_hit / max(n_boxed, 1):.1%}, largest box {big_hit / max(n_boxed, 1):.1%}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="folder holding weld-porosity/ etc.")
    parser.add_argument("--limit", type=int, default=None, help="evaluate an evenly spaced subset")
    parser.add_argument("--min-inside", type=float, default=0.9, help="box area fraction that must be inside")
    parser.add_argument("--sheet", type=Path, default=None, help="write a 20-photo contact sheet (JPEG)")
    parser.add_argument("--failures", action="store_true", help="contact sheet of uncovered photos instead")
    parser.add_argument("--unlabelled-limit", type=int, default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")

    porosity = args.data / "weld-porosity"
    if not (porosity / "annotations.jsonl").is_file():
        print(f"error: {porosity / 'annotations.jsonl'} not found (pass --data)", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)  # timings are per core
    cfg = PreprocessConfig()
    rows = load_annotations(porosity, args.limit)
    results: list[PhotoResult] = []
    kept: list[tuple[Image, Preprocessed, list[Box], str]] = []
    times: list[float] = []
    cpu_times: list[float] = []
    for row in rows:
        image = read_rgb(porosity / str(row["image"]))
        t0, c0 = time.perf_counter(), time.thread_time()
        pre = preprocess(image, cfg)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.thread_time() - c0)
        res = evaluate_photo(row, image, pre, args.min_inside)
        results.append(res)
        boxes = pore_boxes(row)
        failed = res.n_inside < res.n_pores
        if args.sheet is not None and (failed if args.failures else True):
            kept.append((image, pre, boxes, f"{res.group} s={res.score:.2f} in={res.worst_inside:.2f}"))
        if failed:
            logger.debug("uncovered %s %s worst inside %.2f", res.group, res.name, res.worst_inside)

    print(
        f"criterion: a pore box is inside when >= {args.min_inside:.0%} of its area lies in the strip region"
    )
    print(
        "| group | photos | with pores | all pores inside | coverage | mean strip area / image "
        "| whole-image strips | mean seam score |"
    )
    print("|---|---|---|---|---|---|---|---|")
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.group if r.group in ("weld00", "weld01", "weld04") else "one-off"] += 1
    counts["ALL"] = len(results)
    for g, n, c, cov, area, score, whole in summarise(results):
        print(f"| {g} | {counts[g]} | {n} | {c} | {cov:.1%} | {area:.2f} | {whole:.0%} | {score:.2f} |")
    sizes = sorted(x for r in results for x in r.pore_sizes)
    lengths = sorted(r.strip_length for r in results)
    tiles = statistics.fmean(r.n_tiles for r in results)
    print(
        f"strip length (px at strip_height {cfg.strip_height}): median {lengths[len(lengths) // 2]}, "
        f"max {lengths[-1]}; tiles per photo: mean {tiles:.2f}; pore box size in strip px (sqrt w*h): "
        f"p10 {sizes[len(sizes) // 10]:.1f}, median {sizes[len(sizes) // 2]:.1f}, "
        f"p90 {sizes[9 * len(sizes) // 10]:.1f}"
    )
    for name, values in (("CPU (thread) time", cpu_times), ("wall time", times)):
        ms = sorted(t * 1000 for t in values)
        median, p90 = ms[len(ms) // 2], ms[int(0.9 * len(ms))]
        print(
            f"preprocess {name} per 800x800 image, 1 OpenCV thread: median {median:.1f} ms, p90 {p90:.1f} ms"
        )

    base_area = statistics.fmean(r.area_fraction for r in results)
    for angle in (0.0, -90.0):
        band = central_band(800, 800, angle, base_area)
        with_pores = [r for r in rows if pore_boxes(r)]
        hit = sum(
            all(box_inside_fraction(band, b, 800, 800) >= args.min_inside for b in pore_boxes(r))
            for r in with_pores
        )
        print(
            f"baseline: fixed central band at {angle:g} deg, same mean area {base_area:.2f}: "
            f"{hit}/{len(with_pores)} ({hit / max(len(with_pores), 1):.1%}) photos with all pores inside"
        )

    unl = args.data / "weld-photos-unlabelled"
    if (unl / "images").is_dir() and args.unlabelled_limit != 0:
        report_unlabelled(unl, cfg, args.unlabelled_limit, args.min_inside)

    if args.sheet is not None and kept:
        step = max(1, len(kept) // 20)
        contact_sheet(kept[::step][:20], args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
