"""Post-processing: peak decoding, tile combination, decisions and OOD statistics."""

from __future__ import annotations

import numpy as np
import pytest

from inspection.model.postprocess import AbstainRule, OodStats, Peak, combine_tile_probs, decide, decode_peaks


def _blob(h: int, w: int, cy: float, cx: float, peak: float, sigma: float = 0.8) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def test_decode_peaks_finds_known_peaks_in_order() -> None:
    hm = np.maximum.reduce([_blob(16, 64, 4, 10, 0.9), _blob(16, 64, 11, 40, 0.6), _blob(16, 64, 2, 60, 0.2)])
    sizes = np.full((16, 64), 12.0)
    peaks = decode_peaks(hm, sizes, threshold=0.3, stride=8)
    assert [(p.u, p.v) for p in peaks] == [(10 * 8 + 4, 4 * 8 + 4), (40 * 8 + 4, 11 * 8 + 4)]
    assert peaks[0].score == pytest.approx(0.9)
    assert peaks[1].score == pytest.approx(0.6)
    assert all(p.diameter_px == 12.0 for p in peaks)
    # lowering the threshold admits the weak third peak
    assert len(decode_peaks(hm, sizes, threshold=0.1, stride=8)) == 3


def test_decode_peaks_sub_cell_refinement_moves_towards_true_centre() -> None:
    hm = _blob(8, 16, 3.0, 6.3, 0.8, sigma=1.0)
    (peak,) = decode_peaks(hm, None, threshold=0.5, stride=4)
    assert 6 * 4 + 2 < peak.u < 7 * 4 + 2  # between cell 6 and cell 7 centres, nearer 6
    assert peak.u == pytest.approx(6.3 * 4 + 2, abs=0.5)
    assert peak.v == pytest.approx(3 * 4 + 2)
    assert peak.diameter_px == 4.0  # no sizes: one cell


@pytest.mark.parametrize(
    ("min_distance", "expected"),
    [(1, 2), (2, 2), (3, 1)],  # peaks 3 cells apart with a dip between them
)
def test_decode_peaks_nms_radius(min_distance: int, expected: int) -> None:
    hm = np.zeros((5, 12))
    hm[2, 4], hm[2, 7] = 0.9, 0.8
    hm[2, 5], hm[2, 6] = 0.5, 0.5
    peaks = decode_peaks(hm, None, threshold=0.3, stride=8, min_distance=min_distance)
    assert len(peaks) == expected
    assert peaks[0].score == pytest.approx(0.9)


def test_decode_peaks_plateau_gives_one_peak_and_max_peaks_caps() -> None:
    hm = np.zeros((6, 20))
    hm[2, 3:5] = 0.7  # a two-cell plateau: one peak, not two
    hm[4, 15] = 0.9
    peaks = decode_peaks(hm, None, threshold=0.5, stride=8)
    assert len(peaks) == 2
    assert decode_peaks(hm, None, threshold=0.5, stride=8, max_peaks=1)[0].score == pytest.approx(0.9)
    assert decode_peaks(hm, None, threshold=0.95, stride=8) == []


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"heatmap": np.zeros((2, 2, 2))}, r"\(h, w\)"),
        ({"heatmap": np.full((2, 2), np.nan)}, "NaN"),
        ({"sizes": np.zeros((3, 3))}, "shape"),
        ({"stride": 0}, "stride"),
        ({"min_distance": 0}, "min_distance"),
    ],
)
def test_decode_peaks_rejects_bad_input(kwargs: dict[str, object], needle: str) -> None:
    args: dict[str, object] = {"heatmap": np.zeros((2, 2)), "sizes": None, "threshold": 0.5, "stride": 8}
    args.update(kwargs)
    with pytest.raises(ValueError, match=needle):
        decode_peaks(**args)  # type: ignore[arg-type]


def test_peak_validates() -> None:
    with pytest.raises(ValueError, match="diameter_px"):
        Peak(1.0, 2.0, 0.5, -1.0)
    with pytest.raises(ValueError, match="finite"):
        Peak(float("nan"), 2.0, 0.5, 1.0)


@pytest.mark.parametrize(
    ("tiles", "expected"),
    [
        ([[1.0, 0.0, 0.0, 0.0]], [1.0, 0.0, 0.0, 0.0]),
        ([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]], [0.0, 0.0, 1.0, 0.0]),  # worst tile wins
        ([[0.5, 0.5, 0.0, 0.0], [0.8, 0.0, 0.0, 0.2]], [0.5, 0.3, 0.0, 0.2]),  # per-threshold max
        ([[0.25, 0.25, 0.25, 0.25]] * 3, [0.25, 0.25, 0.25, 0.25]),  # identical tiles: unchanged
    ],
)
def test_combine_tile_probs(tiles: list[list[float]], expected: list[float]) -> None:
    out = combine_tile_probs(np.array(tiles))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out.sum() == pytest.approx(1.0)


