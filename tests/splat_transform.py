"""The reference implementation as a test oracle: @playcanvas/splat-transform from npm.

Installed once (pinned) into .cache/ at the checkout root. A test may skip only when the npm
registry cannot be reached; any other install failure fails the test.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

VERSION = "3.10.2"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", f"splat-transform-{VERSION}")
BIN = os.path.join(CACHE, "node_modules", ".bin", "splat-transform")


def ensure_installed() -> str:
    if os.path.exists(BIN):
        return BIN
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.fail("node/npm not found: the conformance tests need Node 20+ (apt-get install nodejs npm)")
    os.makedirs(CACHE, exist_ok=True)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", CACHE,
                           f"@playcanvas/splat-transform@{VERSION}"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        ping = subprocess.run(["npm", "ping"], capture_output=True, text=True, timeout=120)
        if ping.returncode != 0:
            print(f"SKIP REASON: npm registry unreachable: {ping.stderr.strip()[:300]}")
            pytest.skip(f"npm registry unreachable ({ping.stderr.strip()[:200]})")
        pytest.fail(f"npm install of splat-transform failed: {proc.stderr[-2000:]}")
    return BIN


#: splat-transform's CPU k-means of an SH palette is its slow part and grows with the splats
#: (bench/NOTES.md): a limit that catches a hang, not a slow machine
TIMEOUT_SECONDS = 1800


def run(*args: str) -> str:
    exe = ensure_installed()
    proc = subprocess.run([exe, "-q", "-w", "-g", "cpu", *args], capture_output=True, text=True,
                          timeout=TIMEOUT_SECONDS)
    if proc.returncode != 0:
        raise AssertionError(f"splat-transform {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout
