"""Headless Chromium, for the report's PNG (for the group chat) and the browser tests.

Chromium is found on PATH (Debian's package `chromium`); without it the PNG is skipped and run.json says
so. Each call is a fresh headless process with its own profile directory, killed if it hangs.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("Chromium not found (install Debian's 'chromium' package)")
    with tempfile.TemporaryDirectory(prefix="gridsweep-chromium-") as profile:
        return subprocess.run(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout, check=False,
        )


def screenshot(page: Path, png: Path, *, width: int = 900, height: int = 1400, timeout: float = 60) -> None:
    result = _run([f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()], timeout)
    if not png.exists() or png.stat().st_size == 0:
        raise RuntimeError(f"Chromium wrote no screenshot of {page.name}: {result.stderr[-300:]}")


def dump_dom(page: Path, *, timeout: float = 60) -> str:
    """The DOM after Chromium has parsed and laid out the page (what a reader's browser shows)."""
    result = _run(["--dump-dom", page.resolve().as_uri()], timeout)
    if result.returncode != 0 or "<html" not in result.stdout:
        raise RuntimeError(f"Chromium could not render {page.name}: {result.stderr[-300:]}")
    return result.stdout
