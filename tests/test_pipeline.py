"""The Inspector: one path from image to result (tiny random model; behaviour, not accuracy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.data.synth import generate_weld
from inspection.pipeline import Inspector, prepare
from inspection.types import Defect, InspectionContext, InspectionResult
from tests.helpers.artifacts import make_tiny_artifact


@pytest.fixture(scope="module")
def inspector(tiny_model_dir: Path) -> Inspector:
    return Inspector.from_artifact(tiny_model_dir)


@pytest.fixture(scope="module")
def weld_image() -> np.ndarray:
    return generate_weld(np.random.default_rng(7), width=640, height=480, n_pores=3, n_spatter=8).image


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def test_inspect_graded_result(inspector: Inspector, weld_image: np.ndarray) -> None:
    result = inspector.inspect(weld_image)
    assert (result.width, result.height) == (640, 480)
    assert result.quality.ok
    assert result.seam is not None
    for head in (result.porosity, result.spatter):
        assert head is not None
        assert sum(head.probs) == pytest.approx(1.0, abs=1e-6)
        assert head.confidence == pytest.approx(max(head.probs))
    assert result.model.name == "weld-grader-test" and len(result.model.sha256) == 64
    assert {"decode", "preprocess", "quality", "model", "postprocess", "standards"} <= set(result.timings_ms)
    assert inspector.config_sha256 and len(inspector.config_sha256) == 64


def test_json_round_trip_of_a_real_result(inspector: Inspector, weld_image: np.ndarray) -> None:
    result = inspector.inspect(weld_image, InspectionContext(mm_per_px=0.05))
    back = InspectionResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result


def test_bytes_and_path_give_the_same_result(
    inspector: Inspector, weld_image: np.ndarray, tmp_path: Path
) -> None:
    data = _jpeg(weld_image)
    path = tmp_path / "seam.jpg"
    path.write_bytes(data)
    a, b = inspector.inspect(data), inspector.inspect(path)
    assert a.image_sha256 == b.image_sha256
    assert a.porosity == b.porosity and a.spatter == b.spatter


def test_inspect_many_matches_inspect(inspector: Inspector) -> None:
    rng = np.random.default_rng(3)
    images = [generate_weld(rng, width=320, height=320, n_pores=1, n_spatter=2).image for _ in range(3)]
    many = inspector.inspect_many(images, batch_size=2)
    for img, res in zip(images, many, strict=True):
        one = inspector.inspect(img)
        assert one.porosity is not None and res.porosity is not None
        np.testing.assert_allclose(one.porosity.probs, res.porosity.probs, atol=1e-5)
        assert one.image_sha256 == res.image_sha256


def test_quality_failure_is_routed_to_review_without_grades(
    inspector: Inspector, weld_image: np.ndarray
) -> None:
    dark = (weld_image * 0.05).astype(np.uint8)
    result = inspector.inspect(dark)
    assert not result.quality.ok
    assert result.porosity is None and result.spatter is None and result.findings == ()
    assert result.needs_review
    assert "quality:underexposed" in result.review_reasons


@pytest.mark.parametrize(
    ("thresholds", "reason"),
    [
        ({"abstain": {"porosity": {"min_confidence": 1.0}, "spatter": {"min_confidence": 0.0,
          "max_p_defect_for_zero": 1.0}}}, "abstain:porosity"),
        ({"ood": 1e-9}, "out_of_distribution"),
    ],
)  # fmt: skip
def test_review_routing_by_model(
    tmp_path: Path, weld_image: np.ndarray, thresholds: dict, reason: str
) -> None:
    inspector = Inspector.from_artifact(make_tiny_artifact(tmp_path / "m", thresholds=thresholds))
    result = inspector.inspect(weld_image)
    assert result.needs_review
    assert reason in result.review_reasons


def test_review_not_triggered_by_lenient_thresholds(tmp_path: Path, weld_image: np.ndarray) -> None:
    lenient = {"porosity": {"min_confidence": 0.0, "max_p_defect_for_zero": 1.0},
               "spatter": {"min_confidence": 0.0, "max_p_defect_for_zero": 1.0}}  # fmt: skip
    inspector = Inspector.from_artifact(
        make_tiny_artifact(tmp_path / "m", thresholds={"abstain": lenient, "ood": 1e9})
    )
    result = inspector.inspect(weld_image)
    assert result.review_reasons == ()
    assert not result.needs_review


def test_findings_in_source_pixels_and_mm(tmp_path: Path, weld_image: np.ndarray) -> None:
    inspector = Inspector.from_artifact(
        make_tiny_artifact(
            tmp_path / "m", thresholds={"peak": {"porosity": 0.0, "spatter": 0.0}, "max_peaks": 5}
        )
    )
    ctx = InspectionContext(mm_per_px=0.05)
    result = inspector.inspect(weld_image, ctx)
    assert result.findings, "a zero peak threshold must yield findings"
    for f in result.findings:
        assert 0 <= f.x <= result.width and 0 <= f.y <= result.height
        assert 0.0 <= f.along_seam <= 1.0
        assert f.diameter_mm == pytest.approx(f.diameter_px * 0.05, abs=1e-3)
        assert f.x_mm == pytest.approx(f.x * 0.05, abs=1e-3)
    assert {f.kind for f in result.findings} <= {Defect.POROSITY, Defect.SPATTER}
    without = inspector.inspect(weld_image)
    assert all(f.diameter_mm is None for f in without.findings)


def test_heatmaps_are_in_source_pixels(inspector: Inspector, weld_image: np.ndarray) -> None:
    detailed = inspector.inspect_detailed(weld_image)
    assert detailed.heatmaps is not None
    assert detailed.heatmaps.shape == (2, 480, 640)
    assert float(detailed.heatmaps.min()) >= 0.0 and float(detailed.heatmaps.max()) <= 1.0


def test_prepare_does_not_mutate_and_names_bad_bytes(inspector: Inspector, weld_image: np.ndarray) -> None:
    from inspection.image.ingest import IngestError

    before = weld_image.copy()
    prepare(weld_image, inspector.prepare_config)
    np.testing.assert_array_equal(before, weld_image)
    with pytest.raises(IngestError, match=r"upload\.jpg"):
        prepare(b"not an image at all", inspector.prepare_config, name="upload.jpg")


def test_standards_use_context(inspector: Inspector, weld_image: np.ndarray) -> None:
    missing = inspector.inspect(weld_image)
    assert missing.standards is not None and not missing.standards.assessable
    assert "thickness_mm" in missing.standards.missing
    ctx = InspectionContext(process="arc", material="carbon_steel", thickness_mm=4.0, mm_per_px=0.05)
    full = inspector.inspect(weld_image, ctx)
    assert full.standards is not None and full.standards.assessable
    assert full.standards.level_reached in {"B", "C", "D", "below D"}


def test_auto_backend_prefers_shipped_onnx(tmp_path: Path, weld_image: np.ndarray) -> None:
    from inspection.model.onnx import export_onnx

    directory = make_tiny_artifact(tmp_path / "m")
    assert Inspector.from_artifact(directory).grader.backend == "torch"
    torch_result = Inspector.from_artifact(directory).inspect(weld_image)
    export_onnx(directory)
    onnx_inspector = Inspector.from_artifact(directory)
    assert onnx_inspector.grader.backend == "onnx"
    onnx_result = onnx_inspector.inspect(weld_image)
    assert torch_result.porosity is not None and onnx_result.porosity is not None
    np.testing.assert_allclose(torch_result.porosity.probs, onnx_result.porosity.probs, atol=1e-4)


def test_jpeg_is_prepared_at_reduced_scale_with_source_geometry(tiny_model_dir: Path) -> None:
    from inspection.config import AppConfig
    from inspection.image.prepare import analysis_min_size

    weld = generate_weld(np.random.default_rng(3), width=1280, height=960, n_pores=3, n_spatter=5).image
    data = _jpeg(weld)
    reduced = Inspector.from_artifact(tiny_model_dir)
    full = Inspector.from_artifact(
        tiny_model_dir, config=AppConfig.model_validate({"ingest": {"reduced_decode": False}})
    )
    short, long = analysis_min_size(reduced.prepare_config)
    assert short <= 960 // 2 and long <= 1280 // 2  # this photo can be decoded at half size
    a, b = prepare(data, reduced.prepare_config), prepare(data, full.prepare_config)
    assert (a.width, a.height) == (b.width, b.height) == (1280, 960)
    assert a.pre is not None and b.pre is not None
    ra, rb = a.pre.region, b.pre.region
    assert ra is not None and rb is not None
    assert abs(ra.angle_deg - rb.angle_deg) <= 2.0
    assert np.hypot(ra.center[0] - rb.center[0], ra.center[1] - rb.center[1]) <= 0.1 * rb.width
    assert [t.image.shape for t in a.pre.tiles] == [t.image.shape for t in b.pre.tiles]
    # results are reported in source pixels either way
    res_a, res_b = reduced.finish([a])[0].result, full.finish([b])[0].result
    assert (res_a.width, res_a.height) == (1280, 960)
    assert res_a.seam is not None and res_b.seam is not None
    assert res_a.seam.length == pytest.approx(res_b.seam.length, rel=0.1)


def test_analysis_min_size_follows_the_configs(inspector: Inspector) -> None:
    from inspection.image.prepare import PrepareConfig, analysis_min_size

    cfg = inspector.prepare_config
    short, long = analysis_min_size(cfg)
    p = cfg.preprocess
    assert short * (1 + 2 * p.margin) * p.min_width_fraction >= p.strip_height
    assert long == cfg.quality.work_size
    wider = PrepareConfig(
        cfg.ingest, cfg.quality, p.model_copy(update={"min_width_fraction": 2 * p.min_width_fraction})
    )
    assert analysis_min_size(wider)[0] < short  # a wider minimum crop needs fewer pixels


def test_auto_backend_prefers_int8_then_onnx_then_torch(tmp_path: Path) -> None:
    from inspection.pipeline import auto_backend

    d = tmp_path / "m"
    d.mkdir()
    assert auto_backend(d) == "torch"
    (d / "model.onnx").write_bytes(b"x")
    assert auto_backend(d) == "onnx"
    (d / "model.int8.onnx").write_bytes(b"x")
    assert auto_backend(d) == "onnx-int8"


def test_result_records_the_runtime(inspector: Inspector, weld_image: np.ndarray) -> None:
    result = inspector.inspect(weld_image)
    assert result.model.runtime == inspector.grader.backend
    assert result.to_dict()["model"]["runtime"] == inspector.grader.backend
    unrecorded = InspectionResult.from_dict(
        {**result.to_dict(), "model": {"name": "m", "version": "1", "sha256": "0" * 64}}
    )
    assert "runtime" not in unrecorded.to_dict()["model"]  # older records keep their exact form


# -- domain gate: photos the grader is not competent for -------------------------------------------


def _zoomed_out(image: np.ndarray, factor: float = 4.0) -> np.ndarray:
    """``image`` shrunk ``factor`` times onto a plain bench of its own size (a wide shot)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).normal(0.0, 0.8, (h, w, 3))
    out = np.clip(np.array([205.0, 200.0, 190.0]) + noise, 0, 255).astype(np.uint8)
    y, x = h // 3, w // 4
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def _greyscale(image: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


@pytest.mark.parametrize(
    ("make", "reason"),
    [(_zoomed_out, "not_seam_closeup"), (_greyscale, "unfamiliar_appearance")],
    ids=["wide-shot", "greyscale"],
)
def test_out_of_domain_photo_is_routed_and_not_graded(
    inspector: Inspector, weld_image: np.ndarray, make: Callable[[np.ndarray], np.ndarray], reason: str
) -> None:
    from inspection.batch.runner import result_record

    result = inspector.inspect(make(weld_image))
    assert result.quality.ok
    assert result.needs_review and reason in result.review_reasons
    assert result.domain is not None and not result.domain.ok and result.domain.failed
    assert reason in result.domain.reasons
    # withheld, not graded silently: no grades, no findings, no standards verdict
    assert result.porosity is None and result.spatter is None
    assert result.findings == () and result.standards is None
    assert "model" not in result.timings_ms and "domain" in result.timings_ms
    record = result_record("x.jpg", result, 1.0)
    assert record["status"] == "review" and record["porosity"] is None and record["spatter"] is None
    assert record["domain"]["reasons"] == list(result.domain.reasons)
    back = InspectionResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result


def test_close_up_passes_the_domain_gate(inspector: Inspector, weld_image: np.ndarray) -> None:
    result = inspector.inspect(weld_image)
    assert result.domain is not None
    assert result.domain.measures["seam_span"] > 0
    assert not {"not_seam_closeup"} & set(result.review_reasons)
    assert result.porosity is not None


def test_embedding_flag_keeps_provisional_grades_under_review(tmp_path: Path, weld_image: np.ndarray) -> None:
    inspector = Inspector.from_artifact(make_tiny_artifact(tmp_path / "m", thresholds={"ood": 1e-9}))
    result = inspector.inspect(weld_image)
    # the old code stays (consumers filter on it); the reason category is added beside it
    assert {"unfamiliar_appearance", "out_of_distribution"} <= set(result.review_reasons)
    assert result.needs_review
    assert result.domain is not None and not result.domain.ok
    assert result.domain.failed == ("ood_score",)
    assert result.domain.measures["ood_score"] == pytest.approx(result.ood_score, abs=1e-6)
    assert result.porosity is not None  # provisional: the model ran, a reviewer confirms


def test_domain_gate_can_be_switched_off(tiny_model_dir: Path, weld_image: np.ndarray) -> None:
    from inspection.config import AppConfig

    off = Inspector.from_artifact(
        tiny_model_dir, config=AppConfig.model_validate({"domain": {"enabled": False}})
    )
    result = off.inspect(_greyscale(weld_image))
    assert (
        "unfamiliar_appearance" not in result.review_reasons or "out_of_distribution" in result.review_reasons
    )
    assert result.porosity is not None
    assert result.domain is None or result.domain.failed == ("ood_score",)


def test_a_routed_photo_is_never_an_unreviewed_grade(inspector: Inspector, weld_image: np.ndarray) -> None:
    """Across in-domain, out-of-domain and failed photos: a grade without review is only ever given
    to a photo that passed both gates, and every domain reason means review."""
    from inspection.batch.runner import result_record

    dark = (weld_image * 0.05).astype(np.uint8)
    images = [weld_image, _zoomed_out(weld_image), _greyscale(weld_image), dark, _zoomed_out(weld_image, 6.0)]
    for result in inspector.inspect_many(images):
        domain_reasons = {"not_seam_closeup", "unfamiliar_appearance"} & set(result.review_reasons)
        if domain_reasons or not result.quality.ok:
            assert result.needs_review
            assert result_record("x", result, 0.0)["status"] == "review"
        if result.porosity is not None and not result.needs_review:
            assert result.quality.ok and result.domain is not None and result.domain.ok
        if result.domain is not None and not result.domain.ok and "ood_score" not in result.domain.failed:
            assert result.porosity is None and result.findings == ()


def test_finding_floor_adds_weak_findings_without_changing_what_a_station_gets(
    tmp_path: Path, weld_image: np.ndarray
) -> None:
    # a tiny untrained model: its heatmap peaks sit near 0.5, so a threshold of 0.5 keeps some
    # peaks and a floor of 0.0 adds more; the grade is the binned count of the kept ones
    art = make_tiny_artifact(tmp_path / "m", thresholds={"peak": {"porosity": 0.5, "spatter": 0.5}})
    plain = Inspector.from_artifact(art, backend="torch").inspect(weld_image)
    floored = Inspector.from_artifact(art, backend="torch")
    floored.finding_floor = 0.0
    swept = floored.inspect(weld_image)
    weak = [f for f in swept.findings if f.kind is Defect.POROSITY and f.score < 0.5]
    assert weak, "a floor of 0 must report weaker porosity peaks"
    strong = [(f.x, f.y, f.score) for f in swept.findings if f.score >= 0.5]
    assert strong == [(f.x, f.y, f.score) for f in plain.findings]
    assert swept.porosity == plain.porosity
    assert swept.review_reasons == plain.review_reasons
    assert swept.standards == plain.standards
