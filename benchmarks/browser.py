"""A headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by selenium) for the page's
browser test and its screenshot. Nothing here touches the network: the flags keep Chromium from trying.

Install: ``apt-get install chromium chromium-driver`` and ``pip install -c constraints.txt -e ".[dev]"``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)
"""Headless, and nothing that would reach for the network (without these it hangs on connections here)."""


def find_chromium() -> tuple[str, str] | None:
    """``(browser, driver)`` paths, or ``None`` when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A selenium WebDriver of a headless Chromium with a fresh profile, quit (and the profile removed) after."""
    found = find_chromium()
    if found is None:
        raise RuntimeError("no chromium and chromedriver on PATH; install them: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise RuntimeError("selenium is not installed: pip install -c constraints.txt -e '.[dev]'") from None
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not try to download a driver
    profile = tempfile.mkdtemp(prefix="iapo-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: str | os.PathLike[str], out: str | os.PathLike[str], width: int = 1400, height: int = 900) -> Path:
    """A PNG of the first ``height`` pixels of ``page`` (a local HTML file) at ``width`` pixels wide: what a
    reader sees first on a laptop screen."""
    from iapo_gym.io import atomic_write_bytes

    with chromium(width, height) as driver:
        driver.get(Path(page).resolve().as_uri())
        png = driver.get_screenshot_as_png()
    return atomic_write_bytes(out, png)


__all__ = ["CHROMIUM_FLAGS", "chromium", "find_chromium", "screenshot"]
