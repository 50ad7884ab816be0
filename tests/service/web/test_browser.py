"""End-to-end in headless Chromium (Playwright, sync API) against a live uvicorn server.

Scenario: log in, filter, open a detail page, toggle the overlay, submit a review, see the charts,
check the ledger (no console errors on any page); then the same path by keyboard only.

With ``UPDATE_SCREENSHOTS=1`` each page is saved to docs/screenshots/, and when a model is shipped
(:func:`inspection.model.artifact.default_model_dir`) the service runs it on the bundled sample
photos (``data/samples``) so the screenshots show real results; otherwise, and always in CI, the
tiny random test model grades synthetic uploads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from inspection.service.app import create_app
from inspection.service.settings import ServiceSettings
from tests.service.helpers import Keys, make_keys, make_settings
from tests.service.web.demo import HISTORY_SERIAL, seed_history, upload_demo, upload_samples
from tests.service.web.live import live_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"
    ),
]


@dataclass(frozen=True)
class Demo:
    base_url: str
    keys: Keys
    uploaded: list[str]  # inspection ids of the uploads (machine M-1)
    photo_width: int  # width of the uploaded photos
    samples: bool  # True: shipped model on the bundled sample photos (screenshot mode)


def _screenshot_model() -> Path | None:
    """The shipped model when UPDATE_SCREENSHOTS=1 and one is shipped, else None (tiny model)."""
    if os.environ.get("UPDATE_SCREENSHOTS") != "1":
        return None
    from inspection.model.artifact import ArtifactError, default_model_dir

    try:
        return default_model_dir()
    except ArtifactError:
        return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Demo]:
    shipped = _screenshot_model()
    model_dir = shipped or tiny_model_dir
    settings: ServiceSettings = make_settings(tmp_path_factory.mktemp("browser"), model_dir)
    keys = make_keys(settings)
    seed_history(settings)
    with live_server(create_app(settings)) as base_url:
        if shipped is not None:
            yield Demo(base_url, keys, upload_samples(base_url, keys.s1), 640, samples=True)
        else:
            yield Demo(base_url, keys, upload_demo(base_url, keys.s1), 480, samples=False)


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


def _expected_failure(status: int, url: str) -> bool:
    """The deliberate wrong-key login (401) and the missing favicon are not errors."""
    return (status == 401 and url.endswith("/ui/login")) or "favicon" in url


def _watch_console(page: Any) -> list[str]:
    """Collect console errors and uncaught page errors (CSP violations show up here too)."""
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        # Chromium logs every failed response as a console error; the expected ones are not bugs
        status = re.search(r"Failed to load resource: .*status of (\d+)", msg.text)
        if status is not None and _expected_failure(int(status.group(1)), where):
            return
        errors.append(f"console error on {page.url}: {msg.text} ({where})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"page error on {page.url}: {exc}"))
    return errors


def test_auditor_walkthrough(demo: Demo, browser: Any) -> None:
    base_url, keys, uploaded = demo.base_url, demo.keys, demo.uploaded
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    failed: list[str] = []  # responses >= 400 other than the deliberate wrong-key login
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not _expected_failure(r.status, r.url)
            else None
        ),
    )
    console_errors = _watch_console(page)
    visited: set[str] = set()
    page.on(
        "framenavigated",
        lambda frame: visited.add(frame.url.split("?")[0]) if frame == page.main_frame else None,
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
        assert page.evaluate("document.getElementById('photo-original').naturalWidth") == demo.photo_width
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
        first = queued.first  # the queue is ordered by value (audit samples first), not by date
        reviewed_id = first.get_attribute("data-inspection")
        first.locator("select[name=porosity_grade]").select_option("2")
        first.locator("input[name=comment]").fill("two pores confirmed")
        first.locator("button[type=submit]").click()
        page.wait_for_url("**/ui/reviews?done=*")
        assert "Review of" in page.inner_text("[role=status]")
        assert page.locator(".queueitem").count() == n_queued - 1

        page.goto(f"/ui/inspections/{reviewed_id}")
        assert "two pores confirmed" in page.inner_text("#reviews")  # the signed review shows
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
        assert console_errors == []
        expected_pages = {"/ui/login", "/ui/inspections", "/ui/reviews", "/ui/machines", "/ui/evidence"}
        assert expected_pages <= {u.removeprefix(base_url) for u in visited}, visited
    finally:
        context.close()


def test_station_sees_no_review_or_evidence_pages(demo: Demo, browser: Any) -> None:
    base_url, keys = demo.base_url, demo.keys
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


# The focused element: what it is, and whether it shows a focus indicator.
_FOCUSED_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) { return null; }
  const css = getComputedStyle(el);
  return {
    tag: el.tagName.toLowerCase(), id: el.id, href: el.getAttribute("href") || "",
    text: (el.innerText || el.value || "").trim().slice(0, 40), type: el.getAttribute("type") || "",
    outline: css.outlineStyle, outlineWidth: css.outlineWidth, shadow: css.boxShadow,
  };
}"""
_FOCUSABLE_TAGS = {"a", "button", "input", "select", "textarea", "summary"}


