"""Preprocess the labelled photos once and cache the strips (npz under ``runs/cache/``).

Each photo goes through the serving path's seam localisation once; the cache keeps

* the strip at ``cache_scale`` x the model strip height (headroom for scale augmentation) with
  its pore boxes mapped into strip pixels, and
* the exact inference tiles (``preprocess.make_tiles`` at the model scale) with per-tile boxes.

The cache key hashes the preprocess config, the cache scale, the manifest bytes, the label
corrections applied over it (if any) and the source of ``inspection/image/preprocess.py``, so any
change there rebuilds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspection.config import PreprocessConfig
from inspection.data.corrections import LabelCorrection
from inspection.data.torch_dataset import BoxArray, StripSample
from inspection.types import Box, Image

log = logging.getLogger(__name__)

CACHE_VERSION = 2
POROSITY = "porosity"


class DataMissingError(FileNotFoundError):
    """The labelled data set is not where the training config says."""


@dataclass(frozen=True)
class CacheInfo:
    """Provenance of a cache: ``manifest_sha256`` (hex of the manifest bytes), ``key``, ``path``,
    the reader's problem summary and, when label corrections were applied, their summary and the
    SHA-256 of their canonical JSON."""

    manifest_sha256: str
    key: str
    path: Path
    report: str
    n_images: int
    seconds: float
    corrections_sha256: str | None = None
    corrections_summary: str | None = None


def corrections_sha256(corrections: Sequence[LabelCorrection]) -> str:
    """SHA-256 of the corrections' canonical JSON, in order (what a training run applied)."""
    payload = json.dumps([dataclasses.asdict(c) for c in corrections], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scaled_config(cfg: PreprocessConfig, scale: float) -> PreprocessConfig:
    """``cfg`` with strip height and tile length multiplied by ``scale`` (same geometry, more pixels)."""
    return cfg.model_copy(
        update={
            "strip_height": round(cfg.strip_height * scale),
            "tile_length": round(cfg.tile_length * scale),
        }
    )


def cache_key(
    cfg: PreprocessConfig,
    cache_scale: float,
    manifest_sha: str,
    max_images: int,
    corrections_sha: str | None = None,
) -> str:
    """A short hex key identifying everything the cached arrays depend on."""
    import inspection.image.preprocess as pp

    src = Path(pp.__file__).read_bytes()
    fields: dict[str, Any] = {
        "v": CACHE_VERSION,
        "pre": cfg.model_dump(mode="json"),
        "scale": cache_scale,
        "manifest": manifest_sha,
        "preprocess_src": hashlib.sha256(src).hexdigest(),
        "max_images": max_images,
    }
    if corrections_sha is not None:  # absent from the key without corrections: old caches stay valid
        fields["corrections"] = corrections_sha
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _boxes_in(boxes: list[Box], height: int, width: int) -> BoxArray:
    """Boxes whose centre lies inside ``height x width``, as an ``(n, 4)`` array."""
    keep = [b.as_tuple() for b in boxes if 0 <= b.center[0] < width and 0 <= b.center[1] < height]
    return np.asarray(keep, np.float32).reshape(-1, 4)


def strip_sample(
    image: Image,
    pores: list[Box],
    *,
    key: str,
    group: str,
    grade: int,
    cfg: PreprocessConfig,
    cache_scale: float,
) -> tuple[StripSample, float]:
    """Preprocess one photo into a :class:`StripSample` (pure: no I/O). Also returns the seam score."""
    from inspection.image.preprocess import extract_strip, locate_seam, make_tiles, whole_image_region

    region = locate_seam(image, cfg)
    if region is None:
        use = whole_image_region(image.shape[0], image.shape[1], 0.0)
        cfg1 = cfg.model_copy(update={"margin": 0.0})
        score = 0.0
    else:
        use, cfg1, score = region, cfg, float(region.score)
    strip1 = extract_strip(image, use, cfg1)
    tiles = make_tiles(strip1, cfg)
    cfg_c = scaled_config(cfg1, cache_scale)
    strip_c = extract_strip(image, use, cfg_c)
    boxes_c = _boxes_in([strip_c.box_to_strip(b) for b in pores], strip_c.height, strip_c.length)
    boxes_1 = [strip1.box_to_strip(b) for b in pores]
    tile_boxes = []
    for t in tiles:
        tb = []
        for b in boxes_1:
            p = t.from_strip([[b.x0, b.y0], [b.x1, b.y1]])
            tb.append(Box(float(p[0, 0]), float(p[0, 1]), float(p[1, 0]), float(p[1, 1])))
        tile_boxes.append(_boxes_in(tb, t.image.shape[0], t.image.shape[1]))
    sample = StripSample(
        key=key,
        group=group,
        strip=np.ascontiguousarray(strip_c.image),
        boxes=boxes_c,
        grade=grade,
        tiles=np.stack([t.image for t in tiles]),
        tile_boxes=tuple(tile_boxes),
        n_pores=len(pores),
    )
    return sample, score


def _save(path: Path, samples: list[StripSample], scores: list[float]) -> None:
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    meta = []
    for i, s in enumerate(samples):
        arrays[f"strip_{i}"] = s.strip
        arrays[f"boxes_{i}"] = s.boxes
        arrays[f"tiles_{i}"] = s.tiles
        for t, tb in enumerate(s.tile_boxes):
            arrays[f"tbox_{i}_{t}"] = tb
        meta.append(
            {"key": s.key, "group": s.group, "grade": s.grade, "n_pores": s.n_pores, "seam": scores[i]}
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def _load(path: Path) -> tuple[list[StripSample], list[float]]:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        samples = []
        for i, m in enumerate(meta):
            tiles = z[f"tiles_{i}"]
            samples.append(
                StripSample(
                    key=m["key"],
                    group=m["group"],
                    strip=z[f"strip_{i}"],
                    boxes=z[f"boxes_{i}"],
                    grade=int(m["grade"]),
                    tiles=tiles,
                    tile_boxes=tuple(z[f"tbox_{i}_{t}"] for t in range(tiles.shape[0])),
                    n_pores=int(m["n_pores"]),
                )
            )
    return samples, [float(m["seam"]) for m in meta]


def load_or_build_cache(
    data_root: Path,
    manifest_name: str,
    cfg: PreprocessConfig,
    *,
    cache_dir: Path,
    cache_scale: float,
    porosity_thresholds: tuple[int, int, int] = (1, 2, 4),
    max_images: int = 0,
    corrections: Sequence[LabelCorrection] = (),
) -> tuple[list[StripSample], list[float], CacheInfo]:
    """The cached samples (building the cache on first use) and per-sample seam scores.

    ``corrections`` (``inspection.data.corrections``) are applied over the manifest's labels first;
    they are part of the cache key. Raises :class:`DataMissingError` naming the expected path when
    the manifest is absent.
    """
    from inspection.data.corrections import apply_corrections
    from inspection.data.grades import grade_from_count
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
    from inspection.image.ingest import read_image

    manifest = Path(data_root) / manifest_name
    if not manifest.is_file():
        msg = (
            f"labelled data not found: {manifest} does not exist (set data.root in the training config "
            f"to the folder holding {manifest_name} and images/)"
        )
        raise DataMissingError(msg)
    t0 = time.perf_counter()
    sha = file_sha256(manifest)
    corr_sha = corrections_sha256(corrections) if corrections else None
    key = cache_key(cfg, cache_scale, sha, max_images, corr_sha)
    path = Path(cache_dir) / f"strips-{key}.npz"
    records, report = read_manifest(manifest, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    corr_summary = None
    if corrections:
        records, corr_report = apply_corrections(records, corrections, lambda r: file_sha256(r.path()))
        corr_summary = corr_report.summary()
        log.info("label corrections: %s", corr_summary)
    if max_images:
        records = records[:max_images]

    def info(n: int) -> CacheInfo:
        return CacheInfo(
            sha, key, path, report.summary(), n, time.perf_counter() - t0, corr_sha, corr_summary
        )

    if path.is_file():
        samples, scores = _load(path)
        log.info("loaded %d cached strips from %s", len(samples), path)
        return samples, scores, info(len(samples))
    path.parent.mkdir(parents=True, exist_ok=True)
    samples, scores = [], []
    for i, rec in enumerate(records):
        image = read_image(rec.path())
        pores = [Box(*o.box) for o in rec.objects if o.label == POROSITY]
        grade = grade_from_count(len(pores), porosity_thresholds)
        s, score = strip_sample(
            image,
            pores,
            key=rec.image,
            group=rec.group or f"single-{i}",
            grade=grade,
            cfg=cfg,
            cache_scale=cache_scale,
        )
        samples.append(s)
        scores.append(score)
        if (i + 1) % 100 == 0:
            log.info("preprocessed %d / %d photos", i + 1, len(records))
    _save(path, samples, scores)
    secs = time.perf_counter() - t0
    log.info("cached %d strips in %.1f s to %s", len(samples), secs, path)
    return samples, scores, info(len(samples))


# ----------------------------------------------------------------------------------------------
# Unlabelled photos (self-supervised pretraining)

UNLABELLED_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
UNLABELLED_CACHE_VERSION = 1


def source_group(name: str) -> str:
    """The source image of an unlabelled photo: the file name before ``.rf.`` (Roboflow copies of
    one photo share it), else the file stem."""
    return name.split(".rf.", 1)[0] if ".rf." in name else Path(name).stem


@dataclass(frozen=True)
class UnlabelledStrip:
    """One unlabelled photo's seam strip at ``cache_scale`` x the model strip height (uint8 RGB
    ``(H_c, L_c, 3)``), its file name ``key``, source ``group`` and seam score."""

    key: str
    group: str
    strip: npt.NDArray[np.uint8]
    seam: float


@dataclass(frozen=True)
class UnlabelledCache:
    """Seam strips of the unlabelled photos whose seam was localised, and what was left out.

    ``no_seam``: file names where ``locate_seam`` found nothing; ``unreadable``: files that did not
    decode. ``n_files``: photos considered (after ``max_images``).
    """

    strips: tuple[UnlabelledStrip, ...]
    no_seam: tuple[str, ...]
    unreadable: tuple[str, ...]
    n_files: int
    key: str
    path: Path
    seconds: float

    def select(self, min_seam_score: float) -> tuple[list[UnlabelledStrip], dict[str, int]]:
        """The strips scoring at least ``min_seam_score`` and the skipped counts by reason."""
        keep = [s for s in self.strips if s.seam >= min_seam_score]
        skipped = {
            "no_seam": len(self.no_seam),
            "low_seam_score": len(self.strips) - len(keep),
            "unreadable": len(self.unreadable),
        }
        return keep, skipped


def seam_strip(
    image: Image, cfg: PreprocessConfig, cache_scale: float
) -> tuple[npt.NDArray[np.uint8], float] | None:
    """The seam strip of ``image`` at ``cache_scale`` x ``cfg.strip_height`` and the seam score, or
    None when no seam is found (pure; the same localisation and strip geometry as :func:`strip_sample`)."""
    from inspection.image.preprocess import extract_strip, locate_seam

    region = locate_seam(image, cfg)
    if region is None:
        return None
    strip = extract_strip(image, region, scaled_config(cfg, cache_scale))
    return np.ascontiguousarray(strip.image), float(region.score)


def _unlabelled_files(image_dir: Path, max_images: int) -> list[Path]:
    files = sorted(p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in UNLABELLED_SUFFIXES)
    if max_images and len(files) > max_images:
        idx = np.unique(np.linspace(0, len(files) - 1, max_images).round().astype(int))
        files = [files[int(i)] for i in idx]
    return files


def load_or_build_unlabelled_cache(
    data_root: Path,
    images_dir: str,
    cfg: PreprocessConfig,
    *,
    cache_dir: Path,
    cache_scale: float,
    max_images: int = 0,
) -> UnlabelledCache:
    """Seam strips of the photos in ``data_root/images_dir`` (labels, if any, are never read),
    cached in ``cache_dir/unlabelled-<key>.npz``; the key hashes the file names and sizes, the
    preprocess config, ``cache_scale`` and ``inspection/image/preprocess.py`` (see :func:`cache_key`).

    Raises :class:`DataMissingError` naming the expected folder when it is absent or empty.
    """
    from inspection.image.ingest import IngestError, read_image

    folder = Path(data_root) / images_dir
    files = _unlabelled_files(folder, max_images) if folder.is_dir() else []
    if not files:
        msg = (
            f"unlabelled photos not found: {folder} does not exist or holds no "
            f"{'/'.join(UNLABELLED_SUFFIXES)} files (set pretrain.root in the training config)"
        )
        raise DataMissingError(msg)
    t0 = time.perf_counter()
    listing = f"unlabelled-v{UNLABELLED_CACHE_VERSION}\n" + "".join(
        f"{p.name}\t{p.stat().st_size}\n" for p in files
    )
    key = cache_key(cfg, cache_scale, hashlib.sha256(listing.encode()).hexdigest(), max_images)
    path = Path(cache_dir) / f"unlabelled-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            strips = tuple(
                UnlabelledStrip(m["key"], m["group"], z[f"strip_{i}"], float(m["seam"]))
                for i, m in enumerate(meta["strips"])
            )
        log.info("loaded %d cached unlabelled strips from %s", len(strips), path)
        return UnlabelledCache(
            strips,
            tuple(meta["no_seam"]),
            tuple(meta["unreadable"]),
            int(meta["n_files"]),
            key,
            path,
            time.perf_counter() - t0,
        )
    built: list[UnlabelledStrip] = []
    no_seam: list[str] = []
    unreadable: list[str] = []
    for i, f in enumerate(files):
        try:
            image = read_image(f)
        except IngestError as exc:
            log.warning("skipping unreadable photo %s: %s", f.name, exc)
            unreadable.append(f.name)
            continue
        found = seam_strip(image, cfg, cache_scale)
        if found is None:
            no_seam.append(f.name)
        else:
            built.append(UnlabelledStrip(f.name, source_group(f.name), found[0], found[1]))
        if (i + 1) % 100 == 0:
            log.info("preprocessed %d / %d unlabelled photos", i + 1, len(files))
    arrays: dict[str, npt.NDArray[np.generic]] = {f"strip_{i}": s.strip for i, s in enumerate(built)}
    meta_out = {
        "strips": [{"key": s.key, "group": s.group, "seam": s.seam} for s in built],
        "no_seam": no_seam,
        "unreadable": unreadable,
        "n_files": len(files),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta_out).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)
    secs = time.perf_counter() - t0
    log.info(
        "cached %d unlabelled strips (%d without a seam, %d unreadable) in %.1f s to %s",
        len(built),
        len(no_seam),
        len(unreadable),
        secs,
        path,
    )
    return UnlabelledCache(tuple(built), tuple(no_seam), tuple(unreadable), len(files), key, path, secs)
