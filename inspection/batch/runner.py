"""Batch scoring: folders, files and manifests -> one results file, resumable and crash-safe.

Design
------
* Inputs are expanded into :class:`ScoreItem` (image path as given + optional context).
* Decode, quality gate and preprocessing (:func:`inspection.pipeline.prepare`) run in worker
  processes, overlapping with inference in the main process (:meth:`Inspector.finish`), with a
  bounded window of work in flight so memory stays flat for any number of images.
* Every record goes to a JSONL journal: one ``write`` per batch, then ``flush`` + ``fsync``. For a
  ``.jsonl`` output the journal IS the output; for ``.csv`` / ``.parquet`` the journal is
  ``<out>.journal.jsonl`` and the table is rendered from it (atomically) when the run ends.
* Resume: running again with the same ``--out`` reads the journal (repairing a torn last line),
  skips images already scored (by sha256; failed images by path) and appends.
* Bad input never stops the batch: it becomes an ``error`` record naming the reason. Every path
  given and every folder entry whose name matches gets a record: a missing file, a symlink loop, a
  dangling symlink, a FIFO (never opened), a folder named like an image, a file or folder that
  cannot be read. Folder entries that do not match (other extensions, sub-folders without
  ``--recursive``, already-visited folders reached through a symlink) are skipped with a log line
  naming the entry and the reason.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import fnmatch
import json
import logging
import math
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspection.batch.worker import Job, ScoreItem, init_worker, work, worker_context
from inspection.config import StoreConfig
from inspection.image.ingest import path_problem, read_image_bytes
from inspection.pipeline import Inspector, PrepareConfig, recommendation_for
from inspection.types import SCHEMA_VERSION, InspectionContext, InspectionResult

log = logging.getLogger(__name__)

RESULTS_SCHEMA_VERSION = "1.0"
"""Version of the batch output record (see docs/results_schema.md)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
OUTPUT_FORMATS = (".jsonl", ".csv", ".parquet")

_CONTEXT_FIELDS = {
    "process",
    "material",
    "thickness_mm",
    "mm_per_px",
    "quality_level",
    "machine_serial",
    "firmware",
    "station_id",
    "operator_id",
    "part_id",
    "seam_id",
}
_FLOAT_FIELDS = {"thickness_mm", "mm_per_px"}


DEFAULT_CONTEXT_KEY = "*"
"""Key of a context table entry that applies to every image without an entry of its own."""


class UsageError(ValueError):
    """Bad usage (unknown output format, unreadable context file): exit code 2."""


