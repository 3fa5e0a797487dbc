"""Opening a page in headless Chromium (Debian's, driven by playwright) for the report tests.

Tests that call ``open_in_chromium`` skip, naming why, where playwright or Chromium is missing;
CI installs both (see .ci/run).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# Chromium on a machine with no network and no screen: no background connections, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# The overview's rows a reader sees: [candidate, loss, data-failed] of each one displayed.
VISIBLE_ROWS = """Array.from(document.querySelectorAll("#overview tr[data-loss]"))
  .filter(row => row.offsetParent !== null)
  .map(row => [row.closest("[data-candidate]").dataset.candidate, row.dataset.loss,
               row.dataset.failed])"""
# The first <section> of the page: its id, and whether it is displayed in the first screen.
FIRST_SECTION = """(() => {
  const section = document.querySelector("section");
  if (!section) return [null, false];
  const box = section.getBoundingClientRect();
  return [section.id, section.offsetParent !== null && box.height > 0
                      && box.top >= 0 && box.top < window.innerHeight];
})()"""


@dataclass
class Page:
    """What a page did when opened: its errors and warnings, image widths, tables, requests;
    what it shows first, and what the filter leaves of the overview."""

    errors: list
    images: list  # naturalWidth of each <img>: 0 for an image that did not load
    tables: int
    headings: list  # the text of each <h3>
    requests: list  # every URL the page asked for
    first_section: str | None  # the id of the first <section>
    first_section_in_view: bool  # displayed, its top within the first screen
    overview_rows: list  # VISIBLE_ROWS as the page opens
    filtered: dict = field(default_factory=dict)  # filter name -> VISIBLE_ROWS once applied


def chromium_path() -> str | None:
    """The Chromium binary on this machine, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def apply_filter(page, failures=False, loss="", candidate=""):
    """Set the report's filter controls as a reader would (they must be displayed)."""
    page.set_checked("#filter input[name=failures]", failures)
    page.select_option("#filter select[name=loss]", loss)
    page.select_option("#filter select[name=candidate]", candidate)


def open_in_chromium(path: Path, filters: dict | None = None,
                     screenshot: Path | None = None) -> Page:
    """Load a local HTML file headless; skip the calling test if no browser can run here.

    ``filters`` maps a name to apply_filter's settings ({"failures": True}); each is applied in
    turn and the overview rows it leaves are recorded under its name. ``screenshot``: where to
    save a PNG of the first screen, as the page opens."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors, requests = [], []
            page.on("console", lambda message: errors.append(f"{message.type}: {message.text}")
                    if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
            page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(Path(path).resolve().as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
            tables = page.locator("table").count()
            headings = page.locator("h3").all_inner_texts()
            first_section, in_view = page.evaluate(FIRST_SECTION)
            if screenshot:
                page.screenshot(path=str(screenshot))
            result = Page(errors, images, tables, headings, requests, first_section, in_view,
                          page.evaluate(VISIBLE_ROWS))
            for name, settings in (filters or {}).items():
                apply_filter(page, **settings)
                result.filtered[name] = page.evaluate(VISIBLE_ROWS)
        finally:
            browser.close()
    return result
