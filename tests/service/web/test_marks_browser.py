"""The review marks editor in headless Chromium (as tests/service/web/test_browser.py drives it):
draw a box, relabel it with a key, move one of the model's findings, delete another, click a point,
sign the review, then find the marks in the stored review and in its signed ledger record."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inspection.evidence.keys import load_signer
from inspection.evidence.ledger import Ledger, get_record, record_inspection
from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from inspection.store import Store
from inspection.types import Defect, Finding
from tests.evidence.factories import CONFIG_SHA, make_result, png_bytes
from tests.service.helpers import Keys, make_keys, make_settings
from tests.service.web.live import live_server
from tests.service.web.test_browser import CHROMIUM, CHROMIUM_ARGS, _watch_console

W, H = 480, 240
FINDINGS = (
    Finding(Defect.POROSITY, x=120.0, y=100.0, diameter_px=30.0, score=0.9, along_seam=0.2),
    Finding(Defect.POROSITY, x=300.0, y=150.0, diameter_px=16.0, score=0.7, along_seam=0.6),
    Finding(Defect.SPATTER, x=440.0, y=30.0, diameter_px=10.0, score=0.6, along_seam=0.9),
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]


@dataclass(frozen=True)
class Site:
    base_url: str
    keys: Keys
    settings: ServiceSettings
    inspection_id: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Site]:
    settings = make_settings(tmp_path_factory.mktemp("marks-browser"), tiny_model_dir)
    keys = make_keys(settings)
    with Store.open(settings.db_url, settings.images_dir) as store:
        img = png_bytes(5, size=(W, H))
        result = dataclasses.replace(
            make_result(img, porosity=2, spatter=1, serial="M-9", size=(W, H)),
            findings=FINDINGS, needs_review=True, review_reasons=("grade_findings_disagree",),
        )  # fmt: skip
        iid, _ = record_inspection(
            store, Ledger(store, load_signer(settings.keys_dir)), result, img, config_sha256=CONFIG_SHA
        )
    with live_server(create_app(settings)) as base_url:
        yield Site(base_url, keys, settings, iid)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def test_mark_pores_move_a_finding_and_sign(site: Site, browser: Any) -> None:
    context = browser.new_context(base_url=site.base_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = _watch_console(page)
    try:
        page.goto("/ui/login")
        page.fill("#api_key", site.keys.auditor)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/inspections")
        # the queue sends the reviewer to the marks: the flagged photo is there
        page.goto("/ui/reviews")
        page.click(f'.queueitem[data-inspection="{site.inspection_id}"] a:has-text("mark pores")')
        page.wait_for_url(f"**/ui/inspections/{site.inspection_id}")
        layer = page.locator("#marks-layer")
        layer.wait_for(state="visible")
        assert page.locator("#marks-tools").is_visible()
        assert page.locator("#marks-layer .mark").count() == 3  # the model's findings, editable
        box = layer.bounding_box()
        assert box is not None
        sx, sy = box["width"] / W, box["height"] / H

        def screen(x: float, y: float) -> tuple[float, float]:
            return box["x"] + x * sx, box["y"] + y * sy

        # drag a new box (pore is the default kind), then relabel it with "s"
        page.mouse.move(*screen(200, 40))
        page.mouse.down()
        page.mouse.move(*screen(230, 70), steps=5)
        page.mouse.up()
        page.keyboard.press("s")
        assert page.get_attribute("#mark-kind-spatter", "aria-pressed") == "true"
        # move the model's first finding (box 105..135 x 85..115) by (+40, +20)
        page.mouse.move(*screen(120, 100))
        page.mouse.down()
        page.mouse.move(*screen(160, 120), steps=5)
        page.mouse.up()
        # select the second finding and delete it with the Delete key
        page.mouse.click(*screen(300, 150))
        page.keyboard.press("Delete")
        # a click is a point; "p" makes it a pore; Escape deselects
        page.mouse.click(*screen(60, 200))
        page.keyboard.press("p")
        page.keyboard.press("Escape")
        assert "2 pore, 2 spatter marks" in page.inner_text("#marks-count")

        form = page.locator("form.reviewform")
        form.locator("select[name=porosity_grade]").select_option("2")
        form.locator("select[name=spatter_grade]").select_option("1")
        form.locator("input[name=comment]").fill("one pore moved, one false pore")
        form.locator("button[type=submit]").click()
        page.wait_for_url("**reviewed=1")
        assert "2 pore / 2 spatter marks" in page.inner_text("#reviews")
        assert errors == []
    finally:
        context.close()

    with Store.open(site.settings.db_url, site.settings.images_dir) as store:
        (review,) = store.list_reviews(site.inspection_id)
        with store.session() as s:
            record = get_record(s, review.evidence_seq or 0)
    assert review.reviewer == "auditor" and (review.porosity_grade, review.spatter_grade) == (2, 1)
    marks = list(review.marks or ())
    assert record is not None and record.data["marks"] == marks and record.data["reviewer"] == "auditor"
    by_origin = {(m["origin"], m.get("finding")): m for m in marks}
    assert set(by_origin) == {("model", 0), ("model", 2), ("reviewer", None)} and len(marks) == 4
    moved = by_origin[("model", 0)]
    assert moved["label"] == "porosity"
    assert moved["box"] == pytest.approx([145, 105, 175, 135], abs=1.5)
    drawn = [m for m in marks if m["origin"] == "reviewer"]
    new_box = next(m for m in drawn if "box" in m)
    assert new_box["label"] == "spatter" and new_box["box"] == pytest.approx([200, 40, 230, 70], abs=1.5)
    point = next(m for m in drawn if "point" in m)
    assert point["label"] == "porosity" and point["point"] == pytest.approx([60, 200], abs=1.5)
