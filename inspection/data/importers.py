"""Importers from common annotation formats into manifest records, and exporters back out.

Formats (``FORMATS``):

* ``voc``: Pascal VOC XML files anywhere under SRC (``Annotations/*.xml`` + ``JPEGImages/`` or
  images beside the XML); boxes ``xmin ymin xmax ymax`` in pixels, taken as they are.
* ``yolo``: images under SRC with one ``.txt`` per image (``labels/`` mirroring ``images/``, or
  beside the image); lines ``class cx cy w h`` normalised to 0..1 (a polygon line
  ``class x1 y1 x2 y2 ...`` becomes its bounding box); class names from ``classes.txt`` or
  ``data.yaml`` (``names`` list or dict). Pixel boxes use each image's size from its header.
* ``coco``: a COCO JSON file (SRC itself or the one JSON file in SRC holding ``images`` and
  ``annotations``); ``bbox`` ``[x, y, w, h]``; images beside the JSON or in ``images/``.
* ``folders``: folder-per-class (``SRC/<class>/*.jpg``): an image-level label, no boxes
  (stored in the record's ``labels``).

Every importer maps labels through ``label_map`` onto :data:`inspection.types.LABELS`; a label
that is neither mapped nor already a vocabulary word is reported once (``unmapped_label``, with
its object count) and kept as ``other`` (``raw_label`` keeps the original name). Images that
are missing, unreadable or byte-identical to an earlier one are reported and skipped; boxes are
validated like the manifest reader does (``box_clipped``, ``box_outside``, ...). File names of
Roboflow exports (``<source>.rf.<hash>.jpg``) give the group (the source image), so augmented
copies of one photo stay together in splits.

Importers return records whose ``image`` is relative to SRC (``root`` = SRC);
:func:`materialise` copies the images into a new data-set folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from inspection.data.grades import grade_from_count
from inspection.data.manifest import (
    OTHER,
    ManifestObject,
    ManifestRecord,
    ManifestReport,
    ProblemCollector,
    clean_box,
    image_size,
)
from inspection.types import GRADED_DEFECTS, LABELS

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
FORMATS = ("voc", "yolo", "coco", "folders")

ImportOutput = tuple[list[ManifestRecord], ManifestReport]


class ImportFormatError(ValueError):
    """SRC is not a usable data set of the requested format (message names the path and why)."""


def parse_label_map(items: Iterable[str]) -> dict[str, str]:
    """``["pore=porosity", "deposit=other"]`` -> ``{"pore": "porosity", "deposit": "other"}``.

    Raises ``ValueError`` for a malformed item or a target outside :data:`LABELS`.
    """
    out: dict[str, str] = {}
    for item in items:
        src, sep, dst = item.partition("=")
        src, dst = src.strip(), dst.strip()
        if not sep or not src or not dst:
            msg = f"label mapping {item!r} must look like SOURCE=TARGET (e.g. pore=porosity)"
            raise ValueError(msg)
        if dst not in LABELS:
            msg = f"label mapping {item!r}: target {dst!r} is not a known label; valid: {', '.join(LABELS)}"
            raise ValueError(msg)
        out[src] = dst
    return out


def roboflow_group(name: str) -> str | None:
    """The source-image stem of a Roboflow export name (``abc_jpg.rf.123.jpg`` -> ``abc_jpg``)."""
    stem = Path(name).name
    return stem.split(".rf.", 1)[0] if ".rf." in stem else None


class _Importer:
    """Shared bookkeeping: problems, label mapping with counts, duplicate detection."""

    def __init__(self, root: Path, label_map: Mapping[str, str] | None) -> None:
        self.root = root
        self.label_map = dict(label_map or {})
        self.problems = ProblemCollector()
        self.unmapped: Counter[str] = Counter()
        self.seen: dict[str, str] = {}
        self.raw_labels: set[str] = set()

    def label(self, raw: str) -> str:
        self.raw_labels.add(raw)
        label = self.label_map.get(raw, raw)
        if label in LABELS:
            return label
        self.unmapped[raw] += 1
        return OTHER

    def check_image(self, path: Path) -> tuple[int, int] | None:
        """(width, height) of a readable, not yet seen image; reports and returns None otherwise."""
        rel = self.rel(path)
        if not path.is_file():
            self.problems.add(0, rel, "missing_image", f"image file {path} does not exist; skipped")
            return None
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            size = image_size(path)
        except Exception as exc:  # any decoder failure (PIL raises many types) means unreadable
            self.problems.add(
                0, rel, "unreadable_image", f"image file {path} cannot be decoded ({exc}); skipped"
            )
            return None
        first = self.seen.get(digest)
        if first is not None:
            self.problems.add(
                0, rel, "duplicate_image", f"same bytes (sha256 {digest[:16]}) as {first}; skipped"
            )
            return None
        self.seen[digest] = rel
        return size

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def obj(self, raw_label: str, box: Sequence[float], w: int, h: int, image: str) -> ManifestObject | None:
        clean = clean_box(list(box), w, h, self.problems, 0, image)
        if clean is None:
            return None
        label = self.label(raw_label)
        return ManifestObject(label, clean, raw_label if raw_label != label else None)

    def finish(self, records: list[ManifestRecord], source: str, lines: int) -> ImportOutput:
        for raw, n in sorted(self.unmapped.items()):
            self.problems.add(
                0,
                None,
                "unmapped_label",
                f"label {raw!r} ({n} object(s)) is not mapped onto the vocabulary ({', '.join(LABELS)}); "
                "kept as 'other' (add --map {raw}=LABEL)".replace("{raw}", raw),
            )
        report = ManifestReport(
            source=source,
            lines=lines,
            records=len(records),
            objects=sum(len(r.objects) for r in records),
            problems=tuple(self.problems.problems),
        )
        return records, report


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def with_count_grades(
    records: Sequence[ManifestRecord], labels_present: Iterable[str]
) -> list[ManifestRecord]:
    """Records with explicit ``grades`` from box counts for each graded defect in ``labels_present``.

    Thresholds are the defaults of :class:`inspection.config.GradingConfig`.
    """
    from inspection.config import GradingConfig

    cfg = GradingConfig()
    present = set(labels_present)
    thresholds = {"porosity": cfg.porosity_thresholds, "spatter": cfg.spatter_thresholds}
    out = []
    for r in records:
        grades = dict(r.grades)
        for d in GRADED_DEFECTS:
            if d.value in present and d.value not in grades and not r.labels:
                grades[d.value] = grade_from_count(r.count(d.value), thresholds[d.value])
        out.append(_replace(r, grades=grades))
    return out


def _replace(record: ManifestRecord, **changes: Any) -> ManifestRecord:
    import dataclasses

    return dataclasses.replace(record, **changes)


# ---------------------------------------------------------------- Pascal VOC


def _voc_image(xml_path: Path, filename: str, root: Path) -> Path | None:
    name = Path(filename).name
    candidates = [
        xml_path.parent / name,
        xml_path.parent.parent / "JPEGImages" / name,
        xml_path.parent.parent / "images" / name,
        root / "JPEGImages" / name,
        root / "images" / name,
    ]
    candidates += [xml_path.with_suffix(s) for s in IMAGE_SUFFIXES]
    return next((c for c in candidates if c.is_file()), None)


def _float(text: str | None) -> float:
    v = float(text) if text is not None else float("nan")
    return v


def import_voc(src: Path, *, label_map: Mapping[str, str] | None = None) -> ImportOutput:
    """Pascal VOC XML files under ``src`` -> records (see the module doc)."""
    src = Path(src)
    if not src.is_dir():
        msg = f"VOC source {src} is not a folder"
        raise ImportFormatError(msg)
    xmls = sorted(src.rglob("*.xml"))
    if not xmls:
        msg = f"VOC source {src} holds no .xml annotation files"
        raise ImportFormatError(msg)
    imp = _Importer(src, label_map)
    records = []
    for xml_path in xmls:
        rel_xml = imp.rel(xml_path)
        try:
            tree = ET.parse(xml_path)
        except (ET.ParseError, OSError) as exc:
            imp.problems.add(0, rel_xml, "bad_record", f"{xml_path} is not readable XML ({exc}); skipped")
            continue
        ann = tree.getroot()
        filename = (ann.findtext("filename") or "").strip() or xml_path.stem + ".jpg"
        img_path = _voc_image(xml_path, filename, src)
        if img_path is None:
            imp.problems.add(
                0, rel_xml, "missing_image", f"image {filename!r} for {xml_path} not found; skipped"
            )
            continue
        size = imp.check_image(img_path)
        if size is None:
            continue
        w, h = size
        rel = imp.rel(img_path)
        stated = (ann.findtext("size/width"), ann.findtext("size/height"))
        try:
            sw, sh = int(float(stated[0] or 0)), int(float(stated[1] or 0))
        except ValueError:
            sw, sh = 0, 0
        if sw > 0 and sh > 0 and (sw, sh) != (w, h):
            imp.problems.add(
                0, rel, "size_mismatch", f"XML says {sw}x{sh} but the file is {w}x{h}; file's size used"
            )
        objects = []
        for o in ann.findall("object"):
            name = (o.findtext("name") or "").strip()
            bb = o.find("bndbox")
            if not name or bb is None:
                imp.problems.add(0, rel, "bad_box", f"object without name or bndbox in {xml_path}; dropped")
                continue
            try:
                box = [_float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            except ValueError:
                box = [math.nan] * 4
            mo = imp.obj(name, box, w, h, rel)
            if mo is not None:
                objects.append(mo)
        records.append(
            ManifestRecord(
                rel,
                w,
                h,
                group=roboflow_group(rel),
                objects=tuple(objects),
                source=f"voc:{rel_xml}",
                root=src,
            )
        )
    return imp.finish(records, str(src), len(xmls))


# ---------------------------------------------------------------- YOLO


def yolo_class_names(src: Path) -> list[str] | None:
    """Class names from ``classes.txt`` / ``*.names`` or ``data.yaml`` in ``src`` (or None)."""
    for name in ("classes.txt", "obj.names", "labels/classes.txt"):
        p = src / name
        if p.is_file():
            return [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        p = src / name
        if p.is_file():
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            names = data.get("names") if isinstance(data, dict) else None
            if isinstance(names, list):
                return [str(n) for n in names]
            if isinstance(names, dict):
                return [str(names[k]) for k in sorted(names, key=int)]
    return None


def _yolo_label_file(img: Path, src: Path) -> Path:
    rel = img.relative_to(src)
    parts = list(rel.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
        cand = src.joinpath(*parts).with_suffix(".txt")
        if cand.is_file():
            return cand
    return img.with_suffix(".txt")


def import_yolo(src: Path, *, label_map: Mapping[str, str] | None = None) -> ImportOutput:
    """A YOLO txt data set under ``src`` -> records (see the module doc)."""
    src = Path(src)
    if not src.is_dir():
        msg = f"YOLO source {src} is not a folder"
        raise ImportFormatError(msg)
    images = _images_under(src)
    if not images:
        msg = f"YOLO source {src} holds no images ({', '.join(IMAGE_SUFFIXES)})"
        raise ImportFormatError(msg)
    imp = _Importer(src, label_map)
    names = yolo_class_names(src)
    if names is None:
        imp.problems.add(
            0, None, "no_class_names", f"no classes.txt or data.yaml in {src}; class ids used as labels"
        )
    records = []
    n_lines = 0
    for img in images:
        size = imp.check_image(img)
        if size is None:
            continue
        w, h = size
        rel = imp.rel(img)
        label_file = _yolo_label_file(img, src)
        objects = []
        text = label_file.read_text(encoding="utf-8", errors="replace") if label_file.is_file() else ""
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            n_lines += 1
            fields = line.split()
            try:
                cls = int(float(fields[0]))
                vals = [float(v) for v in fields[1:]]
            except (ValueError, IndexError):
                imp.problems.add(
                    lineno, rel, "bad_line", f"{label_file}: {line!r} is not 'class cx cy w h'; dropped"
                )
                continue
            if len(vals) == 4:
                cx, cy, bw, bh = vals
                box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
            elif len(vals) >= 6 and len(vals) % 2 == 0:  # polygon
                xs, ys = vals[0::2], vals[1::2]
                box = [min(xs) * w, min(ys) * h, max(xs) * w, max(ys) * h]
            else:
                imp.problems.add(
                    lineno, rel, "bad_line", f"{label_file}: {line!r} has {len(vals)} values; dropped"
                )
                continue
            if names is None:
                raw = str(cls)
            elif 0 <= cls < len(names):
                raw = names[cls]
            else:
                imp.problems.add(
                    lineno,
                    rel,
                    "unknown_class",
                    f"{label_file}: class id {cls} not in 0..{len(names) - 1}; as 'other'",
                )
                raw = f"class_{cls}"
            mo = imp.obj(raw, box, w, h, rel)
            if mo is not None:
                objects.append(mo)
        records.append(
            ManifestRecord(
                rel, w, h, group=roboflow_group(rel), objects=tuple(objects), source=f"yolo:{rel}", root=src
            )
        )
    if names:
        imp.raw_labels.update(names)
    return imp.finish(records, str(src), n_lines)


# ---------------------------------------------------------------- COCO


def _coco_file(src: Path) -> Path:
    if src.is_file():
        return src
    if not src.is_dir():
        msg = f"COCO source {src} does not exist"
        raise ImportFormatError(msg)
    found = []
    for p in sorted(src.rglob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "images" in data and "annotations" in data:
            found.append(p)
    if len(found) != 1:
        names = [str(p) for p in found] or ["none"]
        msg = f"COCO source {src} must hold exactly one COCO JSON (with images + annotations); found: {names}"
        raise ImportFormatError(msg)
    return found[0]


def import_coco(src: Path, *, label_map: Mapping[str, str] | None = None) -> ImportOutput:
    """A COCO JSON (``src`` or the one inside it) -> records (see the module doc)."""
    src = Path(src)
    path = _coco_file(src)
    root = path.parent
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        msg = f"COCO file {path} is not valid JSON ({exc})"
        raise ImportFormatError(msg) from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        msg = f"COCO file {path} has no 'images' list"
        raise ImportFormatError(msg)
    imp = _Importer(root, label_map)
    cats = {c.get("id"): str(c.get("name")) for c in data.get("categories", []) if isinstance(c, dict)}
    anns: dict[Any, list[dict[str, Any]]] = {}
    for a in data.get("annotations", []):
        if isinstance(a, dict):
            anns.setdefault(a.get("image_id"), []).append(a)
    records = []
    for im in data["images"]:
        if not isinstance(im, dict) or not isinstance(im.get("file_name"), str):
            imp.problems.add(0, None, "bad_record", f"COCO image entry {im!r} has no file_name; skipped")
            continue
        fname = im["file_name"]
        img_path = next(
            (
                p
                for p in (root / fname, root / "images" / fname, root / "images" / Path(fname).name)
                if p.is_file()
            ),
            root / fname,
        )
        size = imp.check_image(img_path)
        if size is None:
            continue
        w, h = size
        rel = imp.rel(img_path)
        if (im.get("width"), im.get("height")) not in ((w, h), (None, None)):
            imp.problems.add(
                0,
                rel,
                "size_mismatch",
                f"JSON says {im.get('width')}x{im.get('height')}, file is {w}x{h}; file used",
            )
        objects = []
        for a in anns.get(im.get("id"), []):
            bbox = a.get("bbox")
            if not (
                isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)
            ):
                imp.problems.add(
                    0, rel, "bad_box", f"annotation {a.get('id')} bbox {bbox!r} is not [x, y, w, h]"
                )
                continue
            x, y, bw, bh = (float(v) for v in bbox)
            raw = cats.get(a.get("category_id"))
            if raw is None:
                imp.problems.add(
                    0, rel, "unknown_class", f"category_id {a.get('category_id')!r} not in categories"
                )
                raw = f"category_{a.get('category_id')}"
            mo = imp.obj(raw, [x, y, x + bw, y + bh], w, h, rel)
            if mo is not None:
                objects.append(mo)
        records.append(
            ManifestRecord(
                rel, w, h, group=roboflow_group(rel), objects=tuple(objects), source=f"coco:{rel}", root=root
            )
        )
    imp.raw_labels.update(cats.values())
    return imp.finish(records, str(path), len(data["images"]))


# ---------------------------------------------------------------- folder per class


def import_folders(src: Path, *, label_map: Mapping[str, str] | None = None) -> ImportOutput:
    """``src/<class>/*.jpg`` -> records with the image-level label in ``labels`` and no boxes."""
    src = Path(src)
    if not src.is_dir():
        msg = f"folder-per-class source {src} is not a folder"
        raise ImportFormatError(msg)
    classes = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        msg = f"folder-per-class source {src} has no class sub-folders"
        raise ImportFormatError(msg)
    imp = _Importer(src, label_map)
    records = []
    n = 0
    for folder in classes:
        label = imp.label(folder.name)
        for img in _images_under(folder):
            n += 1
            size = imp.check_image(img)
            if size is None:
                continue
            rel = imp.rel(img)
            records.append(
                ManifestRecord(
                    rel,
                    size[0],
                    size[1],
                    group=roboflow_group(rel),
                    labels=(label,),
                    source=f"folders:{folder.name}",
                    root=src,
                )
            )
    return imp.finish(records, str(src), n)


IMPORTERS: dict[str, Callable[..., ImportOutput]] = {
    "voc": import_voc,
    "yolo": import_yolo,
    "coco": import_coco,
    "folders": import_folders,
}


def import_dataset(fmt: str, src: Path, *, label_map: Mapping[str, str] | None = None) -> ImportOutput:
    """Dispatch to the importer for ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in IMPORTERS:
        msg = f"unknown import format {fmt!r}; valid: {', '.join(FORMATS)}"
        raise ValueError(msg)
    return IMPORTERS[fmt](Path(src), label_map=label_map)


# ---------------------------------------------------------------- materialise / export


def _unique_names(records: Sequence[ManifestRecord]) -> list[str]:
    """A flat file name per record, made unique with a short path hash where names collide."""
    counts = Counter(Path(r.image).name for r in records)
    out = []
    for r in records:
        name = Path(r.image).name
        if counts[name] > 1:
            h = hashlib.sha1(r.image.encode("utf-8")).hexdigest()[:8]
            name = f"{Path(name).stem}-{h}{Path(name).suffix}"
        out.append(name)
    return out


def materialise(
    records: Sequence[ManifestRecord], dst: Path, *, images_dir: str = "images"
) -> list[ManifestRecord]:
    """Copy each record's image into ``dst/images_dir`` and return records relative to ``dst``."""
    dst = Path(dst)
    (dst / images_dir).mkdir(parents=True, exist_ok=True)
    out = []
    for rec, name in zip(records, _unique_names(records), strict=True):
        target = dst / images_dir / name
        shutil.copyfile(rec.path(), target)
        out.append(_replace(rec, image=f"{images_dir}/{name}", root=dst))
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def export_voc(records: Sequence[ManifestRecord], out_dir: Path) -> Path:
    """Write ``out_dir/Annotations/*.xml`` + ``out_dir/JPEGImages/`` (images copied). Returns out_dir."""
    out_dir = Path(out_dir)
    (out_dir / "Annotations").mkdir(parents=True, exist_ok=True)
    (out_dir / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for rec, name in zip(records, _unique_names(records), strict=True):
        shutil.copyfile(rec.path(), out_dir / "JPEGImages" / name)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = name
        size = ET.SubElement(ann, "size")
        ET.SubElement(size, "width").text = str(rec.width)
        ET.SubElement(size, "height").text = str(rec.height)
        ET.SubElement(size, "depth").text = "3"
        for o in rec.objects:
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = o.raw_label or o.label
            ET.SubElement(obj, "difficult").text = "0"
            bb = ET.SubElement(obj, "bndbox")
            for key, v in zip(("xmin", "ymin", "xmax", "ymax"), o.box, strict=True):
                ET.SubElement(bb, key).text = _num(v)
        ET.ElementTree(ann).write(out_dir / "Annotations" / f"{Path(name).stem}.xml", encoding="utf-8")
    return out_dir


def export_yolo(
    records: Sequence[ManifestRecord], out_dir: Path, classes: Sequence[str] | None = None
) -> Path:
    """Write ``out_dir/{images,labels}/`` + ``classes.txt`` (original labels where known). Returns out_dir."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    names = (
        list(classes)
        if classes is not None
        else sorted({o.raw_label or o.label for r in records for o in r.objects})
    )
    index = {n: i for i, n in enumerate(names)}
    (out_dir / "classes.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    for rec, name in zip(records, _unique_names(records), strict=True):
        shutil.copyfile(rec.path(), out_dir / "images" / name)
        lines = []
        for o in rec.objects:
            x0, y0, x1, y1 = o.box
            cx, cy = (x0 + x1) / 2 / rec.width, (y0 + y1) / 2 / rec.height
            bw, bh = (x1 - x0) / rec.width, (y1 - y0) / rec.height
            lines.append(f"{index[o.raw_label or o.label]} {cx:.8f} {cy:.8f} {bw:.8f} {bh:.8f}")
        (out_dir / "labels" / f"{Path(name).stem}.txt").write_text(
            "".join(ln + "\n" for ln in lines), encoding="utf-8"
        )
    return out_dir


def export_coco(records: Sequence[ManifestRecord], out_dir: Path) -> Path:
    """Write ``out_dir/annotations.json`` (COCO) + ``out_dir/images/``. Returns the JSON path."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    names = sorted({o.raw_label or o.label for r in records for o in r.objects})
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for img_id, (rec, name) in enumerate(zip(records, _unique_names(records), strict=True), start=1):
        shutil.copyfile(rec.path(), out_dir / "images" / name)
        images.append({"id": img_id, "file_name": f"images/{name}", "width": rec.width, "height": rec.height})
        for o in rec.objects:
            x0, y0, x1, y1 = o.box
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": img_id,
                    "category_id": cat_id[o.raw_label or o.label],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    coco = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": n} for n, i in cat_id.items()],
    }
    path = out_dir / "annotations.json"
    path.write_text(json.dumps(coco), encoding="utf-8")
    return path
