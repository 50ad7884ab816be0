"""The Inspector: one path from an image to a graded :class:`InspectionResult`.

Batch scoring, the evidence ledger, recommendations and the station service all go through here.
The work is split in two stages so callers can parallelise the first:

* :func:`inspection.image.prepare.prepare` (pure CPU, no model, picklable in and out, no torch import):
  decode, quality gate, seam localisation, domain gate and tiles. Batch scoring runs it in
  prefetch threads or in worker processes.
* :meth:`Inspector.finish` (the model): batched inference over the prepared tiles, grade decisions,
  findings in source pixels (and mm), standards verdicts, review routing.

Review routing and grades (``docs/results_schema.md``): a photo that fails the quality gate or
the domain gate's image checks (``not_seam_closeup``, ``unfamiliar_appearance``) is not graded:
the model does not run, ``porosity``/``spatter`` are None, there are no findings and no standards
verdict. A graded photo whose embedding is far from the training data gets
``unfamiliar_appearance`` plus ``out_of_distribution`` and keeps its grades as provisional, like an
abstaining head: ``needs_review`` is True and a reviewer confirms them.

``Inspector.inspect`` and ``Inspector.inspect_many`` chain both for ordinary callers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inspection.config import AppConfig
from inspection.image.domain import UNFAMILIAR_APPEARANCE
from inspection.image.ingest import IngestError
from inspection.image.prepare import ImageInput, PrepareConfig, Prepared, elapsed_ms, prepare
from inspection.image.preprocess import tile_to_source
from inspection.model.agreement import BackendAgreement, agreement
from inspection.model.artifact import CONFIG_FILE, default_model_dir, sha256_file
from inspection.model.postprocess import check_probs, decide_tiles, decode_peaks, grade_from_findings
from inspection.model.runtime import Grader, RawPrediction
from inspection.recommend import RuleStats, recommend
from inspection.standards import assess as assess_standards
from inspection.types import (
    Defect,
    DomainVerdict,
    Finding,
    InspectionContext,
    InspectionResult,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Inspection:
    """A result plus the dense maps behind it (for overlays): ``heatmaps`` is ``(2, H, W)``
    float32 in source pixels (channel 0 porosity, 1 spatter), or None when not graded."""

    result: InspectionResult
    heatmaps: npt.NDArray[np.float32] | None


def auto_backend(directory: Path) -> str:
    """The fastest backend the artifact ships: ``onnx-int8`` (``model.int8.onnx``), else ``onnx``
    (``model.onnx``), else ``torch``. int8 agrees with float32 on ~99 % of real photos' grades
    (measured, see the model card); pass ``torch`` for the reference numbers."""
    from inspection.model.files import INT8_FILE

    if (directory / INT8_FILE).is_file():
        return "onnx-int8"
    return "onnx" if (directory / "model.onnx").is_file() else "torch"


class Inspector:
    """Grades weld-seam images with one model artifact.

    >>> inspector = Inspector.from_artifact()            # the shipped default model
    >>> result = inspector.inspect("seam.jpg")           # doctest: +SKIP
    >>> result.porosity.grade, result.needs_review       # doctest: +SKIP
    """

    def __init__(self, grader: Grader, config: AppConfig | None = None, *, config_sha256: str = "") -> None:
        self.grader = grader
        self.app_config = config or AppConfig()
        model_cfg = grader.config
        self.prepare_config = PrepareConfig(
            ingest=self.app_config.ingest,
            quality=self.app_config.quality,
            preprocess=model_cfg.preprocess_config(),
            domain=self.app_config.domain,
        )
        self.config_sha256 = config_sha256
        """SHA-256 of the artifact's ``config.json`` (recorded in evidence)."""
        self.finding_floor: float | None = None
        """Evaluation only (``scripts/eval_pores.py``): decode porosity peaks down to this score so
        one pass can sweep a FROC curve. The result's ``findings`` then include the weaker peaks,
        while grades, review reasons and standards still count only findings at or above the
        model's own peak threshold, so they are exactly what a station gets. None = off."""

    @classmethod
    def from_artifact(
        cls,
        path: Path | str | None = None,
        *,
        backend: str = "auto",
        config: AppConfig | None = None,
        threads: int | None = None,
    ) -> Inspector:
        """Load a model artifact directory (None = the shipped default model).

        ``backend``: ``torch``, ``onnx``, ``onnx-int8`` or ``auto`` (:func:`auto_backend`).
        """
        directory = default_model_dir() if path is None else Path(path)
        if backend == "auto":
            backend = auto_backend(directory)
        grader = Grader.load(directory, backend=backend, threads=threads)  # type: ignore[arg-type]
        return cls(grader, config, config_sha256=sha256_file(directory / CONFIG_FILE))

    # -- convenience ----------------------------------------------------------------------------
    def inspect(
        self, image: ImageInput, context: InspectionContext | None = None, *, name: str | None = None
    ) -> InspectionResult:
        """Inspect one image (array, bytes or path)."""
        return self.inspect_detailed(image, context, name=name).result

    def inspect_detailed(
        self, image: ImageInput, context: InspectionContext | None = None, *, name: str | None = None
    ) -> Inspection:
        """Like :meth:`inspect`, also returning the source-space heatmaps for overlays."""
        prepared = prepare(image, self.prepare_config, name=name, context=context)
        return self.finish([prepared], with_maps=True)[0]

    def inspect_many(
        self,
        images: Iterable[ImageInput],
        contexts: Sequence[InspectionContext | None] | None = None,
        *,
        batch_size: int = 32,
    ) -> list[InspectionResult]:
        """Inspect several images, running the model in batches of ``batch_size`` images."""
        items = list(images)
        ctxs = list(contexts) if contexts is not None else [None] * len(items)
        if len(ctxs) != len(items):
            msg = f"got {len(items)} images but {len(ctxs)} contexts"
            raise ValueError(msg)
        out: list[InspectionResult] = []
        for start in range(0, len(items), batch_size):
            chunk = [
                prepare(img, self.prepare_config, context=ctx)
                for img, ctx in zip(
                    items[start : start + batch_size], ctxs[start : start + batch_size], strict=True
                )
            ]
            out.extend(r.result for r in self.finish(chunk))
        return out

    # -- model stage ----------------------------------------------------------------------------
    def finish(self, batch: Sequence[Prepared], *, with_maps: bool = False) -> list[Inspection]:
        """Run the model over the tiles of ``batch`` at once and build the results."""
        tiles: list[np.ndarray] = []
        owners: list[int] = []
        for i, p in enumerate(batch):
            if p.pre is None:
                continue
            for t in p.pre.tiles:
                tiles.append(t.image)
                owners.append(i)
        raw: RawPrediction | None = None
        model_ms = 0.0
        if tiles:
            t0 = time.perf_counter()
            raw = self.grader.predict(np.stack(tiles))
            model_ms = elapsed_ms(t0)
        owner_arr = np.asarray(owners, dtype=np.int64)
        n_tiles = max(len(tiles), 1)
        checked = (  # every tile's distribution checked once for the batch, not once per image
            (check_probs(raw.porosity_probs, "porosity tile probabilities"),
             check_probs(raw.spatter_probs, "spatter tile probabilities"))
            if raw is not None else ()
        )  # fmt: skip
        results = []
        for i, p in enumerate(batch):
            idx = np.flatnonzero(owner_arr == i)
            share = model_ms * len(idx) / n_tiles
            results.append(self._build(p, raw, checked, idx, share, with_maps))
        return results

    def _build(
        self,
        p: Prepared,
        raw: RawPrediction | None,
        checked: tuple[npt.NDArray[np.float64], ...],
        idx: npt.NDArray[np.int64],
        model_ms: float,
        with_maps: bool,
    ) -> Inspection:
        cfg = self.grader.config
        timings = dict(p.timings_ms)
        reasons = [f"quality:{r}" for r in p.quality.reasons]
        domain = p.domain
        if domain is not None:
            reasons.extend(domain.reasons)
        porosity = spatter = None
        findings: list[Finding] = []
        counted: list[Finding] = []  # findings at or above the model's peak thresholds
        ood: float | None = None
        maps = None
        if p.pre is not None and raw is not None and len(idx):
            timings["model"] = round(model_ms, 3)
            t0 = time.perf_counter()
            heads = {}
            for defect, probs in zip((Defect.POROSITY, Defect.SPATTER), checked, strict=True):
                head, abstained = decide_tiles(probs[idx], cfg.thresholds.abstain[defect.value], checked=True)
                heads[defect] = head
                if abstained:
                    reasons.append(f"abstain:{defect.value}")
            porosity, spatter = heads[Defect.POROSITY], heads[Defect.SPATTER]
            findings = self._findings(p, raw, idx)
            counted = [f for f in findings if f.score >= cfg.thresholds.peak[f.kind.value]]  # finding_floor
            grading = self.app_config.grading
            if grading.porosity_from_findings:
                n_pores = sum(1 for f in counted if f.kind is Defect.POROSITY)
                porosity, disagree = grade_from_findings(
                    porosity, n_pores, grading.porosity_thresholds, grading.findings_agreement_min_prob
                )
                if disagree:
                    reasons.append("grade_findings_disagree")
                zero_rule = cfg.thresholds.abstain[Defect.POROSITY.value].max_p_defect_for_zero
                if porosity.grade == 0 and 1.0 - porosity.probs[0] > zero_rule:
                    reasons.append("abstain:porosity")  # no circle, yet the head sees pores: a person looks
            ood = float(np.max(raw.ood_scores[idx]))
            if ood > cfg.thresholds.ood:
                reasons += [UNFAMILIAR_APPEARANCE, "out_of_distribution"]
                domain = _with_embedding_flag(domain, ood)
            if with_maps:
                maps = self._source_maps(p, raw, idx)
            timings["postprocess"] = elapsed_ms(t0)
        t0 = time.perf_counter()
        standards = None
        if p.pre is not None:
            seam_len = p.pre.strip.region.length if p.pre.region is not None else None
            standards = assess_standards(counted, p.context, seam_length_px=seam_len)
        timings["standards"] = elapsed_ms(t0)
        result = InspectionResult(
            image_sha256=p.sha256,
            width=p.width,
            height=p.height,
            quality=p.quality,
            seam=None if p.pre is None else p.pre.region,
            porosity=porosity,
            spatter=spatter,
            findings=tuple(findings),
            standards=standards,
            needs_review=bool(reasons),
            review_reasons=tuple(dict.fromkeys(reasons)),
            model=self.grader.info,
            timings_ms=timings,
            ood_score=ood,
            context=p.context,
            domain=domain,
        )
        return Inspection(result, maps)

    def _findings(self, p: Prepared, raw: RawPrediction, idx: npt.NDArray[np.int64]) -> list[Finding]:
        """Heatmap peaks of every tile, mapped to source pixels, de-duplicated across overlaps."""
        cfg = self.grader.config
        pre = p.pre
        if pre is None:
            return []
        stride = cfg.heatmap_stride
        mm = p.context.mm_per_px if p.context is not None else None
        out: list[Finding] = []
        peak_max = raw.heatmaps[idx].max(axis=(2, 3))  # (tiles, 2): most tiles hold no peak at all
        for channel, defect in enumerate((Defect.POROSITY, Defect.SPATTER)):
            threshold = cfg.thresholds.peak[defect.value]
            if defect is Defect.POROSITY and self.finding_floor is not None:
                threshold = min(threshold, self.finding_floor)
            cands: list[tuple[float, float, float, float, float]] = []  # x, y, d, score, along
            for j, (k, tile) in enumerate(zip(idx, pre.tiles, strict=True)):
                if peak_max[j, channel] < threshold:  # decode_peaks would find none (NaN goes on, and fails)
                    continue
                peaks = decode_peaks(
                    raw.heatmaps[k, channel],
                    raw.sizes[k, channel],
                    threshold=threshold,
                    stride=stride,
                    min_distance=cfg.thresholds.min_peak_distance,
                    max_peaks=cfg.thresholds.max_peaks,
                )
                peaks = [pk for pk in peaks if pk.u < tile.valid]  # padding columns are not strip content
                if not peaks:
                    continue
                xys = tile_to_source(tile, pre.strip, [[pk.u, pk.v] for pk in peaks])
                alongs = pre.strip.along_seam(xys)
                for pk, xy, along in zip(peaks, xys.tolist(), alongs.tolist(), strict=True):
                    if not (0.0 <= xy[0] < p.width and 0.0 <= xy[1] < p.height):
                        continue  # strip border outside the photo (replicated pixels)
                    d_src = pk.diameter_px * tile.u_scale / pre.strip.scale
                    cands.append((xy[0], xy[1], float(d_src), pk.score, along))
            cands.sort(key=lambda c: -c[3])
            kept: list[tuple[float, float, float, float, float]] = []
            for c in cands:
                if all((c[0] - q[0]) ** 2 + (c[1] - q[1]) ** 2 > (max(c[2], q[2]) / 2) ** 2 for q in kept):
                    kept.append(c)
            for x, y, d, score, along in kept:
                out.append(
                    Finding(
                        kind=defect,
                        x=round(x, 2),
                        y=round(y, 2),
                        diameter_px=round(d, 2),
                        score=round(score, 4),
                        along_seam=round(along, 4),
                        diameter_mm=None if mm is None else round(d * mm, 3),
                        x_mm=None if mm is None else round(x * mm, 3),
                        y_mm=None if mm is None else round(y * mm, 3),
                    )
                )
        return out

    def _source_maps(
        self, p: Prepared, raw: RawPrediction, idx: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32] | None:
        """Heatmaps warped back to source pixels (max over overlapping tiles), ``(2, H, W)``."""
        import cv2

        pre = p.pre
        if pre is None:
            return None
        strip = pre.strip
        out = np.zeros((2, p.height, p.width), np.float32)
        inv = strip.inverse
        for k, tile in zip(idx, pre.tiles, strict=True):
            hm = raw.heatmaps[k]  # (2, h, w)
            th, tw = tile.image.shape[:2]
            for c in range(2):
                up = cv2.resize(hm[c].astype(np.float32), (tw, th), interpolation=cv2.INTER_LINEAR)
                up[:, tile.valid :] = 0.0
                # tile -> strip: u = u0 + x * u_scale ; compose with strip -> source.
                a = np.array([[tile.u_scale, 0.0, tile.u0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
                s2src = np.vstack([inv, [0.0, 0.0, 1.0]])
                m = (s2src @ a)[:2]
                warped = cv2.warpAffine(up, m, (p.width, p.height), flags=cv2.INTER_LINEAR, borderValue=0.0)
                np.maximum(out[c], warped, out=out[c])
        return out


def _with_embedding_flag(domain: DomainVerdict | None, ood: float) -> DomainVerdict:
    """``domain`` (None = the image checks did not run) with the model's embedding flag added:
    reason ``unfamiliar_appearance``, failed check ``ood_score``, measure ``ood_score``."""
    measures = {**(domain.measures if domain is not None else {}), "ood_score": round(ood, 6)}
    reasons = domain.reasons if domain is not None else ()
    failed = domain.failed if domain is not None else ()
    return DomainVerdict(
        ok=False,
        reasons=tuple(dict.fromkeys((*reasons, UNFAMILIAR_APPEARANCE))),
        failed=(*failed, "ood_score"),
        measures=measures,
    )


def recommendation_for(
    result: InspectionResult, rule_stats: Mapping[str, RuleStats] | None = None
) -> dict[str, Any] | None:
    """Parameter advice for ``result`` when its context says enough (process, material, thickness
    and the current parameters); None otherwise. A context the expert database cannot use gives
    ``{"status": "unavailable", "message": ...}`` instead of failing the inspection.

    ``rule_stats`` (per-rule outcome records, e.g. :func:`inspection.recommend.tracking.rule_success` of the
    store) ranks rules with a poor record lower; callers with a store pass it, the engine stays pure.
    """
    ctx = result.context
    if (
        ctx is None
        or not ctx.params
        or ctx.process is None
        or ctx.material is None
        or ctx.thickness_mm is None
    ):
        return None
    try:
        rec = recommend(
            result,
            ctx.params,
            process=ctx.process,
            material=ctx.material,
            thickness_mm=ctx.thickness_mm,
            rule_stats=rule_stats,
        )
    except ValueError as exc:
        return {"status": "unavailable", "message": str(exc)}
    return rec.to_dict()


_Row = tuple[list[int], list[list[float]], bool]


def _row(result: InspectionResult) -> _Row | None:
    if result.porosity is None or result.spatter is None:
        return None
    probs = [list(result.porosity.probs), list(result.spatter.probs)]
    return [result.porosity.grade, result.spatter.grade], probs, result.needs_review


def _compare(
    pairs: Sequence[tuple[Path, Path]], a: Inspector, b: Inspector, batch_size: int
) -> BackendAgreement:
    rows_a: list[_Row] = []
    rows_b: list[_Row] = []
    for start in range(0, len(pairs), batch_size):
        prep_a, prep_b = [], []
        for path_a, path_b in pairs[start : start + batch_size]:
            try:
                pa = prepare(path_a, a.prepare_config)
                pb = prepare(path_b, b.prepare_config)
            except IngestError as exc:
                log.warning("compare: skipping %s", exc)
                continue
            prep_a.append(pa)
            prep_b.append(pb)
        for x, y in zip(a.finish(prep_a), b.finish(prep_b), strict=True):
            rx, ry = _row(x.result), _row(y.result)
            if rx is not None and ry is not None:
                rows_a.append(rx)
                rows_b.append(ry)
    return agreement(rows_a, rows_b)


def compare_inspectors(
    reference: Inspector, other: Inspector, images: Sequence[Path], *, batch_size: int = 32
) -> BackendAgreement:
    """Grade ``images`` with both inspectors (each with its own preprocessing configuration) and
    compare grades, probabilities and review decisions (:func:`inspection.model.quantize.agreement`).
    Images that fail to decode, or that either inspector does not grade, are left out; raises
    ValueError when none is left."""
    return _compare([(p, p) for p in images], reference, other, batch_size)


def compare_pairs(
    inspector: Inspector, pairs: Sequence[tuple[Path, Path]], *, batch_size: int = 32
) -> BackendAgreement:
    """Like :func:`compare_inspectors` for one inspector on pairs of images (e.g. a photo and a
    re-encoded copy of it): how much the grades move under that change of the input."""
    return _compare(pairs, inspector, inspector, batch_size)
