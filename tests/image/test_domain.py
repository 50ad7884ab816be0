"""Domain gate: a seam close-up passes; zoomed-out, greyscale, flat and other non-close-up images are
routed with the right reason; the configuration is validated; real photos when present."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspection.config import AppConfig, ConfigError, DomainConfig, PreprocessConfig, parse_config
from inspection.data.synth import generate_weld
from inspection.image.domain import (
    CHECKS,
    NOT_SEAM_CLOSEUP,
    REASONS,
    UNFAMILIAR_APPEARANCE,
    assess_domain,
    judge_domain,
    measure_domain,
)
from inspection.image.prepare import PrepareConfig, prepare
from inspection.image.preprocess import locate_seam
from inspection.types import DomainVerdict, Image

CFG = DomainConfig()
PRE = PreprocessConfig()


@pytest.fixture(scope="module")
def weld() -> Image:
    return generate_weld(np.random.default_rng(7), width=640, height=480, n_pores=3, n_spatter=8).image


def _verdict(image: Image) -> DomainVerdict:
    return assess_domain(image, locate_seam(image, PRE), CFG)


def _bench(h: int, w: int, colour: tuple[int, int, int], seed: int = 0) -> Image:
    """A plain bench colour with faint sensor noise."""
    noise = np.random.default_rng(seed).normal(0.0, 0.8, (h, w, 3))
    return np.clip(np.asarray(colour, np.float64) + noise, 0, 255).astype(np.uint8)


def _zoomed_out(image: Image, factor: float = 4.0, copies: int = 1) -> Image:
    """``image`` shrunk ``factor`` times, ``copies`` times, onto a bench canvas of its own size."""
    h, w = image.shape[:2]
    tw, th = round(w / factor), round(h / factor)
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    out = _bench(h, w, (205, 200, 190))
    for k in range(copies):
        x = round((w - tw) * (0.15 + 0.7 * ((k * 0.37) % 1.0)))
        y = round((h - th) * (0.2 + 0.6 * ((k * 0.61) % 1.0)))
        out[y : y + th, x : x + tw] = small
    return out


def _greyscale(image: Image) -> Image:
    return np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)


def _flat(image: Image) -> Image:
    return _bench(*image.shape[:2], (128, 120, 110))


def _gradient(image: Image) -> Image:
    h, w = image.shape[:2]
    t = np.linspace(0.0, 1.0, w)[None, :, None]
    return np.broadcast_to(((1 - t) * [40, 90, 200] + t * [230, 180, 60]).astype(np.uint8), (h, w, 3)).copy()


def _painted(image: Image) -> Image:
    """The weld with a bright saturated paint mark / label over a tenth of the frame."""
    out = image.copy()
    h, w = out.shape[:2]
    cv2.rectangle(out, (w // 20, h // 20), (w // 20 + w // 3, h // 20 + h // 3), (250, 210, 0), -1)
    return out


def _salt_and_pepper(image: Image) -> Image:
    out = image.copy()
    rng = np.random.default_rng(3)
    mask = rng.random(out.shape[:2])
    out[mask < 0.01] = 0
    out[mask > 0.99] = 255
    return out


@pytest.mark.parametrize(
    ("make", "reason", "check"),
    [
        (_zoomed_out, NOT_SEAM_CLOSEUP, None),
        (lambda im: _zoomed_out(im, 5.0, copies=4), NOT_SEAM_CLOSEUP, None),
        (_greyscale, UNFAMILIAR_APPEARANCE, "colourfulness"),
        (_flat, NOT_SEAM_CLOSEUP, None),
        (_gradient, NOT_SEAM_CLOSEUP, None),
        (_painted, UNFAMILIAR_APPEARANCE, "vivid_share"),
        (_salt_and_pepper, UNFAMILIAR_APPEARANCE, "impulse_share"),
    ],
    ids=["zoomed-out", "several-coupons", "greyscale", "flat", "gradient", "painted", "salt-and-pepper"],
)
def test_out_of_domain_images_are_routed_with_the_right_reason(
    weld: Image, make: Callable[[Image], Image], reason: str, check: str | None
) -> None:
    verdict = _verdict(make(weld))
    assert not verdict.ok
    assert reason in verdict.reasons
    assert verdict.failed, "a failed verdict names the checks that failed"
    if check is not None:
        assert check in verdict.failed


@pytest.mark.parametrize(
    ("width", "height", "seed"), [(640, 480, 7), (320, 240, 1), (800, 800, 2), (160, 160, 3), (1280, 960, 4)]
)
def test_synthetic_close_ups_pass(width: int, height: int, seed: int) -> None:
    image = generate_weld(
        np.random.default_rng(seed), width=width, height=height, n_pores=2, n_spatter=5
    ).image
    verdict = _verdict(image)
    assert verdict.ok, verdict
    assert verdict.reasons == () and verdict.failed == ()
    assert set(verdict.measures) >= {"background_share", "seam_span", "colourfulness", "impulse_share"}


def test_greyscale_fails_only_on_appearance(weld: Image) -> None:
    verdict = _verdict(_greyscale(weld))
    assert verdict.reasons == (UNFAMILIAR_APPEARANCE,)
    assert verdict.measures["colourfulness"] == 0.0


def test_no_seam_region_is_not_a_close_up(weld: Image) -> None:
    verdict = assess_domain(weld, None, CFG)
    assert verdict.reasons == (NOT_SEAM_CLOSEUP,)
    assert verdict.failed == ("seam_found",)  # the layout checks need a seam and are skipped


def test_the_same_measures_at_a_reduced_decode_scale(weld: Image) -> None:
    region = locate_seam(weld, PRE)
    half = cv2.resize(weld, (320, 240), interpolation=cv2.INTER_AREA)
    full = measure_domain(weld, region, CFG)
    reduced = measure_domain(half, region, CFG, (480, 640))
    assert reduced["seam_span"] == pytest.approx(full["seam_span"], abs=0.1)
    assert reduced["colourfulness"] == pytest.approx(full["colourfulness"], rel=0.1)
    assert judge_domain(reduced, CFG).ok


def test_does_not_mutate_its_input(weld: Image) -> None:
    before = weld.copy()
    _verdict(weld)
    np.testing.assert_array_equal(before, weld)


def test_every_check_belongs_to_a_known_reason() -> None:
    assert {reason for _, reason, _ in CHECKS} == set(REASONS)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "max_background_share",
            1.5,
            r"domain\.max_background_share.*max_background_share must be a share in \[0, 1\]",
        ),
        ("min_seam_span", -0.1, r"domain\.min_seam_span.*must be a share in \[0, 1\], got -0\.1"),
        ("max_impulse_share", float("nan"), r"domain\.max_impulse_share.*\[0, 1\]"),
        ("min_seam_contrast", -1.0, r"domain\.min_seam_contrast.*greater than or equal to 0"),
        ("min_colourfulness", 300.0, r"domain\.min_colourfulness.*less than or equal to 255"),
        ("work_size", 10, r"domain\.work_size.*greater than or equal to 64"),
    ],
)
def test_config_errors_name_the_field_and_the_valid_range(field: str, value: float, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_config({"domain": {field: value}})


def test_config_defaults_and_overrides() -> None:
    assert AppConfig().domain == DomainConfig()
    cfg = parse_config({"domain": {"enabled": False, "max_vivid_share": 0.5}})
    assert not cfg.domain.enabled and cfg.domain.max_vivid_share == 0.5
    with pytest.raises(ConfigError, match=r"domain\.unknown_field"):
        parse_config({"domain": {"unknown_field": 1}})


def test_domain_verdict_ok_must_match_its_reasons() -> None:
    with pytest.raises(ValueError, match="ok must be True exactly when there are no reasons"):
        DomainVerdict(ok=True, reasons=(NOT_SEAM_CLOSEUP,))
    with pytest.raises(ValueError, match="ok must be True"):
        DomainVerdict(ok=False)


# -- real photos (skipped when ../shared/data is absent) ------------------------------------------

DEV_PHOTOS = (  # the first two photos of each training weld in annotations.jsonl
    "images/00a4fac22d1f6d18.jpg",
    "images/00b7f1e82a37c89e.jpg",
    "images/005d778433b964ab.jpg",
    "images/010960591a79a1c3.jpg",
    "images/00bbf36866eac41f.jpg",
    "images/0112eeeeaa718f6e.jpg",
)
WIDE_SHOTS = (  # coupons lying on a paper bench (data/manifests/domain_wide_shots.jsonl)
    "images/SampleV1_1_mp4-12_jpg.rf.4484b41531c7a03607e372588a360a67.jpg",
    "images/SampleV1_1_mp4-30_jpg.rf.1eb2d49a4509af8656b6a4ce81f4a538.jpg",
    "images/SampleV1_1_mp4-3_jpg.rf.b1dbec2ffa2118c5e7db6130f8d17407.jpg",
)
PREPARE = PrepareConfig(AppConfig().ingest, AppConfig().quality, PRE.model_copy(update={"strip_height": 96}))


@pytest.mark.realdata
@pytest.mark.parametrize("name", DEV_PHOTOS)
def test_real_dev_close_ups_pass(porosity_data: Path, name: str) -> None:
    p = prepare(porosity_data / name, PREPARE)  # the pipeline's own decode (reduced JPEG scale)
    assert p.quality.ok and p.domain is not None
    assert p.domain.ok, p.domain
    assert p.pre is not None


@pytest.mark.realdata
@pytest.mark.parametrize("name", WIDE_SHOTS)
def test_real_wide_shots_are_not_close_ups(unlabelled_data: Path, name: str) -> None:
    p = prepare(unlabelled_data / name, PREPARE)
    assert p.domain is not None
    assert NOT_SEAM_CLOSEUP in p.domain.reasons
    assert p.pre is None  # not graded


def test_wide_shot_manifest_lists_files_with_reasons(repo_root: Path) -> None:
    rows = [
        json.loads(x) for x in (repo_root / "data/manifests/domain_wide_shots.jsonl").read_text().splitlines()
    ]
    assert len(rows) > 100
    assert all(r["image"].startswith("images/") and r["why"] and r["category"] for r in rows)
    assert len({r["image"] for r in rows}) == len(rows)
    assert set(WIDE_SHOTS) <= {r["image"] for r in rows}
