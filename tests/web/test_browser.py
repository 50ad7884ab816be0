"""End-to-end in headless Chromium (Playwright, sync API) against a live uvicorn server.

Scenario: log in, filter, open a detail page, toggle the overlay, submit a review, see the charts,
check the ledger. With ``UPDATE_SCREENSHOTS=1`` each page is saved to docs/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from tests.service.helpers import Keys, make_keys, make_settings
from tests.web.demo import HISTORY_SERIAL, seed_history, upload_demo
from tests.web.live import live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
) -> Iterator[tuple[str, Keys, list[str]]]:
    settings: ServiceSettings = make_settings(tmp_path_factory.mktemp("browser"), tiny_model_dir)
    keys = make_keys(settings)
    seed_history(settings)
    with live_server(create_app(settings)) as base_url:
        ids = upload_demo(base_url, keys.s1)
        yield base_url, keys, ids


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _shot(page: Any, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot (palette PNG, to keep docs/ small) when UPDATE_SCREENSHOTS=1."""
    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return
    import io

    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    png = page.screenshot(full_page=full_page)
    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(SCREENSHOTS / f"{name}.png", optimize=True)


def _wait_loaded(page: Any, element_id: str, timeout_s: float = 30.0) -> None:
    """Poll until the image has loaded (wait_for_function would need 'unsafe-eval', which our CSP forbids)."""
    import time

    deadline = time.monotonic() + timeout_s
    while page.evaluate(f"document.getElementById('{element_id}').naturalWidth") == 0:
        if time.monotonic() > deadline:
            msg = f"image #{element_id} did not load within {timeout_s} s"
            raise AssertionError(msg)
        page.wait_for_timeout(100)


def test_auditor_walkthrough(demo: tuple[str, Keys, list[str]], browser: Any) -> None:
    base_url, keys, uploaded = demo
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    failed: list[str] = []  # responses >= 400 other than the deliberate wrong-key login
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if r.status >= 400
            and not (r.status == 401 and r.url.endswith("/ui/login"))
            and "favicon" not in r.url
            else None
        ),
    )
    try:
        # not logged in -> login form; a wrong key is refused
        page.goto("/ui/inspections")
        assert page.url.startswith(f"{base_url}/ui/login")
        page.fill("#api_key", "wik_wrong")
        page.click("button[type=submit]")
        assert "Invalid or revoked API key" in page.inner_text(".alert")
        _shot(page, "login")
        page.fill("#api_key", keys.auditor)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/inspections")
        cookie = next(c for c in context.cookies() if c["name"] == "wi_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        total_rows = page.locator("#inspections tbody tr").count()
        assert total_rows == 25  # one full page (84 history + 4 uploads)
        _shot(page, "inspections")

        # filter: machine M-1 (the 4 uploads)
        page.fill("#f-serial", "M-1")
        page.click("#filters button[type=submit]")
        page.wait_for_url("**serial=M-1**")
        rows = page.locator("#inspections tbody tr")
        assert rows.count() == len(uploaded)

        # detail page: the photo, then the overlay
        rows.first.locator("a").first.click()
        page.wait_for_url("**/ui/inspections/*")
        assert page.locator("#evidence-status").inner_text() == "verified"
        original = page.locator("#photo-original")
        overlay = page.locator("#photo-overlay")
        assert original.is_visible() and not overlay.is_visible()
        assert page.evaluate("document.getElementById('photo-original').naturalWidth") == 480
        page.click("#overlay-toggle")
        overlay.wait_for(state="visible")
        _wait_loaded(page, "photo-overlay")
        assert not original.is_visible()
        assert page.get_attribute("#overlay-toggle", "aria-pressed") == "true"
        _shot(page, "inspection")
        page.click("#overlay-toggle")
        assert original.is_visible() and not overlay.is_visible()

        # review queue: sign a review of the first queued inspection
        page.goto("/ui/reviews")
        queued = page.locator(".queueitem")
        n_queued = queued.count()
        assert n_queued >= 1
        _shot(page, "reviews", full_page=False)
        first = queued.first
        first.locator("select[name=porosity_grade]").select_option("2")
        first.locator("input[name=comment]").fill("two pores confirmed")
        first.locator("button[type=submit]").click()
        page.wait_for_url("**/ui/reviews?done=*")
        assert "Review of" in page.inner_text("[role=status]")
        assert page.locator(".queueitem").count() == n_queued - 1

        page.goto("/ui/inspections?needs_review=yes")
        assert "reviewed 2/" in page.inner_text("#inspections")  # the final grades show in the list
        page.goto("/ui/machines")
        assert page.locator("#machines tbody tr").count() == 2
        _shot(page, "machines")

        # machine page: four control charts, the parameter history and the outcome of the advice
        page.goto(f"/ui/machines/{HISTORY_SERIAL}")
        charts = page.locator("#charts svg")
        assert charts.count() == 4
        assert charts.first.is_visible()
        assert page.locator("#charts figure[data-kind=p] circle").count() >= 14  # one point per day
        assert "speed_mm_s" in page.inner_text("#params").lower()
        assert "porosity.speed_down" in page.inner_text("#outcomes")
        _shot(page, "machine")

        # evidence: the whole chain verifies (history + uploads + the review)
        page.goto("/ui/evidence")
        assert page.inner_text("#ledger-status") == "chain verified"
        _shot(page, "evidence")

        # logout
        page.click("header button.link")
        page.wait_for_url("**/ui/login")
        page.goto("/ui/machines")
        assert "/ui/login" in page.url
        assert failed == []
    finally:
        context.close()


def test_station_sees_no_review_or_evidence_pages(demo: tuple[str, Keys, list[str]], browser: Any) -> None:
    base_url, keys, _ = demo
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    try:
        page.goto("/ui/login")
        page.fill("#api_key", keys.s2)
        page.click("button[type=submit]")
        page.wait_for_url("**/ui/inspections")
        nav = page.inner_text("header nav")
        assert "Review queue" not in nav and "Evidence" not in nav
        assert page.locator("#inspections tbody td.empty").count() == 1  # S2 has no inspections here
        response = page.goto("/ui/evidence")
        assert response is not None and response.status == 403
    finally:
        context.close()
