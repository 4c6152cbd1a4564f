"""Headless Chromium for the tests: Debian's `chromium`, installed with apt when missing (CI runs
as root on a clean machine). A test may skip, with the reason printed, only when the apt
registry cannot be reached; any other install failure fails it."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def registry_reachable(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=180).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_chromium() -> str:
    for name in NAMES:
        if shutil.which(name):
            return shutil.which(name)
    installed = False
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
        installed = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                                   capture_output=True, timeout=1200).returncode == 0
    if installed and shutil.which("chromium"):
        return shutil.which("chromium")
    if not registry_reachable(["apt-get", "update"]):
        print("SKIP REASON: chromium missing and the apt registry is unreachable")
        pytest.skip("chromium missing and the apt registry is unreachable")
    pytest.fail("chromium is not installed and apt-get install chromium failed (not root?)")
