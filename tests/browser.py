"""Opening a page in headless Chromium (Debian's, driven by playwright) for the report tests.

Tests that call ``open_in_chromium`` skip, naming why, where playwright or Chromium is missing;
CI installs both (see .ci/run).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# Chromium on a machine with no network and no screen: no background connections, no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class Page:
    """What a page did when opened: its errors and warnings, image widths, tables, requests."""

    errors: list
    images: list  # naturalWidth of each <img>: 0 for an image that did not load
    tables: int
    headings: list  # the text of each <h3>
    requests: list  # every URL the page asked for


def chromium_path() -> str | None:
    """The Chromium binary on this machine, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def open_in_chromium(path: Path) -> Page:
    """Load a local HTML file headless; skip the calling test if no browser can run here."""
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
            page = browser.new_page()
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
        finally:
            browser.close()
    return Page(errors, images, tables, headings, requests)