class OutputError(RuntimeError):
    """The results file cannot be written (disk full, read-only, I/O error): the records written
    before are kept and a rerun resumes after them. Exit code 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another signal) turned into an interrupt so the run ends like Ctrl-C: the records
    written so far are kept, CSV/Parquet are rendered, exit code 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def _matches(path: Path, glob: str | None) -> bool:
    if glob:
        return fnmatch.fnmatch(path.name, glob) or fnmatch.fnmatch(path.name.lower(), glob.lower())
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _manifest_items(path: Path) -> Iterator[ScoreItem]:
    """Items of an ``annotations.jsonl`` manifest (images relative to the manifest's folder)."""
    root = path.parent
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        yield _error_item(str(path), path, "unreadable", f"{path}: cannot read manifest: {reason}")
        return
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = str(row["image"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("%s line %d: not a manifest record (%s); skipped", path, lineno, exc)
            continue
        ctx_fields = {
            k: row[k]
            for k in ("material", "thickness_mm", "mm_per_px", "machine_serial")
            if row.get(k) is not None
        }
        params = row.get("params") or {}
        context = _make_context({**ctx_fields, **({"params": params} if params else {})}, f"{path}:{lineno}")
        yield ScoreItem(image=str(root / image), path=root / image, context=context)


def _error_item(image: str, path: Path, code: str, message: str) -> ScoreItem:
    return ScoreItem(image=image, path=path, error=(code, message))


def _folder_items(
    folder: Path, recursive: bool, glob: str | None, seen: set[tuple[int, int]]
) -> list[ScoreItem]:
    """Items of one folder (and its sub-folders when ``recursive``; symlinked folders are followed
    once: a folder reached again, e.g. through a symlink loop, is skipped and logged)."""
    try:
        st = folder.stat()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [_error_item(str(folder), folder, "unreadable", f"{folder}: cannot list folder: {reason}")]
    seen.add((st.st_dev, st.st_ino))
    items: list[ScoreItem] = []
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks; False for loops and dangling links
        except OSError:
            is_dir = False
        if is_dir and recursive:
            try:
                sub = path.stat()
            except OSError as exc:
                items.append(_error_item(str(path), path, "unreadable", f"{path}: {exc.strerror or exc}"))
                continue
            if (sub.st_dev, sub.st_ino) in seen:
                log.warning(
                    "skipped %s: folder already visited (a symlink loop or a second link to it)", path
                )
                continue
            items.extend(_folder_items(path, recursive, glob, seen))
        elif _matches(path, glob):
            items.append(ScoreItem(image=str(path), path=path))  # whatever it is: its record says why
        elif is_dir:
            log.info("skipped %s: a sub-folder (pass --recursive to score its images)", path)
        else:
            problem = path_problem(path)
            what = f"; it is also unusable: {problem.reason}" if problem is not None else ""
            log.info("skipped %s: name does not match %s%s", path, glob or "/".join(IMAGE_EXTENSIONS), what)
    return items


def expand_inputs(
    paths: Sequence[str | Path], *, recursive: bool = False, glob: str | None = None
) -> list[ScoreItem]:
    """Expand files, folders (``recursive``, ``glob``) and ``*.jsonl`` manifests into items.

    Every path given becomes at least one item: one that does not exist, cannot be listed or is not
    a file (symlink loop, dangling symlink, FIFO) becomes an item whose record is an error naming
    the reason, so one bad path never stops the batch. In folders, every entry whose name matches
    becomes an item; the others are skipped with a log line (see the module docstring).
    """
    items: list[ScoreItem] = []
    for given in paths:
        p = Path(given)
        problem = None if p.is_dir() else path_problem(p)
        if p.is_dir():
            found = _folder_items(p, recursive, glob, set())
            if not found:
                pattern = glob or "/".join(IMAGE_EXTENSIONS)
                log.warning("input %s: a folder with no entry matching %s; nothing to score", given, pattern)
            items.extend(sorted(found, key=lambda it: it.path))
        elif problem is None and p.suffix.lower() == ".jsonl":
            items.extend(_manifest_items(p))
        elif problem is not None:
            log.warning("input %s", problem)
            items.append(_error_item(str(given), p, problem.code, str(problem)))
        else:
            items.append(ScoreItem(image=str(given), path=p))
    return items


def _make_context(row: Mapping[str, Any], where: str) -> InspectionContext | None:
    fields: dict[str, Any] = {}
    raw_params = row.get("params") or {}
    if not isinstance(raw_params, Mapping):
        msg = f"invalid context for {where}: params must be an object of name -> value, not {raw_params!r}"
        raise UsageError(msg)
    params: dict[str, Any] = dict(raw_params)
    try:
        for key, value in row.items():
            if key in ("image", "params") or value is None or value == "":
                continue
            if key in _FLOAT_FIELDS:
                fields[key] = _positive_number(key, value)
            elif key in _CONTEXT_FIELDS:
                fields[key] = str(value)
            else:
                params[key] = _number_or_text(value)
        if params:
            fields["params"] = params
        if not fields:
            return None
        return InspectionContext(**fields)
    except (TypeError, ValueError) as exc:
        msg = f"invalid context for {where}: {exc}"
        raise UsageError(msg) from exc


def _positive_number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        msg = f"{key} must be a positive number, got {value!r}"
        raise ValueError(msg)
    return number


def _number_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


_JSON_CONTEXT_SHAPES = (
    "one context object for every image (the form `weldinspect inspect --context` takes, e.g. "
    '{"process": "laser", "thickness_mm": 2, "params": {...}}), a list of objects each with "image", '
    "or an object mapping image name -> context object"
)


def _json_context_rows(path: Path, data: Any) -> list[Mapping[str, Any]]:
    """The rows of a JSON context file, one of the shapes in :data:`_JSON_CONTEXT_SHAPES`."""
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        msg = f"context file {path}: got a JSON {type(data).__name__}; expected {_JSON_CONTEXT_SHAPES}"
        raise UsageError(msg)
    if _CONTEXT_FIELDS.intersection(data) or "params" in data:  # one context for every image
        unknown = sorted(set(data) - _CONTEXT_FIELDS - {"params"})
        if unknown:  # strict, as `inspect --context`
            valid = ", ".join(sorted(_CONTEXT_FIELDS | {"params"}))
            msg = f"context file {path}: unknown context field(s) {unknown}; valid: {valid}"
            raise UsageError(msg)
        return [{**data, "image": DEFAULT_CONTEXT_KEY}]
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        fields = ", ".join(sorted(_CONTEXT_FIELDS | {"params"}))
        msg = (
            f"context file {path}: the value of {bad[0]!r} is a {type(data[bad[0]]).__name__}, and no key "
            f"is a context field ({fields}); expected {_JSON_CONTEXT_SHAPES}"
        )
        raise UsageError(msg)
    return [{"image": k, **v} for k, v in data.items()]


def load_context_table(path: Path) -> dict[str, InspectionContext]:
    """Read a CSV or JSON context file keyed by image name (file name or path as given).

    CSV: a header with ``image`` and any of the context fields; other columns become welding
    parameters. JSON: one context object for every image (what ``weldinspect inspect --context``
    takes; stored under :data:`DEFAULT_CONTEXT_KEY`), a list of objects with ``image``, or an object
    mapping image name -> fields. Anything else is a :class:`UsageError` naming the file and the
    shapes it may have.
    """
    if not path.is_file():
        msg = f"context file {path} does not exist"
        raise UsageError(msg)
    rows: list[Mapping[str, Any]]
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
        elif path.suffix.lower() == ".json":
            rows = _json_context_rows(path, json.loads(path.read_text(encoding="utf-8")))
        else:
            msg = f"context file {path}: unsupported type {path.suffix!r}; use .csv or .json"
            raise UsageError(msg)
    except (OSError, json.JSONDecodeError, csv.Error, UnicodeDecodeError) as exc:
        msg = f"context file {path} could not be read: {exc}"
        raise UsageError(msg) from exc
    table: dict[str, InspectionContext] = {}
    for i, row in enumerate(rows, 1):
        if not isinstance(row, Mapping) or not row.get("image"):
            msg = f"context file {path}: row {i} has no 'image' field"
            if path.suffix.lower() == ".json":
                msg += f"; expected {_JSON_CONTEXT_SHAPES}"
            raise UsageError(msg)
        ctx = _make_context(row, f"{path} row {i}")
        if ctx is not None:
            table[str(row["image"])] = ctx
    return table


def attach_contexts(items: Sequence[ScoreItem], table: Mapping[str, InspectionContext]) -> list[ScoreItem]:
    """Join contexts by the path as given, then by file name; manifest contexts are kept otherwise;
    then the table's :data:`DEFAULT_CONTEXT_KEY` entry (a one-object JSON context) applies."""
    out = []
    for it in items:
        ctx = table.get(it.image) or table.get(it.path.name) or it.context or table.get(DEFAULT_CONTEXT_KEY)
        out.append(ScoreItem(it.image, it.path, ctx, it.error))
    return out


# ----------------------------------------------------------------------------------------------
# Records
# ----------------------------------------------------------------------------------------------


def _head(result: InspectionResult, name: str) -> dict[str, Any] | None:
    head = result.porosity if name == "porosity" else result.spatter
    if head is None:
        return None
    return {
        "grade": head.grade,
        "probs": [round(p, 6) for p in head.probs],
        "confidence": round(head.confidence, 6),
    }


def result_record(
    image: str,
    result: InspectionResult,
    elapsed_ms: float,
    *,
    recommendation: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The batch output record for one graded (or review-routed) image."""
    full = result.to_dict()
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "image": image,
        "sha256": result.image_sha256,
        "status": "review" if result.needs_review else "ok",
        "error": None,
        "porosity": _head(result, "porosity"),
        "spatter": _head(result, "spatter"),
        "needs_review": result.needs_review,
        "review_reasons": list(result.review_reasons),
        "findings": full["findings"],
        "standards": full["standards"],
        "quality": full["quality"],
        "domain": full.get("domain"),
        "seam": full["seam"],
        "recommendation": recommendation,
        "evidence": evidence,
        "model": full["model"],
        "timings_ms": full["timings_ms"],
        "result_schema_version": SCHEMA_VERSION,
        "elapsed_ms": round(elapsed_ms, 3),
    }


def error_record(
    image: str, code: str, message: str, sha256: str | None, model: Mapping[str, Any]
) -> dict[str, Any]:
    """The batch output record for an image that could not be scored."""
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "image": image,
        "sha256": sha256,
        "status": "error",
        "error": {"code": code, "message": message},
        "porosity": None,
        "spatter": None,
        "needs_review": False,
        "review_reasons": [],
        "findings": [],
        "standards": None,
        "quality": None,
        "domain": None,
        "seam": None,
        "recommendation": None,
        "evidence": None,
        "model": dict(model),
        "timings_ms": {},
        "result_schema_version": SCHEMA_VERSION,
        "elapsed_ms": 0.0,
    }


# ----------------------------------------------------------------------------------------------
# Journal (crash-safe JSONL) and table rendering
# ----------------------------------------------------------------------------------------------


def journal_path(out: Path) -> Path:
    return out if out.suffix.lower() == ".jsonl" else out.with_name(out.name + ".journal.jsonl")


def read_journal(path: Path, *, repair: bool = True) -> list[dict[str, Any]]:
    """Read a JSONL journal. A torn last line (bytes after the last newline: a write cut short by
    a crash) is dropped, and cut off the file when ``repair`` is set. Any other unparsable line
    is an error: the file is not ours or was edited.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        log.warning("results file %s: torn last line (%d bytes) removed", path, len(data) - cut)
        if repair:
            with path.open("r+b") as fh:
                fh.truncate(cut)
                fh.flush()
                os.fsync(fh.fileno())
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(data[:cut].split(b"\n")[:-1], 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except ValueError as exc:
            msg = f"results file {path} is corrupt at line {lineno}: {exc}"
            raise UsageError(msg) from exc
        if not isinstance(rec, dict):
            msg = f"results file {path} line {lineno} is not a JSON object"
            raise UsageError(msg)
        records.append(rec)
    return records


class Journal:
    """Append-only JSONL writer: one write + flush + fsync per batch."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("ab", buffering=0)  # unbuffered: a failed write leaves nothing to re-flush

    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        blob = b"".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"
            for r in records
        )
        if not blob:
            return
        view = memoryview(blob)
        while view:  # a raw write may be partial; a failure (disk full) raises with nothing buffered
            n = self._fh.write(view)
            view = view[n or 0 :]
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def flat_row(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A flat row for CSV / Parquet (nested parts as JSON text)."""
    row: dict[str, Any] = {
        "schema_version": rec.get("schema_version"),
        "image": rec.get("image"),
        "sha256": rec.get("sha256"),
        "status": rec.get("status"),
        "error_code": (rec.get("error") or {}).get("code"),
        "error_message": (rec.get("error") or {}).get("message"),
    }
    for name in ("porosity", "spatter"):
        head = rec.get(name) or {}
        probs = head.get("probs") or [None] * 4
        row[f"{name}_grade"] = head.get("grade")
        for k in range(4):
            row[f"{name}_p{k}"] = probs[k]
        row[f"{name}_confidence"] = head.get("confidence")
    standards = rec.get("standards") or {}
    model = rec.get("model") or {}
    row.update(
        {
            "needs_review": rec.get("needs_review"),
            "review_reasons": ";".join(rec.get("review_reasons") or []),
            "n_porosity_findings": sum(1 for f in rec.get("findings") or [] if f.get("kind") == "porosity"),
            "n_spatter_findings": sum(1 for f in rec.get("findings") or [] if f.get("kind") == "spatter"),
            "standards_level": standards.get("level_reached"),
            "findings_json": json.dumps(rec.get("findings") or []),
            "standards_json": json.dumps(rec.get("standards")),
            "recommendation_json": json.dumps(rec.get("recommendation")),
            "evidence_json": json.dumps(rec.get("evidence")),
            "model_name": model.get("name"),
            "model_version": model.get("version"),
            "model_sha256": model.get("sha256"),
            "elapsed_ms": rec.get("elapsed_ms"),
        }
    )
    return row


def render_table(records: Sequence[Mapping[str, Any]], out: Path) -> None:
    """Write ``records`` as CSV or Parquet to ``out`` atomically (temp file + rename)."""
    rows = [flat_row(r) for r in records]
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".csv":
        header = list(flat_row({}).keys())
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
            fh.flush()
            os.fsync(fh.fileno())
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        header = list(flat_row({}).keys())
        table = (
            pa.Table.from_pylist(rows, schema=_parquet_schema()) if rows else _parquet_schema().empty_table()
        )
        pq.write_table(table.select(header), tmp)
    os.replace(tmp, out)


def _parquet_schema() -> Any:
    import pyarrow as pa

    f64, i64, s = pa.float64(), pa.int64(), pa.string()
    cols: list[tuple[str, Any]] = [
        ("schema_version", s),
        ("image", s),
        ("sha256", s),
        ("status", s),
        ("error_code", s),
        ("error_message", s),
    ]
    for name in ("porosity", "spatter"):
        cols += (
            [(f"{name}_grade", i64)]
            + [(f"{name}_p{k}", f64) for k in range(4)]
            + [(f"{name}_confidence", f64)]
        )
    cols += [
        ("needs_review", pa.bool_()), ("review_reasons", s), ("n_porosity_findings", i64),
        ("n_spatter_findings", i64), ("standards_level", s), ("findings_json", s), ("standards_json", s),
        ("recommendation_json", s), ("evidence_json", s), ("model_name", s), ("model_version", s),
        ("model_sha256", s), ("elapsed_ms", f64),
    ]  # fmt: skip
    return pa.schema(cols)


# ----------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------


@dataclass
class ScoreSummary:
    """What a run did (also printed as the summary table)."""

    total: int = 0
    scored: int = 0
    skipped: int = 0
    status: Counter[str] = field(default_factory=Counter)
    porosity_grades: Counter[int] = field(default_factory=Counter)
    spatter_grades: Counter[int] = field(default_factory=Counter)
    review_reasons: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    stage_ms: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    signum: int = signal.SIGINT

    @property
    def images_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def add(self, rec: Mapping[str, Any]) -> None:
        self.scored += 1
        self.status[rec["status"]] += 1
        for name, counter in (("porosity", self.porosity_grades), ("spatter", self.spatter_grades)):
            head = rec.get(name)
            if head is not None:
                counter[int(head["grade"])] += 1
        self.review_reasons.update(rec.get("review_reasons") or [])
        if rec.get("error"):
            self.errors[rec["error"]["code"]] += 1
        for stage, ms in (rec.get("timings_ms") or {}).items():
            self.stage_ms[stage] = self.stage_ms.get(stage, 0.0) + float(ms)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + int(self.signum)  # 130 Ctrl-C, 143 SIGTERM
        return 3 if self.status.get("error") else 0


@dataclass(frozen=True, eq=False)
class Graded:
    """One graded image handed to a :data:`RecordHook` (``data``: its bytes when kept)."""

    item: ScoreItem
    result: InspectionResult
    data: bytes | None


RecordHook = Callable[[Sequence[Graded]], list[dict[str, Any]]]
"""Called once per batch with the graded images; returns extra record fields per image
(``recommendation``, ``evidence``), in order. If it raises, the batch's graded images become
``hook_failed`` error records (so a failed evidence write never looks like a success)."""


def score(
    items: Sequence[ScoreItem],
    out: Path,
    inspector: Inspector,
    *,
    workers: int = 0,
    batch_size: int = 32,
    hook: RecordHook | None = None,
    keep_bytes: bool = False,
    progress: Callable[[int, int], None] | None = None,
    prefetch: int | None = None,
) -> ScoreSummary:
    """Score ``items`` into ``out`` (``.jsonl``, ``.csv`` or ``.parquet``), resuming if it exists.

    ``workers`` = 0 prepares images in ``prefetch`` threads of this process (default
    :func:`prefetch_threads`: one per core), overlapping the model (the fastest setting on the
    2-core development machine); N > 0 uses N worker processes (see :mod:`inspection.batch.worker`).
    ``progress(done, total)`` is called after every batch.

    With ``workers > 0`` the decode/preprocess workers start from a fork server (see
    :func:`_worker_context`), so a calling *script* needs the usual ``if __name__ == "__main__":``
    guard (the ``weldinspect`` command and ``scripts/score_batch.py`` have it).
    """
    if out.suffix.lower() not in OUTPUT_FORMATS:
        msg = f"output {out} has unsupported extension {out.suffix!r}; valid: {', '.join(OUTPUT_FORMATS)}"
        raise UsageError(msg)
    if batch_size < 1:
        msg = f"batch size must be >= 1, got {batch_size}"
        raise UsageError(msg)
    jpath = journal_path(out)
    previous = read_journal(jpath)
    done_sha = frozenset(r["sha256"] for r in previous if r.get("status") != "error" and r.get("sha256"))
    done_err = {r["image"] for r in previous if r.get("status") == "error"}
    todo = [it for it in items if it.image not in done_err]
    summary = ScoreSummary(total=len(items), skipped=len(items) - len(todo))
    info = inspector.grader.info
    model_info = {"name": info.name, "version": info.version, "sha256": info.sha256}
    if info.runtime:
        model_info["runtime"] = info.runtime
    t_start = time.perf_counter()
    pending: list[Job] = []

    def flush(journal: Journal) -> None:
        if not pending:
            return
        graded = [j for j in pending if j.kind == "prepared" and j.prepared is not None]
        inspections = inspector.finish([j.prepared for j in graded if j.prepared is not None])
        extras: list[dict[str, Any]] = [{} for _ in graded]
        hook_error: str | None = None
        if hook is not None and graded:
            try:
                extras = hook(
                    [Graded(j.item, ins.result, j.data) for j, ins in zip(graded, inspections, strict=True)]
                )
            except Exception as exc:  # keep going; the records say what failed (nothing was half-written)
                log.exception("post-processing hook failed on a batch of %d images", len(graded))
                hook_error = f"{type(exc).__name__}: {exc}"
        by_id = {id(j): (ins, extra) for j, ins, extra in zip(graded, inspections, extras, strict=True)}
        records = []
        for job in pending:
            if job.kind == "error":
                records.append(error_record(job.item.image, job.code, job.message, job.sha256, model_info))
                continue
            if hook_error is not None:
                message = f"{job.item.image}: recording failed: {hook_error}"
                records.append(error_record(job.item.image, "hook_failed", message, job.sha256, model_info))
                continue
            ins, extra = by_id[id(job)]
            elapsed = job.elapsed_ms + sum(
                v for k, v in ins.result.timings_ms.items() if k not in ("decode", "preprocess", "quality")
            )
            records.append(result_record(job.item.image, ins.result, elapsed, **extra))
        try:
            journal.write(records)
        except OSError as exc:
            done = summary.scored
            msg = (
                f"cannot write results to {jpath}: {exc.strerror or exc}; the {done} record(s) written in "
                "this run before it are kept; free space (or fix the file) and run again with the same "
                "--out to resume"
            )
            raise OutputError(msg) from exc
        for r in records:
            summary.add(r)
        pending.clear()
        if progress is not None:
            progress(summary.scored + summary.skipped, summary.total)

    try:
        try:
            journal_file = Journal(jpath)
        except OSError as exc:
            msg = f"cannot open results file {jpath} for writing: {exc.strerror or exc}"
            raise OutputError(msg) from exc
        with journal_file as journal:
            for job in _jobs(
                todo, inspector.prepare_config, done_sha, keep_bytes, workers, batch_size, prefetch
            ):
                if job.kind == "skip":
                    summary.skipped += 1
                    continue
                pending.append(job)
                if len(pending) >= batch_size:
                    flush(journal)
            flush(journal)
    except KeyboardInterrupt as exc:
        summary.interrupted = True
        summary.signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
        log.warning("interrupted: records written so far are kept; run again to resume")
    finally:
        summary.seconds = time.perf_counter() - t_start
        if out.suffix.lower() != ".jsonl" and jpath.exists():
            try:
                render_table(read_journal(jpath, repair=False), out)
            except OSError as exc:  # e.g. the same full disk: the journal stays, a rerun renders it
                log.error("cannot write %s (%s); the records are in %s", out, exc.strerror or exc, jpath)
    return summary


MAX_PREFETCH_THREADS = 2
"""Preparation is partly Python (it holds the GIL between OpenCV and NumPy calls), so threads
beyond a second add contention rather than speed; bigger machines use worker processes
(``--workers N``)."""


def prefetch_threads(cpus: int | None = None) -> int:
    """Preparation threads for ``workers`` = 0: one per CPU core, at most
    :data:`MAX_PREFETCH_THREADS`, sharing the cores with the model thread(s). Measured on 2 cores
    (docs/performance.md): with one thread the preparation (~5.5 ms a photo) is the bottleneck
    and a core idles whenever it waits for the GIL; two keep both cores busy, ~7 % more images/s."""
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(n, MAX_PREFETCH_THREADS))


def model_threads(workers: int, cpus: int | None = None) -> int:
    """Model (onnxruntime / torch) threads that leave one core to the preparation: with
    ``workers`` = 0 the prefetch threads (:func:`prefetch_threads`) need about one core, with N
    worker processes N cores. Measured on 2 cores: 1 model thread + the prefetch thread beat 2
    model threads by ~15 % (both spin for the same cores otherwise; docs/performance.md)."""
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, n - max(1, workers))


def _jobs(
    items: Sequence[ScoreItem],
    cfg: PrepareConfig,
    done: frozenset[str],
    keep_bytes: bool,
    workers: int,
    batch_size: int,
    threads: int | None = None,
) -> Iterator[Job]:
    """Prepared jobs in input order; a bounded window runs ahead of the consumer.

    ``workers`` <= 0: ``threads`` threads of this process (default :func:`prefetch_threads`)
    prepare while the caller runs the model (decoding, OpenCV and onnxruntime release the GIL, so
    they overlap on the cores and nothing is pickled); N > 0: N worker processes.
    """
    pool: cf.Executor
    if workers <= 0:
        init_worker(cfg, done, keep_bytes)
        n_threads = threads if threads is not None else prefetch_threads()
        pool = cf.ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="weldinspect-prepare")
        window = max(2 * batch_size, 4 * n_threads)
    else:
        pool = cf.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=worker_context(),
            initializer=init_worker,
            initargs=(cfg, done, keep_bytes),
        )
        window = max(2 * batch_size, 4 * workers)
    with pool:
        queue: deque[cf.Future[Job]] = deque()
        try:
            for item in items:
                queue.append(pool.submit(work, item))
                if len(queue) >= window:
                    yield queue.popleft().result()
            while queue:
                yield queue.popleft().result()
        finally:
            for fut in queue:
                fut.cancel()


def recommendation_hook(batch: Sequence[Graded]) -> list[dict[str, Any]]:
    """Record hook adding parameter advice when an image's context allows it."""
    return [{"recommendation": recommendation_for(g.result)} for g in batch]


def ledger_hook(
    db: str,
    inspector: Inspector,
    *,
    station: str | None = None,
    store_config: StoreConfig | None = None,
) -> RecordHook:
    """Record hook that also appends signed evidence records, one transaction per batch.

    ``db`` is a database URL, or ``default`` for the local store (``StoreConfig``). The signing
    key is the station's newest key in the store's key directory (``weldinspect keys init``).
    Raises ValueError (usage) when the store cannot be opened or no key exists.

    Outcome tracking (:class:`inspection.recommend.tracking.OutcomeTracker`): each batch's advice is ranked
    with the store's per-rule outcome stats (read once, then cached until an outcome changes);
    after the batch is recorded its parameter changes go into the ``recommendations`` table and
    the outcomes of the batch's machines are recomputed, once per machine per batch.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from inspection.evidence.keys import KeyFileError, load_signer
    from inspection.evidence.ledger import InspectionToRecord, Ledger, record_inspections
    from inspection.recommend.tracking import OutcomeTracker, RecordedAdvice
    from inspection.store import Store
    from inspection.store.db import StoreError

    cfg = store_config or StoreConfig()
    url = cfg.db_url if db == "default" else db
    try:
        signer = load_signer(cfg.keys_dir, station_id=station)
        store = Store.open(url, cfg.images_dir)
    except (KeyFileError, StoreError) as exc:
        raise ValueError(str(exc)) from exc
    ledger = Ledger(store, signer)
    outcomes = OutcomeTracker(store)

    def hook(batch: Sequence[Graded]) -> list[dict[str, Any]]:
        stats = outcomes.rule_stats()
        recs = [recommendation_for(g.result, stats) for g in batch]
        todo = [
            InspectionToRecord(
                result=g.result,
                image_bytes=g.data if g.data is not None else read_image_bytes(g.item.path),
                config_sha256=inspector.config_sha256,
                recommendation=rec,
            )
            for g, rec in zip(batch, recs, strict=True)
        ]
        written = record_inspections(store, ledger, todo)
        try:
            outcomes.record(
                RecordedAdvice(iid, g.result.context.machine_serial if g.result.context else None, rec)
                for g, rec, (iid, _) in zip(batch, recs, written, strict=True)
            )
        except (SQLAlchemyError, StoreError, LookupError, ValueError):
            # the batch is committed and its advice is in the signed records: do not fail it
            log.exception("outcome tracking after a batch of %d failed; use 'Recompute outcomes'", len(batch))
        return [
            {
                "recommendation": rec,
                "evidence": {"inspection_id": iid, "seq": r.seq, "record_hash": r.record_hash},
            }
            for rec, (iid, r) in zip(recs, written, strict=True)
        ]

    return hook
