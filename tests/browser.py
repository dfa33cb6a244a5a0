"""Headless chromium for the report tests: find the binary, render a page, fail on any console message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

#: chromium logs uncaught errors, CSP violations and blocked loads on stderr like this.
CONSOLE_RE = re.compile(r":CONSOLE[:(]|Uncaught|Refused to|net::ERR_|Failed to load")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], check=False, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HOME": str(profile)})


def screenshot(page: Path, png: Path, profile: Path, height: int = 2400) -> str:
    """Render ``page`` into ``png`` (1280 wide); returns chromium's stderr. Fails on console messages."""
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary on PATH (chromium, chromium-browser or google-chrome); "
                    "install with: apt-get install -y chromium")
    shot = chromium(binary, profile, f"--screenshot={png}", f"--window-size=1280,{height}", page.resolve().as_uri())
    errors = [line for line in shot.stderr.splitlines() if CONSOLE_RE.search(line)]
    assert not errors, "\n".join(errors)
    assert png.is_file() and png.stat().st_size > 30_000, shot.stderr[-2000:]
    return shot.stderr


def check_page_in_chromium(page: Path, tmp_path: Path, height: int = 2400) -> str:
    """Screenshot the page (no console message allowed) and return its DOM after rendering."""
    screenshot(page, tmp_path / "page.png", tmp_path / "profile", height)
    binary = find_chromium()
    dom = chromium(binary, tmp_path / "profile", "--dump-dom", page.resolve().as_uri()).stdout
    assert 'data-pwned="1"' not in dom  # no injected script or handler ran
    return dom