def _focused(page: Any) -> dict[str, Any]:
    el = page.evaluate(_FOCUSED_JS)
    assert el is not None, f"focus was lost (document.activeElement is the body) on {page.url}"
    assert el["tag"] in _FOCUSABLE_TAGS, f"focus on a non-control element {el}"
    has_outline = el["outline"] != "none" and el["outlineWidth"] not in ("0px", "")
    assert has_outline or el["shadow"] != "none", f"no visible focus style: {el}"
    return el


def _tab_until(page: Any, wanted: Any, *, limit: int = 80) -> list[dict[str, Any]]:
    """Press Tab until ``wanted(focused)`` holds; every element on the way must show its focus."""
    path: list[dict[str, Any]] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        el = _focused(page)
        path.append(el)
        if wanted(el):
            return path
    msg = f"not reached by {limit} Tab presses on {page.url}; focus went through {path}"
    raise AssertionError(msg)


def test_keyboard_only_login_list_detail_and_overlay(demo: Demo, browser: Any) -> None:
    context = browser.new_context(base_url=demo.base_url, viewport={"width": 1280, "height": 860})
    page = context.new_page()
    console_errors = _watch_console(page)
    try:
        page.goto("/ui/login")
        # the key field has autofocus; Tab from wherever focus is until it is reached
        if (page.evaluate(_FOCUSED_JS) or {}).get("id") != "api_key":
            _tab_until(page, lambda el: el["id"] == "api_key")
        page.keyboard.type(demo.keys.auditor)
        path = _tab_until(page, lambda el: el["tag"] == "button" and el["type"] == "submit")
        assert path[-1]["text"] == "Log in"
        page.keyboard.press("Enter")
        page.wait_for_url("**/ui/inspections")

        # through the header and the filters to the first row's link: focus moves on every press
        path = _tab_until(page, lambda el: el["tag"] == "a" and el["href"].startswith("/ui/inspections/"))
        stops = [(el["tag"], el["id"], el["href"], el["text"]) for el in path]
        assert len(set(stops)) >= 8, stops  # header links, logout, filter fields and buttons, the row
        assert ("input", "f-serial", "", "") in stops and any(s[0] == "select" for s in stops)
        target = path[-1]["href"]
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{target}")

        # detail page: the overlay toggle is a real button, operable with Enter and Space
        _tab_until(page, lambda el: el["id"] == "overlay-toggle")
        assert page.get_attribute("#overlay-toggle", "aria-pressed") == "false"
        page.keyboard.press("Enter")
        page.locator("#photo-overlay").wait_for(state="visible")
        assert page.get_attribute("#overlay-toggle", "aria-pressed") == "true"
        assert not page.locator("#photo-original").is_visible()
        assert _focused(page)["id"] == "overlay-toggle"  # focus stays on the toggle
        page.keyboard.press("Space")
        assert page.get_attribute("#overlay-toggle", "aria-pressed") == "false"
        assert page.locator("#photo-original").is_visible()
        assert console_errors == []
    finally:
        context.close()