def test_combine_tile_probs_is_never_better_than_any_tile(rng: np.random.Generator) -> None:
    tiles = rng.dirichlet(np.ones(4), size=5)
    out = combine_tile_probs(tiles)
    exceed_out = np.cumsum(out[::-1])[::-1][1:]
    exceed_tiles = np.cumsum(tiles[:, ::-1], axis=1)[:, ::-1][:, 1:]
    assert np.all(exceed_out >= exceed_tiles.max(axis=0) - 1e-12)
    assert np.all(out >= 0)


@pytest.mark.parametrize(
    ("probs", "needle"),
    [
        (np.zeros((0, 4)), "T >= 1"),
        (np.array([[0.5, 0.5, 0.5, 0.5]]), "sum to 1"),
        (np.ones((2, 3)) / 3, "4"),
    ],
)
def test_combine_tile_probs_rejects_bad_input(probs: np.ndarray, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        combine_tile_probs(probs)


DEFAULT = AbstainRule(min_confidence=0.5, max_p_defect_for_zero=0.3)
MEDIAN = AbstainRule(min_confidence=0.3, max_p_defect_for_zero=0.3, grade_by="median")


@pytest.mark.parametrize(
    ("probs", "rule", "grade", "confidence", "abstained"),
    [
        ([0.9, 0.1, 0.0, 0.0], DEFAULT, 0, 0.9, False),  # confident clean
        ([0.6, 0.4, 0.0, 0.0], DEFAULT, 0, 0.6, True),  # clean call, but P(defect) 0.4 > 0.3
        ([0.7, 0.3, 0.0, 0.0], DEFAULT, 0, 0.7, False),  # P(defect) exactly at the limit: not above
        ([0.1, 0.8, 0.1, 0.0], DEFAULT, 1, 0.8, False),  # confident defect
        ([0.1, 0.45, 0.4, 0.05], DEFAULT, 1, 0.45, True),  # low confidence
        ([0.0, 0.0, 0.2, 0.8], DEFAULT, 3, 0.8, False),
        ([0.4, 0.0, 0.0, 0.6], MEDIAN, 3, 0.6, False),  # median: cumulative reaches 0.5 at grade 3
        ([0.1, 0.35, 0.35, 0.2], MEDIAN, 2, 0.35, False),  # cumulative 0.45 < 0.5 at 1: median 2 (argmax 1)
        ([0.1, 0.35, 0.35, 0.2], DEFAULT, 1, 0.35, True),  # argmax takes the first of a tie; low confidence
    ],
)
def test_decide_table(
    probs: list[float], rule: AbstainRule, grade: int, confidence: float, abstained: bool
) -> None:
    result, abstain = decide(np.array(probs), rule)
    assert result.grade == grade
    assert result.confidence == pytest.approx(confidence)
    assert result.probs == pytest.approx(tuple(probs))
    assert abstain is abstained


def test_decide_rejects_bad_probs() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        decide(np.array([0.2, 0.2, 0.2, 0.2]), DEFAULT)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        decide(np.array([[0.25] * 4] * 2), DEFAULT)


def test_ood_stats_score_in_and_out_of_distribution(rng: np.random.Generator) -> None:
    train = rng.normal(size=(500, 8)) * np.arange(1, 9) + 3.0
    stats = OodStats.fit(train, shrinkage=0.05)
    inside = stats.score(rng.normal(size=(200, 8)) * np.arange(1, 9) + 3.0)
    outside = stats.score(rng.normal(size=(200, 8)) * np.arange(1, 9) + 3.0 + 12.0)
    assert 0.7 < float(np.median(inside)) < 1.3
    assert float(np.min(outside)) > float(np.median(inside))
    assert OodStats.identity(8).count == 0
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        stats.score(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="N >= 2"):
        OodStats.fit(np.zeros((1, 8)))


@pytest.mark.parametrize("rule", [DEFAULT, MEDIAN])
@pytest.mark.parametrize("n_tiles", [1, 2, 4])
def test_decide_tiles_equals_combine_then_decide(
    rng: np.random.Generator, rule: AbstainRule, n_tiles: int
) -> None:
    from inspection.model.postprocess import check_probs, decide_tiles

    for _ in range(20):
        tiles = rng.dirichlet(np.full(4, 0.5), size=n_tiles)
        expected = decide(combine_tile_probs(tiles), rule)
        assert decide_tiles(tiles, rule) == expected
        assert decide_tiles(check_probs(tiles), rule, checked=True) == expected


def test_check_probs_names_what_it_rejects() -> None:
    from inspection.model.postprocess import check_probs

    with pytest.raises(ValueError, match="spatter tile probabilities rows must sum to 1"):
        check_probs(np.array([[0.5, 0.5, 0.5, 0.5]]), "spatter tile probabilities")
    with pytest.raises(ValueError, match="must be finite"):
        check_probs(np.array([[np.nan, 0.5, 0.5, 0.0]]))
