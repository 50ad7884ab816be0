"""Audit samples and the miss-rate estimate: selection, intervals, the store query, claim bundles."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from inspection.evidence.audit import (
    AuditSampler,
    audit_draw,
    audit_key,
    clopper_pearson_interval,
    estimate_miss_rate,
    exact_coverage,
    interval,
    is_audit_sample,
    miss_rate_from_store,
    review_is_wrong,
    simulate_coverage,
    wilson_interval,
)
from inspection.evidence.bundle import MISS_RATE, export_bundle, verify_bundle
from inspection.evidence.keys import Signer
from inspection.evidence.ledger import record_inspection, record_review
from inspection.evidence.verify import verify_store
from inspection.service.web.queue import refresh_candidates
from tests.evidence.factories import CONFIG_SHA, make_ledger, make_result, open_store, png_bytes


@pytest.mark.parametrize(
    ("k", "n", "wilson", "cp"),
    [
        (3, 100, (0.01025, 0.08452), (0.00623, 0.08518)),  # textbook values (Newcombe 1998; R binom.test)
        (0, 20, (0.0, 0.16113), (0.0, 0.16843)),
        (20, 20, (0.83887, 1.0), (0.83157, 1.0)),
        (0, 0, (0.0, 1.0), (0.0, 1.0)),
    ],
)
def test_intervals_match_reference_values(
    k: int, n: int, wilson: tuple[float, float], cp: tuple[float, float]
) -> None:
    assert wilson_interval(k, n) == pytest.approx(wilson, abs=5e-5)
    assert clopper_pearson_interval(k, n) == pytest.approx(cp, abs=5e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: wilson_interval(5, 3), "0 <= k <= n"),
        (lambda: clopper_pearson_interval(1, 3, confidence=1.0), "confidence"),
        (lambda: interval(1, 3, "bayes"), "unknown interval method 'bayes'; valid: clopper-pearson, wilson"),
        (lambda: AuditSampler(b"short", 0.1), "at least 16 bytes"),
        (lambda: AuditSampler(b"k" * 32, 1.5), r"audit rate must be a number in \[0, 1\]"),
    ],
)
def test_bad_arguments_are_named(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("model", "review", "not_gradable", "wrong"),
    [
        ({"porosity": 0, "spatter": 0}, {"porosity": 0, "spatter": 0}, False, False),
        ({"porosity": 0, "spatter": 0}, {"porosity": 1, "spatter": 0}, False, True),  # missed pore
        ({"porosity": 2, "spatter": 0}, {"porosity": 1, "spatter": 0}, False, True),  # over-graded
        ({"porosity": 0, "spatter": 1}, {"porosity": 0, "spatter": None}, False, False),  # spatter left empty
        ({"porosity": None, "spatter": 0}, {"porosity": 0, "spatter": 0}, False, True),  # model did not grade
        ({"porosity": 0, "spatter": 0}, {"porosity": None, "spatter": None}, True, True),  # not gradable
    ],
)
def test_what_counts_as_wrong(
    model: dict[str, int | None], review: dict[str, int | None], not_gradable: bool, wrong: bool
) -> None:
    assert review_is_wrong(model, review, not_gradable=not_gradable) is wrong


def test_audit_draw_is_keyed_deterministic_and_has_the_rate() -> None:
    key = audit_key(Signer.generate("st"))
    assert len(key) == 32
    ids = [f"{i:08d}-0000-4000-8000-000000000000" for i in range(20_000)]
    again = AuditSampler(key, 0.02)
    picked = [i for i in ids if is_audit_sample(key, i, 0.02)]
    assert picked == [i for i in ids if again(i)]  # the same key draws the same samples (restarts)
    assert 320 <= len(picked) <= 480  # 2 % of 20 000 = 400, +- 4 sd
    other = audit_key(Signer.generate("st"))
    assert picked != [i for i in ids if is_audit_sample(other, i, 0.02)]  # another key, other samples
    assert 0.0 <= audit_draw(key, ids[0]) < 1.0
    assert not any(is_audit_sample(key, i, 0.0) for i in ids[:500])
    assert all(is_audit_sample(key, i, 1.0) for i in ids[:500])


def test_estimate_and_its_statement() -> None:
    est = estimate_miss_rate([False] * 97 + [True] * 3, drawn=120)
    assert (est.audited, est.wrong, est.pending, est.rate) == (100, 3, 20, 0.03)
    assert (est.low, est.high) == pytest.approx((0.00623, 0.08518), abs=5e-5)
    assert est.sentence().startswith("of the welds accepted without review, at most 8.5 % were wrong")
    body = est.to_json()
    assert body["high"] == est.high and "not gradable" in body["wrong_means"]
    none = estimate_miss_rate([])
    assert none.rate is None and (none.low, none.high) == (0.0, 1.0) and "unknown" in none.sentence()


def test_interval_covers_an_injected_miss_rate_in_simulation() -> None:
    """Item 6 of issue 18, on a fixed seed: the 95 % intervals cover a known injected rate about 95 %
    of the time (loose band: 300 trials give a binomial sd of ~1.3 points)."""
    runs = simulate_coverage(0.05, inspections=1000, audit_rate=0.1, trials=300, seed=1)
    cp, wilson = runs["clopper-pearson"], runs["wilson"]
    assert 90 <= cp.mean_audited <= 110
    assert 0.93 <= cp.covered <= 1.0 and cp.exact >= 0.95  # Clopper-Pearson: at least 95 % by construction
    assert 0.90 <= wilson.covered <= 0.99
    assert wilson.mean_high < cp.mean_high  # Wilson is the shorter interval
    assert exact_coverage(0.05, 100, "wilson") == pytest.approx(0.95, abs=0.03)


def test_miss_rate_from_store_and_in_the_claim_bundle(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    ledger = make_ledger(store)
    ids = []
    for i in range(6):
        img = png_bytes(100 + i)
        result = make_result(img, porosity=0, serial="M-1" if i < 4 else "M-2")
        iid, _ = record_inspection(store, ledger, result, img, config_sha256=CONFIG_SHA)
        ids.append(iid)
    assert miss_rate_from_store(store).audited == 0
    # every unflagged inspection is drawn at rate 1
    assert refresh_candidates(store, key=audit_key(ledger.signer), audit_rate=1.0) == 6
    assert refresh_candidates(store, key=audit_key(ledger.signer), audit_rate=1.0) == 0  # already scanned
    record_review(store, ledger, inspection_id=ids[0], reviewer="qa", porosity_grade=0, spatter_grade=0)
    _, rec = record_review(
        store, ledger, inspection_id=ids[1], reviewer="qa", porosity_grade=2, spatter_grade=0
    )
    assert rec.data["audit"] is True
    record_review(store, ledger, inspection_id=ids[4], reviewer="qa", porosity_grade=None, spatter_grade=None,
                  not_gradable_reason="glare")  # fmt: skip
    est = miss_rate_from_store(store)
    assert (est.audited, est.wrong, est.drawn) == (3, 2, 6)
    one = miss_rate_from_store(store, serial="M-1")
    assert (one.audited, one.wrong, one.drawn, one.serial) == (2, 1, 4, "M-1")
    assert verify_store(store).ok

    out = tmp_path / "claim.zip"
    export_bundle(store, out, serial="M-1", signer=ledger.signer)
    report = verify_bundle(out, {ledger.signer.key_id: ledger.signer.public_key})
    assert report.ok, [str(p) for p in report.problems]
    with zipfile.ZipFile(out) as zf:
        body = json.loads(zf.read(MISS_RATE))
        manifest = json.loads(zf.read("manifest.json"))
    assert MISS_RATE in manifest["files"]  # hashed and covered by the manifest signature
    assert body["this_machine"]["audited"] == 2 and body["this_machine"]["wrong"] == 1
    assert body["all_machines"]["high"] == pytest.approx(est.high)
    store.close()
