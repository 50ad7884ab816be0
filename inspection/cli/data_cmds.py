"""CLI commands: ``weldinspect data ...`` (import, stats, groups, spatter-sheet; audit in audit_cmds)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from inspection.data.manifest import ManifestRecord

data_app = typer.Typer(
    name="data",
    help="Data sets: import foreign formats, statistics, weld grouping, spatter realism sheet, label audit.",
    no_args_is_help=True,
)

PRESETS = ("none", "weld-porosity")


def _fail(command: str, message: str) -> typer.Exit:
    typer.echo(f"weldinspect data {command}: {message}", err=True)
    return typer.Exit(code=2)


def _label_map(command: str, items: list[str], preset: str) -> dict[str, str]:
    from inspection.data.importers import parse_label_map
    from inspection.data.manifest import REAL_POROSITY_LABEL_MAP

    if preset not in PRESETS:
        raise _fail(command, f"unknown --preset {preset!r}; valid: {', '.join(PRESETS)}")
    base = dict(REAL_POROSITY_LABEL_MAP) if preset == "weld-porosity" else {}
    try:
        base.update(parse_label_map(items))
    except ValueError as exc:
        raise _fail(command, str(exc)) from exc
    return base


def _manifest_path(command: str, directory: Path) -> Path:
    path = directory / "annotations.jsonl" if directory.is_dir() else directory
    if not path.is_file():
        raise _fail(command, f"{path} does not exist (expected a data-set folder with annotations.jsonl)")
    return path


@data_app.command("import")
def import_cmd(
    src: Path = typer.Argument(..., help="Source data set (folder, or a COCO JSON file)."),
    fmt: str = typer.Option(..., "--format", "-f", help="Source format: voc, yolo, coco or folders."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Destination folder (gets annotations.jsonl + images/)."
    ),
    maps: list[str] = typer.Option([], "--map", "-m", help="Label mapping SOURCE=TARGET (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing DST/annotations.jsonl."),
) -> None:
    """Import a VOC / YOLO / COCO / folder-per-class data set into DST/annotations.jsonl (images copied)."""
    from inspection.data.importers import (
        FORMATS,
        ImportFormatError,
        import_dataset,
        materialise,
        with_count_grades,
    )
    from inspection.data.manifest import write_manifest

    if fmt not in FORMATS:
        raise _fail("import", f"unknown --format {fmt!r}; valid: {', '.join(FORMATS)}")
    if not src.exists():
        raise _fail("import", f"source {src} does not exist")
    if (out / "annotations.jsonl").exists() and not force:
        raise _fail("import", f"{out / 'annotations.jsonl'} already exists (use --force to overwrite)")
    if out.exists() and not out.is_dir():
        raise _fail("import", f"{out} exists and is not a folder")
    label_map = _label_map("import", maps, "none")
    try:
        records, report = import_dataset(fmt, src, label_map=label_map)
    except ImportFormatError as exc:
        raise _fail("import", str(exc)) from exc
    present = {o.label for r in records for o in r.objects}
    records = with_count_grades(materialise(records, out), present)
    path = write_manifest(out, records)
    typer.echo(report.summary(max_examples=10))
    typer.echo(f"wrote {len(records)} records to {path} (images copied to {out / 'images'})")


def _print_stats(stats: Any, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{title}[/bold]: {stats.n_images} images, {stats.n_objects} boxes")
    t = Table(title="labels")
    for c in ("label", "boxes", "images"):
        t.add_column(c, justify="left" if c == "label" else "right")
    for k, v in stats.objects_per_label.items():
        t.add_row(k, str(v), str(stats.images_per_label.get(k, 0)))
    console.print(t)
    t = Table(title="original labels")
    t.add_column("label")
    t.add_column("boxes", justify="right")
    for k, v in stats.objects_per_raw_label.items():
        t.add_row(k, str(v))
    console.print(t)
    t = Table(title="groups (images per grade)")
    t.add_column("group")
    t.add_column("images", justify="right")
    for d in stats.graded_defects:
        for g in range(4):
            t.add_column(f"{d[:4]} {g}", justify="right")
    for grp, n in stats.images_per_group.items():
        cells = [str(v) for d in stats.graded_defects for v in stats.group_grades.get(grp, {}).get(d, [])]
        t.add_row(grp, str(n), *cells)
    if stats.graded_defects:
        totals = [str(v) for d in stats.graded_defects for v in stats.grades[d]]
        t.add_row("[bold]all[/bold]", str(stats.n_images), *totals)
    console.print(t)


@data_app.command("stats")
def stats_cmd(
    directory: Path = typer.Argument(..., help="Data-set folder holding annotations.jsonl."),
    chart: Path | None = typer.Option(None, "--chart", help="PNG chart path (default DIR/stats.png)."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the tables as Markdown here."),
    maps: list[str] = typer.Option([], "--map", "-m", help="Label mapping SOURCE=TARGET (repeatable)."),
    preset: str = typer.Option("none", "--preset", help="Label map preset: none or weld-porosity."),
    check_images: bool = typer.Option(
        True, "--check-images/--no-check-images", help="Open and hash every image."
    ),
) -> None:
    """Counts per label, per grade and per group (rich tables) and a PNG chart."""
    from inspection.data.manifest import read_manifest
    from inspection.data.stats import compute_stats, stats_markdown, write_chart

    path = _manifest_path("stats", directory)
    label_map = _label_map("stats", maps, preset)
    records, report = read_manifest(path, label_map=label_map or None, check_images=check_images)
    stats = compute_stats(records)
    title = path.parent.name
    _print_stats(stats, title)
    typer.echo(report.summary(max_examples=2))
    chart_path = write_chart(
        stats, chart or path.parent / "stats.png", title=f"{title}: {stats.n_images} images"
    )
    typer.echo(f"chart: {chart_path}")
    if markdown is not None:
        markdown.write_text(stats_markdown(stats, title), encoding="utf-8")
        typer.echo(f"markdown: {markdown}")


def _list_images(directory: Path) -> tuple[list[Path], list[ManifestRecord] | None]:
    from inspection.data.importers import IMAGE_SUFFIXES
    from inspection.data.manifest import read_manifest

    if (directory / "annotations.jsonl").is_file():
        records, _ = read_manifest(directory, check_images=False)
        return [r.path() for r in records], records
    paths = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return paths, None


@data_app.command("groups")
def groups_cmd(
    directory: Path = typer.Argument(..., help="Data-set folder (annotations.jsonl) or a folder of images."),
    out: Path = typer.Option(Path("groups.json"), "--out", help="Where to write the groups (JSON)."),
    sheets: Path | None = typer.Option(
        None, "--sheets", help="Contact-sheet folder (default: a new temp dir)."
    ),
    min_inliers: int = typer.Option(
        20, "--min-inliers", help="RANSAC inliers that make two photos one weld."
    ),
    k: int = typer.Option(12, "--k", help="Nearest neighbours (bag-of-words) verified per photo."),
    manifest_out: Path | None = typer.Option(
        None,
        "--manifest-out",
        help="Write a copy of the manifest with group = the found weld (auto000, ...).",
    ),
) -> None:
    """Group photos of the same physical weld (ORB + RANSAC homography + union-find)."""
    import tempfile

    import cv2

    from inspection.data.groups import adjusted_rand_index, contact_sheet, group_images, orb_features
    from inspection.data.manifest import write_manifest
    from inspection.image.ingest import IngestError, read_image

    if not directory.is_dir():
        raise _fail("groups", f"{directory} is not a folder")
    if min_inliers < 4 or k < 1:
        raise _fail("groups", f"--min-inliers must be >= 4 and --k >= 1, got {min_inliers} and {k}")
    paths, records = _list_images(directory)
    if not paths:
        raise _fail("groups", f"no images found in {directory}")
    t0 = time.perf_counter()
    feats, ok_paths, ok_idx = [], [], []
    for i, p in enumerate(paths):
        try:
            feats.append(orb_features(read_image(p)))
        except (IngestError, OSError) as exc:
            typer.echo(f"skipping {p}: {exc}", err=True)
            continue
        ok_paths.append(p)
        ok_idx.append(i)
    t_feat = time.perf_counter() - t0
    result = group_images(feats, min_inliers=min_inliers, k=k)
    elapsed = time.perf_counter() - t0
    members = result.members()
    order = sorted(members, key=lambda g: -len(members[g]))
    rename = {g: n for n, g in enumerate(order)}
    labels = [rename[g] for g in result.labels]
    doc: dict[str, Any] = {
        "source": str(directory),
        "params": {"min_inliers": min_inliers, "k": k, "max_side": 400, "n_features": 500},
        "n_images": len(ok_paths),
        "n_groups": result.n_groups,
        "pairs_checked": result.pairs_checked,
        "seconds": round(elapsed, 1),
        "groups": [
            {"id": rename[g], "size": len(members[g]), "images": [ok_paths[i].name for i in members[g]]}
            for g in order
        ],
    }
    if records is not None and any(r.group for r in records):
        truth = [records[i].group or f"(none)/{i}" for i in ok_idx]
        doc["ari_vs_manifest_groups"] = round(adjusted_rand_index(truth, labels), 4)
        doc["confusion"] = _confusion(truth, labels)
    out_path = out
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    sheet_dir = sheets or Path(tempfile.mkdtemp(prefix="weld-groups-"))
    sheet_dir.mkdir(parents=True, exist_ok=True)
    for g in order:
        idx = members[g][:48]
        imgs = [read_image(ok_paths[i]) for i in idx]
        titles = [(records[ok_idx[i]].group or "") if records else ok_paths[i].stem[:12] for i in idx]
        sheet = contact_sheet(imgs, thumb=96, columns=8, titles=titles)
        cv2.imwrite(str(sheet_dir / f"group{rename[g]:03d}.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if records is not None and "ari_vs_manifest_groups" in doc:
        # photos the manifest puts in different groups but the matcher joined: show the evidence
        cross = sorted(
            (e for e in result.edges if records[ok_idx[e[0]]].group != records[ok_idx[e[1]]].group),
            key=lambda e: -e[2],
        )
        doc["cross_group_edges"] = [
            {"a": ok_paths[i].name, "b": ok_paths[j].name, "inliers": n} for i, j, n in cross
        ]
        out_path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        shown, pairs = set(), []
        for i, j, n in cross:
            if (records[ok_idx[i]].group, records[ok_idx[j]].group) in shown:
                continue
            shown.add((records[ok_idx[i]].group, records[ok_idx[j]].group))
            pairs.append((i, j, n))
        if pairs:
            imgs, titles = [], []
            for i, j, n in pairs[:8]:
                imgs += [read_image(ok_paths[i]), read_image(ok_paths[j])]
                titles += [f"{records[ok_idx[i]].group} {n} inl", f"{records[ok_idx[j]].group}"]
            sheet = contact_sheet(imgs, thumb=160, columns=4, titles=titles)
            cv2.imwrite(str(sheet_dir / "cross_group_pairs.jpg"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    typer.echo(
        f"{len(ok_paths)} photos -> {result.n_groups} groups; {result.pairs_checked} pairs verified; "
        f"features {t_feat:.1f} s, total {elapsed:.1f} s"
    )
    typer.echo("group sizes: " + ", ".join(str(len(members[g])) for g in order))
    if "ari_vs_manifest_groups" in doc:
        typer.echo(f"adjusted Rand index vs the manifest's groups: {doc['ari_vs_manifest_groups']:.4f}")
    typer.echo(f"groups: {out_path}; contact sheets: {sheet_dir}")
    if manifest_out is not None:
        if records is None:
            raise _fail("groups", "--manifest-out needs DIR to hold annotations.jsonl")
        import dataclasses
        import os

        base = manifest_out.parent if manifest_out.suffix else manifest_out
        new = list(records)
        for pos, i in enumerate(ok_idx):
            new[i] = dataclasses.replace(records[i], group=f"auto{labels[pos]:03d}")
        # image paths stay relative to the new manifest's folder
        new = [dataclasses.replace(r, image=Path(os.path.relpath(r.path(), base)).as_posix()) for r in new]
        write_manifest(manifest_out, new)
        typer.echo(f"manifest with found groups: {manifest_out}")


def _confusion(truth: list[str], labels: list[int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for t, g in zip(truth, labels, strict=True):
        row = out.setdefault(t, {})
        row[str(g)] = row.get(str(g), 0) + 1
    return dict(sorted(out.items()))


def _label(img: Any, text: str) -> Any:
    import cv2

    out = img.copy()
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
    return out


def _pad_to(img: Any, width: int) -> Any:
    import numpy as np

    if img.shape[1] >= width:
        return img[:, :width]
    return np.hstack([img, np.full((img.shape[0], width - img.shape[1], 3), 255, np.uint8)])


def _vstack(rows: list[Any], gap: int = 6) -> Any:
    import numpy as np

    width = max(r.shape[1] for r in rows)
    parts = []
    for r in rows:
        parts += [_pad_to(r, width), np.full((gap, width, 3), 255, np.uint8)]
    return np.vstack(parts[:-1])


def _hstack(cols: list[Any], gap: int = 6) -> Any:
    import numpy as np

    height = max(c.shape[0] for c in cols)
    parts = []
    for c in cols:
        pad = np.full((height - c.shape[0], c.shape[1], 3), 255, np.uint8)
        parts += [np.vstack([c, pad]), np.full((height, gap, 3), 255, np.uint8)]
    return np.hstack(parts[:-1])


@data_app.command("spatter-sheet")
def spatter_sheet_cmd(
    directory: Path = typer.Argument(..., help="Data-set folder with annotations.jsonl (real photos)."),
    out: Path = typer.Option(Path("spatter_realism.jpg"), "--out", help="Output JPEG."),
    n: int = typer.Option(4, "--n", help="Number of photos (1-8)."),
    seed: int = typer.Option(0, "--seed", help="Seed for photo choice and compositing."),
    droplets: int = typer.Option(60, "--droplets", help="Droplets per photo (whole photo)."),
    bead_mm: float = typer.Option(8.0, "--bead-mm", help="Assumed bead width in mm (sets mm_per_px)."),
    real: list[str] = typer.Option(
        [],
        "--real",
        help="PATH:x,y,size crop of a real photo WITH spatter, shown for comparison (repeatable).",
    ),
    crop: int = typer.Option(320, "--crop", help="Zoomed crop size in pixels."),
) -> None:
    """Realism contact sheet: real photos without / with composited spatter, whole-photo crops and strips."""
    import cv2
    import numpy as np

    from inspection.config import PreprocessConfig
    from inspection.data.manifest import read_manifest
    from inspection.data.spatter import composite_spatter, sample_spatter_count
    from inspection.image.ingest import read_image
    from inspection.image.preprocess import extract_strip, locate_seam, whole_image_region

    if not 1 <= n <= 8 or droplets < 0 or bead_mm <= 0 or crop < 64:
        raise _fail("spatter-sheet", "need 1 <= --n <= 8, --droplets >= 0, --bead-mm > 0, --crop >= 64")
    records, _ = read_manifest(_manifest_path("spatter-sheet", directory), check_images=False)
    if not records:
        raise _fail("spatter-sheet", f"no records in {directory}")
    rng = np.random.default_rng(seed)
    picks = [records[i] for i in rng.choice(len(records), min(n, len(records)), replace=False)]
    cfg = PreprocessConfig()
    photo_rows, strip_rows = [], []
    for rec in picks:
        img = read_image(rec.path())
        h, w = img.shape[:2]
        seam = locate_seam(img, cfg) or whole_image_region(h, w)
        mm_per_px = bead_mm / seam.width
        comp, _ = composite_spatter(img, rng, n_droplets=droplets, seam=seam, mm_per_px=mm_per_px)
        # zoom on the bead edge, where spatter lands
        a = np.deg2rad(seam.angle_deg)
        off = seam.width / 2.0 + 0.2 * crop  # mostly plate beside the bead, toe included
        cx, cy = seam.center[0] - np.sin(a) * off, seam.center[1] + np.cos(a) * off
        x0 = int(np.clip(cx - crop / 2, 0, max(0, w - crop)))
        y0 = int(np.clip(cy - crop / 2, 0, max(0, h - crop)))
        sl = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        photo_rows.append(
            _hstack(
                [
                    _label(img[sl], f"real {rec.group or ''}"),
                    _label(comp[sl], f"+{droplets} droplets, {mm_per_px:.3f} mm/px"),
                ]
            )
        )
        strip = extract_strip(img, seam, cfg).image[:, :512]
        strip_mm = bead_mm / (0.45 * strip.shape[0])
        count = sample_spatter_count(3, rng) // 2
        strip_comp, _ = composite_spatter(strip, rng, n_droplets=count, seam=None, mm_per_px=strip_mm)
        strip_rows.append(_vstack([_label(strip, "strip"), _label(strip_comp, f"strip +{count}")], gap=2))
    left = _vstack(photo_rows)
    right = _vstack(strip_rows)
    sections = [_hstack([left, right], gap=12)]
    reals = []
    for spec in real:
        path_s, _, geom = spec.rpartition(":")
        try:
            x, y, size = (int(v) for v in geom.split(","))
            real_img = read_image(Path(path_s))
        except (ValueError, OSError) as exc:
            raise _fail(
                "spatter-sheet", f"--real {spec!r}: expected PATH:x,y,size of a readable image ({exc})"
            ) from exc
        patch = cv2.resize(np.ascontiguousarray(real_img[y : y + size, x : x + size]), (crop, crop))
        reals.append(_label(patch, "real spatter (other set)"))
    if reals:
        sections.append(_hstack(reals))
    sheet = _vstack(sections, gap=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    typer.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]}, {out.stat().st_size // 1024} KiB)")


def register(app: typer.Typer) -> None:
    """Add this area's commands to ``app``."""
    from inspection.cli.audit_cmds import audit_cmd

    data_app.command("audit")(audit_cmd)
    app.add_typer(data_app, name="data")
