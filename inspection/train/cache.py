"""Preprocess the labelled photos once and cache the strips (npz under ``runs/cache/``).

Each photo goes through the serving path's seam localisation once; the cache keeps

* the strip at ``cache_scale`` x the model strip height (headroom for scale augmentation) with
  its pore boxes mapped into strip pixels, and
* the exact inference tiles (``preprocess.make_tiles`` at the model scale) with per-tile boxes.

The cache key hashes the preprocess config, the cache scale, the manifest bytes and the source of
``inspection/preprocess.py``, so any change there rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inspection.config import PreprocessConfig
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
    and the reader's problem summary."""

    manifest_sha256: str
    key: str
    path: Path
    report: str
    n_images: int
    seconds: float


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


def cache_key(cfg: PreprocessConfig, cache_scale: float, manifest_sha: str, max_images: int) -> str:
    """A short hex key identifying everything the cached arrays depend on."""
    import inspection.preprocess as pp

    src = Path(pp.__file__).read_bytes()
    payload = json.dumps(
        {
            "v": CACHE_VERSION,
            "pre": cfg.model_dump(mode="json"),
            "scale": cache_scale,
            "manifest": manifest_sha,
            "preprocess_src": hashlib.sha256(src).hexdigest(),
            "max_images": max_images,
        },
        sort_keys=True,
    )
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
    from inspection.preprocess import extract_strip, locate_seam, make_tiles, whole_image_region

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
) -> tuple[list[StripSample], list[float], CacheInfo]:
    """The cached samples (building the cache on first use) and per-sample seam scores.

    Raises :class:`DataMissingError` naming the expected path when the manifest is absent.
    """
    from inspection.data.grades import grade_from_count
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP, read_manifest
    from inspection.ingest import read_image

    manifest = Path(data_root) / manifest_name
    if not manifest.is_file():
        msg = (
            f"labelled data not found: {manifest} does not exist (set data.root in the training config "
            f"to the folder holding {manifest_name} and images/)"
        )
        raise DataMissingError(msg)
    t0 = time.perf_counter()
    sha = file_sha256(manifest)
    key = cache_key(cfg, cache_scale, sha, max_images)
    path = Path(cache_dir) / f"strips-{key}.npz"
    records, report = read_manifest(manifest, label_map=REAL_POROSITY_LABEL_MAP, check_images=False)
    if max_images:
        records = records[:max_images]
    if path.is_file():
        samples, scores = _load(path)
        log.info("loaded %d cached strips from %s", len(samples), path)
        return (
            samples,
            scores,
            CacheInfo(sha, key, path, report.summary(), len(samples), time.perf_counter() - t0),
        )
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
    return samples, scores, CacheInfo(sha, key, path, report.summary(), len(samples), secs)
